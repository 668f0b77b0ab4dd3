-- Analytics events and their rollups (issue 4). Event times are Unix
-- microseconds (UTC), latencies microseconds; rollup buckets are Unix
-- seconds. See events.go for the design.

-- Raw events, in blocks (see block.go for the encoding): each row holds
-- up to 2,048 events of one app, sorted by time, within 10 minutes of each
-- other. seq is AUTOINCREMENT so that it is never reused, even after
-- retention deleted the newest blocks: the rollup watermark below relies
-- on every new block getting a seq above every earlier one.
CREATE TABLE event_blocks (
	seq    INTEGER PRIMARY KEY AUTOINCREMENT,
	app_id TEXT NOT NULL,
	tmin   INTEGER NOT NULL, -- time of its first event
	tmax   INTEGER NOT NULL, -- time of its last event
	n      INTEGER NOT NULL, -- events in it
	data   BLOB NOT NULL
) STRICT;
-- Listings newest first: blocks by the time of their last event.
CREATE INDEX event_blocks_app_tmax ON event_blocks(app_id, tmax);

-- Idempotency: one row per stored event, unique per (app, time, id). A
-- retried batch resends its events with their times, so this catches every
-- retry; and because capture times grow, inserts land at the end of this
-- key instead of on a random leaf page per event, as a unique (app_id, id)
-- on random ids does (see BENCHMARKS.md). Written by the aggregation, for
-- the blocks it rolls up; the keys of pending blocks are kept in memory
-- (keys.go).
CREATE TABLE event_keys (
	app_id TEXT NOT NULL,
	time   INTEGER NOT NULL,
	id     TEXT NOT NULL,
	PRIMARY KEY (app_id, time, id)
) STRICT, WITHOUT ROWID;

-- Blocks by value, for listings filtered by user, route or auth error
-- (kind 0: user_id, 1: client_user_id, 2: api_user_id, 3: auth_error,
-- 4: route): one row per value and aggregation run (the blocks one
-- aggregation read, seqs first to last), listing the blocks of that run
-- that hold the value (blocks: uvarint deltas from first), so a listing
-- decodes only blocks with a match. Filled by the aggregation that
-- maintains the rollups: a row per block and value would be written for
-- nearly every event, as an index of events by user would.
CREATE TABLE event_index (
	app_id TEXT NOT NULL,
	kind   INTEGER NOT NULL,
	value  TEXT NOT NULL,
	tmax   INTEGER NOT NULL, -- the latest tmax of its blocks
	first  INTEGER NOT NULL, -- seq of its first block
	last   INTEGER NOT NULL, -- seq of its last block
	tmin   INTEGER NOT NULL, -- the earliest tmin of its blocks
	blocks BLOB NOT NULL,
	PRIMARY KEY (app_id, kind, value, tmax, first)
) STRICT, WITHOUT ROWID;
-- Retention finds the rows that list the blocks it deletes by their
-- first block: the oldest rows of a value.
CREATE INDEX event_index_first ON event_index(app_id, kind, value, first);

-- The rollup watermark: every block with seq <= rolled_up is in the
-- rollups and event_index, and none above it. Advanced in the transaction that updates the
-- rollups, so a crash never loses nor doubles an event's contribution.
CREATE TABLE event_rollup_state (
	id        INTEGER PRIMARY KEY CHECK (id = 1),
	rolled_up INTEGER NOT NULL
) STRICT;
INSERT INTO event_rollup_state (id, rolled_up) VALUES (1, 0);

-- Route-level rollups (group by route, status class, auth error), at three
-- granularities: span is the bucket length in seconds (60, 3600 or 86400)
-- and bucket its start, a multiple of span. count, errors and the bytes are
-- sums of weights; latency is a DDSketch (relative accuracy 1%) in its own
-- binary encoding, in microseconds.
CREATE TABLE event_rollups_route (
	app_id         TEXT NOT NULL,
	span           INTEGER NOT NULL,
	bucket         INTEGER NOT NULL,
	route          TEXT NOT NULL,
	status_class   INTEGER NOT NULL, -- status/100; 0 for a status outside 100..599
	auth_error     TEXT NOT NULL,
	count          REAL NOT NULL,
	errors         REAL NOT NULL,
	request_bytes  REAL NOT NULL,
	response_bytes REAL NOT NULL,
	latency        BLOB NOT NULL,
	PRIMARY KEY (app_id, span, bucket, route, status_class, auth_error)
) STRICT, WITHOUT ROWID;

-- User-level rollups (group by user id or company, top-N users), per hour
-- (span 3600) and per day (span 86400).
CREATE TABLE event_rollups_user (
	app_id         TEXT NOT NULL,
	span           INTEGER NOT NULL,
	bucket         INTEGER NOT NULL,
	user_id        TEXT NOT NULL,
	company_id     TEXT NOT NULL,
	count          REAL NOT NULL,
	errors         REAL NOT NULL,
	request_bytes  REAL NOT NULL,
	response_bytes REAL NOT NULL,
	latency        BLOB NOT NULL,
	PRIMARY KEY (app_id, span, bucket, user_id, company_id)
) STRICT, WITHOUT ROWID;
