// Package storetest is the conformance suite of callsign.EventStore: every
// storage engine runs RunEventStore against a real database of its kind,
// so that they all keep the same contract.
//
// Beyond the interface's documentation, the suite holds engines to these
// choices, which callers (httpapi, the CLI) rely on:
//
//   - AppendEvents refuses with EInvalid, storing nothing, a batch with an
//     event lacking AppID or ID or with a negative Weight.
//   - A second copy of an event (same AppID, ID and Time) is a duplicate.
//   - Events lists newest first; a cursor never repeats nor skips an event
//     that was stored when the listing began, whatever is appended between
//     pages. A malformed cursor is EInvalid.
//   - Metrics groups include the empty key (calls without a user, a
//     company or an auth error); Count, Errors and bytes are sums of
//     weights (0 counts as 1); Errors counts 5xx statuses and failed
//     authentications; P50, P95 and P99 are within RelativeAccuracy of
//     the latency of an event at (about) that rank; groups are ordered by
//     OrderBy, largest first. Ranges and intervals aligned to the hour are
//     answered exactly; an interval that is not a whole number of minutes
//     is EInvalid. A series lists at least every non-empty bucket, aligned
//     to the interval since the Unix epoch.
//   - DeleteEventsBefore deletes the app's events with Time < t and its
//     rollups for buckets that end at or before rollupsBefore (tested with
//     day-aligned cutoffs), and nothing of other apps.
package storetest

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
)

// RelativeAccuracy is the largest relative error the suite accepts in a
// percentile, against an exact computation over the events' latencies
// (truncated to the microsecond).
const RelativeAccuracy = 0.01

// RunEventStore runs the suite. newStore returns an empty store, and
// closes it when the test ends.
func RunEventStore(t *testing.T, newStore func(t *testing.T) callsign.EventStore) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, callsign.EventStore)
	}{
		{"RoundTrip", testRoundTrip},
		{"Idempotent", testIdempotent},
		{"AllOrNothing", testAllOrNothing},
		{"Filters", testFilters},
		{"Pagination", testPagination},
		{"PaginationWhileAppending", testPaginationWhileAppending},
		{"Metrics", testMetrics},
		{"MetricsSeries", testMetricsSeries},
		{"MetricsTopN", testMetricsTopN},
		{"Weights", testWeights},
		{"Retention", testRetention},
		{"AppsIsolated", testAppsIsolated},
		{"InvalidQueries", testInvalidQueries},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// day0 is the first day of the fixtures: they cover [day0, day0+2 days).
func day0() time.Time { return time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC) }

var routes = []string{"GET /notes", "GET /notes/{id}", "POST /notes", "DELETE /notes/{id}", "GET /users/{id}", "/healthz"}

// makeEvents returns n events of app with distinct times spread over
// [from, from+span): a dozen users with very different call counts, some
// anonymous, statuses of every class, failed authentications, log-normal
// latencies, weights, metadata.
func makeEvents(app string, seed uint64, n int, from time.Time, span time.Duration) []*callsign.Event {
	rng := rand.New(rand.NewPCG(seed, 0x5707e))
	slots := rng.Perm(int(span / time.Second))[:n] // distinct seconds
	evs := make([]*callsign.Event, n)
	for i := range evs {
		route := routes[rng.IntN(len(routes))]
		method := "GET"
		if m, _, ok := strings.Cut(route, " "); ok {
			method = m
		}
		e := &callsign.Event{
			ID:            fmt.Sprintf("ev-%d-%05d", seed, i),
			AppID:         app,
			Time:          from.Add(time.Duration(slots[i])*time.Second + time.Duration(rng.IntN(1e6))*time.Microsecond),
			Method:        method,
			Route:         route,
			URI:           strings.ReplaceAll(strings.TrimPrefix(route, method+" "), "{id}", fmt.Sprint(rng.IntN(100))) + "?q=redacted",
			Status:        200,
			Latency:       time.Duration(math.Exp(math.Log(30e3)+rng.NormFloat64())) * time.Microsecond,
			RequestBytes:  int64(rng.IntN(5000)),
			ResponseBytes: int64(rng.IntN(50000)),
			Scheme:        callsign.SchemeJWT,
			KeyID:         fmt.Sprintf("key-%d", rng.IntN(3)),
			RequestID:     fmt.Sprintf("req-%d", rng.Uint64()),
			RemoteIP:      fmt.Sprintf("192.0.2.%d", rng.IntN(255)),
			UserAgent:     "storetest/1.0",
		}
		// User k of 12 is picked with probability ∝ 1/k: distinct counts.
		if rng.IntN(8) > 0 {
			k := 1 + int(math.Floor(math.Pow(12.99, rng.Float64())))
			e.UserID = fmt.Sprintf("user-%02d", k)
			e.CompanyID = fmt.Sprintf("company-%d", k%3)
		}
		if rng.IntN(6) == 0 {
			e.ClientUserID = fmt.Sprintf("client-%d", rng.IntN(4))
		}
		if rng.IntN(9) == 0 {
			e.APIUserID = fmt.Sprintf("api-%d", rng.IntN(3))
		}
		switch p := rng.IntN(100); {
		case p < 6:
			e.Status = []int{500, 502, 503}[rng.IntN(3)]
		case p < 12:
			e.Status, e.AuthError, e.UserID, e.CompanyID = 401, []string{"expired", "replayed", "bad_signature", "unknown_key"}[rng.IntN(4)], "", ""
		case p < 20:
			e.Status = []int{400, 404, 429}[rng.IntN(3)]
		case p < 30:
			e.Status = 201
		case p < 32:
			e.Status = 302
		}
		switch rng.IntN(10) {
		case 0:
			e.Weight = 2.5
		case 1:
			e.Weight = 1
		case 2:
			e.Weight = 10
		}
		if rng.IntN(4) == 0 {
			e.Metadata = map[string]string{"plan": []string{"free", "pro"}[rng.IntN(2)], "sdk": "go"}
		}
		if rng.IntN(20) == 0 {
			e.RequestBody, e.ResponseBody = `{"q":1}`, `{"ok":true}`
		}
		evs[i] = e
	}
	return evs
}

