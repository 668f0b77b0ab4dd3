package sqlite

import (
	"fmt"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
)

// The filter never forgets a key it was given (no false negatives), says
// "may hold" for about its stated rate of the others, and past its memory
// bound drops the oldest days, whose keys it then may hold.
func TestStoredFilter(t *testing.T) {
	var p pendingKeys
	p.init()
	p.stored.ready = true
	day := func(d int) int64 { return int64(d)*dayMicros + 12*3600e6 }
	const n = 200_000
	// Sized for few keys: three filters in a chain, 64k, 128k and 256k.
	p.stored.newDay(0, 1000)
	for i := range n {
		p.stored.add(p.hash("app", day(0)+int64(i), []byte(fmt.Sprint("ev", i))), day(0)+int64(i))
	}
	for i := range n {
		if !p.stored.mayHold(p.hash("app", day(0)+int64(i), []byte(fmt.Sprint("ev", i))), day(0)+int64(i)) {
			t.Fatalf("key %d added, not held", i)
		}
	}
	fp := 0
	for i := range n {
		if p.stored.mayHold(p.hash("app", day(0)+int64(i), []byte(fmt.Sprint("other", i))), day(0)+int64(i)) {
			fp++
		}
	}
	// Three filters of 1% each, the last one not full: at most ~3%; above 0.
	if rate := float64(fp) / n; rate > 0.035 || rate == 0 {
		t.Errorf("false-positive rate %.4f, want (0, 0.035]", rate)
	}
	if c := len(p.stored.days[0].chain); c != 3 {
		t.Errorf("day 0 has %d filters, want 3", c)
	}
	// A day with no key: nothing held.
	if p.stored.mayHold(p.hash("app", day(5), []byte("x")), day(5)) {
		t.Error("a key of an empty day may be held")
	}
	// The next day's first filter is sized for as many keys as day 0 had:
	// its keys are tested against one filter.
	for i := range n {
		p.stored.add(keyHash{1, uint64(i)}, day(1)+int64(i))
	}
	if c := len(p.stored.days[1].chain); c != 1 {
		t.Errorf("day 1 has %d filters, want 1 sized for day 0's %d keys", c, n)
	}
	// Until ready, everything may be held.
	p.stored.ready = false
	if !p.stored.mayHold(p.hash("app", day(5), []byte("x")), day(5)) {
		t.Error("a key may be missing before the filter is built, but was not")
	}
	p.stored.ready = true

	// Past the memory bound (lowered for the test): fill days 2, 3, ...
	// until the oldest is dropped.
	p.stored.maxBytes = 4 << 20
	before := p.stored.bytes
	for d := 2; p.stored.below <= day(0)/dayMicros; d++ {
		for i := range 1 << 18 {
			p.stored.add(keyHash{uint64(d), uint64(i)}, day(d))
		}
		if d > 100 {
			t.Fatalf("no day dropped after %d bytes (from %d)", p.stored.bytes, before)
		}
	}
	if p.stored.bytes > p.stored.maxBytes {
		t.Errorf("%d bytes of filters, bound %d", p.stored.bytes, p.stored.maxBytes)
	}
	if !p.stored.mayHold(p.hash("app", day(0), []byte("other0")), day(0)) {
		t.Error("a dropped day's keys must be looked up")
	}

	// One day alone past the bound is dropped too.
	var q pendingKeys
	q.init()
	q.stored.ready, q.stored.maxBytes = true, 1<<20
	for i := range 2_000_000 {
		q.stored.add(keyHash{7, uint64(i)}, day(9))
		if q.stored.bytes > q.stored.maxBytes {
			t.Fatalf("%d bytes of filters after %d keys of one day, bound %d", q.stored.bytes, i+1, q.stored.maxBytes)
		}
	}
	if !q.stored.mayHold(keyHash{7, 1}, day(9)) {
		t.Error("a key of the dropped day must be looked up")
	}
}

