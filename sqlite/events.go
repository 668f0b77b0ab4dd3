package sqlite

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/callsignhq/callsign"
)

// The event store. Three kinds of tables (migrations/0003_events.sql):
//
//   - events: the raw events, one row each, unique per (app_id, time, id),
//     with a monotonic seq (AUTOINCREMENT, never reused). That unique index
//     also serves listings newest first; partial indexes (app_id, user_id |
//     client_user_id | api_user_id | auth_error, time) serve the filters.
//   - event_rollups_route: per app × bucket × route × status class × auth
//     error, at three granularities (minute, hour, day); answers group_by
//     route, status and auth_error. No user dimension, so a bucket has at
//     most routes × classes × codes rows whatever the number of users.
//   - event_rollups_user: per app × bucket × user id × company, per hour and
//     per day; answers group_by user_id and company_id and top-N users.
//
// The user dimension has no minute rollup: with many users nearly every
// event of a minute is its own (route, user) cell, so a minute × route ×
// user rollup is about as large as the raw table and as slow to aggregate.
// A query reads the coarsest buckets that fit in its range and finer ones
// only at the edges (cover), so 7 days of routes read 7 day rows per
// (route, class, code) plus at most 46 hours and 118 minutes of edges.
//
// Rollups are maintained asynchronously from a durable watermark
// (event_rollup_state.rolled_up, a seq) but without a background goroutine:
// AppendEvents commits the raw rows alone (that commit is the durability
// point), and whenever rollupEvery events or more are pending it aggregates
// them, in further transactions that each advance the watermark together
// with the rollups. Metrics and DeleteEventsBefore first aggregate whatever
// is pending, so their answers include every acknowledged event. A crash
// after the raw commit leaves events above the watermark, aggregated by the
// next call. Aggregating many events at a time is what makes rollups
// affordable: a busy (hour, user) or (minute, route) cell is updated once
// per aggregation instead of once per batch. Updating the rollups in the
// append's own transaction costs about 2.3 upserts per event with 10,000
// users (each batch touches ~900 user cells at two granularities); reading
// the pending events back costs ~2.5 µs each and an aggregation of 32,768
// events upserts about 20,000 cells, ~0.6 per event.

// Insert chunk sizes: a batch is written by multi-row INSERTs of these
// many events (largest first), each a statement prepared once.
const (
	insertChunkL = 64
	insertChunkM = 8
	insertChunkS = 1
)

// eventInsertColumns are the columns AppendEvents writes, in the order
// appendEventArgs binds them.
const eventInsertColumns = "app_id, id, time, method, route, uri, status, latency, request_bytes, response_bytes, " +
	"user_id, api_user_id, client_user_id, company_id, scheme, key_id, auth_error, request_id, remote_ip, user_agent, " +
	"weight, metadata, request_body, response_body"

const eventInsertArgs = 24

// eventStmts are the event store's prepared statements.
type eventStmts struct {
	insert       [3]*sql.Stmt // insertChunkL, M and S events
	upsertRoute  [3]*sql.Stmt // upsertChunkL, M and S rollup rows
	upsertUser   [3]*sql.Stmt
	readPending  *sql.Stmt // on the writer: events above the watermark
	pendingCount *sql.Stmt // on the readers
}

func (s *eventStmts) all() []*sql.Stmt {
	return append(append(append(s.insert[:], s.upsertRoute[:]...), s.upsertUser[:]...), s.readPending, s.pendingCount)
}

func (db *DB) prepareEvents(ctx context.Context) error {
	type p struct {
		st   **sql.Stmt
		pool *sql.DB
		q    string
	}
	var ps []p
	for i, n := range [3]int{insertChunkL, insertChunkM, insertChunkS} {
		ps = append(ps, p{&db.ev.insert[i], db.w, "INSERT INTO events (" + eventInsertColumns + ") VALUES " +
			valuesList(n, eventInsertArgs) + " ON CONFLICT (app_id, time, id) DO NOTHING"})
	}
	for i, n := range [3]int{upsertChunkL, upsertChunkM, upsertChunkS} {
		ps = append(ps, p{&db.ev.upsertRoute[i], db.w, upsertSQL("event_rollups_route", "route, status_class, auth_error", 3, n)})
		ps = append(ps, p{&db.ev.upsertUser[i], db.w, upsertSQL("event_rollups_user", "user_id, company_id", 2, n)})
	}
	ps = append(ps,
		p{&db.ev.readPending, db.w, "SELECT seq, app_id, time, route, status, latency, request_bytes, response_bytes, user_id, company_id, auth_error, weight " +
			"FROM events WHERE seq > ? ORDER BY seq LIMIT ?"},
		p{&db.ev.pendingCount, db.r, pendingSQL},
	)
	if _, err := db.w.ExecContext(ctx, "PRAGMA cache_size = -65536"); err != nil {
		return err
	}
	if _, err := db.w.ExecContext(ctx, "PRAGMA temp_store = MEMORY"); err != nil {
		return err
	}
	for _, x := range ps {
		st, err := x.pool.PrepareContext(ctx, x.q)
		if err != nil {
			return fmt.Errorf("sqlite: prepare: %w", err)
		}
		*x.st = st
	}
	return nil
}

