package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// SketchRelativeAccuracy is the relative accuracy of the latency sketches:
// a percentile the store reports is within 1% of the latency of an event at
// that rank. See the package documentation.
const SketchRelativeAccuracy = 0.01

// When events are aggregated, and how much at a time.
const (
	// rollupEvery is how many pending (not yet aggregated) events make
	// AppendEvents wake the background aggregation. Larger amortises
	// better (a busy (hour, user) cell, whose stored sketch is merged with
	// the new one, is updated once per aggregation): 1,000-event batches
	// appended 98k events/s at 32,768, ~130k at 131,072 and ~160k at
	// 262,144 on an earlier layout, and 245k at 262,144 against 265k at
	// 524,288 on a later one (BenchmarkAppendEvents, 2M events). The price
	// is the wait of a metrics query that arrives while that many are
	// pending: it aggregates them first (well under a second here).
	rollupEvery = 262144
	// rollupBackpressure is how many pending events make AppendEvents
	// aggregate them itself before it returns, when ingest outruns the
	// background aggregation.
	rollupBackpressure = 3 * rollupEvery
	// rollupMaxDelay is how long an event stays pending at most, give or
	// take a second, when fewer than rollupEvery are: then the background
	// aggregation runs anyway, so that a metrics query rarely waits.
	rollupMaxDelay = 5 * time.Second
	// rollupChunk bounds the events one aggregation transaction reads, and
	// so how long it holds the writer.
	rollupChunk = 524288
)

// roller aggregates pending events in the background: woken by
// AppendEvents past rollupEvery pending events, and every second when the
// oldest pending append is older than rollupMaxDelay.
type roller struct {
	mu    sync.Mutex // one aggregation at a time
	since atomic.Int64
	// pending counts the events appended and not yet aggregated by this
	// process (from the store's count at Open): it decides when to wake
	// the aggregation without a query on the writer per append.
	pending atomic.Int64
	kick    chan struct{}
	stop    context.CancelFunc
	done    chan struct{}
}

