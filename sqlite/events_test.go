package sqlite_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/internal/storetest"
	"github.com/callsignhq/callsign/sqlite"
)

func TestEventStore(t *testing.T) {
	storetest.RunEventStore(t, func(t *testing.T) callsign.EventStore { return newDB(t) })
}

// side opens a second, independent connection to the store in dir: what
// another process would see, and a way to add triggers behind the store's
// back.
func side(t *testing.T, dir string) *sql.DB {
	t.Helper()
	u := "file:" + (&url.URL{Path: filepath.Join(dir, sqlite.FileName)}).EscapedPath() + "?_pragma=busy_timeout(10000)"
	c, err := sql.Open("sqlite", u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func allEvents(t *testing.T, db *sqlite.DB, app string) []*callsign.Event {
	t.Helper()
	var all []*callsign.Event
	f := callsign.EventFilter{AppID: app, Limit: callsign.MaxEventPage}
	for {
		p, err := db.Events(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, p.Events...)
		if p.NextCursor == "" {
			return all
		}
		f.Cursor = p.NextCursor
	}
}

// checkRollupsMatchRaw checks that the rollups count exactly the stored
// raw events, per route and per company (500 of them: fewer than
// MaxMetricGroups, unlike the 10,000 users).
func checkRollupsMatchRaw(t *testing.T, db *sqlite.DB, app string, from, to time.Time) {
	t.Helper()
	raw := allEvents(t, db, app)
	for _, gb := range []string{callsign.GroupRoute, callsign.GroupCompany} {
		want := map[string]float64{}
		for _, e := range raw {
			k := e.Route
			if gb == callsign.GroupCompany {
				k = e.CompanyID
			}
			w := e.Weight
			if w == 0 {
				w = 1
			}
			want[k] += w
		}
		r, err := db.Metrics(t.Context(), callsign.MetricsQuery{AppID: app, From: from, To: to, GroupBy: gb})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, g := range r.Groups {
			got[g.Key] = g.Count
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s counts from rollups differ from the %d raw events", gb, len(raw))
		}
	}
}

// A failure in the middle of a batch, after hundreds of its rows went in,
// leaves nothing of it behind: no event, no rollup.
func TestAppendEventsAtomicMidBatch(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "data")
	db := openDB(t, dir)
	g := newEventGen("app_atomic", 1, t0, time.Second)
	first := g.batch(300)
	if _, err := db.AppendEvents(ctx, first); err != nil {
		t.Fatal(err)
	}
	_, err := side(t, dir).ExecContext(ctx, `CREATE TRIGGER boom BEFORE INSERT ON event_blocks WHEN instr(NEW.data, CAST('boom' AS BLOB)) > 0
		BEGIN SELECT RAISE(ABORT, 'boom'); END`)
	must(t, err)
	batch := g.batch(1000)
	batch[700].ID = "boom"
	if _, err := db.AppendEvents(ctx, batch); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("AppendEvents = %v, want the trigger's error", err)
	}
	if got := allEvents(t, db, "app_atomic"); len(got) != len(first) {
		t.Errorf("%d events stored, want the %d of the first batch", len(got), len(first))
	}
	checkRollupsMatchRaw(t, db, "app_atomic", t0.Add(-time.Hour), t0.Add(48*time.Hour))
	// The failed batch left no trace, not even among the keys of pending
	// events: sent again, every event of it is new.
	batch[700].ID = "fixed"
	if res, err := db.AppendEvents(ctx, batch); err != nil || res.Accepted != len(batch) {
		t.Fatalf("the batch again: %+v, %v; want all %d accepted", res, err, len(batch))
	}
}

