package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/callsignhq/callsign"
)

// The event store (migrations/0003_events.sql):
//
//   - event_blocks: the raw events, in blocks of up to 2,048 events of one
//     app within 10 minutes (block.go), with a monotonic seq (AUTOINCREMENT,
//     never reused), indexed by (app, time of the last event) for listings
//     newest first and retention.
//   - event_key_chunks: the keys (app, time, id) of the aggregated events,
//     for idempotency, in chunks of up to 128 keys (keys.go).
//   - event_index: per app, kind and value (user id, client user id, API
//     user id, auth error or route), one row per aggregation run listing
//     the blocks of the run that hold the value, for listings filtered by
//     one of those: they decode only blocks that hold a match.
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
// The rollups and event_index are maintained asynchronously from a durable
// watermark (event_rollup_state.rolled_up, a block seq): AppendEvents
// commits the blocks and keys alone (that commit is the durability point)
// and wakes a background goroutine once rollupEvery events are pending
// (or rollupMaxDelay after the oldest pending append). It reads and
// aggregates the pending blocks in a read transaction, while appends go
// on, then writes the rollups, the event_index rows and the new watermark
// in one write transaction. Metrics, Events filtered through event_index
// and DeleteEventsBefore first aggregate whatever is pending, so their
// answers include every acknowledged event. A crash leaves blocks above the
// watermark, aggregated after the next Open. Aggregating many events at a
// time is what makes this affordable: a busy (hour, user) or (minute,
// route) cell, whose stored sketch must be merged with the new one, is
// written once per aggregation instead of once per batch. When appends
// outrun aggregation (rollupBackpressure pending events), AppendEvents
// aggregates before it returns.

// eventStmts are the event store's prepared statements.
type eventStmts struct {
	insertKeyChunks [3]*sql.Stmt // upsertChunkL, M and S key chunks (aggregation)
	findKeyChunks   *sql.Stmt    // findKeyChunksSQL
	insertBlock     *sql.Stmt
	upsertRoute     [3]*sql.Stmt // upsertChunkL, M and S rollup rows
	upsertUser      [3]*sql.Stmt
	storedRoute     [3]*sql.Stmt // the stored rows among upsertChunkL, M and S (readers)
	storedUser      [3]*sql.Stmt
	insertIndex     [3]*sql.Stmt // event_index rows
	readPending     *sql.Stmt    // on the readers: blocks above the watermark
	pendingCount    *sql.Stmt    // on the readers
}

func (s *eventStmts) all() []*sql.Stmt {
	return slices.Concat(s.insertKeyChunks[:], []*sql.Stmt{s.findKeyChunks}, s.upsertRoute[:], s.upsertUser[:], s.storedRoute[:], s.storedUser[:], s.insertIndex[:],
		[]*sql.Stmt{s.insertBlock, s.readPending, s.pendingCount})
}

