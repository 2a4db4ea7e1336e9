-- Files (crypto spec v2): a file card is a message whose sealed chunks wait beside it, one row
-- each, under the server's at-rest layer like the message. `messages.chunks` is how many (0 for
-- a text message). Chunks are written before their card's message row exists (the upload), and
-- deleted with it by the trigger below, whichever way the row goes (viewed, expired, purged,
-- its recipients gone): the burn rule stays the messages' own. The trigger's WHEN is checked
-- without calling the function, so a text message's delete costs nothing more. An upload that
-- never got its message row is purged when its connection ends, or by the expiry sweep after a
-- deadline.
ALTER TABLE messages ADD COLUMN chunks INTEGER NOT NULL DEFAULT 0 CHECK (chunks >= 0);

CREATE TABLE chunks (
    room_hash  BYTEA   NOT NULL CHECK (octet_length(room_hash) = 32),
    message_id BYTEA   NOT NULL CHECK (octet_length(message_id) = 16),
    idx        INTEGER NOT NULL CHECK (idx >= 0),
    body       BYTEA   NOT NULL,
    stored_at  BIGINT  NOT NULL, -- unix milliseconds
    PRIMARY KEY (room_hash, message_id, idx)
) WITH (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 50
);

-- Ciphertext does not compress: store it out of line without trying.
ALTER TABLE chunks ALTER COLUMN body SET STORAGE EXTERNAL;

CREATE FUNCTION ec_burn_chunks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM chunks WHERE room_hash = OLD.room_hash AND message_id = OLD.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_burn_chunks AFTER DELETE ON messages FOR EACH ROW WHEN (OLD.chunks > 0)
    EXECUTE FUNCTION ec_burn_chunks();