// When aggregation fails, the appended events stay durable and appends go
// on; metrics report the failure; once it is gone, the rollups catch up
// with every event.
func TestRollupFailureKeepsIngest(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "data")
	db := openDB(t, dir)
	sdb := side(t, dir)
	_, err := sdb.ExecContext(ctx, `CREATE TRIGGER stuck BEFORE INSERT ON event_rollups_user
		BEGIN SELECT RAISE(ABORT, 'rollups stuck'); END`)
	must(t, err)
	g := newEventGen("app_stuck", 2, t0, 10*time.Millisecond)
	for range 3 {
		if res, err := db.AppendEvents(ctx, g.batch(500)); err != nil || res.Accepted != 500 {
			t.Fatalf("AppendEvents = %+v, %v", res, err)
		}
	}
	q := callsign.MetricsQuery{AppID: "app_stuck", From: t0.Add(-time.Hour), To: t0.Add(time.Hour), GroupBy: callsign.GroupRoute}
	if _, err := db.Metrics(ctx, q); err == nil || !strings.Contains(err.Error(), "rollups stuck") {
		t.Fatalf("Metrics = %v, want the aggregation error", err)
	}
	_, err = sdb.ExecContext(ctx, `DROP TRIGGER stuck`)
	must(t, err)
	checkRollupsMatchRaw(t, db, "app_stuck", q.From, q.To)
}

// Metrics never read raw events: deleting them all leaves every answer
// as it was.
func TestMetricsFromRollupsOnly(t *testing.T) {
	ctx := t.Context()
	db := newDB(t)
	g := newEventGen("app_r", 3, t0, 7*time.Second)
	for range 3 {
		_, err := db.AppendEvents(ctx, g.batch(1000))
		must(t, err)
	}
	var qs []callsign.MetricsQuery
	for _, gb := range []string{callsign.GroupRoute, callsign.GroupUserID, callsign.GroupCompany, callsign.GroupStatus, callsign.GroupAuthError} {
		qs = append(qs, callsign.MetricsQuery{AppID: "app_r", From: t0.Add(-time.Hour), To: t0.Add(7 * time.Hour), GroupBy: gb, Interval: time.Hour})
	}
	var before []*callsign.MetricsReport
	for _, q := range qs {
		r, err := db.Metrics(ctx, q)
		must(t, err)
		if len(r.Groups) == 0 {
			t.Fatalf("no groups for %+v", q)
		}
		before = append(before, r)
	}
	n, err := db.DeleteEventsBefore(ctx, "app_r", t0.Add(100*time.Hour), time.Time{})
	must(t, err)
	if n != 3000 {
		t.Fatalf("deleted %d events, want 3000", n)
	}
	for i, q := range qs {
		r, err := db.Metrics(ctx, q)
		must(t, err)
		if !reflect.DeepEqual(r, before[i]) {
			t.Errorf("%s: metrics changed when the raw events were deleted", q.GroupBy)
		}
	}
}