func (db *DB) prepareEvents(ctx context.Context) error {
	type p struct {
		st   **sql.Stmt
		pool *sql.DB
		q    string
	}
	var ps []p
	for i, n := range [3]int{upsertChunkL, upsertChunkM, upsertChunkS} {
		ps = append(ps, p{&db.ev.insertKeyChunks[i], db.w, "INSERT INTO event_key_chunks (app_id, tmin, tmax, keys) VALUES " + valuesList(n, 4)})
		ps = append(ps, p{&db.ev.upsertRoute[i], db.w, upsertSQL("event_rollups_route", "route, status_class, auth_error", 3, n)})
		ps = append(ps, p{&db.ev.upsertUser[i], db.w, upsertSQL("event_rollups_user", "user_id, company_id", 2, n)})
		ps = append(ps, p{&db.ev.storedRoute[i], db.r, storedSQL("event_rollups_route", "route, status_class, auth_error", 3, n)})
		ps = append(ps, p{&db.ev.storedUser[i], db.r, storedSQL("event_rollups_user", "user_id, company_id", 2, n)})
		ps = append(ps, p{&db.ev.insertIndex[i], db.w, "INSERT INTO event_index (app_id, kind, value, tmax, first, last, tmin, blocks) VALUES " +
			valuesList(n, 8)})
	}
	ps = append(ps,
		p{&db.ev.findKeyChunks, db.w, findKeyChunksSQL},
		p{&db.ev.insertBlock, db.w, "INSERT INTO event_blocks (seq, app_id, tmin, tmax, n, data) VALUES (?, ?, ?, ?, ?, ?)"},
		p{&db.ev.readPending, db.r, "SELECT seq, app_id, tmin, tmax, data FROM event_blocks WHERE seq > ? ORDER BY seq"},
		p{&db.ev.pendingCount, db.r, pendingSQL},
	)
	// The writer's single connection lives as long as the DB: settings made
	// on it stay. A 64 MiB page cache holds the pages aggregation updates
	// (the tails of event_index, the current rollup buckets); statement
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
const pendingSQL = "SELECT ifnull(sum(n), 0) FROM event_blocks WHERE seq > (SELECT rolled_up FROM event_rollup_state)"

// valuesList returns "(?, ?), (?, ?)" for rows rows of cols columns.
func valuesList(rows, cols int) string {
	row := "(" + strings.Repeat("?, ", cols-1) + "?)"
	return strings.Repeat(row+", ", rows-1) + row
}

// incoming is an event of a batch on its way into a block.
type incoming struct {
	e     *callsign.Event
	t     int64   // µs
	h     keyHash // of its key (app, t, id)
	block int     // index in the batch's blocks
	dup   bool
}

// plannedBlock is a block of a batch: incoming[lo:hi], of one app.
type plannedBlock struct {
	lo, hi int
	seq    int64
}

// AppendEvents implements callsign.EventStore. The events are written in
// one transaction, committed with an fsync before it returns. An event is a
// duplicate, counted and skipped, when one with the same AppID, ID and Time
// (to the microsecond) is stored, from an earlier batch or earlier in this
// one: a retried batch carries the times it had. The same ID at another
// time is stored as another event (see event_keys for why). It returns
// EInvalid, and stores nothing, when an event has no AppID or ID, an ID
// longer than MaxEventIDLen, more than MaxMetadataEntries metadata entries,
// or a negative or non-finite Weight.
//
// Concurrent appends share a transaction and its fsync (group commit), each
// in its own savepoint, so that one that fails leaves nothing behind and
// does not fail the others. The blocks are encoded by the caller, before it
// queues for the writer.
func (db *DB) AppendEvents(ctx context.Context, events []*callsign.Event) (callsign.IngestResult, error) {
	for i, e := range events {
		if err := checkEvent(e); err != nil {
			return callsign.IngestResult{}, callsign.Errorf(callsign.EInvalid, "Event %d: %s", i, err)
		}
	}
	if len(events) == 0 {
		return callsign.IngestResult{}, nil
	}
	if err := ctx.Err(); err != nil {
		return callsign.IngestResult{}, fmt.Errorf("sqlite: append events: %w", err)
	}
	req := db.newAppendRequest(events)
	select {
	case db.commit.queue <- req:
	case <-db.commit.closed:
		return callsign.IngestResult{}, errors.New("sqlite: append events: the store is closed")
	case <-ctx.Done():
		return callsign.IngestResult{}, fmt.Errorf("sqlite: append events: %w", ctx.Err())
	}
	select {
	case <-req.done:
	case <-ctx.Done():
		// It may still be committed: a retry is then counted duplicate.
		return callsign.IngestResult{}, fmt.Errorf("sqlite: append events: %w", ctx.Err())
	}
	if req.err != nil {
		return callsign.IngestResult{}, fmt.Errorf("sqlite: append events: %w", req.err)
	}
	req.res.Duplicates = len(events) - req.res.Accepted
	db.appended(ctx, int64(req.res.Accepted))
	return req.res, nil
}

// appendRequest is an AppendEvents call waiting for the committer.
type appendRequest struct {
	in     []incoming
	blocks []plannedBlock
	data   [][]byte // of each block, encoded as if no event were a duplicate
	res    callsign.IngestResult
	err    error
	added  []keyHash // to the pending keys, by the transaction
	done   chan struct{}
}

func (db *DB) newAppendRequest(events []*callsign.Event) *appendRequest {
	r := &appendRequest{done: make(chan struct{})}
	r.in, r.blocks = planBlocks(events)
	for i := range r.in {
		x := &r.in[i]
		x.h = db.keys.hash(x.e.AppID, x.t, []byte(x.e.ID))
	}
	enc := encoders.Get().(*blockEncoder)
	defer func() {
		if cap(enc.body) <= maxPooledBody { // not one that logged large bodies
			encoders.Put(enc)
		}
	}()
	r.data = make([][]byte, len(r.blocks))
	var evs []*callsign.Event
	for i, b := range r.blocks {
		if evs = r.events(b, evs[:0]); len(evs) > 0 {
			r.data[i] = enc.encode(nil, evs, evs[0].Time.UnixMicro())
		}
	}
	return r
}

// events appends to evs the events of block b that are not duplicates.
func (r *appendRequest) events(b plannedBlock, evs []*callsign.Event) []*callsign.Event {
	for _, x := range r.in[b.lo:b.hi] {
		if !x.dup {
			evs = append(evs, x.e)
		}
	}
	return evs
}

// committer writes queued appends, many to a transaction.
type committer struct {
	queue  chan *appendRequest
	closed chan struct{} // closed by Close
	stop   sync.Once
	done   chan struct{} // closed when the committer has stopped
}

// maxGroup bounds the appends of one transaction.
const maxGroup = 64

func (db *DB) startCommitter() {
	db.commit.queue, db.commit.closed, db.commit.done = make(chan *appendRequest), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(db.commit.done)
		for {
			var group []*appendRequest
			select {
			case r := <-db.commit.queue:
				group = append(group, r)
			case <-db.commit.closed:
				return
			}
		more:
			for len(group) < maxGroup {
				select {
				case r := <-db.commit.queue:
					group = append(group, r)
				default:
					break more
				}
			}
			db.commitGroup(group)
		}
	}()
}

