-- Who sent each message and who must view it before it burns. Participants are
-- SHA-256("ephemeral-chat/v1/session" || session token): random per page session, never a person.
ALTER TABLE messages ADD COLUMN sender BLOB NOT NULL DEFAULT x'';

CREATE TABLE recipients (
    room_hash   BLOB    NOT NULL,
    message_id  BLOB    NOT NULL,
    participant BLOB    NOT NULL CHECK (length(participant) = 32),
    viewed      INTEGER NOT NULL DEFAULT 0 CHECK (viewed IN (0, 1)),
    PRIMARY KEY (room_hash, message_id, participant)
) WITHOUT ROWID;

CREATE INDEX recipients_participant ON recipients (room_hash, participant);