// startRoller starts the background aggregation; Close stops it.
func (db *DB) startRoller(ctx context.Context) error {
	var pending int64
	if err := db.ev.pendingCount.QueryRowContext(ctx).Scan(&pending); err != nil {
		return fmt.Errorf("sqlite: count pending events: %w", err)
	}
	db.roll.pending.Store(pending)
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	db.roll.kick = make(chan struct{}, 1)
	db.roll.stop = cancel
	db.roll.done = make(chan struct{})
	// Events left pending by an earlier process are aggregated soon.
	db.roll.since.Store(time.Now().Add(-rollupMaxDelay).UnixNano())
	go func() {
		defer close(db.roll.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		var wait time.Time // after a failure: not before
		backoff := time.Second
		for {
			select {
			case <-ctx.Done():
				return
			case <-db.roll.kick:
			case <-tick.C:
				s := db.roll.since.Load()
				if s == 0 || time.Since(time.Unix(0, s)) < rollupMaxDelay {
					continue
				}
			}
			if time.Now().Before(wait) {
				continue
			}
			// A failure is retried later, backing off up to a minute: the
			// events are durable, and queries that need them aggregate
			// themselves, and report the failure.
			if err := db.rollUp(ctx, 1, rollupChunk); err != nil && ctx.Err() == nil {
				db.setFailing(&db.failing.rollup, err)
				wait = time.Now().Add(backoff)
				backoff = min(2*backoff, time.Minute)
			} else if err == nil {
				db.setFailing(&db.failing.rollup, nil)
				backoff = time.Second
			}
		}
	}()
	return nil
}

// stopRoller stops the background aggregation and waits for it.
func (db *DB) stopRoller() {
	if db.roll.stop != nil {
		db.roll.stop()
		<-db.roll.done
	}
}

// appended tells the background aggregation that n events were appended.
func (db *DB) appended(ctx context.Context, n int64) {
	db.roll.since.CompareAndSwap(0, time.Now().UnixNano())
	pending := db.roll.pending.Add(n)
	switch {
	case pending >= rollupBackpressure:
		// The events are durable: a failure to aggregate them now is not
		// the caller's, and the next aggregation retries.
		_ = db.rollUp(context.WithoutCancel(ctx), rollupEvery, rollupChunk)
	case pending >= rollupEvery:
		select {
		case db.roll.kick <- struct{}{}:
		default:
		}
	}
}

// rollupTable describes one rollup table.
type rollupTable struct {
	name string
	pk   string // its primary key, for chunked deletes
	// spans are its bucket lengths in seconds, coarsest first.
	spans []int64
}

// Values, not state: these tables never change.
var (
	routeRollups = rollupTable{"event_rollups_route", "app_id, span, bucket, route, status_class, auth_error", []int64{86400, 3600, 60}}
	userRollups  = rollupTable{"event_rollups_user", "app_id, span, bucket, user_id, company_id", []int64{86400, 3600}}
)

// Upsert chunk sizes, as insertChunk* for events.
const (
	upsertChunkL = 64
	upsertChunkM = 8
	upsertChunkS = 1
)

// upsertSQL writes rows rollup rows of table, whose dimensions beyond the
// bucket are dims (nDims of them), replacing the figures of a row already
// there: the aggregation merged them in (aggregator.prepare).
func upsertSQL(table, dims string, nDims, rows int) string {
	return "INSERT INTO " + table + " (app_id, span, bucket, " + dims + ", count, errors, request_bytes, response_bytes, latency) VALUES " +
		valuesList(rows, 3+nDims+5) + " ON CONFLICT (app_id, span, bucket, " + dims + ") DO UPDATE SET " +
		"count = excluded.count, errors = excluded.errors, " +
		"request_bytes = excluded.request_bytes, response_bytes = excluded.response_bytes, latency = excluded.latency"
}

// storedSQL reads the stored rollup rows of table among rows keys (app,
// span, bucket, dims...), by primary key.
func storedSQL(table, dims string, nDims, rows int) string {
	return "SELECT app_id, span, bucket, " + dims + ", count, errors, request_bytes, response_bytes, latency FROM " + table +
		" WHERE (app_id, span, bucket, " + dims + ") IN (VALUES " + valuesList(rows, 3+nDims) + ")"
}

// sketchMapping is the index mapping of every latency sketch: logarithmic,
// the one that meets the relative accuracy with the fewest bins. Stored
// sketches omit it from their encoding.
var sketchMapping = func() mapping.IndexMapping {
	m, err := mapping.NewLogarithmicMapping(SketchRelativeAccuracy)
	if err != nil {
		panic(err)
	}
	return m
}()

func newSketch() *ddsketch.DDSketch {
	return ddsketch.NewDDSketch(sketchMapping, store.NewDenseStore(), store.NewDenseStore())
}

// encodeSketch appends sk in DDSketch's own binary encoding, without the
// index mapping, to b.
func encodeSketch(sk *ddsketch.DDSketch, b []byte) []byte {
	sk.Encode(&b, true)
	if b == nil {
		b = []byte{} // an empty sketch: a non-NULL, empty blob
	}
	return b
}

// cell is the aggregate of one rollup row.
type cell struct {
	count, errors, reqBytes, respBytes float64
	latency                            *ddsketch.DDSketch
}

func newCell() *cell { return &cell{latency: newSketch()} }

func (c *cell) merge(o *cell) error {
	c.count += o.count
	c.errors += o.errors
	c.reqBytes += o.reqBytes
	c.respBytes += o.respBytes
	return c.latency.MergeWith(o.latency)
}

// mergeStored adds to c the figures of a stored row, o, whose sketch is
// blob.
func (c *cell) mergeStored(o *cell, blob []byte) error {
	c.count += o.count
	c.errors += o.errors
	c.reqBytes += o.reqBytes
	c.respBytes += o.respBytes
	return c.latency.DecodeAndMergeWith(blob)
}

type routeKey struct {
	app          string
	span, bucket int64
	route        string
	class        int64
	authError    string
}

type userKey struct {
	app           string
	span, bucket  int64
	user, company string
}

func cmpRouteKey(a, b routeKey) int {
	return cmp.Or(strings.Compare(a.app, b.app), cmp.Compare(a.span, b.span), cmp.Compare(a.bucket, b.bucket),
		strings.Compare(a.route, b.route), cmp.Compare(a.class, b.class), strings.Compare(a.authError, b.authError))
}

func cmpUserKey(a, b userKey) int {
	return cmp.Or(strings.Compare(a.app, b.app), cmp.Compare(a.span, b.span), cmp.Compare(a.bucket, b.bucket),
		strings.Compare(a.user, b.user), strings.Compare(a.company, b.company))
}

// aggregator sums events into the finest buckets of both rollups: minutes
// for routes, hours for users; coarser buckets are merged from those. It
// also collects the event_index rows of the blocks it reads.
type aggregator struct {
	route map[routeKey]*cell
	user  map[userKey]*cell
	index map[valueKey]*indexRun
	// blockValues are the event_index values of the current block.
	blockValues map[indexKey]struct{}
	// keys are the idempotency keys of the events, for event_key_chunks.
	keys []eventKey
	// Made by prepare: the rows to write, in primary-key order, and their
	// encoded sketches.
	rks          []routeKey
	uks          []userKey
	rblob, ublob [][]byte
	chunks       []keyChunk
	vks          []valueKey
}

// eventKey is an idempotency key.
type eventKey struct {
	app string
	t   int64
	id  string
}

func cmpEventKey(a, b eventKey) int {
	return cmp.Or(strings.Compare(a.app, b.app), cmp.Compare(a.t, b.t), strings.Compare(a.id, b.id))
}

// valueKey is an app's event_index value.
type valueKey struct {
	app   string
	kind  int
	value string
}

func cmpValueKey(a, b valueKey) int {
	return cmp.Or(strings.Compare(a.app, b.app), cmp.Compare(a.kind, b.kind), strings.Compare(a.value, b.value))
}

// indexRun is the event_index row of a value for the blocks of one
// aggregation.
type indexRun struct {
	tmin, tmax  int64
	first, last int64
	blocks      []byte // uvarint seq deltas, from first
}

func newAggregator() *aggregator {
	return &aggregator{route: map[routeKey]*cell{}, user: map[userKey]*cell{}, index: map[valueKey]*indexRun{},
		blockValues: map[indexKey]struct{}{}}
}

// addBlock aggregates the events of block seq of app. Blocks come in
// increasing seq.
func (a *aggregator) addBlock(r *blockReader, app string, seq, tmin, tmax int64) error {
	var e blockEvent
	clear(a.blockValues)
	for r.next(&e) {
		if err := a.add(r, app, &e); err != nil {
			return err
		}
		a.keys = append(a.keys, eventKey{app, e.time, string(r.bytesOf(e.id))})
		for k, f := range kindField {
			if i := e.dict[f]; len(r.raw(i)) > 0 {
				a.blockValues[indexKey{k, r.str(i)}] = struct{}{}
			}
		}
	}
	if r.err != nil {
		return fmt.Errorf("block %d: %w", seq, r.err)
	}
	for kv := range a.blockValues {
		vk := valueKey{app, kv.kind, kv.value}
		run := a.index[vk]
		if run == nil {
			run = &indexRun{tmin: tmin, tmax: tmax, first: seq, last: seq}
			a.index[vk] = run
		}
		run.blocks = binary.AppendUvarint(run.blocks, uint64(seq-run.last))
		run.tmin, run.tmax, run.last = min(run.tmin, tmin), max(run.tmax, tmax), seq
	}
	return nil
}

// blockSeqs decodes the blocks column of an event_index row.
func blockSeqs(b []byte, first int64) ([]int64, error) {
	var seqs []int64
	s := first
	for len(b) > 0 {
		d, k := binary.Uvarint(b)
		if k <= 0 || d > math.MaxInt64-uint64(s) {
			return nil, errCorruptBlock
		}
		b = b[k:]
		s += int64(d)
		seqs = append(seqs, s)
	}
	return seqs, nil
}

// appendBlockSeqs encodes seqs, increasing from first, as blockSeqs reads
// them.
func appendBlockSeqs(b []byte, first int64, seqs []int64) []byte {
	prev := first
	for _, s := range seqs {
		b = binary.AppendUvarint(b, uint64(s-prev))
		prev = s
	}
	return b
}

func (a *aggregator) add(r *blockReader, app string, e *blockEvent) error {
	w := e.weight
	if w == 0 {
		w = 1
	}
	authError := r.str(e.dict[fAuthError])
	var errs float64
	if (e.status >= 500 && e.status <= 599) || authError != "" {
		errs = w
	}
	class := e.status / 100
	if e.status < 100 || e.status > 599 {
		class = 0
	}
	lat := float64(max(e.latency, 0))
	rk := routeKey{app: app, span: 60, bucket: floorDiv(e.time, 60e6) * 60, route: r.str(e.dict[fRoute]), class: class, authError: authError}
	uk := userKey{app: app, span: 3600, bucket: floorDiv(e.time, 3600e6) * 3600, user: r.str(e.dict[fUser]), company: r.str(e.dict[fCompany])}
	for _, c := range [2]*cell{a.routeCell(rk), a.userCell(uk)} {
		c.count += w
		c.errors += errs
		c.reqBytes += w * float64(e.reqBytes)
		c.respBytes += w * float64(e.respBytes)
		if err := c.latency.AddWithCount(lat, w); err != nil {
			return err
		}
	}
	return nil
}

func (a *aggregator) routeCell(k routeKey) *cell {
	c := a.route[k]
	if c == nil {
		c = newCell()
		a.route[k] = c
	}
	return c
}

func (a *aggregator) userCell(k userKey) *cell {
	c := a.user[k]
	if c == nil {
		c = newCell()
		a.user[k] = c
	}
	return c
}

// rollUpLevels adds to cells, whose keys are all of span spans[len-1], the
// coarser spans merged from them.
func rollUpLevels[K comparable](cells map[K]*cell, spans []int64, rekey func(K, int64) K) error {
	prev := cells
	for i := len(spans) - 2; i >= 0; i-- {
		next := map[K]*cell{}
		for k, c := range prev {
			nk := rekey(k, spans[i])
			n := next[nk]
			if n == nil {
				n = newCell()
				next[nk] = n
			}
			if err := n.merge(c); err != nil {
				return err
			}
		}
		for k, c := range next {
			cells[k] = c
		}
		prev = next
	}
	return nil
}

// prepare adds to the cells the coarser spans merged from them, merges in
// the figures of the rows the rollup tables hold for them, read in tx (the
// snapshot in which the pending blocks were read, so the rows as of the
// watermark they start from), and encodes their sketches: write then only
// replaces rows. That is the decoding, merging and encoding of a stored
// sketch per row done here, on a reader, instead of holding the writer:
// the rollups change only with the watermark, which write checks, and
// under db.roll.mu, which the caller holds.
func (a *aggregator) prepare(ctx context.Context, tx *sql.Tx, ev *eventStmts) error {
	err := rollUpLevels(a.route, routeRollups.spans, func(k routeKey, span int64) routeKey {
		k.span, k.bucket = span, floorDiv(k.bucket, span)*span
		return k
	})
	if err != nil {
		return err
	}
	err = rollUpLevels(a.user, userRollups.spans, func(k userKey, span int64) userKey {
		k.span, k.bucket = span, floorDiv(k.bucket, span)*span
		return k
	})
	if err != nil {
		return err
	}
	// In primary-key order, so that the lookups and upserts walk the
	// B-tree forward.
	a.rks = slices.SortedFunc(mapKeys(a.route), cmpRouteKey)
	a.uks = slices.SortedFunc(mapKeys(a.user), cmpUserKey)
	err = lookupChunks(ctx, tx, ev.storedRoute, len(a.rks), func(args []any, i int) []any {
		k := a.rks[i]
		return append(args, k.app, k.span, k.bucket, k.route, k.class, k.authError)
	}, func(rows *sql.Rows) error {
		var k routeKey
		var o cell
		var blob sql.RawBytes
		if err := rows.Scan(&k.app, &k.span, &k.bucket, &k.route, &k.class, &k.authError, &o.count, &o.errors, &o.reqBytes, &o.respBytes, &blob); err != nil {
			return err
		}
		c := a.route[k]
		if c == nil { // the lookup is by primary key: cannot be
			return fmt.Errorf("stored route rollup row %v matches no aggregate", k)
		}
		return c.mergeStored(&o, blob)
	})
	if err != nil {
		return err
	}
	err = lookupChunks(ctx, tx, ev.storedUser, len(a.uks), func(args []any, i int) []any {
		k := a.uks[i]
		return append(args, k.app, k.span, k.bucket, k.user, k.company)
	}, func(rows *sql.Rows) error {
		var k userKey
		var o cell
		var blob sql.RawBytes
		if err := rows.Scan(&k.app, &k.span, &k.bucket, &k.user, &k.company, &o.count, &o.errors, &o.reqBytes, &o.respBytes, &blob); err != nil {
			return err
		}
		c := a.user[k]
		if c == nil { // the lookup is by primary key: cannot be
			return fmt.Errorf("stored user rollup row %v matches no aggregate", k)
		}
		return c.mergeStored(&o, blob)
	})
	if err != nil {
		return err
	}
	a.rblob = make([][]byte, len(a.rks))
	for i, k := range a.rks {
		a.rblob[i] = encodeSketch(a.route[k].latency, nil)
	}
	a.ublob = make([][]byte, len(a.uks))
	for i, k := range a.uks {
		a.ublob[i] = encodeSketch(a.user[k].latency, nil)
	}
	// The key chunks and the event_index rows, in primary-key order.
	slices.SortFunc(a.keys, cmpEventKey)
	size := 0
	for _, k := range a.keys {
		size += len(k.id) + 4 // a time delta and a length take ~3 bytes
	}
	buf := make([]byte, 0, size) // one allocation for all the chunks
	keyChunks(a.keys, func(c []eventKey) error {
		n := len(buf)
		buf = appendKeyChunk(buf, c)
		a.chunks = append(a.chunks, keyChunk{c[0].app, c[0].t, c[len(c)-1].t, buf[n:len(buf):len(buf)]})
		return nil
	})
	a.vks = slices.SortedFunc(mapKeys(a.index), cmpValueKey)
	return nil
}

// keyChunk is a row of event_key_chunks.
type keyChunk struct {
	app        string
	tmin, tmax int64
	data       []byte
}

// lookupChunks runs the multi-row lookups stmts, of upsertChunkL, M and S
// keys, over n keys whose arguments key appends, and calls row with each
// row found.
func lookupChunks(ctx context.Context, tx *sql.Tx, stmts [3]*sql.Stmt, n int, key func([]any, int) []any, row func(*sql.Rows) error) error {
	return eachChunk(ctx, tx, stmts, n, key, func(st *sql.Stmt, args []any) error {
		rows, err := st.QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := row(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// write writes what prepare made: rollup rows, key chunks and event_index
// rows.
func (a *aggregator) write(ctx context.Context, tx *sql.Tx, ev *eventStmts) error {
	err := upsertChunks(ctx, tx, ev.upsertRoute, len(a.rks), func(args []any, i int) []any {
		k, c := a.rks[i], a.route[a.rks[i]]
		return append(args, k.app, k.span, k.bucket, k.route, k.class, k.authError,
			c.count, c.errors, c.reqBytes, c.respBytes, a.rblob[i])
	})
	if err != nil {
		return err
	}
	err = upsertChunks(ctx, tx, ev.upsertUser, len(a.uks), func(args []any, i int) []any {
		k, c := a.uks[i], a.user[a.uks[i]]
		return append(args, k.app, k.span, k.bucket, k.user, k.company,
			c.count, c.errors, c.reqBytes, c.respBytes, a.ublob[i])
	})
	if err != nil {
		return err
	}
	err = upsertChunks(ctx, tx, ev.insertKeyChunks, len(a.chunks), func(args []any, i int) []any {
		c := a.chunks[i]
		return append(args, c.app, c.tmin, c.tmax, c.data)
	})
	if err != nil {
		return err
	}
	return upsertChunks(ctx, tx, ev.insertIndex, len(a.vks), func(args []any, i int) []any {
		k, r := a.vks[i], a.index[a.vks[i]]
		return append(args, k.app, k.kind, k.value, r.tmax, r.first, r.last, r.tmin, r.blocks)
	})
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// upsertChunks runs the multi-row upserts (or inserts) stmts, of
// upsertChunkL, M and S rows, over n rows whose arguments row appends.
func upsertChunks(ctx context.Context, tx *sql.Tx, stmts [3]*sql.Stmt, n int, row func([]any, int) []any) error {
	return eachChunk(ctx, tx, stmts, n, row, func(st *sql.Stmt, args []any) error {
		_, err := st.ExecContext(ctx, args...)
		return err
	})
}

// eachChunk cuts n rows into chunks of upsertChunkL, M and S rows, largest
// first, and calls run with the statement of stmts for the chunk's size, in
// tx, and the arguments of its rows, which row appends.
func eachChunk(ctx context.Context, tx *sql.Tx, stmts [3]*sql.Stmt, n int, row func([]any, int) []any, run func(*sql.Stmt, []any) error) error {
	var args []any
	i := 0
	for j, size := range [3]int{upsertChunkL, upsertChunkM, upsertChunkS} {
		if n-i < size {
			continue
		}
		st := tx.StmtContext(ctx, stmts[j])
		for ; n-i >= size; i += size {
			args = args[:0]
			for k := i; k < i+size; k++ {
				args = row(args, k)
			}
			if err := run(st, args); err != nil {
				return err
			}
		}
	}
	return nil
}

// rollUp aggregates the events above the watermark into the rollups, if
// at least min are pending, in transactions of at most about chunk events.
func (db *DB) rollUp(ctx context.Context, min int64, chunk int) error {
	db.roll.mu.Lock()
	defer db.roll.mu.Unlock()
	// Appends from now on mark themselves pending again; if this fails,
	// the events it was to aggregate are still pending.
	since := db.roll.since.Swap(0)
	for {
		more, skipped, err := db.rollUpOnce(ctx, min, chunk)
		if err != nil || skipped {
			// The events it was to aggregate are still pending.
			db.roll.since.CompareAndSwap(0, since)
		}
		if err != nil {
			return fmt.Errorf("sqlite: roll up events: %w", err)
		}
		if !more {
			return nil
		}
		min = 1
	}
}

// testHookAfterRead, when set, is called by rollUpOnce between its read and
// its write transactions (tests only).
var testHookAfterRead atomic.Pointer[func(*DB)]

// rollUpOnce reads and aggregates pending blocks in a read transaction,
// off the writer, so that appends go on meanwhile; only the upserts and the
// new watermark hold the writer. Callers hold db.roll.mu, so nothing else
// moves the watermark in between.
//
// skipped reports that fewer than min events were pending: nothing done.
// Another process on the same store (a CLI command) may aggregate too, or
// delete rollup rows: when it did in between, more asks to start again.
func (db *DB) rollUpOnce(ctx context.Context, min int64, chunk int) (more, skipped bool, err error) {
	a := newAggregator()
	var from, to, deletes int64
	var n int
	skip := false
	err = db.readTx(ctx, func(tx *sql.Tx) error {
		var last, pending int64
		err := tx.QueryRowContext(ctx, "SELECT rolled_up, rollup_deletes, ifnull((SELECT seq FROM sqlite_sequence WHERE name = 'event_blocks'), 0), ("+pendingSQL+") FROM event_rollup_state").
			Scan(&from, &deletes, &last, &pending)
		if err != nil {
			return err
		}
		if pending == 0 {
			// Nothing to aggregate; move past deleted blocks, if any.
			to, skip = last, last == from
			return nil
		}
		if pending < min {
			skip, skipped = true, true
			return nil
		}
		var lastRead int64
		n, lastRead, err = a.readPending(ctx, tx.StmtContext(ctx, db.ev.readPending), from, chunk)
		if err != nil {
			return err
		}
		if err := a.prepare(ctx, tx, &db.ev); err != nil {
			return err
		}
		if n < chunk {
			to = last // blocks in (lastRead, last] were deleted, if any
		} else {
			to, more = lastRead, true
		}
		return nil
	})
	if err != nil {
		return false, skipped, err
	}
	if h := testHookAfterRead.Load(); h != nil {
		(*h)(db)
	}
	if err := db.resyncKeys(ctx, from); err != nil {
		return false, skipped, err
	}
	if skip {
		return false, skipped, nil
	}
	moved := false
	err = db.tx(ctx, func(tx *sql.Tx) error {
		var mark, dels int64
		if err := tx.QueryRowContext(ctx, "SELECT rolled_up, rollup_deletes FROM event_rollup_state").Scan(&mark, &dels); err != nil {
			return err
		}
		if mark != from || dels != deletes {
			// Another process aggregated, or deleted rollup rows (read
			// above, to be written back merged): read again.
			moved = true
			return nil
		}
		if err := a.write(ctx, tx, &db.ev); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE event_rollup_state SET rolled_up = ?", to); err != nil {
			return err
		}
		// Before the commit, so that no append sees the new watermark
		// with the old mark; should the commit fail, the next aggregation
		// resyncs.
		db.keys.mu.Lock()
		if db.keys.mark == from {
			db.keys.mark = to
		}
		db.keys.mu.Unlock()
		return nil
	})
	if err == nil && !moved {
		db.roll.pending.Add(-int64(n))
		// Their keys are in event_key_chunks now.
		db.keys.aggregated(a.keys)
	}
	return more || moved, false, err
}

// readPending aggregates the blocks with seq > from, until it has read
// chunk events or more, and returns how many events it read and the seq
// of the last block.
func (a *aggregator) readPending(ctx context.Context, st *sql.Stmt, from int64, chunk int) (n int, last int64, err error) {
	rows, err := st.QueryContext(ctx, from)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	var r blockReader
	last = from
	for n < chunk && rows.Next() {
		var (
			seq, tmin, tmax int64
			app             string
			data            sql.RawBytes
		)
		if err := rows.Scan(&seq, &app, &tmin, &tmax, &data); err != nil {
			return 0, 0, err
		}
		if err := r.reset(data, tmin); err != nil {
			return 0, 0, fmt.Errorf("block %d: %w", seq, err)
		}
		n += r.n
		if err := a.addBlock(&r, app, seq, tmin, tmax); err != nil {
			return 0, 0, err
		}
		last = seq
	}
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	return n, last, nil
}