func appendAll(t *testing.T, s callsign.EventStore, evs []*callsign.Event) {
	t.Helper()
	for b := range slices.Chunk(evs, callsign.MaxEventsPerBatch) {
		res, err := s.AppendEvents(t.Context(), b)
		if err != nil {
			t.Fatalf("AppendEvents: %v", err)
		}
		if res.Accepted != len(b) || res.Duplicates != 0 {
			t.Fatalf("AppendEvents = %+v, want %d accepted", res, len(b))
		}
	}
}

// stored returns e as a store gives it back: times and latencies to the
// microsecond, times in UTC.
func stored(e *callsign.Event) *callsign.Event {
	c := *e
	c.Time = e.Time.Truncate(time.Microsecond).UTC()
	c.Latency = e.Latency.Truncate(time.Microsecond)
	if len(c.Metadata) == 0 {
		c.Metadata = nil
	}
	return &c
}

// newestFirst returns the events of evs that keep says, newest first.
func newestFirst(evs []*callsign.Event, keep func(*callsign.Event) bool) []*callsign.Event {
	var out []*callsign.Event
	for _, e := range evs {
		if keep == nil || keep(e) {
			out = append(out, stored(e))
		}
	}
	slices.SortFunc(out, func(a, b *callsign.Event) int { return b.Time.Compare(a.Time) })
	return out
}

// listAll pages through f with page size limit and returns every event.
func listAll(t *testing.T, s callsign.EventStore, f callsign.EventFilter) []*callsign.Event {
	t.Helper()
	var all []*callsign.Event
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("listing does not end")
		}
		p, err := s.Events(t.Context(), f)
		if err != nil {
			t.Fatalf("Events(%+v): %v", f, err)
		}
		lim := cmp.Or(f.Limit, callsign.DefaultEventPage)
		if len(p.Events) > lim {
			t.Fatalf("page of %d events, limit %d", len(p.Events), lim)
		}
		all = append(all, p.Events...)
		if p.NextCursor == "" {
			return all
		}
		if len(p.Events) == 0 {
			t.Fatal("empty page with a next cursor")
		}
		f.Cursor = p.NextCursor
	}
}

func sameEvents(t *testing.T, what string, got, want []*callsign.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d events, want %d", what, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("%s: event %d:\n got %+v\nwant %+v", what, i, *got[i], *want[i])
			return
		}
	}
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := callsign.ErrorCode(err); got != code {
		t.Errorf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
}

func testRoundTrip(t *testing.T, s callsign.EventStore) {
	evs := makeEvents("app-a", 1, 300, day0(), 48*time.Hour)
	// Precision: nanoseconds in time and latency are not kept.
	evs[0].Time = evs[0].Time.Add(789 * time.Nanosecond)
	evs[0].Latency += 999 * time.Nanosecond
	evs[1].Time = evs[1].Time.In(time.FixedZone("UTC+2", 7200))
	evs[2].Metadata = map[string]string{}
	evs[3].Metadata = map[string]string{"k\"ey": "välue\n", "empty": ""}
	appendAll(t, s, evs)
	got := listAll(t, s, callsign.EventFilter{AppID: "app-a", Limit: callsign.MaxEventPage})
	sameEvents(t, "all events", got, newestFirst(evs, nil))
}

