-- Files (crypto spec v2): a file card is a message whose sealed chunks wait beside it, one row
-- each, under the server's at-rest layer like the message. `messages.chunks` is how many (0 for
-- a text message). Chunks are written before their card's message row exists (the upload), and
-- deleted with it by the trigger below, whichever way the row goes (viewed, expired, purged,
-- its recipients gone): the burn rule stays the messages' own. An upload that never got its
-- message row is purged when its connection ends, or by the expiry sweep after a deadline.
-- A rowid table, not WITHOUT ROWID: its rows are 64 KiB, and a clustered index wants small rows.
ALTER TABLE messages ADD COLUMN chunks INTEGER NOT NULL DEFAULT 0 CHECK (chunks >= 0);

CREATE TABLE chunks (
    room_hash  BLOB    NOT NULL CHECK (length(room_hash) = 32),
    message_id BLOB    NOT NULL CHECK (length(message_id) = 16),
    idx        INTEGER NOT NULL CHECK (idx >= 0),
    body       BLOB    NOT NULL,
    stored_at  INTEGER NOT NULL, -- unix milliseconds
    PRIMARY KEY (room_hash, message_id, idx)
);

CREATE TRIGGER messages_burn_chunks AFTER DELETE ON messages FOR EACH ROW WHEN OLD.chunks > 0
BEGIN
    DELETE FROM chunks WHERE room_hash = OLD.room_hash AND message_id = OLD.id;
END;
