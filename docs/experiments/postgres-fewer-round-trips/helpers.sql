-- Parameters made from pgbench's integers: IMMUTABLE one-expression SQL functions, which
-- PostgreSQL inlines into the statements that call them (no call, no plan of their own). 32 rooms
-- of two participants ('a' sends, 'b' receives) on one instance, as in the bench.
CREATE FUNCTION b_room(r INT) RETURNS BYTEA LANGUAGE sql IMMUTABLE AS $$ SELECT sha256(('r' || r)::bytea) $$;
CREATE FUNCTION b_who(r INT, w TEXT) RETURNS BYTEA LANGUAGE sql IMMUTABLE AS $$ SELECT sha256((w || r)::bytea) $$;
CREATE FUNCTION b_id(c INT, n BIGINT) RETURNS BYTEA LANGUAGE sql IMMUTABLE AS $$ SELECT decode(md5(c || '-' || n), 'hex') $$;
CREATE FUNCTION b_now() RETURNS BIGINT LANGUAGE sql VOLATILE AS $$ SELECT (extract(epoch from clock_timestamp()) * 1000)::BIGINT $$;
INSERT INTO participants (room_hash, participant, instance, connection, heartbeat_at)
  SELECT b_room(r), b_who(r, w), '\x00000000000000000000000000000001'::bytea, 1, 0
  FROM generate_series(1, 32) r, (VALUES ('a'), ('b')) v(w);
