-- Who is in each room, connected or within the grace period after a disconnect, and which
-- server instance holds them. Participants are the same random per-page-session hashes as in
-- recipients. A row whose instance stops renewing heartbeat_at is dropped by whoever notices.
CREATE TABLE participants (
    room_hash    BLOB    NOT NULL CHECK (length(room_hash) = 32),
    participant  BLOB    NOT NULL CHECK (length(participant) = 32),
    instance     BLOB    NOT NULL CHECK (length(instance) = 16),
    connection   INTEGER,          -- the holding instance's connection, NULL during the grace period
    generation   INTEGER NOT NULL DEFAULT 0, -- bumped at each disconnect, so a stale timer does nothing
    heartbeat_at INTEGER NOT NULL, -- unix milliseconds
    PRIMARY KEY (room_hash, participant)
) WITHOUT ROWID;

CREATE INDEX participants_instance ON participants (instance);
CREATE INDEX participants_heartbeat ON participants (heartbeat_at);
