package sqlite

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
)

// Every listing reads an index in the order it lists: blocks by the time
// of their last event, or event_index rows by the latest time of their
// blocks (then blocks by seq); none scans a table or sorts.
func TestEventsQueryPlans(t *testing.T) {
	db := openTestDB(t)
	at := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	cursor := encodeCursor(at.UnixMicro(), "ev-1")
	const (
		blocks = "SEARCH event_blocks USING INDEX event_blocks_app_tmax (app_id=? AND tmax>? AND tmax<?)"
		index  = "SEARCH event_index USING PRIMARY KEY (app_id=? AND kind=? AND value=? AND tmax>?)"
	)
	for _, tc := range []struct {
		f    callsign.EventFilter
		plan string // how the plan begins
		kind int
	}{
		{callsign.EventFilter{}, blocks, -1},
		{callsign.EventFilter{From: at, To: at.Add(time.Hour), Cursor: cursor}, blocks, -1},
		{callsign.EventFilter{Method: "GET", Status: 404, StatusClass: 4}, blocks, -1},
		{callsign.EventFilter{UserID: "u", Cursor: cursor}, index, kindUser},
		{callsign.EventFilter{UserID: "u", ClientUserID: "c", AuthError: "expired"}, index, kindUser},
		{callsign.EventFilter{ClientUserID: "c", From: at}, index, kindClientUser},
		{callsign.EventFilter{APIUserID: "a", To: at}, index, kindAPIUser},
		{callsign.EventFilter{AuthError: "expired", Route: "GET /x", Cursor: cursor}, index, kindAuthError},
		{callsign.EventFilter{Route: "GET /x", Method: "GET"}, index, kindRoute},
	} {
		tc.f.AppID = "app"
		l, err := newListing(tc.f)
		if err != nil {
			t.Fatal(err)
		}
		if l.kind != tc.kind {
			t.Errorf("filter %+v reads kind %d, want %d", tc.f, l.kind, tc.kind)
		}
		q, args := l.blocksQuery()
		plan := explain(t, db, q, args)
		if !strings.HasPrefix(plan, tc.plan) || strings.Contains(plan, "SCAN ") || strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("filter %+v: plan\n%s\nwant %s..., no scan, no sort", tc.f, plan, tc.plan)
		}
	}
}

// The duplicate check reads a bounded range of the key chunks' index
// (tmax within keyChunkSpan of the key's time), filtering on tmin in the
// index; retention reads the chunks before a cutoff by the same index.
func TestKeyChunkPlans(t *testing.T) {
	db := openTestDB(t)
	const want = "SEARCH event_key_chunks USING INDEX event_key_chunks_app_tmax (app_id=? AND tmax>? AND tmax<?)"
	if plan := explain(t, db, findKeyChunksSQL, []any{"app", int64(1000), int64(15000), int64(5000)}); !strings.HasPrefix(plan, want) || strings.Contains(plan, "SCAN") {
		t.Errorf("plan:\n%s\nwant %s", plan, want)
	}
	const before = "SEARCH event_key_chunks USING COVERING INDEX event_key_chunks_app_tmax (app_id=? AND tmax<?)"
	if plan := explain(t, db, "SELECT id FROM event_key_chunks WHERE app_id = ? AND tmax < ? AND id <= ? LIMIT ?", []any{"app", int64(1000), int64(5), 10}); !strings.HasPrefix(plan, before) {
		t.Errorf("plan:\n%s\nwant %s", plan, before)
	}
}

