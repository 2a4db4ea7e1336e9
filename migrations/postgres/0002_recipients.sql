-- Who sent each message and who must view it before it burns. Participants are
-- SHA-256("ephemeral-chat/v1/session" || session token): random per page session, never a person.
ALTER TABLE messages ADD COLUMN sender BYTEA NOT NULL DEFAULT '\x';

CREATE TABLE recipients (
    room_hash   BYTEA   NOT NULL,
    message_id  BYTEA   NOT NULL,
    participant BYTEA   NOT NULL CHECK (octet_length(participant) = 32),
    viewed      BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (room_hash, message_id, participant)
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 50);

CREATE INDEX recipients_participant ON recipients (room_hash, participant);