func testIdempotent(t *testing.T, s callsign.EventStore) {
	ctx := t.Context()
	evs := makeEvents("app-a", 2, 500, day0(), 48*time.Hour)
	batch := append(slices.Clone(evs), evs[7]) // a duplicate inside the batch
	res, err := s.AppendEvents(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if res != (callsign.IngestResult{Accepted: 500, Duplicates: 1}) {
		t.Errorf("first AppendEvents = %+v, want 500 accepted, 1 duplicate", res)
	}
	q := callsign.MetricsQuery{AppID: "app-a", From: day0(), To: day0().Add(48 * time.Hour), GroupBy: callsign.GroupRoute}
	before, err := s.Metrics(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	// The retried batch, whole, then a part of it mixed with new events.
	res, err = s.AppendEvents(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if res != (callsign.IngestResult{Accepted: 0, Duplicates: 501}) {
		t.Errorf("retried AppendEvents = %+v, want 501 duplicates", res)
	}
	more := makeEvents("app-a", 3, 20, day0(), 48*time.Hour)
	res, err = s.AppendEvents(ctx, append(slices.Clone(evs[:30]), more...))
	if err != nil {
		t.Fatal(err)
	}
	if res != (callsign.IngestResult{Accepted: 20, Duplicates: 30}) {
		t.Errorf("mixed AppendEvents = %+v, want 20 accepted, 30 duplicates", res)
	}
	all := append(slices.Clone(evs), more...)
	sameEvents(t, "stored events", listAll(t, s, callsign.EventFilter{AppID: "app-a", Limit: callsign.MaxEventPage}), newestFirst(all, nil))
	after, err := s.Metrics(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	checkMetrics(t, "after retries", after, all, q)
	// And the first answer counted each event once too.
	checkMetrics(t, "before retries", before, evs, q)
}

func testAllOrNothing(t *testing.T, s callsign.EventStore) {
	ctx := t.Context()
	evs := makeEvents("app-a", 4, 400, day0(), 48*time.Hour)
	for _, tc := range []struct {
		name string
		bad  func(*callsign.Event) *callsign.Event
	}{
		{"no id", func(e *callsign.Event) *callsign.Event { c := *e; c.ID = ""; return &c }},
		{"no app", func(e *callsign.Event) *callsign.Event { c := *e; c.AppID = ""; return &c }},
		{"negative weight", func(e *callsign.Event) *callsign.Event { c := *e; c.Weight = -1; return &c }},
		{"nil event", func(*callsign.Event) *callsign.Event { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			batch := slices.Clone(evs)
			batch[len(batch)-2] = tc.bad(batch[len(batch)-2])
			res, err := s.AppendEvents(ctx, batch)
			wantCode(t, "AppendEvents", err, callsign.EInvalid)
			if res.Accepted != 0 {
				t.Errorf("result %+v after an error", res)
			}
		})
	}
	t.Run("canceled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.AppendEvents(cctx, evs); err == nil {
			t.Error("AppendEvents with a canceled context succeeded")
		}
	})
	if got := listAll(t, s, callsign.EventFilter{AppID: "app-a"}); len(got) != 0 {
		t.Fatalf("%d events stored by failed batches", len(got))
	}
	r, err := s.Metrics(ctx, callsign.MetricsQuery{AppID: "app-a", From: day0(), To: day0().Add(48 * time.Hour), GroupBy: callsign.GroupRoute})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Groups) != 0 {
		t.Errorf("metrics of failed batches: %+v", r.Groups)
	}
	// The same batch, valid, then goes in whole.
	appendAll(t, s, evs)
}

func testFilters(t *testing.T, s callsign.EventStore) {
	evs := makeEvents("app-a", 5, 900, day0(), 48*time.Hour)
	appendAll(t, s, evs)
	appendAll(t, s, makeEvents("app-other", 5, 200, day0(), 48*time.Hour))
	pick := func(f func(*callsign.Event) string) string { // a value that occurs
		for _, e := range evs[10:] {
			if v := f(e); v != "" {
				return v
			}
		}
		t.Fatal("no value")
		return ""
	}
	user := pick(func(e *callsign.Event) string { return e.UserID })
	client := pick(func(e *callsign.Event) string { return e.ClientUserID })
	api := pick(func(e *callsign.Event) string { return e.APIUserID })
	authErr := pick(func(e *callsign.Event) string { return e.AuthError })
	from, to := evs[100].Time, evs[200].Time // exact event times: From is inclusive, To exclusive
	if to.Before(from) {
		from, to = to, from
	}
	for _, tc := range []struct {
		name string
		f    callsign.EventFilter
		keep func(*callsign.Event) bool
	}{
		{"none", callsign.EventFilter{}, nil},
		{"from", callsign.EventFilter{From: from}, func(e *callsign.Event) bool { return !e.Time.Before(from) }},
		{"to", callsign.EventFilter{To: to}, func(e *callsign.Event) bool { return e.Time.Before(to) }},
		{"from to", callsign.EventFilter{From: from, To: to}, func(e *callsign.Event) bool { return !e.Time.Before(from) && e.Time.Before(to) }},
		{"user", callsign.EventFilter{UserID: user}, func(e *callsign.Event) bool { return e.UserID == user }},
		{"client user", callsign.EventFilter{ClientUserID: client}, func(e *callsign.Event) bool { return e.ClientUserID == client }},
		{"api user", callsign.EventFilter{APIUserID: api}, func(e *callsign.Event) bool { return e.APIUserID == api }},
		{"unknown user", callsign.EventFilter{UserID: "nobody"}, func(*callsign.Event) bool { return false }},
		{"route", callsign.EventFilter{Route: "GET /notes/{id}"}, func(e *callsign.Event) bool { return e.Route == "GET /notes/{id}" }},
		{"method", callsign.EventFilter{Method: "POST"}, func(e *callsign.Event) bool { return e.Method == "POST" }},
		{"status", callsign.EventFilter{Status: 401}, func(e *callsign.Event) bool { return e.Status == 401 }},
		{"status class 5", callsign.EventFilter{StatusClass: 5}, func(e *callsign.Event) bool { return e.Status/100 == 5 }},
		{"status class 2", callsign.EventFilter{StatusClass: 2}, func(e *callsign.Event) bool { return e.Status/100 == 2 }},
		{"status and class", callsign.EventFilter{Status: 503, StatusClass: 5}, func(e *callsign.Event) bool { return e.Status == 503 }},
		{"auth error", callsign.EventFilter{AuthError: authErr}, func(e *callsign.Event) bool { return e.AuthError == authErr }},
		{"combined", callsign.EventFilter{UserID: user, StatusClass: 2, From: from},
			func(e *callsign.Event) bool { return e.UserID == user && e.Status/100 == 2 && !e.Time.Before(from) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			f.AppID, f.Limit = "app-a", callsign.MaxEventPage
			want := newestFirst(evs, tc.keep)
			sameEvents(t, tc.name, listAll(t, s, f), want)
			if tc.keep != nil && len(want) == len(evs) {
				t.Error("the filter keeps every event: a weak test")
			}
			if tc.name != "unknown user" && len(want) == 0 {
				t.Error("the filter keeps no event: a weak test")
			}
		})
	}
}

func testPagination(t *testing.T, s callsign.EventStore) {
	ctx := t.Context()
	evs := makeEvents("app-a", 6, 250, day0(), 48*time.Hour)
	// Ties: several events at one time must still page without gaps.
	for i := 10; i < 20; i++ {
		evs[i].Time = evs[9].Time
	}
	appendAll(t, s, evs)
	want := newestFirst(evs, nil)
	for _, limit := range []int{1, 3, 7, 0, 249, 250, 251, callsign.MaxEventPage} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			got := listAll(t, s, callsign.EventFilter{AppID: "app-a", Limit: limit})
			sameSet(t, got, want)
			for i := 1; i < len(got); i++ {
				if got[i].Time.After(got[i-1].Time) {
					t.Fatalf("event %d is newer than event %d", i, i-1)
				}
			}
		})
	}
	t.Run("limit above the maximum", func(t *testing.T) {
		big := makeEvents("app-big", 7, callsign.MaxEventPage+5, day0(), 48*time.Hour)
		appendAll(t, s, big)
		p, err := s.Events(ctx, callsign.EventFilter{AppID: "app-big", Limit: 10 * callsign.MaxEventPage})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Events) != callsign.MaxEventPage || p.NextCursor == "" {
			t.Errorf("%d events, next cursor %q; want %d and a cursor", len(p.Events), p.NextCursor, callsign.MaxEventPage)
		}
		p, err = s.Events(ctx, callsign.EventFilter{AppID: "app-big"})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Events) != callsign.DefaultEventPage {
			t.Errorf("default page: %d events, want %d", len(p.Events), callsign.DefaultEventPage)
		}
	})
	t.Run("last page", func(t *testing.T) {
		p, err := s.Events(ctx, callsign.EventFilter{AppID: "app-a", Limit: 250})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Events) != 250 || p.NextCursor != "" {
			t.Errorf("exactly-full last page: %d events, next cursor %q", len(p.Events), p.NextCursor)
		}
	})
	t.Run("malformed cursors", func(t *testing.T) {
		p, err := s.Events(ctx, callsign.EventFilter{AppID: "app-a", Limit: 5})
		if err != nil {
			t.Fatal(err)
		}
		good := p.NextCursor
		for _, c := range []string{"x", "!!!!", "AAAA", good[:len(good)/2] + "@" + good[len(good)/2+1:], strings.Repeat("A", 400), good + "="} {
			_, err := s.Events(ctx, callsign.EventFilter{AppID: "app-a", Cursor: c})
			wantCode(t, fmt.Sprintf("cursor %q", c), err, callsign.EInvalid)
		}
	})
}