// The aggregation reads the stored rollup rows it merges into by primary
// key.
func TestStoredRollupPlans(t *testing.T) {
	db := openTestDB(t)
	var route, user []any
	for i := range upsertChunkM {
		route = append(route, "app", int64(60), int64(i*60), "GET /r", int64(2), "")
		user = append(user, "app", int64(3600), int64(0), fmt.Sprint("u", i), "c")
	}
	for _, tc := range []struct {
		q, want string
		args    []any
	}{
		{storedSQL("event_rollups_route", "route, status_class, auth_error", 3, upsertChunkM),
			"SEARCH event_rollups_route USING PRIMARY KEY (app_id=? AND span=? AND bucket=? AND route=? AND status_class=? AND auth_error=?)", route},
		{storedSQL("event_rollups_user", "user_id, company_id", 2, upsertChunkM),
			"SEARCH event_rollups_user USING PRIMARY KEY (app_id=? AND span=? AND bucket=? AND user_id=? AND company_id=?)", user},
	} {
		if plan := explain(t, db, tc.q, tc.args); !strings.Contains(plan, tc.want) || strings.Contains(plan, "SCAN event_rollups") {
			t.Errorf("plan:\n%s\nwant %s", plan, tc.want)
		}
	}
}

// openTestDB opens a store in a temporary directory, closed at the end of
// the test.
func openTestDB(t *testing.T) *DB {
	t.Helper()
	return openTestDBIn(t, t.TempDir())
}

// openTestDBIn opens the store in dir, closed at the end of the test.
func openTestDBIn(t *testing.T, dir string) *DB {
	t.Helper()
	db, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func explain(t *testing.T, db *DB, q string, args []any) string {
	t.Helper()
	rows, err := db.r.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		b.WriteString(detail + "\n")
	}
	return b.String()
}