// stopCommitter stops the committer, once, and waits for it.
func (db *DB) stopCommitter() {
	if db.commit.closed != nil {
		db.commit.stop.Do(func() { close(db.commit.closed) })
		<-db.commit.done
	}
}

// commitGroup writes group in one transaction, each append in a
// savepoint, and tells each how it went.
func (db *DB) commitGroup(group []*appendRequest) {
	ctx := context.Background() // the callers' contexts may end; the write goes on
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var next int64
		err := tx.QueryRowContext(ctx, "SELECT ifnull((SELECT seq FROM sqlite_sequence WHERE name = 'event_blocks'), 0)").Scan(&next)
		if err != nil {
			return err
		}
		for _, r := range group {
			if _, err := tx.ExecContext(ctx, "SAVEPOINT append"); err != nil {
				return err
			}
			if r.err = db.appendInTx(ctx, tx, r, &next); r.err != nil {
				r.res = callsign.IngestResult{}
				db.keys.remove(r.added)
				r.added = nil
				if _, err := tx.ExecContext(ctx, "ROLLBACK TO append"); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, "RELEASE append"); err != nil {
				return err
			}
		}
		return nil
	})
	for _, r := range group {
		if err != nil && r.err == nil {
			r.err, r.res = err, callsign.IngestResult{}
			db.keys.remove(r.added)
		}
		close(r.done)
	}
}

// appendInTx writes r's keys and blocks, its blocks numbered from *next+1.
func (db *DB) appendInTx(ctx context.Context, tx *sql.Tx, r *appendRequest, next *int64) error {
	for i := range r.blocks {
		r.blocks[i].seq = *next + 1 + int64(i)
	}
	*next += int64(len(r.blocks))
	dups, added, err := db.checkKeys(ctx, tx, r.in, r.blocks)
	r.added = added
	if err != nil {
		return err
	}
	ins := tx.StmtContext(ctx, db.ev.insertBlock)
	var evs []*callsign.Event
	var enc *blockEncoder
	for i, b := range r.blocks {
		evs = r.events(b, evs[:0])
		if len(evs) == 0 {
			continue
		}
		data := r.data[i]
		if dups {
			// Encoded with events now known to be duplicates: again.
			if enc == nil {
				enc = newBlockEncoder()
			}
			data = enc.encode(nil, evs, evs[0].Time.UnixMicro())
		}
		tmin, tmax := evs[0].Time.UnixMicro(), evs[len(evs)-1].Time.UnixMicro()
		if _, err := ins.ExecContext(ctx, b.seq, evs[0].AppID, tmin, tmax, len(evs), data); err != nil {
			return err
		}
		r.res.Accepted += len(evs)
	}
	return nil
}

