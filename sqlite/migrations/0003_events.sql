-- Analytics events and their rollups (issue 4). Event times are Unix
-- microseconds (UTC), latencies microseconds; rollup buckets are Unix
-- seconds. See events.go for the design.

-- Raw events. seq is AUTOINCREMENT so that it is never reused, even after
-- retention deleted the newest rows: the rollup watermark below relies on
-- every new event getting a seq above every earlier one.
CREATE TABLE events (
	seq            INTEGER PRIMARY KEY AUTOINCREMENT,
	app_id         TEXT NOT NULL,
	id             TEXT NOT NULL,
	time           INTEGER NOT NULL,
	method         TEXT NOT NULL,
	route          TEXT NOT NULL,
	uri            TEXT NOT NULL,
	status         INTEGER NOT NULL,
	latency        INTEGER NOT NULL,
	request_bytes  INTEGER NOT NULL,
	response_bytes INTEGER NOT NULL,
	user_id        TEXT NOT NULL,
	api_user_id    TEXT NOT NULL,
	client_user_id TEXT NOT NULL,
	company_id     TEXT NOT NULL,
	scheme         TEXT NOT NULL,
	key_id         TEXT NOT NULL,
	auth_error     TEXT NOT NULL,
	request_id     TEXT NOT NULL,
	remote_ip      TEXT NOT NULL,
	user_agent     TEXT NOT NULL,
	weight         REAL NOT NULL,
	metadata       TEXT,          -- JSON object, NULL when empty
	request_body   TEXT NOT NULL,
	response_body  TEXT NOT NULL
) STRICT;
-- Idempotency and listing: one event per (app, time, id). A retried batch
-- resends its events with their times, so this catches every retry; and
-- because capture times grow, inserts land at the end of this index
-- instead of on a random leaf page per event, as a unique (app_id, id) on
-- random ids does (see BENCHMARKS.md). The same index serves listings
-- newest first, the (time, id) cursor and the retention delete.
CREATE UNIQUE INDEX events_app_time_id ON events(app_id, time, id);
-- Failed authentications by code: few codes, so new entries land on a
-- handful of pages. Partial: other events cost nothing here. Queries
-- repeat the "!= ''" term so that SQLite may use it.
CREATE INDEX events_app_auth_error ON events(app_id, auth_error, time, id) WHERE auth_error != '';

-- Events by attributed user (kind 0: user_id, 1: client_user_id, 2:
-- api_user_id), for listings filtered by user. Not an index of events:
-- with thousands of users, each event would dirty a random leaf page of
-- such an index, and at 10 million events that was most of the bytes
-- written per append (see events.go). It is filled, sorted, by the
-- aggregation that maintains the rollups, many events at a time.
CREATE TABLE event_users (
	app_id  TEXT NOT NULL,
	kind    INTEGER NOT NULL,
	user_id TEXT NOT NULL,
	time    INTEGER NOT NULL,
	id      TEXT NOT NULL,
	seq     INTEGER NOT NULL, -- events.seq
	PRIMARY KEY (app_id, kind, user_id, time, id)
) STRICT, WITHOUT ROWID;

-- The rollup watermark: every event with seq <= rolled_up is in the
-- rollups and event_users, and none above it. Advanced in the transaction that updates the
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