// pendingSQL counts the events not yet aggregated into the rollups.
const pendingSQL = "SELECT ifnull((SELECT max(seq) FROM events), 0) - rolled_up FROM event_rollup_state"

// valuesList returns "(?, ?), (?, ?)" for rows rows of cols columns.
func valuesList(rows, cols int) string {
	row := "(" + strings.Repeat("?, ", cols-1) + "?)"
	return strings.Repeat(row+", ", rows-1) + row
}

// AppendEvents implements callsign.EventStore. The events are written in
// one transaction, committed with an fsync before it returns. An event is a
// duplicate, counted and skipped, when one with the same AppID, ID and Time
// (to the microsecond) is stored, from an earlier batch or earlier in this
// one: a retried batch carries the times it had. The same ID at another
// time is stored as another event (see the events_app_time_id index for
// why). It returns EInvalid, and stores nothing,
// when an event has no AppID or ID or a negative or non-finite Weight.
func (db *DB) AppendEvents(ctx context.Context, events []*callsign.Event) (callsign.IngestResult, error) {
	var res callsign.IngestResult
	for i, e := range events {
		if err := checkEvent(e); err != nil {
			return res, callsign.Errorf(callsign.EInvalid, "Event %d: %s", i, err)
		}
	}
	if len(events) == 0 {
		return res, nil
	}
	var pending int64
	err := db.tx(ctx, func(tx *sql.Tx) error {
		args := make([]any, 0, min(len(events), insertChunkL)*eventInsertArgs)
		rest := events
		for i, size := range [3]int{insertChunkL, insertChunkM, insertChunkS} {
			if len(rest) < size {
				continue
			}
			st := tx.StmtContext(ctx, db.ev.insert[i])
			for len(rest) >= size {
				args = args[:0]
				for _, e := range rest[:size] {
					args = appendEventArgs(args, e)
				}
				r, err := st.ExecContext(ctx, args...)
				if err != nil {
					return err
				}
				n, err := r.RowsAffected()
				if err != nil {
					return err
				}
				res.Accepted += int(n)
				rest = rest[size:]
			}
		}
		return tx.QueryRowContext(ctx, pendingSQL).Scan(&pending)
	})
	if err != nil {
		return callsign.IngestResult{}, fmt.Errorf("sqlite: append events: %w", err)
	}
	res.Duplicates = len(events) - res.Accepted
	if pending >= rollupEvery {
		// The events are durable: a failure to aggregate them now is not
		// the caller's, and the next call retries from the watermark.
		_ = db.rollUp(context.WithoutCancel(ctx), rollupEvery, rollupChunk)
	}
	return res, nil
}

func checkEvent(e *callsign.Event) error {
	switch {
	case e == nil:
		return errors.New("no event")
	case e.AppID == "":
		return errors.New("no app id")
	case e.ID == "":
		return errors.New("no event id")
	case e.Weight < 0 || math.IsNaN(e.Weight) || math.IsInf(e.Weight, 0):
		return errors.New("invalid weight")
	}
	return nil
}

func appendEventArgs(args []any, e *callsign.Event) []any {
	var md any // NULL
	if len(e.Metadata) > 0 {
		b, _ := json.Marshal(e.Metadata) // a map[string]string always marshals
		md = string(b)
	}
	return append(args, e.AppID, e.ID, e.Time.UnixMicro(), e.Method, e.Route, e.URI, int64(e.Status),
		e.Latency.Microseconds(), e.RequestBytes, e.ResponseBytes,
		e.UserID, e.APIUserID, e.ClientUserID, e.CompanyID, string(e.Scheme), e.KeyID, e.AuthError,
		e.RequestID, e.RemoteIP, e.UserAgent, e.Weight, md, e.RequestBody, e.ResponseBody)
}

// eventSelectColumns are the columns Events reads, in the order scanEvent
// scans them.
const eventSelectColumns = eventInsertColumns