// Figures cover whole rollup buckets: a range is widened to the minute
// (routes, statuses, auth errors) or the hour (users, companies).
func TestMetricsBucketAlignment(t *testing.T) {
	ctx := t.Context()
	db := newDB(t)
	base := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	var evs []*callsign.Event
	for i, off := range []time.Duration{0, 59 * time.Second, 61 * time.Second, 59 * time.Minute, 61 * time.Minute} {
		evs = append(evs, &callsign.Event{ID: fmt.Sprint("a", i), AppID: "app_align", Time: base.Add(off), Method: "GET",
			Route: "GET /x", Status: 200, Latency: time.Millisecond, UserID: "u"})
	}
	_, err := db.AppendEvents(ctx, evs)
	must(t, err)
	count := func(gb string, from, to time.Time, interval time.Duration) (float64, error) {
		r, err := db.Metrics(ctx, callsign.MetricsQuery{AppID: "app_align", From: from, To: to, GroupBy: gb, Interval: interval})
		if err != nil || len(r.Groups) == 0 {
			return 0, err
		}
		return r.Groups[0].Count, nil
	}
	for _, tc := range []struct {
		gb       string
		from, to time.Time
		want     float64
	}{
		{callsign.GroupRoute, base.Add(30 * time.Second), base.Add(31 * time.Second), 2},        // the minute [10:00, 10:01)
		{callsign.GroupRoute, base.Add(30 * time.Second), base.Add(61 * time.Second), 3},        // [10:00, 10:02)
		{callsign.GroupRoute, base.Add(time.Minute), base.Add(time.Hour), 2},                    // exact minutes
		{callsign.GroupUserID, base.Add(30 * time.Second), base.Add(31 * time.Second), 4},       // the hour [10:00, 11:00)
		{callsign.GroupUserID, base.Add(59 * time.Minute), base.Add(61 * time.Minute), 5},       // [10:00, 12:00)
		{callsign.GroupStatus, base.Add(59 * time.Minute), base.Add(60*time.Minute + 1), 1},     // [10:59, 11:01)
		{callsign.GroupAuthError, base.Add(-time.Nanosecond), base.Add(time.Nanosecond), 2},     // [09:59, 10:01)
		{callsign.GroupCompany, base.Add(-time.Nanosecond), base.Add(time.Nanosecond), 4},       // [09:00, 11:00)
		{callsign.GroupCompany, base.Add(61 * time.Minute), base.Add(61*time.Minute + 1), 1},    // [11:00, 12:00)
		{callsign.GroupRoute, base.Add(61*time.Minute + 1), base.Add(62 * time.Minute), 1},      // [11:01, 11:02)
		{callsign.GroupRoute, base.Add(62 * time.Minute), base.Add(62*time.Minute + 1), 0},      // [11:02, 11:03)
		{callsign.GroupUserID, base.Add(2 * time.Hour), base.Add(2*time.Hour + time.Second), 0}, // [12:00, 13:00)
	} {
		got, err := count(tc.gb, tc.from, tc.to, 0)
		if err != nil || got != tc.want {
			t.Errorf("%s over [%v, %v): count %v, %v; want %v", tc.gb, tc.from.Format("15:04:05.000000"), tc.to.Format("15:04:05.000000"), got, err, tc.want)
		}
	}
	// Intervals: whole minutes for routes, whole hours for users.
	if _, err := count(callsign.GroupRoute, base, base.Add(time.Hour), 7*time.Minute); err != nil {
		t.Errorf("route series every 7 minutes: %v", err)
	}
	for _, tc := range []struct {
		gb       string
		interval time.Duration
	}{{callsign.GroupUserID, 7 * time.Minute}, {callsign.GroupCompany, 90 * time.Minute}, {callsign.GroupRoute, 90 * time.Second}} {
		_, err := count(tc.gb, base, base.Add(time.Hour), tc.interval)
		wantCode(t, err, callsign.EInvalid)
	}
	// Too many buckets.
	_, err = count(callsign.GroupRoute, base, base.Add(48*time.Hour), time.Minute)
	wantCode(t, err, callsign.EInvalid)

	// A 7-minute series: buckets aligned to 7 minutes since the epoch; the
	// one that holds 10:00 is [09:59, 10:06), with three events.
	r, err := db.Metrics(ctx, callsign.MetricsQuery{AppID: "app_align", From: base, To: base.Add(2 * time.Hour), GroupBy: callsign.GroupRoute, Interval: 7 * time.Minute})
	must(t, err)
	var total float64
	for _, b := range r.Groups[0].Series {
		if b.Start.Unix()%(7*60) != 0 {
			t.Errorf("bucket %v not aligned to 7 minutes", b.Start)
		}
		if !b.Start.After(base) && b.Start.Add(7*time.Minute).After(base) && b.Count != 3 {
			t.Errorf("bucket %v holding 10:00: count %v, want 3", b.Start, b.Count)
		}
		total += b.Count
	}
	if total != 5 {
		t.Errorf("series total %v, want 5", total)
	}
}

const crashDirEnv = "CALLSIGN_TEST_EVENTS_CRASH_DIR"

