-- A message's recipients live in its own row: `recipients` (who must view it) and `viewed_by`
-- (those of them who have). The recipients table made every journey write, update and delete a
-- second row besides the message's; now the last recipient's view is one DELETE of one row, as
-- in the database's own insert+delete ceiling (BENCHMARKS.md). Participants are the same random
-- per-page-session hashes as before; a room holds a handful at most, so the arrays stay small.
-- An empty `recipients` is a message open to anyone but its sender, as no recipients rows were.
ALTER TABLE messages
    ADD COLUMN recipients BYTEA[] NOT NULL DEFAULT '{}',
    ADD COLUMN viewed_by  BYTEA[] NOT NULL DEFAULT '{}';

UPDATE messages m SET
    recipients = ARRAY(SELECT r.participant FROM recipients r
                       WHERE r.room_hash = m.room_hash AND r.message_id = m.id ORDER BY r.participant),
    viewed_by = ARRAY(SELECT r.participant FROM recipients r
                      WHERE r.room_hash = m.room_hash AND r.message_id = m.id AND r.viewed ORDER BY r.participant);

DROP TABLE recipients;

-- `viewed` in one round trip, as before, with the same answers. A row lock orders concurrent
-- viewers of one message (each statement below re-reads a row another viewer changed before it
-- goes on, under READ COMMITTED), so two last viewers at once still burn it: whichever comes
-- second finds its view completes the message and deletes it.
--  1. The message is complete with this view (always so for a two-person room's one
--     recipient): delete it, the only write.
--  2. Otherwise mark this view; if another viewer completed the rest meanwhile, delete it now.
--  3. Otherwise (a repeated view, not a recipient, or gone) report what the row says.
-- NOTIFY only when a participant of the room is on another instance (`here` is this one), as
-- before (0004). `receipt_prefix` is the notice up to the counts, which are appended here.
CREATE OR REPLACE FUNCTION ec_viewed(room BYTEA, message BYTEA, who BYTEA, here BYTEA, channel TEXT, deleted_notice TEXT, receipt_prefix TEXT)
RETURNS TABLE (outcome TEXT, viewed_count BIGINT, recipient_count BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    total BIGINT;
    seen BIGINT;
    complete BOOLEAN;
    elsewhere BOOLEAN;
BEGIN
    SELECT EXISTS (SELECT 1 FROM participants p WHERE p.room_hash = room AND p.instance <> here) INTO elsewhere;
    DELETE FROM messages m WHERE m.room_hash = room AND m.id = message
        AND m.recipients <@ array_append(m.viewed_by, who)
        RETURNING cardinality(m.recipients) INTO total;
    IF NOT FOUND THEN
        UPDATE messages m SET viewed_by = array_append(m.viewed_by, who)
            WHERE m.room_hash = room AND m.id = message AND who = ANY (m.recipients) AND NOT who = ANY (m.viewed_by)
            RETURNING cardinality(m.viewed_by), cardinality(m.recipients), m.recipients <@ m.viewed_by
            INTO seen, total, complete;
        IF NOT FOUND THEN
            SELECT cardinality(m.viewed_by), cardinality(m.recipients) INTO seen, total
                FROM messages m WHERE m.room_hash = room AND m.id = message;
            IF NOT FOUND THEN
                RETURN QUERY SELECT 'gone'::TEXT, 0::BIGINT, 0::BIGINT;
                RETURN;
            END IF;
            complete := FALSE;
        END IF;
        IF NOT complete THEN
            IF elsewhere THEN
                PERFORM pg_notify(channel, receipt_prefix || ' ' || seen || ' ' || total);
            END IF;
            RETURN QUERY SELECT 'progress'::TEXT, seen, total;
            RETURN;
        END IF;
        DELETE FROM messages m WHERE m.room_hash = room AND m.id = message;
    END IF;
    IF elsewhere THEN
        PERFORM pg_notify(channel, deleted_notice);
    END IF;
    RETURN QUERY SELECT 'deleted'::TEXT, total, total;
END
$$;