func scanEvent(s scanner) (*callsign.Event, error) {
	var (
		e                 callsign.Event
		t, lat            int64
		status            int64
		scheme            string
		md                sql.NullString
		reqBody, respBody string
	)
	err := s.Scan(&e.AppID, &e.ID, &t, &e.Method, &e.Route, &e.URI, &status, &lat, &e.RequestBytes, &e.ResponseBytes,
		&e.UserID, &e.APIUserID, &e.ClientUserID, &e.CompanyID, &scheme, &e.KeyID, &e.AuthError,
		&e.RequestID, &e.RemoteIP, &e.UserAgent, &e.Weight, &md, &reqBody, &respBody)
	if err != nil {
		return nil, err
	}
	e.Time = fromMicros(t)
	e.Status = int(status)
	e.Latency = time.Duration(lat) * time.Microsecond
	e.Scheme = callsign.Scheme(scheme)
	e.RequestBody, e.ResponseBody = reqBody, respBody
	if md.Valid {
		if err := json.Unmarshal([]byte(md.String), &e.Metadata); err != nil {
			return nil, fmt.Errorf("event %s: metadata: %w", e.ID, err)
		}
	}
	return &e, nil
}

// Events implements callsign.EventStore. Events are ordered by time, newest
// first, and among equal times by ID, descending; the cursor holds the
// position (time, ID) of the last event of the page, so a page never
// repeats an event of an earlier one and skips none that was there when
// the first page was read, whatever was inserted in between.
// It returns EInvalid for a filter without AppID, a negative Limit, a
// status or status class out of range, and a malformed cursor.
func (db *DB) Events(ctx context.Context, f callsign.EventFilter) (*callsign.EventPage, error) {
	q, args, limit, err := eventsQuery(f)
	if err != nil {
		return nil, err
	}
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: events: %w", err)
	}
	defer rows.Close()
	page := &callsign.EventPage{Events: make([]*callsign.Event, 0, min(limit, 64))}
	for rows.Next() {
		if len(page.Events) == limit {
			last := page.Events[limit-1]
			page.NextCursor = encodeCursor(last.Time.UnixMicro(), last.ID)
			break
		}
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: events: %w", err)
		}
		page.Events = append(page.Events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: events: %w", err)
	}
	return page, nil
}

// eventsQuery returns the query that lists f's page (with one event more,
// to know whether another page follows), its arguments and the page size.
func eventsQuery(f callsign.EventFilter) (q string, args []any, limit int, err error) {
	if f.AppID == "" {
		return "", nil, 0, callsign.Errorf(callsign.EInvalid, "An app id is required.")
	}
	limit = f.Limit
	switch {
	case limit < 0:
		return "", nil, 0, callsign.Errorf(callsign.EInvalid, "The limit must not be negative.")
	case limit == 0:
		limit = callsign.DefaultEventPage
	case limit > callsign.MaxEventPage:
		limit = callsign.MaxEventPage
	}
	if f.Status < 0 || f.Status > 999 {
		return "", nil, 0, callsign.Errorf(callsign.EInvalid, "Status %d is not an HTTP status.", f.Status)
	}
	if f.StatusClass < 0 || f.StatusClass > 9 {
		return "", nil, 0, callsign.Errorf(callsign.EInvalid, "Status class %d is not a class (1 to 5).", f.StatusClass)
	}

	var where strings.Builder
	args = []any{f.AppID}
	where.WriteString("app_id = ?")
	and := func(cond string, a ...any) {
		where.WriteString(" AND ")
		where.WriteString(cond)
		args = append(args, a...)
	}
	if !f.From.IsZero() {
		and("time >= ?", ceilMicros(f.From))
	}
	if !f.To.IsZero() {
		and("time < ?", ceilMicros(f.To))
	}
	// A filter on a user or an auth error reads that partial index (the
	// "!= ''" term makes it usable): without statistics SQLite would rather
	// walk the time index, which avoids a sort but may read every event of
	// the app to find a rare user's.
	from := "events"
	for _, c := range []struct{ col, v, index string }{
		{"user_id", f.UserID, "events_app_user"},
		{"client_user_id", f.ClientUserID, "events_app_client_user"},
		{"api_user_id", f.APIUserID, "events_app_api_user"},
		{"auth_error", f.AuthError, "events_app_auth_error"},
	} {
		if c.v != "" {
			and(c.col+" = ? AND "+c.col+" != ''", c.v)
			if from == "events" {
				from = "events INDEXED BY " + c.index
			}
		}
	}
	if f.Route != "" {
		and("route = ?", f.Route)
	}
	if f.Method != "" {
		and("method = ?", f.Method)
	}
	if f.Status != 0 {
		and("status = ?", f.Status)
	}
	if f.StatusClass != 0 {
		and("status >= ? AND status < ?", f.StatusClass*100, f.StatusClass*100+100)
	}
	if f.Cursor != "" {
		t, id, ok := decodeCursor(f.Cursor)
		if !ok {
			return "", nil, 0, callsign.Errorf(callsign.EInvalid, "The cursor is not one this server returned.")
		}
		and("(time, id) < (?, ?)", t, id)
	}
	args = append(args, limit+1)
	return "SELECT " + eventSelectColumns + " FROM " + from + " WHERE " + where.String() + " ORDER BY time DESC, id DESC LIMIT ?", args, limit, nil
}

