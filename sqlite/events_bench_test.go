package sqlite_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/sqlite"
)

// eventGen makes realistic events: 50 routes (a few hot ones), 10,000
// users in 500 companies with a heavy tail (Zipf: the top 100 users make a
// third of the attributed calls, the top 1,000 two thirds), a tenth of the
// calls anonymous, ~5% errors (5xx or a failed authentication), log-normal
// latencies around 20 ms, 1 in 5 with metadata.
type eventGen struct {
	app    string
	rng    *rand.Rand
	users  *rand.Zipf
	t      time.Time
	step   time.Duration // between consecutive events
	n      int
	routes []string
}

func newEventGen(app string, seed uint64, start time.Time, step time.Duration) *eventGen {
	g := &eventGen{app: app, rng: rand.New(rand.NewPCG(seed, 0xca11)), t: start, step: step}
	g.users = rand.NewZipf(g.rng, 1.1, 20, 9999)
	for i := range 50 {
		m := []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}[i%6]
		g.routes = append(g.routes, fmt.Sprintf("%s /v1/resource%02d/{id}", m, i))
	}
	return g
}

var authErrors = []string{"expired", "bad_signature", "unknown_key", "replayed"}

func (g *eventGen) next() *callsign.Event {
	r := g.rng
	g.n++
	g.t = g.t.Add(g.step)
	route := g.routes[int(math.Min(49, math.Abs(r.NormFloat64())*12))] // skewed: a few hot routes
	method, _, _ := strings.Cut(route, " ")
	e := &callsign.Event{
		ID:            fmt.Sprintf("%016x%016x-%d", r.Uint64(), r.Uint64(), g.n),
		AppID:         g.app,
		Time:          g.t,
		Method:        method,
		Route:         route,
		URI:           fmt.Sprintf("/v1/resource/%d?page=%d", r.IntN(100000), r.IntN(10)),
		Status:        200,
		Latency:       time.Duration(math.Exp(math.Log(20e3)+r.NormFloat64()*0.8)) * time.Microsecond,
		RequestBytes:  int64(r.IntN(2000)),
		ResponseBytes: int64(200 + r.IntN(20000)),
		Scheme:        callsign.SchemeJWT,
		KeyID:         "key-2025",
		RequestID:     fmt.Sprintf("req-%016x", r.Uint64()),
		RemoteIP:      fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), r.IntN(256)),
		UserAgent:     "Mozilla/5.0 (X11; Linux x86_64) callsign-bench/1.0 Go-http-client/1.1",
	}
	if r.IntN(10) > 0 {
		u := g.users.Uint64()
		e.UserID = fmt.Sprintf("user_%05d", u)
		e.CompanyID = fmt.Sprintf("company_%03d", u%500)
	}
	switch p := r.IntN(1000); {
	case p < 30:
		e.Status = 500 + r.IntN(4)
	case p < 50:
		e.Status, e.AuthError, e.UserID, e.CompanyID = 401, authErrors[r.IntN(len(authErrors))], "", ""
	case p < 100:
		e.Status = 400 + r.IntN(30)
	case p < 200:
		e.Status = 201
	}
	if r.IntN(5) == 0 {
		e.Metadata = map[string]string{"plan": "pro", "region": "eu-west-1"}
	}
	return e
}

// userIDs and companyIDs are the generator's user and company ids, made
// once: again picks from them without formatting.
var userIDs, companyIDs = func() (u, c []string) {
	for i := range 10000 {
		u = append(u, fmt.Sprintf("user_%05d", i))
	}
	for i := range 500 {
		c = append(c, fmt.Sprintf("company_%03d", i))
	}
	return u, c
}()

// again returns copies of the events of tmpl with new ids, the next times
// of g's clock and, for the attributed ones, a new draw of the user: cheap
// enough (two allocations an event) to run inside a benchmark's timing,
// while the store's background aggregation runs (a benchmark that stopped
// its timer to make events would give the aggregation free time), and
// with as many distinct users a minute and an hour as fresh events (the
// rollups' work).
func (g *eventGen) again(tmpl []*callsign.Event) []*callsign.Event {
	out := make([]*callsign.Event, len(tmpl))
	evs := make([]callsign.Event, len(tmpl))
	var id []byte
	for i, e := range tmpl {
		g.n++
		g.t = g.t.Add(g.step)
		evs[i] = *e
		evs[i].Time = g.t
		if e.UserID != "" {
			u := g.users.Uint64()
			evs[i].UserID, evs[i].CompanyID = userIDs[u], companyIDs[u%500]
		}
		id = strconv.AppendUint(append(strconv.AppendUint(id[:0], g.rng.Uint64(), 16), '-'), uint64(g.n), 10)
		evs[i].ID = string(id)
		out[i] = &evs[i]
	}
	return out
}

func (g *eventGen) batch(n int) []*callsign.Event {
	b := make([]*callsign.Event, n)
	for i := range b {
		b[i] = g.next()
	}
	return b
}

