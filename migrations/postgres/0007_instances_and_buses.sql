-- The instances sharing this database, and the bus each carries room events on (issue 24).
-- An instance registers at start and renews `heartbeat_at` with its participant rows; one that
-- stops renewing has died, and the survivors resync the rooms its participants were in (with
-- NATS, its last events may have been committed and never published). `bus` is `postgres`, or
-- `nats` and a fingerprint of the subject key: instances that would not hear each other refuse
-- to run together (the one starting second stops with an error naming both).
CREATE TABLE instances (
    instance     BYTEA  PRIMARY KEY CHECK (octet_length(instance) = 16),
    bus          TEXT   NOT NULL,
    heartbeat_at BIGINT NOT NULL -- unix milliseconds
);

-- As in 0005, with two changes:
--  * `channel` NULL: NOTIFY nothing (the instances carry their events over NATS and publish
--    them after the commit);
--  * the other participants' rows are read FOR KEY SHARE before `elsewhere` is decided, as the
--    insert reads them: a join that moves a participant to another instance locks its row FOR
--    UPDATE first, so either the join waits for this view or this view sees the participant's
--    new instance and notifies it. Read without the lock, a participant that moved in the same
--    milliseconds missed its receipt or deletion until its next resync (the rejoin gap).
CREATE OR REPLACE FUNCTION ec_viewed(room BYTEA, message BYTEA, who BYTEA, here BYTEA, channel TEXT, deleted_notice TEXT, receipt_prefix TEXT)
RETURNS TABLE (outcome TEXT, viewed_count BIGINT, recipient_count BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    total BIGINT;
    seen BIGINT;
    complete BOOLEAN;
    elsewhere BOOLEAN := FALSE;
BEGIN
    IF channel IS NOT NULL THEN
        PERFORM 1 FROM participants p WHERE p.room_hash = room AND p.participant <> who FOR KEY SHARE;
        SELECT EXISTS (SELECT 1 FROM participants p WHERE p.room_hash = room AND p.instance <> here) INTO elsewhere;
    END IF;
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
