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
	"slices"
	"strings"
	"time"

	"github.com/callsignhq/callsign"
)

// The event store (migrations/0003_events.sql):
//
//   - events: the raw events, one row each, unique per (app_id, time, id),
//     with a monotonic seq (AUTOINCREMENT, never reused). Every index on it
//     grows at its end or on a handful of pages: the unique index (which
//     also serves listings newest first, and retention) and a partial index
//     by auth error.
//   - event_users: (app, kind, user id, time, id) → seq, for listings
//     filtered by user_id, client_user_id or api_user_id. An index of events
//     on user_id puts each appended event on a random leaf page: into a
//     store of 10 million events, appends with that index wrote 34 KiB per
//     event (0.5 KiB without it) and ran at 15k events/s instead of 51k.
//     Filled in bulk and sorted, a user's new rows go to its last page.
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
// The rollups and event_users are maintained asynchronously from a durable
// watermark (event_rollup_state.rolled_up, a seq), without a background
// goroutine: AppendEvents commits the raw rows alone (that commit is the
// durability point), and whenever rollupEvery events or more are pending
// it aggregates them, in further transactions that each advance the
// watermark together with what they wrote. Metrics, Events filtered by a
// user and DeleteEventsBefore first aggregate whatever is pending, so their
// answers include every acknowledged event. A crash after the raw commit
// leaves events above the watermark, aggregated by the next call.
// Aggregating many events at a time is what makes this affordable: a busy
// (hour, user) or (minute, route) cell, or a user's last event_users page,
// is written once per aggregation instead of once per batch. Updating the
// rollups in the append's own transaction would cost about 2.3 upserts per
// event with 10,000 users (a batch of 1,000 touches ~900 user cells at two
// granularities); aggregating 32,768 events at a time costs well under one
// upsert per event, plus reading each event back once (~2.5 µs).

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
	insertUsers  [3]*sql.Stmt // event_users rows
	readPending  *sql.Stmt    // on the writer: events above the watermark
	pendingCount *sql.Stmt    // on the readers
}

func (s *eventStmts) all() []*sql.Stmt {
	return slices.Concat(s.insert[:], s.upsertRoute[:], s.upsertUser[:], s.insertUsers[:], []*sql.Stmt{s.readPending, s.pendingCount})
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
		ps = append(ps, p{&db.ev.insertUsers[i], db.w, "INSERT INTO event_users (app_id, kind, user_id, time, id, seq) VALUES " + valuesList(n, 6)})
	}
	ps = append(ps,
		p{&db.ev.readPending, db.w, "SELECT seq, app_id, time, route, status, latency, request_bytes, response_bytes, user_id, company_id, auth_error, weight, " +
			"id, client_user_id, api_user_id FROM events WHERE seq > ? ORDER BY seq LIMIT ?"},
		p{&db.ev.pendingCount, db.r, pendingSQL},
	)
	// The writer's single connection lives as long as the DB: settings made
	// on it stay. A 64 MiB page cache holds the pages aggregation updates
	// (the tails of event_users, the current rollup buckets); statement
	// journals of the multi-row statements stay in memory instead of temp
	// files. Both only make it faster.
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

