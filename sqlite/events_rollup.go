package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"slices"
	"strings"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
	sqlitedrv "modernc.org/sqlite"
)

// SketchRelativeAccuracy is the relative accuracy of the latency sketches:
// a percentile the store reports is within 1% of the latency of an event at
// that rank. See the package documentation.
const SketchRelativeAccuracy = 0.01

// When AppendEvents aggregates, and how much at a time.
const (
	// rollupEvery is how many pending (not yet aggregated) events make
	// AppendEvents aggregate them. Larger amortises better (a busy
	// (hour, user) cell is updated once per aggregation) but makes the
	// occasional append, or the first metrics query after a quiet ingest,
	// wait longer.
	rollupEvery = 32768
	// rollupChunk bounds the events one aggregation transaction reads, and
	// so how long it holds the writer.
	rollupChunk = 65536
)

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

// sketchMergeFunc is the SQL function that merges two encoded sketches; the
// rollup upserts use it to add a new aggregate to a stored one.
const sketchMergeFunc = "callsign_sketch_merge"

func init() {
	sqlitedrv.MustRegisterDeterministicScalarFunction(sketchMergeFunc, 2, mergeSketchesSQL)
}

func mergeSketchesSQL(_ *sqlitedrv.FunctionContext, args []driver.Value) (driver.Value, error) {
	sk := newSketch()
	for _, a := range args {
		b, ok := a.([]byte)
		if !ok {
			return nil, fmt.Errorf("%s: argument is %T, not a blob", sketchMergeFunc, a)
		}
		if err := sk.DecodeAndMergeWith(b); err != nil {
			return nil, fmt.Errorf("%s: %w", sketchMergeFunc, err)
		}
	}
	return encodeSketch(sk, nil), nil
}

func upsertSQL(table, dims string, nDims, rows int) string {
	return "INSERT INTO " + table + " (app_id, span, bucket, " + dims + ", count, errors, request_bytes, response_bytes, latency) VALUES " +
		valuesList(rows, 3+nDims+5) + " ON CONFLICT (app_id, span, bucket, " + dims + ") DO UPDATE SET " +
		"count = count + excluded.count, errors = errors + excluded.errors, " +
		"request_bytes = request_bytes + excluded.request_bytes, response_bytes = response_bytes + excluded.response_bytes, " +
		"latency = " + sketchMergeFunc + "(latency, excluded.latency)"
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
	index []indexEntry
	// blockValues are the event_index values of the current block.
	blockValues map[indexKey]struct{}
}

// indexEntry is a row of event_index.
type indexEntry struct {
	app       string
	kind      int64
	value     string
	tmax, seq int64
	tmin      int64
}

func cmpIndexEntry(a, b indexEntry) int {
	return cmp.Or(strings.Compare(a.app, b.app), cmp.Compare(a.kind, b.kind), strings.Compare(a.value, b.value),
		cmp.Compare(a.tmax, b.tmax), cmp.Compare(a.seq, b.seq))
}

func newAggregator() *aggregator {
	return &aggregator{route: map[routeKey]*cell{}, user: map[userKey]*cell{}, blockValues: map[indexKey]struct{}{}}
}

// addBlock aggregates the events of block seq of app.
func (a *aggregator) addBlock(r *blockReader, app string, seq, tmin, tmax int64) error {
	var e blockEvent
	clear(a.blockValues)
	for r.next(&e) {
		if err := a.add(app, &e); err != nil {
			return err
		}
		for k, f := range kindField {
			if v := e.dict[f]; v != "" {
				a.blockValues[indexKey{k, v}] = struct{}{}
			}
		}
	}
	if r.err != nil {
		return fmt.Errorf("block %d: %w", seq, r.err)
	}
	for kv := range a.blockValues {
		a.index = append(a.index, indexEntry{app: app, kind: int64(kv.kind), value: kv.value, tmax: tmax, seq: seq, tmin: tmin})
	}
	return nil
}

func (a *aggregator) add(app string, e *blockEvent) error {
	w := e.weight
	if w == 0 {
		w = 1
	}
	authError := e.dict[fAuthError]
	var errs float64
	if (e.status >= 500 && e.status <= 599) || authError != "" {
		errs = w
	}
	class := e.status / 100
	if e.status < 100 || e.status > 599 {
		class = 0
	}
	lat := float64(max(e.latency, 0))
	rk := routeKey{app: app, span: 60, bucket: floorDiv(e.time, 60e6) * 60, route: e.dict[fRoute], class: class, authError: authError}
	uk := userKey{app: app, span: 3600, bucket: floorDiv(e.time, 3600e6) * 3600, user: e.dict[fUser], company: e.dict[fCompany]}
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

// write upserts the aggregates, of every span, into the rollup tables.
func (a *aggregator) write(ctx context.Context, tx *sql.Tx, ev *eventStmts) error {
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

	// In primary-key order, so that the upserts walk the B-tree forward.
	rks := slices.SortedFunc(mapKeys(a.route), cmpRouteKey)
	err = upsertChunks(ctx, tx, ev.upsertRoute, len(rks), func(args []any, i int) []any {
		k, c := rks[i], a.route[rks[i]]
		return append(args, k.app, k.span, k.bucket, k.route, k.class, k.authError,
			c.count, c.errors, c.reqBytes, c.respBytes, encodeSketch(c.latency, nil))
	})
	if err != nil {
		return err
	}
	uks := slices.SortedFunc(mapKeys(a.user), cmpUserKey)
	err = upsertChunks(ctx, tx, ev.upsertUser, len(uks), func(args []any, i int) []any {
		k, c := uks[i], a.user[uks[i]]
		return append(args, k.app, k.span, k.bucket, k.user, k.company,
			c.count, c.errors, c.reqBytes, c.respBytes, encodeSketch(c.latency, nil))
	})
	if err != nil {
		return err
	}
	slices.SortFunc(a.index, cmpIndexEntry)
	return upsertChunks(ctx, tx, ev.insertIndex, len(a.index), func(args []any, i int) []any {
		x := a.index[i]
		return append(args, x.app, x.kind, x.value, x.tmax, x.seq, x.tmin)
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
	var args []any
	i := 0
	for j, size := range [3]int{upsertChunkL, upsertChunkM, upsertChunkS} {
		if n-i < size {
			continue
		}
		st := tx.StmtContext(ctx, stmts[j])
		for n-i >= size {
			args = args[:0]
			for k := i; k < i+size; k++ {
				args = row(args, k)
			}
			if _, err := st.ExecContext(ctx, args...); err != nil {
				return err
			}
			i += size
		}
	}
	return nil
}

// rollUp aggregates the events above the watermark into the rollups, if
// at least min are pending, in transactions of at most chunk events.
func (db *DB) rollUp(ctx context.Context, min int64, chunk int) error {
	for {
		more, err := db.rollUpOnce(ctx, min, chunk)
		if err != nil {
			return fmt.Errorf("sqlite: roll up events: %w", err)
		}
		if !more {
			return nil
		}
		min = 1
	}
}

func (db *DB) rollUpOnce(ctx context.Context, min int64, chunk int) (more bool, err error) {
	err = db.tx(ctx, func(tx *sql.Tx) error {
		var from, last, pending int64
		err := tx.QueryRowContext(ctx, "SELECT rolled_up, ifnull((SELECT seq FROM sqlite_sequence WHERE name = 'event_blocks'), 0), ("+pendingSQL+") FROM event_rollup_state").
			Scan(&from, &last, &pending)
		if err != nil {
			return err
		}
		if pending == 0 && last > from {
			// Only deleted blocks above the mark.
			_, err = tx.ExecContext(ctx, "UPDATE event_rollup_state SET rolled_up = ?", last)
			return err
		}
		if pending < min || pending == 0 {
			return nil
		}
		a := newAggregator()
		n, to, err := a.readPending(ctx, tx.StmtContext(ctx, db.ev.readPending), from, chunk)
		if err != nil {
			return err
		}
		if n < chunk {
			to = last // blocks in (to, last] were deleted, if any
		} else {
			more = true
		}
		if err := a.write(ctx, tx, &db.ev); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE event_rollup_state SET rolled_up = ?", to)
		return err
	})
	return more, err
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