// TestEventsSurviveSIGKILL runs a child process that appends batches of
// 1,000 events and reports each acknowledged one, kills it with SIGKILL
// in the middle of its work, then reopens the store: every acknowledged
// event is there, batches are whole, and the rollups agree with the raw
// events. The parent kills the child once the background aggregation has
// run (checked), while appends and aggregation go on: the crash leaves
// both aggregated events and pending ones.
func TestEventsSurviveSIGKILL(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("runs a child process appending 35,000 events or more")
	}
	dir := filepath.Join(t.TempDir(), "data")
	cmd := exec.Command(os.Args[0], "-test.run=^TestEventsSurviveSIGKILL$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	const target = 35 // batches, at least
	sdb := side(t, dir)
	aggregated := func() (n int64) {
		// Events below the watermark: the background aggregation ran.
		sdb.QueryRowContext(t.Context(), `SELECT ifnull(sum(n), 0) FROM event_blocks
			WHERE seq <= (SELECT rolled_up FROM event_rollup_state)`).Scan(&n)
		return n
	}
	acked := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		n, ok := strings.CutPrefix(sc.Text(), "acked ")
		if !ok {
			continue
		}
		acked, err = strconv.Atoi(n)
		must(t, err)
		if acked >= target*1000 && aggregated() > 0 {
			break
		}
	}
	must(t, cmd.Process.Kill()) // SIGKILL: no deferred Close, no checkpoint
	cmd.Wait()
	if acked < target*1000 {
		t.Fatalf("child acknowledged only %d events", acked)
	}
	if n := aggregated(); n == 0 {
		t.Errorf("no event aggregated before the kill")
	}
	db := openDB(t, dir)
	got := allEvents(t, db, "app_crash")
	if len(got) < acked || len(got)%1000 != 0 {
		t.Fatalf("%d events after the crash; %d were acknowledged, in whole batches of 1,000", len(got), acked)
	}
	ids := map[string]bool{}
	for _, e := range got {
		ids[e.ID] = true
	}
	g := newEventGen("app_crash", 5, t0, time.Millisecond)
	for i := range acked {
		if e := g.next(); !ids[e.ID] {
			t.Fatalf("acknowledged event %d (%s) lost", i, e.ID)
		}
	}
	checkRollupsMatchRaw(t, db, "app_crash", t0.Add(-time.Hour), t0.Add(2*time.Hour))
}

func crashChild(t *testing.T, dir string) {
	db, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	g := newEventGen("app_crash", 5, t0, time.Millisecond)
	for i := 1; i <= 1000; i++ { // the parent kills us long before
		if _, err := db.AppendEvents(context.Background(), g.batch(1000)); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("acked %d\n", i*1000)
	}
}