// planBlocks sorts the batch by app and time (stably: of two copies of an
// event, the first stays and the second is marked a duplicate) and cuts it
// into blocks.
func planBlocks(events []*callsign.Event) ([]incoming, []plannedBlock) {
	in := make([]incoming, len(events))
	for i, e := range events {
		in[i] = incoming{e: e, t: e.Time.UnixMicro()}
	}
	slices.SortStableFunc(in, func(a, b incoming) int {
		return cmp.Or(strings.Compare(a.e.AppID, b.e.AppID), cmp.Compare(a.t, b.t))
	})
	var blocks []plannedBlock
	for i := range in {
		x := &in[i]
		// Copies within the batch: same app, time and id, so adjacent
		// among the events of their microsecond.
		for j := i - 1; j >= 0 && in[j].t == x.t && in[j].e.AppID == x.e.AppID; j-- {
			if in[j].e.ID == x.e.ID {
				x.dup = true
				break
			}
		}
		if n := len(blocks); n > 0 {
			b := &blocks[n-1]
			first := &in[b.lo]
			if first.e.AppID == x.e.AppID && i-b.lo < blockMaxEvents && uint64(x.t-first.t) <= uint64(blockMaxSpan) { // sorted: x.t >= first.t
				b.hi = i + 1
				x.block = n - 1
				continue
			}
		}
		x.block = len(blocks)
		blocks = append(blocks, plannedBlock{lo: i, hi: i + 1})
	}
	return in, blocks
}

func checkEvent(e *callsign.Event) error {
	switch {
	case e == nil:
		return errors.New("no event")
	case e.AppID == "":
		return errors.New("no app id")
	case e.ID == "":
		return errors.New("no event id")
	case len(e.ID) > callsign.MaxEventIDLen:
		return fmt.Errorf("event id longer than %d bytes", callsign.MaxEventIDLen)
	case len(e.Metadata) > callsign.MaxMetadataEntries:
		return fmt.Errorf("more than %d metadata entries", callsign.MaxMetadataEntries)
	case e.Weight < 0 || math.IsNaN(e.Weight) || math.IsInf(e.Weight, 0):
		return errors.New("invalid weight")
	case e.Time.Before(minEventTime) || !e.Time.Before(maxEventTime):
		return errors.New("time outside the years 1 to 9999")
	}
	return nil
}