// sameSet checks that got holds each event of want exactly once and
// nothing else.
func sameSet(t *testing.T, got, want []*callsign.Event) {
	t.Helper()
	seen := map[string]int{}
	for _, e := range got {
		seen[e.ID]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("event %s listed %d times", id, n)
		}
	}
	for _, e := range want {
		if seen[e.ID] == 0 {
			t.Errorf("event %s missing", e.ID)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d events listed, want %d", len(got), len(want))
	}
}

// testPaginationWhileAppending pages through an app's events while
// events are appended between pages (deterministically, then from another
// goroutine): older, newer and at the very time of the cursor. Every event
// there at the start is listed once, none twice.
func testPaginationWhileAppending(t *testing.T, s callsign.EventStore) {
	evs := makeEvents("app-a", 8, 300, day0().Add(24*time.Hour), 24*time.Hour)
	appendAll(t, s, evs)
	want := newestFirst(evs, nil)

	t.Run("between pages", func(t *testing.T) {
		f := callsign.EventFilter{AppID: "app-a", Limit: 17}
		var got []*callsign.Event
		for i := 0; ; i++ {
			p, err := s.Events(t.Context(), f)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, p.Events...)
			if p.NextCursor == "" {
				break
			}
			f.Cursor = p.NextCursor
			last := p.Events[len(p.Events)-1]
			extra := makeEvents("app-a", 1000+uint64(i), 3, day0(), 24*time.Hour) // older than all
			extra[1].Time = last.Time                                             // at the cursor's time
			extra[2].Time = day0().Add(72 * time.Hour)                            // newer than all
			appendAll(t, s, extra)
		}
		checkCovers(t, got, want)
	})
	t.Run("concurrent", func(t *testing.T) {
		stop := make(chan struct{})
		done := make(chan error)
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				extra := makeEvents("app-a", 5000+uint64(i), 20, day0(), 24*time.Hour)
				if _, err := s.AppendEvents(context.Background(), extra); err != nil {
					done <- err
					return
				}
			}
		}()
		got := listAll(t, s, callsign.EventFilter{AppID: "app-a", Limit: 13})
		close(stop)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		checkCovers(t, got, want)
	})
}

// checkCovers checks that got lists each event of want once, and no event
// twice, newest first.
func checkCovers(t *testing.T, got, want []*callsign.Event) {
	t.Helper()
	seen := map[string]int{}
	for i, e := range got {
		seen[e.ID]++
		if seen[e.ID] == 2 {
			t.Errorf("event %s listed twice", e.ID)
		}
		if i > 0 && e.Time.After(got[i-1].Time) {
			t.Errorf("event %d is newer than event %d", i, i-1)
		}
	}
	for _, e := range want {
		if seen[e.ID] == 0 {
			t.Errorf("event %s, stored before the listing began, is missing", e.ID)
		}
	}
}

// Reference metrics.

func weight(e *callsign.Event) float64 { return cmp.Or(e.Weight, 1) }

func isError(e *callsign.Event) bool { return e.Status >= 500 && e.Status <= 599 || e.AuthError != "" }

func groupKey(e *callsign.Event, groupBy string) string {
	switch groupBy {
	case callsign.GroupRoute:
		return e.Route
	case callsign.GroupUserID:
		return e.UserID
	case callsign.GroupCompany:
		return e.CompanyID
	case callsign.GroupStatus:
		return callsign.StatusClass(e.Status)
	case callsign.GroupAuthError:
		return e.AuthError
	}
	panic("unknown group_by " + groupBy)
}

