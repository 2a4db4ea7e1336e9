-- Waiting messages. A row lives from send until it is viewed or expires, then is deleted.
-- room_hash = SHA-256(room_id); body = the server's at-rest seal over the client's sealed payload.
-- Autovacuum runs after every 50 dead rows regardless of table size, so deleted messages'
-- tuples are reclaimed promptly rather than lingering in the heap.
CREATE TABLE messages (
    room_hash  BYTEA  NOT NULL CHECK (octet_length(room_hash) = 32),
    id         BYTEA  NOT NULL CHECK (octet_length(id) = 16),
    body       BYTEA  NOT NULL,
    expires_at BIGINT NOT NULL, -- unix milliseconds
    PRIMARY KEY (room_hash, id)
) WITH (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 50,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 1000
);

CREATE INDEX messages_expires_at ON messages (expires_at);
