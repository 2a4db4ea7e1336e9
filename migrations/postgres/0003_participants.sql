-- Who is in each room, connected or within the grace period after a disconnect, and which
-- server instance holds them. Participants are the same random per-page-session hashes as in
-- recipients. A row whose instance stops renewing heartbeat_at is dropped by whoever notices.
CREATE TABLE participants (
    room_hash    BYTEA  NOT NULL CHECK (octet_length(room_hash) = 32),
    participant  BYTEA  NOT NULL CHECK (octet_length(participant) = 32),
    instance     BYTEA  NOT NULL CHECK (octet_length(instance) = 16),
    connection   BIGINT,                  -- the holding instance's connection, NULL during the grace period
    generation   BIGINT NOT NULL DEFAULT 0, -- bumped at each disconnect, so a stale timer does nothing
    heartbeat_at BIGINT NOT NULL,         -- unix milliseconds
    PRIMARY KEY (room_hash, participant)
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 50);

CREATE INDEX participants_instance ON participants (instance);
CREATE INDEX participants_heartbeat ON participants (heartbeat_at);