// Aggregating in small chunks gives the same rollups as in one go, and
// leaves the watermark at the last event.
func TestRollUpInChunks(t *testing.T) {
	ctx := t.Context()
	open := func() *DB {
		db, err := Open(ctx, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	a, b := open(), open()
	start := time.Date(2025, 3, 1, 22, 30, 0, 0, time.UTC)
	var evs []*callsign.Event
	for i := range 1000 {
		evs = append(evs, &callsign.Event{ID: fmt.Sprint("e", i), AppID: "app", Time: start.Add(time.Duration(i*i) * 7 * time.Millisecond),
			Method: "GET", Route: fmt.Sprint("GET /r", i%7), Status: []int{200, 201, 404, 500, 401}[i%5], Latency: time.Duration(100+i*37) * time.Microsecond,
			UserID: fmt.Sprint("u", i%13), CompanyID: fmt.Sprint("c", i%3), AuthError: map[int]string{4: "expired"}[i%5], Weight: float64(i % 3)})
	}
	for _, db := range []*DB{a, b} {
		if _, err := db.AppendEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	// Retention deleted a few blocks before aggregation, one at the end of
	// the last chunk: the watermark must still move past them.
	var last int64
	for _, db := range []*DB{a, b} {
		if err := db.w.QueryRowContext(ctx, "SELECT max(seq) FROM event_blocks").Scan(&last); err != nil || last < 5 {
			t.Fatalf("%d blocks, %v; want a few", last, err)
		}
		if _, err := db.w.ExecContext(ctx, "DELETE FROM event_blocks WHERE seq IN (2, ?)", last); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.rollUp(ctx, 1, 37); err != nil {
		t.Fatal(err)
	}
	if err := b.rollUp(ctx, 1, rollupChunk); err != nil {
		t.Fatal(err)
	}
	var mark int64
	if err := a.r.QueryRow("SELECT rolled_up FROM event_rollup_state").Scan(&mark); err != nil || mark != last {
		t.Fatalf("watermark %d, %v; want %d", mark, err, last)
	}
	for _, gb := range []string{callsign.GroupRoute, callsign.GroupUserID, callsign.GroupCompany, callsign.GroupStatus, callsign.GroupAuthError} {
		q := callsign.MetricsQuery{AppID: "app", From: start.Add(-time.Hour), To: start.Add(3 * time.Hour), GroupBy: gb, Interval: time.Hour}
		ra, err := a.Metrics(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		rb, err := b.Metrics(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ra, rb) || len(ra.Groups) == 0 {
			t.Errorf("%s: chunked rollups differ:\n%+v\n%+v", gb, ra.Groups, rb.Groups)
		}
	}
}

func TestCover(t *testing.T) {
	spans := []int64{86400, 3600, 60}
	for _, tc := range []struct {
		lo, hi int64
		want   []segment
	}{
		{0, 86400, []segment{{86400, 0, 86400}}},
		{60, 120, []segment{{60, 60, 120}}},
		{3540, 86400 + 3660, []segment{{60, 3540, 3600}, {3600, 3600, 86400 + 3600}, {60, 86400 + 3600, 86400 + 3660}}},
		{3540, 2*86400 + 3660, []segment{{60, 3540, 3600}, {3600, 3600, 86400}, {86400, 86400, 172800}, {3600, 172800, 172800 + 3600}, {60, 172800 + 3600, 172800 + 3660}}},
		{-3600, 3600, []segment{{3600, -3600, 3600}}},
		{86400 - 60, 2*86400 + 60, []segment{{60, 86340, 86400}, {86400, 86400, 172800}, {60, 172800, 172860}}},
	} {
		if got := cover(tc.lo, tc.hi, spans); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("cover(%d, %d) = %v, want %v", tc.lo, tc.hi, got, tc.want)
		}
	}
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(1740787200000000, "ev-1"))
	f.Add("")
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, s string) {
		tm, id, ok := decodeCursor(s)
		if !ok {
			return
		}
		if again := encodeCursor(tm, id); again != s {
			t.Errorf("decodeCursor(%q) = %d, %q, which encodes as %q", s, tm, id, again)
		}
	})
}

// Retention takes deleted blocks out of event_index: a value whose events
// are all gone has no row left, and a straddling block stays listed only
// under the values its remaining events hold.
func TestRetentionUnindexes(t *testing.T) {
	ctx := t.Context()
	db := openTestDB(t)
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	var evs []*callsign.Event
	for i := range 30 { // three blocks: 0–9 old, 10–19 straddling the cut, 20–29 new
		at := t0.Add(time.Duration(i/10) * time.Hour).Add(time.Duration(i%10) * time.Second)
		evs = append(evs, &callsign.Event{AppID: "app", ID: fmt.Sprint("e", i), Time: at, Route: "GET /r",
			UserID: fmt.Sprint("u", i), ClientUserID: "everyone"})
	}
	if _, err := db.AppendEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	cut := t0.Add(time.Hour + 5*time.Second) // e15 is the first event kept
	if n, err := db.DeleteEventsBefore(ctx, "app", cut, time.Time{}); err != nil || n != 15 {
		t.Fatalf("DeleteEventsBefore = %d, %v; want 15", n, err)
	}
	var users []string
	rows, err := db.r.QueryContext(ctx, "SELECT value FROM event_index WHERE kind = ? ORDER BY value", kindUser)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	rows.Close()
	var want []string
	for _, e := range evs[15:] {
		want = append(want, e.UserID)
	}
	slices.Sort(want)
	if !slices.Equal(users, want) {
		t.Errorf("users indexed after retention: %v, want %v", users, want)
	}
	var blocks []byte
	var first int64
	if err := db.r.QueryRowContext(ctx, "SELECT first, blocks FROM event_index WHERE kind = ? AND value = 'everyone'", kindClientUser).Scan(&first, &blocks); err != nil {
		t.Fatal(err)
	}
	if seqs, err := blockSeqs(blocks, first); err != nil || len(seqs) != 2 {
		t.Errorf("'everyone' is listed in blocks %v, %v; want the 2 left", seqs, err)
	}
	page, err := db.Events(ctx, callsign.EventFilter{AppID: "app", ClientUserID: "everyone", Limit: 100})
	if err != nil || len(page.Events) != 15 {
		t.Fatalf("listing after retention: %d events, %v; want 15", len(page.Events), err)
	}
}

// Rollup retention counts its deletions (rollup_deletes), and an
// aggregation that read the stored rows before another process deleted
// some writes nothing and reads again: the deleted figures stay deleted.
func TestRollupDeletesStopStaleWrites(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	a := openTestDBIn(t, dir)
	old := time.Date(2025, 1, 1, 10, 0, 30, 0, time.UTC)
	ev := func(id string) []*callsign.Event {
		return []*callsign.Event{{AppID: "app", ID: id, Time: old, Route: "GET /r", Status: 200}}
	}
	deletes := func() (n int64) {
		t.Helper()
		if err := a.r.QueryRowContext(ctx, "SELECT rollup_deletes FROM event_rollup_state").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if _, err := a.AppendEvents(ctx, ev("e1")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.DeleteEventsBefore(ctx, "app", time.Time{}, old.Add(-48*time.Hour)); err != nil || deletes() != 0 {
		t.Fatalf("retention that deleted nothing: %v, rollup_deletes %d; want 0", err, deletes())
	}
	if _, err := a.DeleteEventsBefore(ctx, "app", time.Time{}, old.Add(48*time.Hour)); err != nil || deletes() == 0 {
		t.Fatalf("retention that deleted rollups: %v, rollup_deletes %d; want > 0", err, deletes())
	}

	// A late event; its aggregation reads the stored rows, then another
	// process (here, b's writer) deletes rollups, as its retention would.
	if _, err := a.AppendEvents(ctx, ev("e2")); err != nil {
		t.Fatal(err)
	}
	b := openTestDBIn(t, dir)
	if err := a.rollUp(ctx, 1, rollupChunk); err != nil { // e2: count 1 stored
		t.Fatal(err)
	}
	if _, err := a.AppendEvents(ctx, ev("e3")); err != nil {
		t.Fatal(err)
	}
	hook := func(db *DB) {
		if db != a {
			return
		}
		testHookAfterRead.Store(nil) // once
		if _, err := b.w.ExecContext(ctx, "DELETE FROM event_rollups_route; UPDATE event_rollup_state SET rollup_deletes = rollup_deletes + 1"); err != nil {
			t.Error(err)
		}
	}
	testHookAfterRead.Store(&hook)
	defer testHookAfterRead.Store(nil)
	if err := a.rollUp(ctx, 1, rollupChunk); err != nil {
		t.Fatal(err)
	}
	var c float64
	if err := a.r.QueryRowContext(ctx, "SELECT ifnull(sum(count), 0) FROM event_rollups_route WHERE span = 60").Scan(&c); err != nil {
		t.Fatal(err)
	}
	if c != 1 {
		t.Errorf("minute rollup count %v after the deletion and e3; want 1 (e3 alone)", c)
	}
}

// BackgroundErr reports the background aggregation while it fails, and
// clears once it succeeds again.
func TestBackgroundErr(t *testing.T) {
	ctx := t.Context()
	db := openTestDB(t)
	if err := db.BackgroundErr(); err != nil {
		t.Fatalf("a new store reports %v", err)
	}
	if _, err := db.w.ExecContext(ctx, `CREATE TRIGGER fail_rollups BEFORE INSERT ON event_rollups_route BEGIN SELECT RAISE(ABORT, 'rollups refused by the test'); END`); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Minute)
	if _, err := db.AppendEvents(ctx, []*callsign.Event{{AppID: "a", ID: "e1", Time: t0, Method: "GET", Route: "/x", Status: 200}}); err != nil {
		t.Fatal(err)
	}
	// until reports whether ok() became true within 10 s, kicking the
	// roller meanwhile.
	until := func(ok func(error) bool) error {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := db.BackgroundErr()
			if ok(err) || time.Now().After(deadline) {
				return err
			}
			select {
			case db.roll.kick <- struct{}{}:
			default:
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	err := until(func(err error) bool { return err != nil })
	if err == nil || !strings.Contains(err.Error(), "aggregating events into rollups has been failing since") || !strings.Contains(err.Error(), "rollups refused by the test") {
		t.Fatalf("BackgroundErr while the aggregation fails = %v", err)
	}
	if _, err := db.w.ExecContext(ctx, `DROP TRIGGER fail_rollups`); err != nil {
		t.Fatal(err)
	}
	if err := until(func(err error) bool { return err == nil }); err != nil {
		t.Fatalf("BackgroundErr after the aggregation succeeded again = %v", err)
	}
}
