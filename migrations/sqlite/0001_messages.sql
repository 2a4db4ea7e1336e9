-- Waiting messages. A row lives from send until it is viewed or expires, then is deleted.
-- room_hash = SHA-256(room_id); body = the server's at-rest seal over the client's sealed payload.
CREATE TABLE messages (
    room_hash  BLOB    NOT NULL CHECK (length(room_hash) = 32),
    id         BLOB    NOT NULL CHECK (length(id) = 16),
    body       BLOB    NOT NULL,
    expires_at INTEGER NOT NULL, -- unix milliseconds
    PRIMARY KEY (room_hash, id)
) WITHOUT ROWID;

CREATE INDEX messages_expires_at ON messages (expires_at);
