-- `viewed` in one round trip: the same statements the store ran one by one inside a transaction
-- (lock the message row, mark, count, and delete once everyone has viewed), as one function.
-- Being VOLATILE, each statement in it takes a fresh snapshot under READ COMMITTED, so a count
-- made after the row lock sees every other viewer's committed mark, as before: two last readers
-- viewing at once still burn the message. The event is NOTIFYd in the same transaction, but
-- only when a participant of the room is on another instance (`here` is this one): a commit
-- that NOTIFYs holds a lock that serialises every such commit in the database, which cost a
-- single instance most of its throughput for nobody's benefit (BENCHMARKS.md).
-- `receipt_prefix` is the notice up to the counts, which are appended here.
CREATE FUNCTION ec_viewed(room BYTEA, message BYTEA, who BYTEA, here BYTEA, channel TEXT, deleted_notice TEXT, receipt_prefix TEXT)
RETURNS TABLE (outcome TEXT, viewed_count BIGINT, recipient_count BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    total BIGINT;
    seen BIGINT;
    removed BIGINT;
    elsewhere BOOLEAN;
BEGIN
    UPDATE messages SET expires_at = expires_at WHERE room_hash = room AND id = message;
    UPDATE recipients SET viewed = TRUE WHERE room_hash = room AND message_id = message AND participant = who;
    SELECT COUNT(*), COALESCE(SUM(CASE WHEN r.viewed THEN 1 ELSE 0 END), 0) INTO total, seen
        FROM recipients r WHERE r.room_hash = room AND r.message_id = message;
    SELECT EXISTS (SELECT 1 FROM participants p WHERE p.room_hash = room AND p.instance <> here) INTO elsewhere;
    IF seen < total THEN
        IF elsewhere THEN
            PERFORM pg_notify(channel, receipt_prefix || ' ' || seen || ' ' || total);
        END IF;
        RETURN QUERY SELECT 'progress'::TEXT, seen, total;
        RETURN;
    END IF;
    DELETE FROM messages WHERE room_hash = room AND id = message;
    GET DIAGNOSTICS removed = ROW_COUNT;
    DELETE FROM recipients WHERE room_hash = room AND message_id = message;
    IF removed = 1 THEN
        IF elsewhere THEN
            PERFORM pg_notify(channel, deleted_notice);
        END IF;
        RETURN QUERY SELECT 'deleted'::TEXT, seen, total;
    ELSE
        RETURN QUERY SELECT 'gone'::TEXT, seen, total;
    END IF;
END
$$;