// BenchmarkAppendEvents appends 1,000-event batches into a store, each
// batch committed (fsync'd) before the next, while the background
// aggregation runs; the timing ends once every appended event is
// aggregated into the rollups.
func BenchmarkAppendEvents(b *testing.B) {
	ctx := b.Context()
	db := newDB(b)
	g := newEventGen("app_bench", 1, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), 500*time.Microsecond)
	// 64 batches are made beforehand; the appended ones are copies with
	// new ids and times, made inside the timing (see again).
	const batch = 1000
	tmpl := make([][]*callsign.Event, 64)
	for i := range tmpl {
		tmpl[i] = g.batch(batch)
	}
	i := 0
	b.ResetTimer()
	for b.Loop() {
		res, err := db.AppendEvents(ctx, g.again(tmpl[i%len(tmpl)]))
		if err != nil {
			b.Fatal(err)
		}
		if res.Accepted != batch {
			b.Fatalf("accepted %d of %d", res.Accepted, batch)
		}
		i++
	}
	// Sustained, not just accepted: the events still pending are
	// aggregated within the timing (a metrics query waits for them).
	if _, err := db.Metrics(ctx, callsign.MetricsQuery{AppID: "app_bench", From: g.t.Add(-time.Hour), To: g.t.Add(time.Hour), GroupBy: callsign.GroupRoute}); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendEventsConcurrent is BenchmarkAppendEvents with 4
// goroutines appending at once, as an ingest server's requests do: their
// appends share transactions (group commit). Each writes its own sources'
// events (another generator seed), interleaved in time with the others'.
func BenchmarkAppendEventsConcurrent(b *testing.B) {
	ctx := b.Context()
	db := newDB(b)
	const writers, batch = 4, 1000
	start := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	gens := make([]*eventGen, writers)
	for w := range gens {
		gens[w] = newEventGen("app_bench", uint64(100+w), start, 2*time.Millisecond)
	}
	// 16 batches per writer are made beforehand; each writer appends
	// copies with new ids and times, made inside the timing (see again).
	tmpl := make([][][]*callsign.Event, writers)
	for w := range tmpl {
		for range 16 {
			tmpl[w] = append(tmpl[w], gens[w].batch(batch))
		}
	}
	var next atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for k := 0; ; k++ {
				if next.Add(1) > int64(b.N) {
					return
				}
				res, err := db.AppendEvents(ctx, gens[w].again(tmpl[w][k%len(tmpl[w])]))
				if err != nil || res.Accepted != batch {
					b.Errorf("AppendEvents = %+v, %v", res, err)
					return
				}
			}
		})
	}
	wg.Wait()
	last := gens[0].t
	if _, err := db.Metrics(ctx, callsign.MetricsQuery{AppID: "app_bench", From: start.Add(-time.Hour), To: last.Add(time.Hour), GroupBy: callsign.GroupRoute}); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// The metrics benchmark's data set: 10 million events of one app over 7
// days, generated once per process (it takes minutes) into
// $CALLSIGN_BENCH_EVENTS_DIR, kept for later runs, or else into a
// temporary directory that TestMain removes.
const (
	benchEvents = 10_000_000
	benchDays   = 7
	benchApp    = "app_metrics"
)

var benchStart = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)

var bench struct {
	once    sync.Once
	dir     string
	tempDir string
	err     error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bench.tempDir != "" {
		os.RemoveAll(bench.tempDir)
	}
	os.Exit(code)
}

// metricsDB returns the directory of the 10-million-event store.
func metricsDB(b *testing.B) string {
	bench.once.Do(func() {
		dir := os.Getenv("CALLSIGN_BENCH_EVENTS_DIR")
		if dir == "" {
			bench.tempDir, bench.err = os.MkdirTemp("", "callsign-bench-events-")
			if bench.err != nil {
				return
			}
			dir = filepath.Join(bench.tempDir, "data")
		}
		bench.dir = dir
		if _, err := os.Stat(filepath.Join(dir, "complete")); err == nil {
			return
		}
		bench.err = generateEvents(dir)
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.dir
}

func generateEvents(dir string) error {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, dir)
	if err != nil {
		return err
	}
	defer db.Close()
	step := benchDays * 24 * time.Hour / benchEvents
	g := newEventGen(benchApp, 42, benchStart.Add(-step), step)
	start := time.Now()
	last := start
	for n := 0; n < benchEvents; n += 1000 {
		if _, err := db.AppendEvents(ctx, g.batch(1000)); err != nil {
			return err
		}
		if (n+1000)%1_000_000 == 0 {
			now := time.Now()
			fmt.Fprintf(os.Stderr, "generated %d events in %v (last million at %.0f events/s)\n",
				n+1000, now.Sub(start).Round(time.Second), 1e6/now.Sub(last).Seconds())
			last = now
		}
	}
	// Aggregate the tail now, outside the timed queries.
	if _, err := db.Metrics(ctx, callsign.MetricsQuery{AppID: benchApp, From: benchStart, To: benchStart.Add(time.Hour), GroupBy: callsign.GroupRoute}); err != nil {
		return err
	}
	elapsed := time.Since(start)
	var size int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			size += fi.Size()
		}
		return nil
	})
	fmt.Fprintf(os.Stderr, "generated %d events in %v: %.0f events/s sustained, store %d MiB\n",
		benchEvents, elapsed.Round(time.Second), benchEvents/elapsed.Seconds(), size>>20)
	return os.WriteFile(filepath.Join(dir, "complete"), nil, 0o600)
}