// refGroup is the exact figures of a set of events.
type refGroup struct {
	count, errors, req, resp float64
	evs                      []*callsign.Event
}

func (g *refGroup) add(e *callsign.Event) {
	w := weight(e)
	g.count += w
	if isError(e) {
		g.errors += w
	}
	g.req += w * float64(e.RequestBytes)
	g.resp += w * float64(e.ResponseBytes)
	g.evs = append(g.evs, e)
}

func inRange(e *callsign.Event, from, to time.Time) bool {
	return !e.Time.Before(from) && e.Time.Before(to)
}

func reference(evs []*callsign.Event, q callsign.MetricsQuery) map[string]*refGroup {
	gs := map[string]*refGroup{}
	for _, e := range evs {
		if e.AppID != q.AppID || !inRange(e, q.From, q.To) {
			continue
		}
		k := groupKey(e, q.GroupBy)
		if gs[k] == nil {
			gs[k] = &refGroup{}
		}
		gs[k].add(e)
	}
	return gs
}

// quantileBounds returns the latencies, truncated to the microsecond,
// between which the weighted q-quantile of evs lies under any usual rank
// convention: ranks q·W ± 1 in units of weight.
func quantileBounds(evs []*callsign.Event, q float64) (lo, hi time.Duration) {
	type lw struct {
		l time.Duration
		w float64
	}
	xs := make([]lw, len(evs))
	var total float64
	for i, e := range evs {
		xs[i] = lw{e.Latency.Truncate(time.Microsecond), weight(e)}
		total += xs[i].w
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i].l < xs[j].l })
	at := func(rank float64) time.Duration {
		var c float64
		for _, x := range xs {
			c += x.w
			if c >= rank {
				return x.l
			}
		}
		return xs[len(xs)-1].l
	}
	return at(q*total - 1), at(q*total + 1)
}

func closeTo(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// checkFigures compares m with the exact figures of g.
func checkFigures(t *testing.T, what string, m callsign.Metrics, g *refGroup) {
	t.Helper()
	if !closeTo(m.Count, g.count) || !closeTo(m.Errors, g.errors) || !closeTo(m.RequestBytes, g.req) || !closeTo(m.ResponseBytes, g.resp) {
		t.Errorf("%s: count %v errors %v bytes %v/%v; want %v %v %v/%v", what, m.Count, m.Errors, m.RequestBytes, m.ResponseBytes,
			g.count, g.errors, g.req, g.resp)
	}
	for _, p := range []struct {
		q   float64
		got time.Duration
	}{{0.50, m.P50}, {0.95, m.P95}, {0.99, m.P99}} {
		lo, hi := quantileBounds(g.evs, p.q)
		min := time.Duration(float64(lo)*(1-RelativeAccuracy)) - time.Microsecond
		max := time.Duration(float64(hi)*(1+RelativeAccuracy)) + time.Microsecond
		if p.got < min || p.got > max {
			t.Errorf("%s: p%v = %v, exact between %v and %v, allowed [%v, %v]", what, p.q*100, p.got, lo, hi, min, max)
		}
	}
}

// checkMetrics compares a whole report with the exact figures over evs.
func checkMetrics(t *testing.T, what string, r *callsign.MetricsReport, evs []*callsign.Event, q callsign.MetricsQuery) {
	t.Helper()
	want := reference(evs, q)
	got := map[string]callsign.MetricsGroup{}
	for _, g := range r.Groups {
		if _, dup := got[g.Key]; dup {
			t.Errorf("%s: group %q twice", what, g.Key)
		}
		got[g.Key] = g
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("%s: group %q missing", what, k)
		}
	}
	for k, g := range got {
		ref := want[k]
		if ref == nil {
			t.Errorf("%s: unexpected group %q: %+v", what, k, g.Metrics)
			continue
		}
		checkFigures(t, fmt.Sprintf("%s: group %q", what, k), g.Metrics, ref)
	}
	byErrors := q.OrderBy == "errors"
	for i := 1; i < len(r.Groups); i++ {
		a, b := r.Groups[i-1], r.Groups[i]
		if byErrors && a.Errors < b.Errors || !byErrors && a.Count < b.Count {
			t.Errorf("%s: group %q (%v) after %q (%v): not ordered by %s", what, b.Key, b.Metrics, a.Key, a.Metrics, cmp.Or(q.OrderBy, "count"))
		}
	}
}

var groupBys = []string{callsign.GroupRoute, callsign.GroupUserID, callsign.GroupCompany, callsign.GroupStatus, callsign.GroupAuthError}

func testMetrics(t *testing.T, s callsign.EventStore) {
	evs := makeEvents("app-a", 9, 1500, day0(), 48*time.Hour)
	appendAll(t, s, evs[:700])
	appendAll(t, s, makeEvents("app-other", 9, 300, day0(), 48*time.Hour))
	appendAll(t, s, evs[700:])
	for _, gb := range groupBys {
		for _, r := range []struct {
			name     string
			from, to time.Time
		}{
			{"two days", day0(), day0().Add(48 * time.Hour)},
			{"wider", day0().Add(-72 * time.Hour), day0().Add(96 * time.Hour)},
			{"day 2", day0().Add(24 * time.Hour), day0().Add(48 * time.Hour)},
			{"hours across midnight", day0().Add(19 * time.Hour), day0().Add(29 * time.Hour)},
			{"one hour", day0().Add(30 * time.Hour), day0().Add(31 * time.Hour)},
			{"empty", day0().Add(-24 * time.Hour), day0()},
		} {
			t.Run(gb+" "+r.name, func(t *testing.T) {
				q := callsign.MetricsQuery{AppID: "app-a", From: r.from, To: r.to, GroupBy: gb}
				rep, err := s.Metrics(t.Context(), q)
				if err != nil {
					t.Fatal(err)
				}
				checkMetrics(t, gb, rep, evs, q)
				if r.name == "empty" && len(rep.Groups) != 0 {
					t.Errorf("groups over an empty range: %v", rep.Groups)
				}
				for _, g := range rep.Groups {
					if g.Series != nil {
						t.Errorf("group %q has a series without an interval", g.Key)
					}
				}
			})
		}
	}
}