// With the filter built, an event already aggregated is still found a
// duplicate (looked up because the filter may hold it), a new one is
// accepted, and the filter stays built over further aggregations. When
// another process aggregates events, the filter is built again, since it
// lacks the keys that process stored.
func TestDuplicatesWithStoredFilter(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	db := openTestDBIn(t, dir)
	start := time.Date(2025, 3, 1, 23, 59, 0, 0, time.UTC) // across a day
	mk := func(from, to int) []*callsign.Event {
		var evs []*callsign.Event
		for i := from; i < to; i++ {
			evs = append(evs, &callsign.Event{ID: fmt.Sprint("e", i), AppID: "app", Time: start.Add(time.Duration(i) * 100 * time.Millisecond), Status: 200})
		}
		return evs
	}
	waitReady := func() {
		t.Helper()
		for range 500 {
			db.keys.mu.Lock()
			ready := db.keys.stored.ready
			db.keys.mu.Unlock()
			if ready {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("the filter of stored keys was not built in 5 s")
	}
	append := func(evs []*callsign.Event, accepted int) {
		t.Helper()
		res, err := db.AppendEvents(ctx, evs)
		if err != nil || res.Accepted != accepted || res.Duplicates != len(evs)-accepted {
			t.Fatalf("AppendEvents = %+v, %v; want %d accepted of %d", res, err, accepted, len(evs))
		}
	}
	append(mk(0, 1200), 1200)
	if err := db.rollUp(ctx, 1, rollupChunk); err != nil {
		t.Fatal(err)
	}
	waitReady()
	append(mk(0, 1200), 0)      // all aggregated: in event_key_chunks only
	append(mk(1000, 2000), 800) // half new
	if err := db.rollUp(ctx, 1, rollupChunk); err != nil {
		t.Fatal(err)
	}
	append(mk(0, 2000), 0)

	// Another process appends and aggregates events: this one learns it
	// when its own aggregation finds the watermark moved.
	other, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := other.AppendEvents(ctx, mk(5000, 5100)); err != nil || res.Accepted != 100 {
		t.Fatalf("other AppendEvents = %+v, %v", res, err)
	}
	if err := other.rollUp(ctx, 1, rollupChunk); err != nil {
		t.Fatal(err)
	}
	other.Close()
	// At once, before this process aggregates: the watermark moved, so
	// every key is looked up.
	append(mk(5000, 5100), 0)
	append(mk(2000, 2100), 100)
	if err := db.rollUp(ctx, 1, rollupChunk); err != nil {
		t.Fatal(err)
	}
	waitReady()
	append(mk(5000, 5100), 0)
	append(mk(0, 2100), 0)
}

// When another process aggregates this one's pending events, their keys
// leave this one's pending set: once retention (of either process) deleted
// the events, they are new again, also before this process aggregates.
func TestPendingKeysAggregatedElsewhere(t *testing.T) {
	for _, otherDeletes := range []bool{false, true} {
		t.Run(fmt.Sprint("other deletes: ", otherDeletes), func(t *testing.T) {
			ctx := t.Context()
			dir := t.TempDir()
			db := openTestDBIn(t, dir)
			t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
			var evs []*callsign.Event
			for i := range 10 {
				evs = append(evs, &callsign.Event{ID: fmt.Sprint("e", i), AppID: "app", Time: t0.Add(time.Duration(i) * time.Second)})
			}
			if res, err := db.AppendEvents(ctx, evs); err != nil || res.Accepted != 10 {
				t.Fatalf("AppendEvents = %+v, %v", res, err)
			}
			other, err := Open(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := other.rollUp(ctx, 1, rollupChunk); err != nil {
				t.Fatal(err)
			}
			deleter := db
			if otherDeletes {
				deleter = other
			}
			if n, err := deleter.DeleteEventsBefore(ctx, "app", t0.Add(time.Hour), time.Time{}); err != nil || n != 10 {
				t.Fatalf("DeleteEventsBefore = %d, %v; want 10", n, err)
			}
			other.Close()
			if res, err := db.AppendEvents(ctx, evs); err != nil || res.Accepted != 10 {
				t.Errorf("deleted events sent again: %+v, %v; want 10 accepted", res, err)
			}
		})
	}
}

// Until the filter is built every key is looked up, keys close in time
// sharing a query: a batch of stored keys interleaved with new ones, over
// many chunks, is told apart exactly.
func TestLookupsWithoutFilter(t *testing.T) {
	ctx := t.Context()
	db := openTestDB(t)
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	mk := func(prefix string, from, n int, step time.Duration) []*callsign.Event {
		var evs []*callsign.Event
		for i := from; i < from+n; i++ {
			evs = append(evs, &callsign.Event{AppID: "a", ID: fmt.Sprint(prefix, i), Time: t0.Add(time.Duration(i) * step)})
		}
		return evs
	}
	stored := mk("s", 0, 3000, 20*time.Microsecond) // 60 ms: many chunks
	if _, err := db.AppendEvents(ctx, stored); err != nil {
		t.Fatal(err)
	}
	if err := db.rollUp(ctx, 1, rollupChunk); err != nil {
		t.Fatal(err)
	}
	db.keys.mu.Lock()
	db.keys.stored.ready = false
	db.keys.mu.Unlock()
	batch := mk("n", 0, 1500, 40*time.Microsecond) // new, in the same 60 ms
	for i := 0; i < len(stored); i += 3 {
		batch = append(batch, stored[i])
	}
	res, err := db.AppendEvents(ctx, batch)
	if err != nil || res.Accepted != 1500 || res.Duplicates != 1000 {
		t.Errorf("AppendEvents = %+v, %v; want 1500 accepted, 1000 duplicates", res, err)
	}
}