// BenchmarkMetrics answers the queries over 10 million events
// (50 routes, 10,000 users, ~5% errors, 7 days) from the rollups, and, for
// scale, one exact percentile by SQL over the raw events of one day.
// The first run generates the data set: several minutes.
func BenchmarkMetrics(b *testing.B) {
	dir := metricsDB(b)
	db := openDB(b, dir)
	ctx := b.Context()
	end := benchStart.Add(benchDays * 24 * time.Hour)
	// Ranges not aligned to days or hours read minute and hour rollups at
	// their edges: the slow case.
	oddFrom, oddTo := benchStart.Add(13*time.Hour+37*time.Minute), end.Add(-(10*time.Hour + 11*time.Minute))
	for _, bc := range []struct {
		name string
		q    callsign.MetricsQuery
		// check validates the answer once
		groups int
	}{
		{"routes-7d", callsign.MetricsQuery{From: benchStart, To: end, GroupBy: callsign.GroupRoute}, 50},
		{"routes-7d-unaligned", callsign.MetricsQuery{From: oddFrom, To: oddTo, GroupBy: callsign.GroupRoute}, 50},
		{"routes-7d-hourly-series", callsign.MetricsQuery{From: benchStart, To: end, GroupBy: callsign.GroupRoute, Interval: time.Hour}, 50},
		{"status-7d", callsign.MetricsQuery{From: benchStart, To: end, GroupBy: callsign.GroupStatus}, 3},
		{"top10-users-7d", callsign.MetricsQuery{From: benchStart, To: end, GroupBy: callsign.GroupUserID, Limit: 10}, 10},
		{"top10-users-7d-unaligned", callsign.MetricsQuery{From: oddFrom, To: oddTo, GroupBy: callsign.GroupUserID, Limit: 10}, 10},
		{"top10-users-by-errors-24h", callsign.MetricsQuery{From: end.Add(-24 * time.Hour), To: end, GroupBy: callsign.GroupUserID, Limit: 10, OrderBy: "errors"}, 10},
	} {
		b.Run(bc.name, func(b *testing.B) {
			q := bc.q
			q.AppID = benchApp
			r, err := db.Metrics(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			if len(r.Groups) < bc.groups {
				b.Fatalf("%d groups, want at least %d", len(r.Groups), bc.groups)
			}
			if q.GroupBy == callsign.GroupRoute && q.From.Equal(benchStart) && q.To.Equal(end) {
				var n float64
				for _, g := range r.Groups {
					n += g.Count
				}
				if n != benchEvents {
					b.Fatalf("routes count %v events, want %d", n, benchEvents)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := db.Metrics(ctx, q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEvents lists pages of 100 events, newest first, from the same
// 10 million events: unfiltered, by user (a heavy one and a rare one),
// route, auth error (through event_index), and by status class (decoding
// blocks until the page is full), then the page after a cursor.
func BenchmarkEvents(b *testing.B) {
	dir := metricsDB(b)
	db := openDB(b, dir)
	ctx := b.Context()
	end := benchStart.Add(benchDays * 24 * time.Hour)
	for _, bc := range []struct {
		name string
		f    callsign.EventFilter
	}{
		{"newest", callsign.EventFilter{}},
		{"heavy-user", callsign.EventFilter{UserID: "user_00020"}},
		{"rare-user", callsign.EventFilter{UserID: "user_09000"}},
		{"route", callsign.EventFilter{Route: "DELETE /v1/resource35/{id}"}},
		{"auth-error", callsign.EventFilter{AuthError: "replayed"}},
		{"status-5xx", callsign.EventFilter{StatusClass: 5}},
		{"day-ago-user", callsign.EventFilter{UserID: "user_00020", To: end.Add(-24 * time.Hour)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := bc.f
			f.AppID, f.Limit = benchApp, 100
			p, err := db.Events(ctx, f)
			if err != nil {
				b.Fatal(err)
			}
			if len(p.Events) == 0 || p.NextCursor == "" {
				b.Fatalf("%d events, cursor %q: want a full page and more", len(p.Events), p.NextCursor)
			}
			next := f
			next.Cursor = p.NextCursor
			b.ReportAllocs()
			for b.Loop() {
				for _, f := range []callsign.EventFilter{f, next} {
					if _, err := db.Events(ctx, f); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