func testMetricsSeries(t *testing.T, s callsign.EventStore) {
	evs := makeEvents("app-a", 10, 1200, day0(), 48*time.Hour)
	appendAll(t, s, evs)
	for _, gb := range groupBys {
		for _, r := range []struct {
			name     string
			from, to time.Time
			interval time.Duration
		}{
			{"hourly", day0().Add(20 * time.Hour), day0().Add(30 * time.Hour), time.Hour},
			{"3-hourly", day0().Add(6 * time.Hour), day0().Add(48 * time.Hour), 3 * time.Hour},
			{"daily", day0(), day0().Add(48 * time.Hour), 24 * time.Hour},
		} {
			t.Run(gb+" "+r.name, func(t *testing.T) {
				q := callsign.MetricsQuery{AppID: "app-a", From: r.from, To: r.to, GroupBy: gb, Interval: r.interval}
				rep, err := s.Metrics(t.Context(), q)
				if err != nil {
					t.Fatal(err)
				}
				checkMetrics(t, gb, rep, evs, q)
				for _, g := range rep.Groups {
					checkSeries(t, gb+" "+g.Key, g, evs, q)
				}
			})
		}
	}
}

func checkSeries(t *testing.T, what string, g callsign.MetricsGroup, evs []*callsign.Event, q callsign.MetricsQuery) {
	t.Helper()
	want := map[time.Time]*refGroup{}
	for _, e := range evs {
		if e.AppID != q.AppID || !inRange(e, q.From, q.To) || groupKey(e, q.GroupBy) != g.Key {
			continue
		}
		start := time.UnixMicro(e.Time.UnixMicro() / q.Interval.Microseconds() * q.Interval.Microseconds()).UTC()
		if want[start] == nil {
			want[start] = &refGroup{}
		}
		want[start].add(e)
	}
	seen := map[time.Time]bool{}
	for i, b := range g.Series {
		if i > 0 && !b.Start.After(g.Series[i-1].Start) {
			t.Errorf("%s: bucket %v after %v", what, b.Start, g.Series[i-1].Start)
		}
		if b.Start.UnixMicro()%q.Interval.Microseconds() != 0 {
			t.Errorf("%s: bucket %v not aligned to %v", what, b.Start, q.Interval)
		}
		seen[b.Start.UTC()] = true
		ref := want[b.Start.UTC()]
		if ref == nil {
			if b.Count != 0 || b.Errors != 0 {
				t.Errorf("%s: bucket %v: %+v, want empty", what, b.Start, b.Metrics)
			}
			continue
		}
		checkFigures(t, fmt.Sprintf("%s: bucket %v", what, b.Start), b.Metrics, ref)
	}
	for start := range want {
		if !seen[start] {
			t.Errorf("%s: bucket %v missing", what, start)
		}
	}
}