// eventSelectColumns are the columns Events reads (of events AS e), in the
// order scanEvent scans them.
const eventSelectColumns = "e.app_id, e.id, e.time, e.method, e.route, e.uri, e.status, e.latency, e.request_bytes, e.response_bytes, " +
	"e.user_id, e.api_user_id, e.client_user_id, e.company_id, e.scheme, e.key_id, e.auth_error, e.request_id, e.remote_ip, e.user_agent, " +
	"e.weight, e.metadata, e.request_body, e.response_body"

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
	q, args, limit, catchUp, err := eventsQuery(f)
	if err != nil {
		return nil, err
	}
	if catchUp {
		if err := db.catchUp(ctx); err != nil {
			return nil, err
		}
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
func eventsQuery(f callsign.EventFilter) (q string, args []any, limit int, catchUp bool, err error) {
	if f.AppID == "" {
		return "", nil, 0, false, callsign.Errorf(callsign.EInvalid, "An app id is required.")
	}
	limit = f.Limit
	switch {
	case limit < 0:
		return "", nil, 0, false, callsign.Errorf(callsign.EInvalid, "The limit must not be negative.")
	case limit == 0:
		limit = callsign.DefaultEventPage
	case limit > callsign.MaxEventPage:
		limit = callsign.MaxEventPage
	}
	if f.Status < 0 || f.Status > 999 {
		return "", nil, 0, false, callsign.Errorf(callsign.EInvalid, "Status %d is not an HTTP status.", f.Status)
	}
	if f.StatusClass < 0 || f.StatusClass > 9 {
		return "", nil, 0, false, callsign.Errorf(callsign.EInvalid, "Status class %d is not a class (1 to 5).", f.StatusClass)
	}

	// A listing filtered by a user reads event_users, which aggregation
	// fills (so Events first aggregates pending events, as Metrics does),
	// and joins events; others read the events table by time, or by auth
	// error through its partial index: without statistics SQLite would
	// rather walk the time index, which avoids a sort but may read every
	// event of the app to find a rare code's.
	var (
		where      strings.Builder
		from       = "events AS e"
		tcol, icol = "e.time", "e.id"
	)
	users := [3]string{kindUser: f.UserID, kindClientUser: f.ClientUserID, kindAPIUser: f.APIUserID}
	kind := slices.IndexFunc(users[:], func(u string) bool { return u != "" })
	if kind >= 0 {
		from, tcol, icol = "event_users AS u JOIN events AS e ON e.seq = u.seq", "u.time", "u.id"
		where.WriteString("u.app_id = ? AND u.kind = ? AND u.user_id = ?")
		args = []any{f.AppID, kind, users[kind]}
		catchUp = true
	} else {
		where.WriteString("e.app_id = ?")
		args = []any{f.AppID}
		if f.AuthError != "" {
			from += " INDEXED BY events_app_auth_error"
		}
	}
	and := func(cond string, a ...any) {
		where.WriteString(" AND ")
		where.WriteString(cond)
		args = append(args, a...)
	}
	if !f.From.IsZero() {
		and(tcol+" >= ?", ceilMicros(f.From))
	}
	if !f.To.IsZero() {
		and(tcol+" < ?", ceilMicros(f.To))
	}
	for i, col := range [3]string{kindUser: "e.user_id", kindClientUser: "e.client_user_id", kindAPIUser: "e.api_user_id"} {
		if users[i] != "" && i != kind {
			and(col+" = ?", users[i])
		}
	}
	if f.AuthError != "" {
		and("e.auth_error = ? AND e.auth_error != ''", f.AuthError)
	}
	if f.Route != "" {
		and("e.route = ?", f.Route)
	}
	if f.Method != "" {
		and("e.method = ?", f.Method)
	}
	if f.Status != 0 {
		and("e.status = ?", f.Status)
	}
	if f.StatusClass != 0 {
		and("e.status >= ? AND e.status < ?", f.StatusClass*100, f.StatusClass*100+100)
	}
	if f.Cursor != "" {
		t, id, ok := decodeCursor(f.Cursor)
		if !ok {
			return "", nil, 0, false, callsign.Errorf(callsign.EInvalid, "The cursor is not one this server returned.")
		}
		and("("+tcol+", "+icol+") < (?, ?)", t, id)
	}
	args = append(args, limit+1)
	return "SELECT " + eventSelectColumns + " FROM " + from + " WHERE " + where.String() +
		" ORDER BY " + tcol + " DESC, " + icol + " DESC LIMIT ?", args, limit, catchUp, nil
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
	// The base64 decoder skips CR and LF even in strict mode: refuse them,
	// so that only the canonical form of a cursor is accepted.
	if strings.ContainsAny(s, "\r\n") {
		return 0, "", false
	}
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
		for {
			n, err := db.deleteEventsChunk(ctx, appID, ceilMicros(t))
			deleted += n
			if err != nil {
				return deleted, fmt.Errorf("sqlite: delete events: %w", err)
			}
			if n < deleteChunk {
				break
			}
		}
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

// deleteEventsChunk deletes, in one transaction, up to deleteChunk of the
// app's oldest events with time < before (µs), and their event_users rows.
// Only aggregated events (seq <= rolled_up) go: one appended with an old
// time since the caller's roll-up waits for the next run rather than being
// lost to the rollups.
func (db *DB) deleteEventsChunk(ctx context.Context, app string, before int64) (int64, error) {
	var n int64
	err := db.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT seq, time, id, user_id, client_user_id, api_user_id FROM events
			WHERE app_id = ? AND time < ? AND seq <= (SELECT rolled_up FROM event_rollup_state) ORDER BY time LIMIT ?`, app, before, deleteChunk)
		if err != nil {
			return err
		}
		type victim struct {
			seq, time int64
			id        string
			users     [3]string
		}
		var vs []victim
		for rows.Next() {
			var v victim
			if err := rows.Scan(&v.seq, &v.time, &v.id, &v.users[kindUser], &v.users[kindClientUser], &v.users[kindAPIUser]); err != nil {
				rows.Close()
				return err
			}
			vs = append(vs, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		delUser, err := tx.PrepareContext(ctx, "DELETE FROM event_users WHERE app_id = ? AND kind = ? AND user_id = ? AND time = ? AND id = ?")
		if err != nil {
			return err
		}
		defer delUser.Close()
		delEvent, err := tx.PrepareContext(ctx, "DELETE FROM events WHERE seq = ?")
		if err != nil {
			return err
		}
		defer delEvent.Close()
		for _, v := range vs {
			for kind, u := range v.users {
				if u == "" {
					continue
				}
				if _, err := delUser.ExecContext(ctx, app, kind, u, v.time, v.id); err != nil {
					return err
				}
			}
			if _, err := delEvent.ExecContext(ctx, v.seq); err != nil {
				return err
			}
		}
		n = int64(len(vs))
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

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