// The store refuses what it could not list back: an id longer than a
// cursor holds, more metadata entries than an event may carry.
func TestAppendEventsLimits(t *testing.T) {
	ctx := t.Context()
	db := newDB(t)
	md := map[string]string{}
	for i := range callsign.MaxMetadataEntries + 1 {
		md[fmt.Sprint("k", i)] = "v"
	}
	for name, e := range map[string]*callsign.Event{
		"long id":       {AppID: "app_l", ID: strings.Repeat("x", callsign.MaxEventIDLen+1), Time: t0},
		"many metadata": {AppID: "app_l", ID: "e1", Time: t0, Metadata: md},
		// Times far apart would overflow the spans of blocks and key chunks.
		"before year 1":   {AppID: "app_l", ID: "e2", Time: time.UnixMicro(math.MinInt64 + 10)},
		"after year 9999": {AppID: "app_l", ID: "e3", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		ok := &callsign.Event{AppID: "app_l", ID: "ok", Time: t0}
		if _, err := db.AppendEvents(ctx, []*callsign.Event{ok, e}); callsign.ErrorCode(err) != callsign.EInvalid {
			t.Errorf("%s: AppendEvents = %v, want EInvalid", name, err)
		}
	}
	if got := allEvents(t, db, "app_l"); len(got) != 0 {
		t.Errorf("%d events stored, want none", len(got))
	}
}

// Concurrent appends share transactions (group commit): one that fails
// leaves nothing of itself and takes nothing of the others with it.
func TestGroupCommitIsolation(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "data")
	db := openDB(t, dir)
	_, err := side(t, dir).ExecContext(ctx, `CREATE TRIGGER boom BEFORE INSERT ON event_blocks WHEN instr(NEW.data, CAST('boom' AS BLOB)) > 0
		BEGIN SELECT RAISE(ABORT, 'boom'); END`)
	must(t, err)
	g := newEventGen("app_group", 9, t0, time.Millisecond)
	const rounds, writers = 20, 8
	var batches [rounds][writers][]*callsign.Event
	for r := range rounds {
		for w := range writers {
			batches[r][w] = g.batch(50)
		}
		batches[r][r%writers][25].ID = "boom"
	}
	var wg sync.WaitGroup
	var want atomic.Int64
	for w := range writers {
		wg.Go(func() {
			for r := range rounds {
				res, err := db.AppendEvents(ctx, batches[r][w])
				switch {
				case w == r%writers:
					if err == nil || !strings.Contains(err.Error(), "boom") {
						t.Errorf("round %d: the failing batch gave %+v, %v", r, res, err)
					}
				case err != nil || res.Accepted != 50:
					t.Errorf("round %d, writer %d: %+v, %v", r, w, res, err)
				default:
					want.Add(50)
				}
			}
		})
	}
	wg.Wait()
	// The failed appends left nothing among the pending keys either: sent
	// again without the failure, all their events are new.
	for r := range rounds {
		b := batches[r][r%writers]
		b[25].ID = fmt.Sprint("fixed-", r)
		if res, err := db.AppendEvents(ctx, b); err != nil || res.Accepted != len(b) {
			t.Fatalf("round %d again: %+v, %v", r, res, err)
		}
	}
	got := allEvents(t, db, "app_group")
	want.Add(rounds * 50)
	if int64(len(got)) != want.Load() {
		t.Fatalf("%d events stored, want %d", len(got), want.Load())
	}
	stored := map[string]bool{}
	for _, e := range got {
		stored[e.ID] = true
	}
	for r := range rounds {
		for w, b := range batches[r] {
			for _, e := range b {
				if !stored[e.ID] {
					t.Fatalf("round %d, writer %d: event %s not stored", r, w, e.ID)
				}
			}
		}
		if stored["boom"] {
			t.Fatalf("an event of a failed append is stored")
		}
	}
}

// Close may be called twice (a test cleanup after an explicit Close), and
// an append after it fails instead of hanging.
func TestCloseTwice(t *testing.T) {
	db, err := sqlite.Open(t.Context(), t.TempDir())
	must(t, err)
	must(t, db.Close())
	db.Close()
	if _, err := db.AppendEvents(t.Context(), []*callsign.Event{{AppID: "a", ID: "e", Time: t0}}); err == nil {
		t.Error("AppendEvents after Close succeeded")
	}
}

// The keys of events not yet rolled up live in memory and are rebuilt at
// Open: a batch sent again after a restart is still all duplicates, and so
// it is once it was rolled up.
func TestDuplicatesAcrossRestart(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "data")
	g := newEventGen("app_restart", 4, t0, time.Millisecond)
	batch := g.batch(1000)
	db, err := sqlite.Open(ctx, dir)
	must(t, err)
	if res, err := db.AppendEvents(ctx, batch); err != nil || res.Accepted != 1000 {
		t.Fatalf("AppendEvents = %+v, %v", res, err)
	}
	must(t, db.Close()) // at once: the events are still pending
	var pending int64
	must(t, side(t, dir).QueryRowContext(ctx, `SELECT ifnull(sum(n), 0) FROM event_blocks
		WHERE seq > (SELECT rolled_up FROM event_rollup_state)`).Scan(&pending))
	if pending != 1000 {
		t.Fatalf("%d events pending after Close, want 1000", pending)
	}
	db = openDB(t, dir)
	if res, err := db.AppendEvents(ctx, batch); err != nil || res.Duplicates != 1000 {
		t.Fatalf("after a restart: %+v, %v; want 1000 duplicates", res, err)
	}
	checkRollupsMatchRaw(t, db, "app_restart", t0.Add(-time.Hour), t0.Add(time.Hour)) // rolls them up
	if res, err := db.AppendEvents(ctx, batch); err != nil || res.Duplicates != 1000 {
		t.Fatalf("after the roll-up: %+v, %v; want 1000 duplicates", res, err)
	}
}