func testMetricsTopN(t *testing.T, s callsign.EventStore) {
	evs := makeEvents("app-a", 11, 2000, day0(), 72*time.Hour)
	// A user whose calls all fall in one edge hour of the ranges below
	// (5:00-6:00 on the first day) and who is the top caller there.
	for i, e := range makeEvents("app-a", 111, 450, day0().Add(5*time.Hour), time.Hour) {
		e.ID, e.UserID, e.CompanyID = fmt.Sprint("burst-", i), "user-burst", "company-burst"
		evs = append(evs, e)
	}
	appendAll(t, s, evs)
	for _, tc := range []struct {
		groupBy, orderBy string
		limit            int
		from, to         time.Duration // after day0
	}{
		{callsign.GroupUserID, "", 3, 0, 72 * time.Hour},
		{callsign.GroupUserID, "count", 5, 0, 48 * time.Hour},
		{callsign.GroupUserID, "errors", 2, 0, 72 * time.Hour},
		{callsign.GroupRoute, "errors", 2, 0, 72 * time.Hour},
		{callsign.GroupRoute, "count", 1, 0, 72 * time.Hour},
		{callsign.GroupCompany, "", 100, 0, 72 * time.Hour},
		// Whole days inside, hours at the edges.
		{callsign.GroupUserID, "", 3, 5 * time.Hour, 67 * time.Hour},
		{callsign.GroupUserID, "errors", 4, 23 * time.Hour, 49 * time.Hour},
		{callsign.GroupCompany, "count", 1, 13 * time.Hour, 60 * time.Hour},
		{callsign.GroupUserID, "", 20, 5 * time.Hour, 67 * time.Hour},
	} {
		t.Run(fmt.Sprintf("%s by %q top %d from +%v to +%v", tc.groupBy, tc.orderBy, tc.limit, tc.from, tc.to), func(t *testing.T) {
			q := callsign.MetricsQuery{AppID: "app-a", From: day0().Add(tc.from), To: day0().Add(tc.to), GroupBy: tc.groupBy, OrderBy: tc.orderBy, Limit: tc.limit}
			rep, err := s.Metrics(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			ref := reference(evs, q)
			type kv struct {
				k    string
				c, e float64
			}
			var all []kv
			for k, g := range ref {
				all = append(all, kv{k, g.count, g.errors})
			}
			by := func(x kv) float64 { return x.c }
			if tc.orderBy == "errors" {
				by = func(x kv) float64 { return x.e }
			}
			slices.SortFunc(all, func(a, b kv) int { return cmp.Compare(by(b), by(a)) })
			n := min(tc.limit, len(all))
			if len(rep.Groups) != n {
				t.Fatalf("%d groups, want %d", len(rep.Groups), n)
			}
			for i, g := range rep.Groups {
				// Ties may come in any order: compare the ordering value.
				if got := by(kv{"", g.Count, g.Errors}); !closeTo(got, by(all[i])) {
					t.Errorf("group %d is %q with %v, want %q with %v", i, g.Key, got, all[i].k, by(all[i]))
				}
				checkFigures(t, g.Key, g.Metrics, ref[g.Key])
			}
		})
	}
}

func testWeights(t *testing.T, s callsign.EventStore) {
	at := day0().Add(5*time.Hour + 17*time.Minute)
	var evs []*callsign.Event
	for i, w := range []float64{0, 1, 2.5, 10, 0.5, 100, 0, 3} {
		evs = append(evs, &callsign.Event{ID: fmt.Sprint("w", i), AppID: "app-w", Time: at.Add(time.Duration(i) * time.Second),
			Method: "GET", Route: "GET /w", Status: []int{200, 500, 200, 401, 200, 200, 503, 200}[i],
			Latency: time.Duration(1000*(i+1)) * time.Microsecond, UserID: "u", Weight: w,
			AuthError: map[int]string{3: "expired"}[i], RequestBytes: 10, ResponseBytes: int64(100 * i)})
	}
	appendAll(t, s, evs)
	for _, gb := range groupBys {
		q := callsign.MetricsQuery{AppID: "app-w", From: day0(), To: day0().Add(24 * time.Hour), GroupBy: gb}
		rep, err := s.Metrics(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		checkMetrics(t, gb, rep, evs, q)
	}
	// Weight 100 at 6 ms dominates: the median is that latency.
	rep, err := s.Metrics(t.Context(), callsign.MetricsQuery{AppID: "app-w", From: day0(), To: day0().Add(24 * time.Hour), GroupBy: callsign.GroupRoute})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Groups) != 1 || rep.Groups[0].Count != 119 || rep.Groups[0].Errors != 12 {
		t.Fatalf("groups %+v, want one with count 119 and errors 12", rep.Groups)
	}
	if p := rep.Groups[0].P50; p < 5940*time.Microsecond || p > 6060*time.Microsecond {
		t.Errorf("weighted median %v, want 6ms ± 1%%", p)
	}
}

func testRetention(t *testing.T, s callsign.EventStore) {
	ctx := t.Context()
	evs := makeEvents("app-a", 12, 1000, day0(), 48*time.Hour)
	other := makeEvents("app-b", 12, 300, day0(), 48*time.Hour)
	appendAll(t, s, evs)
	appendAll(t, s, other)
	// Events exactly at and just before the raw cutoff.
	cut := day0().Add(30*time.Hour + 123456*time.Microsecond)
	edge := []*callsign.Event{
		{ID: "at-cut", AppID: "app-a", Time: cut, Method: "GET", Route: "GET /edge", Status: 200, Latency: time.Millisecond},
		{ID: "before-cut", AppID: "app-a", Time: cut.Add(-time.Microsecond), Method: "GET", Route: "GET /edge", Status: 200, Latency: time.Millisecond},
	}
	appendAll(t, s, edge)
	evs = append(evs, edge...)
	rollCut := day0().Add(24 * time.Hour)
	// Metrics after the rollup cutoff, and of the other app, must not change.
	qs := []callsign.MetricsQuery{}
	for _, gb := range groupBys {
		qs = append(qs,
			callsign.MetricsQuery{AppID: "app-a", From: rollCut, To: day0().Add(48 * time.Hour), GroupBy: gb},
			callsign.MetricsQuery{AppID: "app-a", From: rollCut, To: day0().Add(48 * time.Hour), GroupBy: gb, Interval: time.Hour},
			callsign.MetricsQuery{AppID: "app-b", From: day0(), To: day0().Add(48 * time.Hour), GroupBy: gb})
	}
	var before []*callsign.MetricsReport
	for _, q := range qs {
		r, err := s.Metrics(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, r)
	}

	wantDeleted := 0
	for _, e := range evs {
		if e.Time.Before(cut) {
			wantDeleted++
		}
	}
	n, err := s.DeleteEventsBefore(ctx, "app-a", cut, rollCut)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(wantDeleted) {
		t.Errorf("DeleteEventsBefore deleted %d events, want %d", n, wantDeleted)
	}
	sameEvents(t, "app-a after retention", listAll(t, s, callsign.EventFilter{AppID: "app-a", Limit: callsign.MaxEventPage}),
		newestFirst(evs, func(e *callsign.Event) bool { return !e.Time.Before(cut) }))
	sameEvents(t, "app-b after retention", listAll(t, s, callsign.EventFilter{AppID: "app-b", Limit: callsign.MaxEventPage}), newestFirst(other, nil))
	for _, e := range evs[:40] { // listings by user or auth error lose the deleted events too
		for _, f := range []callsign.EventFilter{{UserID: e.UserID}, {ClientUserID: e.ClientUserID}, {APIUserID: e.APIUserID}, {AuthError: e.AuthError}} {
			if f == (callsign.EventFilter{}) {
				continue
			}
			f.AppID, f.Limit = "app-a", callsign.MaxEventPage
			sameEvents(t, fmt.Sprintf("%+v after retention", f), listAll(t, s, f), newestFirst(evs, func(x *callsign.Event) bool {
				return !x.Time.Before(cut) && (f.UserID == "" || x.UserID == f.UserID) && (f.ClientUserID == "" || x.ClientUserID == f.ClientUserID) &&
					(f.APIUserID == "" || x.APIUserID == f.APIUserID) && (f.AuthError == "" || x.AuthError == f.AuthError)
			}))
		}
	}
	for i, q := range qs {
		r, err := s.Metrics(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(r, before[i]) {
			t.Errorf("metrics %+v changed by retention:\n got %+v\nwant %+v", q, r.Groups, before[i].Groups)
		}
	}
	for _, gb := range groupBys {
		r, err := s.Metrics(ctx, callsign.MetricsQuery{AppID: "app-a", From: day0(), To: rollCut, GroupBy: gb})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Groups) != 0 {
			t.Errorf("%s: rollups before the cutoff left: %+v", gb, r.Groups)
		}
	}
	// Again: nothing more to delete.
	if n, err := s.DeleteEventsBefore(ctx, "app-a", cut, rollCut); err != nil || n != 0 {
		t.Errorf("second DeleteEventsBefore = %d, %v; want 0, nil", n, err)
	}
}

func testAppsIsolated(t *testing.T, s callsign.EventStore) {
	ctx := t.Context()
	a := makeEvents("app-a", 13, 400, day0(), 48*time.Hour)
	b := makeEvents("app-b", 13, 400, day0(), 48*time.Hour) // same ids and times as a
	appendAll(t, s, a)
	appendAll(t, s, b)
	for _, tc := range []struct {
		app string
		evs []*callsign.Event
	}{{"app-a", a}, {"app-b", b}} {
		sameEvents(t, tc.app, listAll(t, s, callsign.EventFilter{AppID: tc.app, Limit: 500}), newestFirst(tc.evs, nil))
		for _, gb := range groupBys {
			q := callsign.MetricsQuery{AppID: tc.app, From: day0(), To: day0().Add(48 * time.Hour), GroupBy: gb}
			r, err := s.Metrics(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			checkMetrics(t, tc.app+" "+gb, r, tc.evs, q)
		}
	}
	if p, err := s.Events(ctx, callsign.EventFilter{AppID: "app-c"}); err != nil || len(p.Events) != 0 {
		t.Errorf("events of an app without any: %v, %v", p, err)
	}
}

func testInvalidQueries(t *testing.T, s callsign.EventStore) {
	ctx := t.Context()
	appendAll(t, s, makeEvents("app-a", 14, 10, day0(), 48*time.Hour))
	for _, tc := range []struct {
		name string
		f    callsign.EventFilter
	}{
		{"no app", callsign.EventFilter{}},
		{"negative limit", callsign.EventFilter{AppID: "app-a", Limit: -1}},
		{"negative status", callsign.EventFilter{AppID: "app-a", Status: -200}},
		{"status class 12", callsign.EventFilter{AppID: "app-a", StatusClass: 12}},
		{"cursor", callsign.EventFilter{AppID: "app-a", Cursor: "%%%"}},
	} {
		_, err := s.Events(ctx, tc.f)
		wantCode(t, "Events "+tc.name, err, callsign.EInvalid)
	}
	from, to := day0(), day0().Add(24*time.Hour)
	for _, tc := range []struct {
		name string
		q    callsign.MetricsQuery
	}{
		{"no app", callsign.MetricsQuery{From: from, To: to, GroupBy: callsign.GroupRoute}},
		{"group_by", callsign.MetricsQuery{AppID: "app-a", From: from, To: to, GroupBy: "uri"}},
		{"no group_by", callsign.MetricsQuery{AppID: "app-a", From: from, To: to}},
		{"order_by", callsign.MetricsQuery{AppID: "app-a", From: from, To: to, GroupBy: callsign.GroupRoute, OrderBy: "p95"}},
		{"negative limit", callsign.MetricsQuery{AppID: "app-a", From: from, To: to, GroupBy: callsign.GroupRoute, Limit: -1}},
		{"no range", callsign.MetricsQuery{AppID: "app-a", GroupBy: callsign.GroupRoute}},
		{"reversed range", callsign.MetricsQuery{AppID: "app-a", From: to, To: from, GroupBy: callsign.GroupRoute}},
		{"empty range", callsign.MetricsQuery{AppID: "app-a", From: from, To: from, GroupBy: callsign.GroupRoute}},
		{"interval 90s", callsign.MetricsQuery{AppID: "app-a", From: from, To: to, GroupBy: callsign.GroupRoute, Interval: 90 * time.Second}},
		{"interval 1ms", callsign.MetricsQuery{AppID: "app-a", From: from, To: to, GroupBy: callsign.GroupStatus, Interval: time.Millisecond}},
		{"negative interval", callsign.MetricsQuery{AppID: "app-a", From: from, To: to, GroupBy: callsign.GroupRoute, Interval: -time.Hour}},
		{"user interval 90s", callsign.MetricsQuery{AppID: "app-a", From: from, To: to, GroupBy: callsign.GroupUserID, Interval: 90 * time.Second}},
	} {
		_, err := s.Metrics(ctx, tc.q)
		wantCode(t, "Metrics "+tc.name, err, callsign.EInvalid)
	}
	_, err := s.DeleteEventsBefore(ctx, "", from, from)
	wantCode(t, "DeleteEventsBefore without app", err, callsign.EInvalid)
}