// Event times are within the years 1 to 9999 (what RFC 3339 can write), so
// that the difference of two is an int64 of microseconds.
var (
	minEventTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxEventTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Kinds of event_index rows.
const (
	kindUser       = 0
	kindClientUser = 1
	kindAPIUser    = 2
	kindAuthError  = 3
	kindRoute      = 4
	nKinds         = 5
)

// kindField is the block field of each kind of event_index row.
var kindField = [nKinds]int{kindUser: fUser, kindClientUser: fClientUser, kindAPIUser: fAPIUser, kindAuthError: fAuthError, kindRoute: fRoute}

// listing is a validated EventFilter.
type listing struct {
	app    string
	limit  int
	lo, hi int64 // time range, µs: lo <= time < hi
	cursor bool
	ct     int64 // cursor: (time, id) < (ct, cid)
	cid    string
	want   [nKinds]string // kind → value; "" for any
	kind   int            // the event_index kind the listing reads, or -1
	method string
	status int
	class  int
}

func newListing(f callsign.EventFilter) (*listing, error) {
	if f.AppID == "" {
		return nil, callsign.Errorf(callsign.EInvalid, "An app id is required.")
	}
	l := &listing{app: f.AppID, limit: f.Limit, lo: math.MinInt64, hi: math.MaxInt64, kind: -1,
		method: f.Method, status: f.Status, class: f.StatusClass}
	switch {
	case l.limit < 0:
		return nil, callsign.Errorf(callsign.EInvalid, "The limit must not be negative.")
	case l.limit == 0:
		l.limit = callsign.DefaultEventPage
	case l.limit > callsign.MaxEventPage:
		l.limit = callsign.MaxEventPage
	}
	if f.Status < 0 || f.Status > 999 {
		return nil, callsign.Errorf(callsign.EInvalid, "Status %d is not an HTTP status.", f.Status)
	}
	if f.StatusClass < 0 || f.StatusClass > 9 {
		return nil, callsign.Errorf(callsign.EInvalid, "Status class %d is not a class (1 to 5).", f.StatusClass)
	}
	if !f.From.IsZero() {
		l.lo = ceilMicros(f.From)
	}
	if !f.To.IsZero() {
		l.hi = ceilMicros(f.To)
	}
	if f.Cursor != "" {
		t, id, ok := decodeCursor(f.Cursor)
		if !ok {
			return nil, callsign.Errorf(callsign.EInvalid, "The cursor is not one this server returned.")
		}
		l.cursor, l.ct, l.cid = true, t, id
	}
	l.want = [nKinds]string{kindUser: f.UserID, kindClientUser: f.ClientUserID, kindAPIUser: f.APIUserID,
		kindAuthError: f.AuthError, kindRoute: f.Route}
	// The most selective value there is: a user's events are few among
	// an app's, an auth error's few among all, a route's a fraction.
	l.kind = slices.IndexFunc(l.want[:], func(v string) bool { return v != "" })
	return l, nil
}

// top is the newest time a matching event can have.
func (l *listing) top() int64 {
	t := l.hi - 1
	if l.cursor {
		t = min(t, l.ct)
	}
	return t
}

// match reports whether e, just read by r, is listed.
func (l *listing) match(r *blockReader, e *blockEvent) bool {
	if e.time < l.lo || e.time >= l.hi {
		return false
	}
	if l.cursor && (e.time > l.ct || e.time == l.ct && string(r.bytesOf(e.id)) >= l.cid) {
		return false
	}
	for k, v := range l.want {
		if v != "" && string(r.raw(e.dict[kindField[k]])) != v {
			return false
		}
	}
	switch {
	case l.method != "" && string(r.raw(e.dict[fMethod])) != l.method,
		l.status != 0 && e.status != int64(l.status),
		l.class != 0 && (e.status < int64(l.class)*100 || e.status >= int64(l.class)*100+100):
		return false
	}
	return true
}

// blocksQuery returns the query that lists the blocks that may hold
// events of l, newest last event first: seq, tmin, tmax, data; or, for a
// listing through event_index, its rows that may: tmax, first, blocks.
func (l *listing) blocksQuery() (string, []any) {
	if l.kind < 0 {
		// A block spans at most blockMaxSpan: one that starts at or before
		// top ends before top + blockMaxSpan, which bounds the index range.
		return `SELECT seq, tmin, tmax, data FROM event_blocks
			WHERE app_id = ? AND tmax >= ? AND tmax <= ? AND tmin <= ? ORDER BY tmax DESC, seq DESC`,
			[]any{l.app, l.lo, sat(l.top(), blockMaxSpan), l.top()}
	}
	return `SELECT tmax, first, blocks FROM event_index
		WHERE app_id = ? AND kind = ? AND value = ? AND tmax >= ? AND tmin <= ? ORDER BY tmax DESC, first DESC`,
		[]any{l.app, l.kind, l.want[l.kind], l.lo, l.top()}
}

// pageScan collects the newest limit+1 events of a listing from the blocks
// it is given, newest last event first.
type pageScan struct {
	l     *listing
	found []*callsign.Event
	r     blockReader
	be    blockEvent
}

// done reports whether blocks whose last event is at tmax, or older, can
// hold no event of the page.
func (s *pageScan) done(tmax int64) bool {
	return len(s.found) > s.l.limit && s.found[s.l.limit].Time.UnixMicro() > tmax
}

// blockData reads block seq with the statement data and scans it.
func (s *pageScan) blockData(ctx context.Context, data *sql.Stmt, seq, tmin int64) error {
	rows, err := data.QueryContext(ctx, seq)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var b sql.RawBytes
		if err := rows.Scan(&b); err != nil {
			return err
		}
		if err := s.block(seq, tmin, b); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (s *pageScan) block(seq, tmin int64, data []byte) error {
	if err := s.r.reset(data, tmin); err != nil {
		return fmt.Errorf("block %d: %w", seq, err)
	}
	added := false
	for s.r.next(&s.be) {
		if s.l.match(&s.r, &s.be) {
			s.found = append(s.found, s.r.event(s.l.app, &s.be))
			added = true
		}
	}
	if s.r.err != nil {
		return fmt.Errorf("block %d: %w", seq, s.r.err)
	}
	if added {
		slices.SortFunc(s.found, func(a, b *callsign.Event) int { // newest first
			return cmp.Or(b.Time.Compare(a.Time), strings.Compare(b.ID, a.ID))
		})
		s.found = s.found[:min(len(s.found), s.l.limit+1)]
	}
	return nil
}

// Events implements callsign.EventStore. Events are ordered by time, newest
// first, and among equal times by ID, descending; the cursor holds the
// position (time, ID) of the last event of the page, so a page never
// repeats an event of an earlier one and skips none that was there when
// the first page was read, whatever was inserted in between.
// It returns EInvalid for a filter without AppID, a negative Limit, a
// status or status class out of range, and a malformed cursor.
//
// It reads blocks by the time of their last event, newest first, keeps the
// newest limit+1 matches, and stops at the first block whose events are all
// older than those; a listing filtered by a user, an auth error or a route
// reads only the blocks event_index names for that value.
func (db *DB) Events(ctx context.Context, f callsign.EventFilter) (*callsign.EventPage, error) {
	l, err := newListing(f)
	if err != nil {
		return nil, err
	}
	if l.kind >= 0 {
		if err := db.catchUp(ctx); err != nil {
			return nil, err
		}
	}
	s := &pageScan{l: l}
	if err := db.scanEvents(ctx, s); err != nil {
		return nil, fmt.Errorf("sqlite: events: %w", err)
	}
	page := &callsign.EventPage{Events: s.found[:min(len(s.found), l.limit)]}
	if len(s.found) > l.limit {
		last := s.found[l.limit-1]
		page.NextCursor = encodeCursor(last.Time.UnixMicro(), last.ID)
	}
	if page.Events == nil {
		page.Events = []*callsign.Event{}
	}
	return page, nil
}

func (db *DB) scanEvents(ctx context.Context, s *pageScan) error {
	// One read transaction: the index and the blocks of one snapshot.
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	q, args := s.l.blocksQuery()
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if s.l.kind < 0 {
		for rows.Next() {
			var seq, tmin, tmax int64
			var data sql.RawBytes
			if err := rows.Scan(&seq, &tmin, &tmax, &data); err != nil {
				return err
			}
			if s.done(tmax) {
				break // this block and the next ones hold only older events
			}
			if err := s.block(seq, tmin, data); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	// A block's times first, from its row's first page; its data (on
	// overflow pages) only if it may hold an event of the page.
	span, err := tx.PrepareContext(ctx, "SELECT tmin, tmax FROM event_blocks WHERE seq = ?")
	if err != nil {
		return err
	}
	defer span.Close()
	data, err := tx.PrepareContext(ctx, "SELECT data FROM event_blocks WHERE seq = ?")
	if err != nil {
		return err
	}
	defer data.Close()
	for rows.Next() {
		var tmax, first int64
		var list sql.RawBytes
		if err := rows.Scan(&tmax, &first, &list); err != nil {
			return err
		}
		if s.done(tmax) {
			break // the blocks of this row and of the next ones hold only older events
		}
		seqs, err := blockSeqs(list, first)
		if err != nil {
			return fmt.Errorf("event_index row of block %d: %w", first, err)
		}
		for _, seq := range slices.Backward(seqs) {
			var btmin, btmax int64
			switch err := span.QueryRowContext(ctx, seq).Scan(&btmin, &btmax); {
			case errors.Is(err, sql.ErrNoRows):
				continue // deleted since
			case err != nil:
				return err
			}
			if btmax < s.l.lo || btmin > s.l.top() || s.done(btmax) {
				continue
			}
			if err := s.blockData(ctx, data, seq, btmin); err != nil {
				return err
			}
		}
	}
	return rows.Err()
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
// then deletes, in transactions of about deleteChunk events so that ingest
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
		before := ceilMicros(t)
		for {
			n, more, keysUpTo, err := db.deleteEventsChunk(ctx, appID, before)
			deleted += n
			if err != nil {
				return deleted, fmt.Errorf("sqlite: delete events: %w", err)
			}
			if !more {
				// Their keys last: a key without its event only makes a
				// retry of it a duplicate; an event without its key could
				// be counted twice. Chunks written after the events were
				// deleted may hold the keys of late events aggregated
				// since, not deleted: they are left alone.
				if err := db.deleteKeys(ctx, appID, before, keysUpTo); err != nil {
					return deleted, fmt.Errorf("sqlite: delete event keys: %w", err)
				}
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
				// Not while an aggregation is under way: it read the rows
				// it will write back, merged (aggregator.prepare).
				// Nor by another process's: it checks rollup_deletes.
				db.roll.mu.Lock()
				_, err := db.deleteChunksThen(ctx, "UPDATE event_rollup_state SET rollup_deletes = rollup_deletes + 1",
					"DELETE FROM "+r.name+" WHERE ("+r.pk+") IN (SELECT "+r.pk+" FROM "+r.name+
						" WHERE app_id = ? AND span = ? AND bucket <= ? LIMIT ?)", appID, span, end-span)
				db.roll.mu.Unlock()
				if err != nil {
					return deleted, fmt.Errorf("sqlite: delete rollups: %w", err)
				}
			}
		}
	}
	return deleted, nil
}

// deleteChunk bounds the rows one retention transaction deletes, roughly:
// it stops after the block that reaches it.
const deleteChunk = 5000

// deleteEventsChunk deletes, in one transaction, about deleteChunk of the
// app's oldest events with time < before (µs), with their keys and the
// event_index rows of values no longer in their block: a block older than
// before goes whole, one that straddles it is rewritten with its newer
// events. Only aggregated blocks (seq <= rolled_up) are touched: one
// appended with old events since the caller's roll-up waits for the next
// run rather than being lost to the rollups. more reports whether another
// chunk may follow.
func (db *DB) deleteEventsChunk(ctx context.Context, app string, before int64) (n int64, more bool, keysUpTo int64, err error) {
	err = db.tx(ctx, func(tx *sql.Tx) error {
		// A block spans at most blockMaxSpan, so the blocks with a first
		// event before the cutoff have their last before cutoff + span.
		rows, err := tx.QueryContext(ctx, `SELECT seq, tmin, tmax, data FROM event_blocks
			WHERE app_id = ? AND tmax < ? AND tmin < ? AND seq <= (SELECT rolled_up FROM event_rollup_state) ORDER BY tmax`,
			app, sat(before, blockMaxSpan), before)
		if err != nil {
			return err
		}
		type victim struct {
			seq, tmin, tmax int64
			old, kept       []*callsign.Event
		}
		var vs []victim
		var r blockReader
		var be blockEvent
		for rows.Next() {
			if n >= deleteChunk {
				more = true
				break
			}
			var v victim
			var data sql.RawBytes
			if err := rows.Scan(&v.seq, &v.tmin, &v.tmax, &data); err != nil {
				rows.Close()
				return err
			}
			if err := r.reset(data, v.tmin); err != nil {
				rows.Close()
				return fmt.Errorf("block %d: %w", v.seq, err)
			}
			for r.next(&be) {
				e := r.event(app, &be)
				if be.time < before {
					v.old = append(v.old, e)
				} else {
					v.kept = append(v.kept, e)
				}
			}
			if r.err != nil {
				rows.Close()
				return fmt.Errorf("block %d: %w", v.seq, r.err)
			}
			n += int64(len(v.old))
			vs = append(vs, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if !more {
			// Every aggregated event before the cutoff is deleted once
			// this commits: so may be the keys of the chunks written so
			// far (the key chunk ids are never reused).
			err := tx.QueryRowContext(ctx, "SELECT ifnull((SELECT seq FROM sqlite_sequence WHERE name = 'event_key_chunks'), 0)").Scan(&keysUpTo)
			if err != nil {
				return err
			}
		}
		// The blocks to take out of each value's event_index rows.
		gone := map[indexKey][]int64{}
		enc := newBlockEncoder()
		for _, v := range vs {
			keep := indexValues(v.kept)
			for kv := range indexValues(v.old) {
				if _, ok := keep[kv]; !ok {
					gone[kv] = append(gone[kv], v.seq)
				}
			}
			if len(v.kept) == 0 {
				_, err = tx.ExecContext(ctx, "DELETE FROM event_blocks WHERE seq = ?", v.seq)
			} else {
				tmin := v.kept[0].Time.UnixMicro()
				_, err = tx.ExecContext(ctx, "UPDATE event_blocks SET tmin = ?, n = ?, data = ? WHERE seq = ?",
					tmin, len(v.kept), enc.encode(nil, v.kept, tmin), v.seq)
			}
			if err != nil {
				return err
			}
		}
		return unindex(ctx, tx, app, gone)
	})
	if err != nil {
		return 0, false, 0, err
	}
	return n, more, keysUpTo, nil
}

// deleteKeys deletes the app's keys with time < before (µs) from the key
// chunks with id <= upTo: whole chunks before the cutoff, in transactions
// of deleteChunk chunks, then the chunks that straddle it, rewritten with
// their newer keys. Their events are deleted: see DeleteEventsBefore.
func (db *DB) deleteKeys(ctx context.Context, app string, before, upTo int64) error {
	_, err := db.deleteChunks(ctx, `DELETE FROM event_key_chunks WHERE id IN (SELECT id FROM event_key_chunks
		WHERE app_id = ? AND tmax < ? AND id <= ? LIMIT ?)`, app, before, upTo)
	if err != nil {
		return err
	}
	return db.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, tmin, keys FROM event_key_chunks
			WHERE app_id = ? AND tmax >= ? AND tmax <= ? AND tmin < ? AND id <= ?`, app, before, sat(before, keyChunkSpan), before, upTo)
		if err != nil {
			return err
		}
		type chunk struct {
			id   int64
			keep []eventKey
		}
		var cs []chunk
		for rows.Next() {
			var c chunk
			var tmin int64
			var b sql.RawBytes
			if err := rows.Scan(&c.id, &tmin, &b); err != nil {
				rows.Close()
				return err
			}
			err := decodeKeyChunk(b, tmin, func(t int64, id []byte) {
				if t >= before {
					c.keep = append(c.keep, eventKey{app, t, string(id)})
				}
			})
			if err != nil {
				rows.Close()
				return fmt.Errorf("key chunk %d: %w", c.id, err)
			}
			cs = append(cs, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, c := range cs {
			if len(c.keep) == 0 { // cannot be: tmax >= before
				_, err = tx.ExecContext(ctx, "DELETE FROM event_key_chunks WHERE id = ?", c.id)
			} else {
				_, err = tx.ExecContext(ctx, "UPDATE event_key_chunks SET tmin = ?, keys = ? WHERE id = ?",
					c.keep[0].t, appendKeyChunk(nil, c.keep), c.id)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// unindex takes blocks out of the event_index rows of values: gone maps a
// value to the blocks that no longer hold it. A row left with no block is
// deleted. The rows keep their tmin and tmax, which only makes a listing
// look at them when it need not.
func unindex(ctx context.Context, tx *sql.Tx, app string, gone map[indexKey][]int64) error {
	type row struct {
		tmax, first int64
		seqs        []int64
	}
	for kv, seqs := range gone {
		lo, hi := slices.Min(seqs), slices.Max(seqs)
		rows, err := tx.QueryContext(ctx, `SELECT tmax, first, blocks FROM event_index
			WHERE app_id = ? AND kind = ? AND value = ? AND first <= ? AND last >= ?`, app, kv.kind, kv.value, hi, lo)
		if err != nil {
			return err
		}
		var rs []row
		for rows.Next() {
			var r row
			var list sql.RawBytes
			if err := rows.Scan(&r.tmax, &r.first, &list); err != nil {
				rows.Close()
				return err
			}
			if r.seqs, err = blockSeqs(list, r.first); err != nil {
				rows.Close()
				return fmt.Errorf("event_index row of block %d: %w", r.first, err)
			}
			rs = append(rs, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range rs {
			left := slices.DeleteFunc(slices.Clone(r.seqs), func(s int64) bool { return slices.Contains(seqs, s) })
			switch {
			case len(left) == len(r.seqs):
				continue
			case len(left) == 0:
				_, err = tx.ExecContext(ctx, "DELETE FROM event_index WHERE app_id = ? AND kind = ? AND value = ? AND tmax = ? AND first = ?",
					app, kv.kind, kv.value, r.tmax, r.first)
			default:
				_, err = tx.ExecContext(ctx, "UPDATE event_index SET blocks = ? WHERE app_id = ? AND kind = ? AND value = ? AND tmax = ? AND first = ?",
					appendBlockSeqs(nil, r.first, left), app, kv.kind, kv.value, r.tmax, r.first)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// indexKey is an event_index value of a block.
type indexKey struct {
	kind  int
	value string
}

func indexValues(evs []*callsign.Event) map[indexKey]struct{} {
	m := map[indexKey]struct{}{}
	for _, e := range evs {
		for k, v := range [nKinds]string{kindUser: e.UserID, kindClientUser: e.ClientUserID, kindAPIUser: e.APIUserID,
			kindAuthError: e.AuthError, kindRoute: e.Route} {
			if v != "" {
				m[indexKey{k, v}] = struct{}{}
			}
		}
	}
	return m
}

// deleteChunks runs the DELETE q (whose last argument is the chunk size)
// in one transaction after another until one deletes less than a chunk.
func (db *DB) deleteChunks(ctx context.Context, q string, args ...any) (int64, error) {
	return db.deleteChunksThen(ctx, "", q, args...)
}

// deleteChunksThen is deleteChunks that also runs then, when not empty, in
// each transaction that deleted rows.
func (db *DB) deleteChunksThen(ctx context.Context, then, q string, args ...any) (int64, error) {
	var total int64
	args = append(args, deleteChunk)
	for {
		var n int64
		err := db.tx(ctx, func(tx *sql.Tx) error {
			r, err := tx.ExecContext(ctx, q, args...)
			if err != nil {
				return err
			}
			if n, err = r.RowsAffected(); err != nil || n == 0 || then == "" {
				return err
			}
			_, err = tx.ExecContext(ctx, then)
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

// sat returns a + b (b >= 0), or math.MaxInt64 if that overflows.
func sat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