// A cursor is base64url (unpadded) of a version byte (1), the big-endian
// time (Unix microseconds) and the ID of the last event of the page.
const cursorVersion = 1

func encodeCursor(t int64, id string) string {
	b := make([]byte, 9, 9+len(id))
	b[0] = cursorVersion
	binary.BigEndian.PutUint64(b[1:], uint64(t))
	return base64.RawURLEncoding.EncodeToString(append(b, id...))
}

func decodeCursor(s string) (t int64, id string, ok bool) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) < 10 || len(b) > 9+callsign.MaxEventIDLen || b[0] != cursorVersion {
		return 0, "", false
	}
	return int64(binary.BigEndian.Uint64(b[1:])), string(b[9:]), true
}

// DeleteEventsBefore implements callsign.EventStore. It first brings the
// rollups up to date (so no event is deleted before it was aggregated),
// then deletes, in transactions of at most deleteChunk rows so that ingest
// waits at most one chunk, the app's raw events with Time < t and its
// rollup buckets that end at or before rollupsBefore (a bucket that
// straddles the cutoff is kept). Zero times delete nothing of their kind.
// It returns EInvalid without an appID.
func (db *DB) DeleteEventsBefore(ctx context.Context, appID string, t, rollupsBefore time.Time) (int64, error) {
	if appID == "" {
		return 0, callsign.Errorf(callsign.EInvalid, "An app id is required.")
	}
	if err := db.rollUp(ctx, 1, rollupChunk); err != nil {
		return 0, err
	}
	var deleted int64
	if !t.IsZero() {
		// seq <= rolled_up: an event appended (with an old time) since the
		// roll-up above waits for the next run rather than being lost to
		// the rollups.
		n, err := db.deleteChunks(ctx, "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE app_id = ? AND time < ? "+
			"AND seq <= (SELECT rolled_up FROM event_rollup_state) LIMIT ?)", appID, t.UnixMicro())
		if err != nil {
			return deleted, fmt.Errorf("sqlite: delete events: %w", err)
		}
		deleted = n
	}
	if !rollupsBefore.IsZero() {
		// A bucket ends at or before rollupsBefore iff bucket + span <= end,
		// the cutoff in whole seconds.
		end := floorDiv(rollupsBefore.UnixMicro(), 1e6)
		for _, r := range []rollupTable{routeRollups, userRollups} {
			for _, span := range r.spans {
				_, err := db.deleteChunks(ctx, "DELETE FROM "+r.name+" WHERE ("+r.pk+") IN (SELECT "+r.pk+" FROM "+r.name+
					" WHERE app_id = ? AND span = ? AND bucket <= ? LIMIT ?)", appID, span, end-span)
				if err != nil {
					return deleted, fmt.Errorf("sqlite: delete rollups: %w", err)
				}
			}
		}
	}
	return deleted, nil
}

// deleteChunk bounds the rows one retention transaction deletes.
const deleteChunk = 5000

// deleteChunks runs the DELETE q (whose last argument is the chunk size)
// in one transaction after another until one deletes less than a chunk.
func (db *DB) deleteChunks(ctx context.Context, q string, args ...any) (int64, error) {
	var total int64
	args = append(args, deleteChunk)
	for {
		var n int64
		err := db.tx(ctx, func(tx *sql.Tx) error {
			r, err := tx.ExecContext(ctx, q, args...)
			if err != nil {
				return err
			}
			n, err = r.RowsAffected()
			return err
		})
		total += n
		if err != nil || n < deleteChunk {
			return total, err
		}
	}
}

// ceilMicros returns t in Unix microseconds, rounded up: stored times are
// whole microseconds, so time >= ceilMicros(t) iff the time is not before
// t, and time < ceilMicros(t) iff it is before t.
func ceilMicros(t time.Time) int64 {
	us := t.UnixMicro()
	if t.Nanosecond()%1000 != 0 {
		us++
	}
	return us
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }
