package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"

	"github.com/callsignhq/callsign"
)

// maxSeriesBuckets bounds the buckets of one series: a day of minutes.
const maxSeriesBuckets = 1440

// groupSource returns the rollup table and key column that answer a
// group_by.
func groupSource(groupBy string) (rollupTable, string, bool) {
	switch groupBy {
	case callsign.GroupRoute:
		return routeRollups, "route", true
	case callsign.GroupStatus:
		return routeRollups, "status_class", true
	case callsign.GroupAuthError:
		return routeRollups, "auth_error", true
	case callsign.GroupUserID:
		return userRollups, "user_id", true
	case callsign.GroupCompany:
		return userRollups, "company_id", true
	}
	return rollupTable{}, "", false
}

// segment is the rollup rows of one span with bucket in [lo, hi) (seconds).
type segment struct{ span, lo, hi int64 }

// cover returns the segments, in time order, that exactly cover [lo, hi),
// using the coarsest span that fits and finer ones at the edges. lo and hi
// are multiples of the last (finest) span.
func cover(lo, hi int64, spans []int64) []segment {
	if lo >= hi || len(spans) == 0 {
		return nil
	}
	s := spans[0]
	a, b := ceilDiv(lo, s)*s, floorDiv(hi, s)*s
	if a >= b {
		return cover(lo, hi, spans[1:])
	}
	out := cover(lo, a, spans[1:])
	out = append(out, segment{s, a, b})
	return append(out, cover(b, hi, spans[1:])...)
}

// Metrics implements callsign.EventStore from the rollups, after
// aggregating any pending events, so the answer includes every event
// AppendEvents acknowledged before the call.
//
// Figures cover whole rollup buckets: From is rounded down and To up to the
// minute for group_by route, status and auth_error, and to the hour for
// user_id and company_id (whose rollups are hourly and daily). An Interval
// must be a multiple of that minute or hour; series buckets are aligned to
// multiples of Interval since the Unix epoch (UTC), and every bucket that
// meets the range is listed, empty ones with zero figures; at most 1440
// buckets. Groups are ordered by OrderBy (count, the default, or errors),
// largest first, then by key. Every value is a group, the empty one
// included (calls without a user id, or without an auth error). Count,
// Errors and bytes are sums of weights; P50, P95 and P99 are within
// SketchRelativeAccuracy (1%) of the latency, truncated to the
// microsecond, of an event at that rank.
//
// It returns EInvalid for a query without AppID, with an unknown GroupBy or
// OrderBy, a negative Limit, an empty or zero range, or an Interval that is
// not a multiple of the rollup granularity or makes too many buckets.
func (db *DB) Metrics(ctx context.Context, q callsign.MetricsQuery) (*callsign.MetricsReport, error) {
	if q.AppID == "" {
		return nil, callsign.Errorf(callsign.EInvalid, "An app id is required.")
	}
	tab, keyCol, ok := groupSource(q.GroupBy)
	if !ok {
		return nil, callsign.Errorf(callsign.EInvalid, "group_by must be one of route, user_id, company_id, status and auth_error.")
	}
	byErrors := false
	switch q.OrderBy {
	case "", "count":
	case "errors":
		byErrors = true
	default:
		return nil, callsign.Errorf(callsign.EInvalid, "order_by must be count or errors.")
	}
	limit := q.Limit
	switch {
	case limit < 0:
		return nil, callsign.Errorf(callsign.EInvalid, "The limit must not be negative.")
	case limit == 0 || limit > callsign.MaxMetricGroups:
		limit = callsign.MaxMetricGroups
	}
	if q.From.IsZero() || q.To.IsZero() || !q.From.Before(q.To) {
		return nil, callsign.Errorf(callsign.EInvalid, "A time range with from before to is required.")
	}
	finest := tab.spans[len(tab.spans)-1]
	from := floorDiv(q.From.UnixMicro(), finest*1e6) * finest
	to := ceilDiv(ceilMicros(q.To), finest*1e6) * finest
	spans := tab.spans
	var interval, first int64
	nb := 0
	if q.Interval != 0 {
		unit := time.Duration(finest) * time.Second
		if q.Interval < 0 || q.Interval%unit != 0 {
			return nil, callsign.Errorf(callsign.EInvalid, "For group_by %s the interval must be a multiple of %v.", q.GroupBy, unit)
		}
		interval = int64(q.Interval / time.Second)
		spans = slices.DeleteFunc(slices.Clone(spans), func(s int64) bool { return interval%s != 0 })
		first = floorDiv(from, interval) * interval
		n := ceilDiv(to-first, interval)
		if n > maxSeriesBuckets {
			return nil, callsign.Errorf(callsign.EInvalid, "The interval makes %d buckets over that range; at most %d are allowed.", n, maxSeriesBuckets)
		}
		nb = int(n)
	}
	segs := cover(from, to, spans)
	report := &callsign.MetricsReport{Groups: []callsign.MetricsGroup{}}
	if len(segs) == 0 {
		return report, nil
	}

	if err := db.catchUp(ctx); err != nil {
		return nil, err
	}
	// One read transaction: both phases see the same snapshot.
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("sqlite: metrics: %w", err)
	}
	defer tx.Rollback()

	// Phase 1: sums per group in SQL, to choose the groups without reading
	// a sketch.
	keys, truncated, ok, err := topKeysPruned(ctx, tx, tab, keyCol, q.AppID, segs, byErrors, limit)
	if err == nil && !ok {
		keys, truncated, err = topKeys(ctx, tx, tab, keyCol, q.AppID, segs, byErrors, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: metrics: %w", err)
	}
	if len(keys) == 0 {
		return report, nil
	}

	// Phase 2: the rows of the chosen groups, bucket by bucket, merging
	// their sketches.
	groups := make(map[string]*groupAcc, len(keys))
	for _, k := range keys {
		g := &groupAcc{total: newSketch(), openIdx: -1}
		if nb > 0 {
			g.series = make([]callsign.MetricsBucket, nb)
			for i := range g.series {
				g.series[i].Start = time.Unix(first+int64(i)*interval, 0).UTC()
			}
			g.open = newSketch()
		}
		groups[keyString(k)] = g
	}
	for _, s := range segs {
		where, args := phase2Where(q.AppID, s, keyCol, keys, truncated)
		err := func() error {
			rows, err := tx.QueryContext(ctx, "SELECT "+keyCol+", bucket, count, errors, request_bytes, response_bytes, latency FROM "+tab.name+
				" WHERE "+where+" ORDER BY bucket", args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			var (
				k      any
				bucket int64
				c      cell
				blob   sql.RawBytes
			)
			for rows.Next() {
				if err := rows.Scan(&k, &bucket, &c.count, &c.errors, &c.reqBytes, &c.respBytes, &blob); err != nil {
					return err
				}
				g := groups[keyString(k)]
				if g == nil {
					continue // a group that appeared after phase 1: impossible in one snapshot
				}
				idx := -1
				if nb > 0 {
					idx = int((bucket - first) / interval)
				}
				if err := g.add(&c, blob, idx); err != nil {
					return err
				}
			}
			return rows.Err()
		}()
		if err != nil {
			return nil, fmt.Errorf("sqlite: metrics: %w", err)
		}
	}

	for k, g := range groups {
		g.finish()
		report.Groups = append(report.Groups, callsign.MetricsGroup{Key: k, Metrics: g.m, Series: g.series})
	}
	slices.SortFunc(report.Groups, func(a, b callsign.MetricsGroup) int {
		if byErrors {
			if c := cmp.Compare(b.Errors, a.Errors); c != 0 {
				return c
			}
		}
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Key, b.Key))
	})
	return report, nil
}

// catchUp aggregates pending events, if any.
func (db *DB) catchUp(ctx context.Context) error {
	var pending int64
	if err := db.ev.pendingCount.QueryRowContext(ctx).Scan(&pending); err != nil {
		return fmt.Errorf("sqlite: roll up events: %w", err)
	}
	if pending > 0 {
		return db.rollUp(ctx, 1, rollupChunk)
	}
	return nil
}

// topKeys returns the keys of the limit largest groups over segs, and
// whether there were more groups.
func topKeys(ctx context.Context, tx *sql.Tx, tab rollupTable, keyCol, app string, segs []segment, byErrors bool, limit int) ([]any, bool, error) {
	var (
		b    strings.Builder
		args []any
	)
	b.WriteString("SELECT k, sum(count) AS c, sum(errors) AS e FROM (")
	for i, s := range segs {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		b.WriteString("SELECT " + keyCol + " AS k, count, errors FROM " + tab.name + " WHERE app_id = ? AND span = ? AND bucket >= ? AND bucket < ?")
		args = append(args, app, s.span, s.lo, s.hi)
	}
	b.WriteString(") GROUP BY k ORDER BY ")
	if byErrors {
		b.WriteString("e DESC, ")
	}
	b.WriteString("c DESC, k LIMIT ?")
	args = append(args, limit+1)
	rows, err := tx.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	var keys []any
	for rows.Next() {
		var (
			k    any
			c, e float64
		)
		if err := rows.Scan(&k, &c, &e); err != nil {
			return nil, false, err
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	if len(keys) > limit {
		return keys[:limit], true, nil
	}
	return keys, false, nil
}

// maxCandidates bounds the groups topKeysPruned computes exactly.
const maxCandidates = 1000

// topKeysPruned chooses the limit largest groups of a range that has whole
// days inside and hours at its edges (say Monday 13:00 to Monday 14:00 a
// week later) without reading every hour row of the edges: with 10,000
// users, those are up to 46 × ~5,000 rows. From the day rows of the days
// the range touches it takes, per group, a lower bound (the whole days
// inside) and an upper bound (every touched day, edges included) of its
// figure; only a group whose upper bound reaches the limit-th largest
// lower bound can be among the largest, and those candidates get exact
// figures from their edge hours alone. ok is false when the range is not
// of that shape or the candidates are too many: topKeys answers then.
func topKeysPruned(ctx context.Context, tx *sql.Tx, tab rollupTable, keyCol, app string, segs []segment, byErrors bool, limit int) (keys []any, truncated, ok bool, err error) {
	var inner *segment
	var edges []any // hour buckets
	for i, s := range segs {
		switch s.span {
		case 86400:
			inner = &segs[i]
		case 3600:
			for b := s.lo; b < s.hi; b += s.span {
				edges = append(edges, b)
			}
		default:
			return nil, false, false, nil
		}
	}
	if tab.name != userRollups.name || inner == nil || len(edges) == 0 {
		return nil, false, false, nil
	}
	dayLo, dayHi := floorDiv(segs[0].lo, 86400)*86400, ceilDiv(segs[len(segs)-1].hi, 86400)*86400
	v := "count"
	if byErrors {
		v = "errors"
	}
	rows, err := tx.QueryContext(ctx, `WITH d AS MATERIALIZED (
			SELECT `+keyCol+` AS k, sum(`+v+`) AS up,
				sum(CASE WHEN bucket >= ?1 AND bucket < ?2 THEN `+v+` ELSE 0 END) AS lo,
				sum(CASE WHEN bucket >= ?1 AND bucket < ?2 THEN count ELSE 0 END) AS c,
				sum(CASE WHEN bucket >= ?1 AND bucket < ?2 THEN errors ELSE 0 END) AS e
			FROM `+tab.name+` WHERE app_id = ?3 AND span = 86400 AND bucket >= ?4 AND bucket < ?5 GROUP BY k)
		SELECT k, c, e FROM d WHERE up > 0 AND up >= ifnull((SELECT lo FROM d ORDER BY lo DESC LIMIT 1 OFFSET ?6), 0) LIMIT ?7`,
		inner.lo, inner.hi, app, dayLo, dayHi, limit-1, maxCandidates+1)
	if err != nil {
		return nil, false, false, err
	}
	type cand struct {
		k    any
		c, e float64
	}
	var cands []*cand
	byKey := map[string]*cand{}
	for rows.Next() {
		c := &cand{}
		if err := rows.Scan(&c.k, &c.c, &c.e); err != nil {
			rows.Close()
			return nil, false, false, err
		}
		cands = append(cands, c)
		byKey[keyString(c.k)] = c
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, false, err
	}
	if len(cands) > maxCandidates {
		return nil, false, false, nil
	}
	if len(cands) == 0 {
		return nil, false, true, nil
	}
	ks := make([]any, len(cands))
	for i, c := range cands {
		ks[i] = c.k
	}
	in := func(n int) string { return "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")" }
	rows, err = tx.QueryContext(ctx, "SELECT "+keyCol+", sum(count), sum(errors) FROM "+tab.name+
		" WHERE app_id = ? AND span = 3600 AND bucket IN "+in(len(edges))+" AND "+keyCol+" IN "+in(len(ks))+" GROUP BY "+keyCol,
		append(append([]any{app}, edges...), ks...)...)
	if err != nil {
		return nil, false, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			k    any
			c, e float64
		)
		if err := rows.Scan(&k, &c, &e); err != nil {
			return nil, false, false, err
		}
		if x := byKey[keyString(k)]; x != nil {
			x.c += c
			x.e += e
		}
	}
	if err := rows.Err(); err != nil {
		return nil, false, false, err
	}
	slices.SortFunc(cands, func(a, b *cand) int {
		if byErrors {
			if c := cmp.Compare(b.e, a.e); c != 0 {
				return c
			}
		}
		return cmp.Or(cmp.Compare(b.c, a.c), strings.Compare(keyString(a.k), keyString(b.k)))
	})
	for _, c := range cands[:min(limit, len(cands))] {
		if c.c > 0 {
			keys = append(keys, c.k)
		}
	}
	// Whether groups were left out or not, filtering phase 2 by the chosen
	// keys is right; it is also what makes it cheap.
	return keys, true, true, nil
}

// maxSeekBuckets bounds the buckets phase2Where lists one by one.
const maxSeekBuckets = 512

// phase2Where returns the condition and arguments that select segment s's
// rollup rows of the chosen groups. When only some groups were chosen (the
// top 10 users of 10,000, say), it lists the buckets too, so that SQLite
// seeks each (bucket, key) in the primary key instead of reading every row
// of the range again.
func phase2Where(app string, s segment, keyCol string, keys []any, truncated bool) (string, []any) {
	n := (s.hi - s.lo) / s.span
	if !truncated {
		return "app_id = ? AND span = ? AND bucket >= ? AND bucket < ?", []any{app, s.span, s.lo, s.hi}
	}
	in := func(n int) string { return "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")" }
	if n > maxSeekBuckets {
		return "app_id = ? AND span = ? AND bucket >= ? AND bucket < ? AND " + keyCol + " IN " + in(len(keys)),
			append([]any{app, s.span, s.lo, s.hi}, keys...)
	}
	args := make([]any, 0, 2+n+int64(len(keys)))
	args = append(args, app, s.span)
	for b := s.lo; b < s.hi; b += s.span {
		args = append(args, b)
	}
	return "app_id = ? AND span = ? AND bucket IN " + in(int(n)) + " AND " + keyCol + " IN " + in(len(keys)), append(args, keys...)
}

// keyString renders a group key as the report shows it: text as is, a
// status class as "4xx".
func keyString(k any) string {
	switch v := k.(type) {
	case string:
		return v
	case int64:
		return callsign.StatusClass(int(v) * 100)
	case []byte:
		return string(v)
	}
	return fmt.Sprint(k)
}

// groupAcc accumulates one group of a metrics answer.
type groupAcc struct {
	m      callsign.Metrics
	total  *ddsketch.DDSketch
	series []callsign.MetricsBucket
	// open is the sketch of series bucket openIdx: rows come in bucket
	// order, so one open bucket per group suffices.
	open    *ddsketch.DDSketch
	openIdx int
}

func (g *groupAcc) add(c *cell, blob []byte, idx int) error {
	addFigures(&g.m, c)
	if idx < 0 {
		return g.total.DecodeAndMergeWith(blob)
	}
	if idx != g.openIdx {
		g.closeBucket()
		g.openIdx = idx
	}
	addFigures(&g.series[idx].Metrics, c)
	return g.open.DecodeAndMergeWith(blob)
}

func addFigures(m *callsign.Metrics, c *cell) {
	m.Count += c.count
	m.Errors += c.errors
	m.RequestBytes += c.reqBytes
	m.ResponseBytes += c.respBytes
}

// closeBucket sets the percentiles of the open series bucket and merges
// its sketch into the group's.
func (g *groupAcc) closeBucket() {
	if g.openIdx < 0 {
		return
	}
	setPercentiles(&g.series[g.openIdx].Metrics, g.open)
	_ = g.total.MergeWith(g.open) // same mapping: cannot fail
	g.open.Clear()
	g.openIdx = -1
}

func (g *groupAcc) finish() {
	g.closeBucket()
	setPercentiles(&g.m, g.total)
}

func setPercentiles(m *callsign.Metrics, sk *ddsketch.DDSketch) {
	if sk.IsEmpty() {
		return
	}
	v, err := sk.GetValuesAtQuantiles([]float64{0.50, 0.95, 0.99})
	if err != nil {
		return
	}
	m.P50, m.P95, m.P99 = micros2dur(v[0]), micros2dur(v[1]), micros2dur(v[2])
}

func micros2dur(us float64) time.Duration { return time.Duration(math.Round(us * 1e3)) }
