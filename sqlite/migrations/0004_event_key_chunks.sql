-- Idempotency keys in chunks (issue 4): a row per chunk of up to 128 keys
-- of one app, sorted by (time, id), within 10 ms of the first, instead of
-- a row per event (event_keys). Writing a row per aggregated event was a
-- fifth of the writer's time; a chunk is one row for many. A key is found
-- by the chunks whose [tmin, tmax] holds its time: tmax between its time
-- and 10 ms later, a bounded range of the index below. The keys are moved
-- here, and event_keys dropped, by the code that runs this migration
-- (sqlite.go, convertEventKeys): the encoding of a chunk is the store's
-- (keys.go).
CREATE TABLE event_key_chunks (
	id     INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: see DeleteEventsBefore
	app_id TEXT NOT NULL,
	tmin   INTEGER NOT NULL, -- time of its first key
	tmax   INTEGER NOT NULL, -- time of its last key
	keys   BLOB NOT NULL
) STRICT;
CREATE INDEX event_key_chunks_app_tmax ON event_key_chunks(app_id, tmax, tmin);
