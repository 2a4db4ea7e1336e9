-- The journey's statements as PostgreSQL runs them for the server (store/mod.rs INSERT_POSTGRES and
-- SELECT_WAITING, and ec_viewed), with their parameters made from integers so pgbench can call
-- them: b_insert, b_get and b_viewed are one message each; b_insert_many and b_viewed_many run
-- the same for k messages in one call and one transaction, which is what a group commit of the
-- server's writes could at best do. 32 rooms of two participants on one instance, as in the bench.
CREATE FUNCTION b_room(r INT) RETURNS BYTEA LANGUAGE sql IMMUTABLE AS $$ SELECT sha256(('r' || r)::bytea) $$;
CREATE FUNCTION b_who(r INT, w TEXT) RETURNS BYTEA LANGUAGE sql IMMUTABLE AS $$ SELECT sha256((w || r)::bytea) $$;
CREATE FUNCTION b_id(c INT, n BIGINT) RETURNS BYTEA LANGUAGE sql IMMUTABLE AS $$ SELECT decode(md5(c || '-' || n), 'hex') $$;
-- The server's INSERT_POSTGRES, its parameters from integers.
CREATE FUNCTION b_insert(r INT, c INT, n BIGINT) RETURNS VOID LANGUAGE plpgsql VOLATILE AS $f$
#variable_conflict use_column
DECLARE room BYTEA := b_room(r); mid BYTEA := b_id(c, n); sender BYTEA := b_who(r, 'a');
  nowms BIGINT := (extract(epoch from clock_timestamp()) * 1000)::BIGINT; e BYTEA; p BIGINT; ins BIGINT; nt BIGINT;
BEGIN
  WITH existing AS (SELECT body FROM messages WHERE room_hash = room AND id = mid),
     pending AS (SELECT COUNT(*) AS n FROM messages WHERE room_hash = room AND expires_at > nowms),
     inserted AS (INSERT INTO messages (room_hash, id, body, expires_at, sender)
         SELECT room, mid, decode(repeat('5a', 314), 'hex'), nowms + 3600000, sender WHERE NOT EXISTS (SELECT 1 FROM existing) AND (SELECT n FROM pending) < 100
         ON CONFLICT (room_hash, id) DO NOTHING RETURNING id),
     members AS (SELECT room_hash, participant, instance FROM participants WHERE room_hash = room FOR KEY SHARE),
     recipients AS (INSERT INTO recipients (room_hash, message_id, participant)
         SELECT p.room_hash, i.id, p.participant FROM members p, inserted i WHERE p.participant <> sender),
     notified AS (SELECT pg_notify('x', 'y') FROM inserted
         WHERE EXISTS (SELECT 1 FROM members WHERE instance <> '\x00000000000000000000000000000001'::bytea)
         OR NOT EXISTS (SELECT 1 FROM members WHERE participant <> sender))
     SELECT (SELECT body FROM existing), (SELECT n FROM pending), (SELECT COUNT(*) FROM inserted), (SELECT COUNT(*) FROM notified) INTO e, p, ins, nt;
END $f$;
CREATE FUNCTION b_get(r INT, c INT, n BIGINT) RETURNS BIGINT LANGUAGE sql STABLE AS $f$
  SELECT (SELECT COUNT(*) FROM recipients x WHERE x.room_hash = m.room_hash AND x.message_id = m.id AND x.participant = b_who(r, 'b'))
  FROM messages m WHERE m.room_hash = b_room(r) AND m.id = b_id(c, n) AND m.expires_at > 0 $f$;
CREATE FUNCTION b_viewed(r INT, c INT, n BIGINT) RETURNS TEXT LANGUAGE sql VOLATILE AS $f$
  SELECT outcome FROM ec_viewed(b_room(r), b_id(c, n), b_who(r, 'b'), '\x00000000000000000000000000000001'::bytea, 'x', 'del', 'rec') $f$;
CREATE FUNCTION b_insert_many(r INT, c INT, q BIGINT, k INT) RETURNS VOID LANGUAGE plpgsql VOLATILE AS $f$
BEGIN FOR i IN 0..k-1 LOOP PERFORM b_insert(r, c, q + i); END LOOP; END $f$;
CREATE FUNCTION b_viewed_many(r INT, c INT, n BIGINT, k INT) RETURNS VOID LANGUAGE plpgsql VOLATILE AS $f$
BEGIN FOR i IN 0..k-1 LOOP PERFORM b_viewed(r, c, n + i); END LOOP; END $f$;
INSERT INTO participants (room_hash, participant, instance, connection, heartbeat_at)
  SELECT b_room(r), b_who(r, w), '\x00000000000000000000000000000001'::bytea, 1, 0 FROM generate_series(1, 32) r, (VALUES ('a'), ('b')) v(w);
