package capture_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/callsignhq/callsign/internal/flock"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/capture"
	"github.com/callsignhq/callsign/client"
)

func enqueue(t *testing.T, s *capture.Shipper, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		s.Enqueue(testEvent(i))
	}
}

func storedIDs(col *collector) []string {
	var ids []string
	for _, e := range col.stored() {
		ids = append(ids, e.ID)
	}
	slices.Sort(ids)
	return ids
}

func wantIDs(from, to int) []string {
	var ids []string
	for i := from; i < to; i++ {
		ids = append(ids, testEvent(i).ID)
	}
	return ids
}

// Events arrive whole: the wire form the server decodes is the event's
// JSON(), field for field, in gzip batches within the limits.
func TestShipperDelivers(t *testing.T) {
	col := newCollector(t)
	s := newShipper(t, col, &sleeps{}, nil)
	full := &callsign.Event{ID: "evt-full", AppID: "app_1", Time: testNow, Method: "POST", Route: "POST /notes", URI: "/notes?x=REDACTED",
		Status: 201, Latency: 2345 * time.Microsecond, RequestBytes: 10, ResponseBytes: 20, UserID: "alice", APIUserID: "al",
		ClientUserID: "ally", CompanyID: "acme", Scheme: callsign.SchemeHMAC, KeyID: "key-1", AuthError: "", RequestID: "r-1",
		RemoteIP: "127.0.0.0", UserAgent: "ua <&> \u2028", Weight: 4, Metadata: map[string]string{"k": "v\n\"q\""},
		RequestBody: `{"a":1}`, ResponseBody: "\xff bad utf8"}
	want := full.JSON()
	s.Enqueue(full)
	if err := s.Flush(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	got := col.stored()
	if len(got) != 1 {
		t.Fatalf("%d events stored", len(got))
	}
	want.ResponseBody = "\ufffd bad utf8"
	g, _ := json.Marshal(got[0])
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		t.Errorf("wire form\n got %s\nwant %s", g, w)
	}
	if st := s.Stats(); st.Enqueued != 1 || st.Sent != 1 || st.Batches != 1 || st.Queued != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestShipperBatchLimits(t *testing.T) {
	tests := []struct {
		name      string
		size      int
		bytes     int
		n         int
		maxEvents int
	}{
		{"by count", 10, 0, 95, 10},
		{"by bytes", 1000, 4096, 200, 1000},
		{"server maximum", 5000, 0, 2500, callsign.MaxEventsPerBatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			col := newCollector(t)
			s := newShipper(t, col, &sleeps{}, func(o *capture.ShipperOptions) { o.BatchSize, o.BatchBytes = tt.size, tt.bytes })
			enqueue(t, s, 0, tt.n)
			if err := s.Flush(ctxTimeout(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			if got := storedIDs(col); !slices.Equal(got, wantIDs(0, tt.n)) {
				t.Fatalf("stored %d events, want %d", len(got), tt.n)
			}
			col.mu.Lock()
			defer col.mu.Unlock()
			for i, b := range col.batches {
				if len(b) > tt.maxEvents {
					t.Errorf("batch %d: %d events", i, len(b))
				}
				if tt.bytes > 0 && len(col.bodies[i]) > tt.bytes {
					t.Errorf("batch %d: %d bytes", i, len(col.bodies[i]))
				}
			}
			if tt.bytes > 0 && len(col.batches) < 5 {
				t.Errorf("only %d batches under a %d-byte limit", len(col.batches), tt.bytes)
			}
		})
	}
}

// Without Flush, an event reaches the server within the flush interval.
func TestShipperFlushInterval(t *testing.T) {
	col := newCollector(t)
	s := newShipper(t, col, &sleeps{}, func(o *capture.ShipperOptions) { o.FlushInterval = 20 * time.Millisecond })
	s.Enqueue(testEvent(1))
	select {
	case n := <-col.accepted:
		if n != 1 {
			t.Fatalf("accepted %d", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the event did not arrive within 5 s")
	}
}

// A dead collector (503s, or connections closed): the queue stays within
// its bound, what does not fit is dropped and counted, and once the
// collector is back every event that was not dropped is delivered.
func TestShipperDeadCollector(t *testing.T) {
	faults := map[string]func(n int, w http.ResponseWriter, r *http.Request) bool{
		"503": func(_ int, w http.ResponseWriter, _ *http.Request) bool {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		},
		"connection closed": func(_ int, w http.ResponseWriter, _ *http.Request) bool { closeConn(w); return true },
	}
	for name, fault := range faults {
		t.Run(name, func(t *testing.T) {
			const queue, batch, n = 100, 10, 1000
			col := newCollector(t)
			failed := make(chan struct{}, 10000)
			col.setFault(func(n int, w http.ResponseWriter, r *http.Request) bool {
				failed <- struct{}{}
				return fault(n, w, r)
			})
			sl := &sleeps{}
			s := newShipper(t, col, sl, func(o *capture.ShipperOptions) { o.QueueSize, o.BatchSize = queue, batch })
			for i := range n {
				s.Enqueue(testEvent(i))
				if st := s.Stats(); st.Queued > queue {
					t.Fatalf("queue at %d, bound %d", st.Queued, queue)
				}
			}
			st := s.Stats()
			if st.Enqueued+st.DroppedQueueFull != n || st.Enqueued > queue+batch || st.DroppedQueueFull < n-queue-batch {
				t.Fatalf("enqueued %d, dropped %d", st.Enqueued, st.DroppedQueueFull)
			}
			for range 3 { // the collector has refused a few attempts
				<-failed
			}
			col.setFault(nil)
			if err := s.Close(ctxTimeout(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			st = s.Stats()
			if got := len(col.stored()); uint64(got) != st.Enqueued || st.Sent != st.Enqueued {
				t.Errorf("stored %d, sent %d, enqueued %d", got, st.Sent, st.Enqueued)
			}
			if st.Retries == 0 || len(sl.all()) == 0 {
				t.Error("no retries against a dead collector")
			}
		})
	}
}

func TestShipperRetryAfter(t *testing.T) {
	now := testNow
	tests := []struct {
		name   string
		status int
		header string
		want   time.Duration
	}{
		{"429 seconds", http.StatusTooManyRequests, "7", 7 * time.Second},
		{"429 date", http.StatusTooManyRequests, now.Add(3 * time.Second).Format(http.TimeFormat), 3 * time.Second},
		{"503 seconds", http.StatusServiceUnavailable, "2", 2 * time.Second},
		{"capped", http.StatusTooManyRequests, "86400", capture.DefaultMaxRetryAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			col := newCollector(t)
			col.setFault(func(n int, w http.ResponseWriter, _ *http.Request) bool {
				if n > 1 {
					return false
				}
				w.Header().Set("Retry-After", tt.header)
				w.WriteHeader(tt.status)
				return true
			})
			sl := &sleeps{}
			s := newShipper(t, col, sl, func(o *capture.ShipperOptions) { o.Now = func() time.Time { return now } })
			enqueue(t, s, 0, 3)
			if err := s.Flush(ctxTimeout(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			if got := sl.all(); !slices.Equal(got, []time.Duration{tt.want}) {
				t.Errorf("waited %v, want [%v]", got, tt.want)
			}
			if st := s.Stats(); st.Sent != 3 || st.Retries != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// Backoff is exponential with full jitter: each wait within
// [0, min(MaxBackoff, MinBackoff·2^attempt)].
func TestShipperBackoff(t *testing.T) {
	col := newCollector(t)
	col.setFault(func(n int, w http.ResponseWriter, _ *http.Request) bool {
		if n > 8 {
			return false
		}
		w.WriteHeader(http.StatusBadGateway)
		return true
	})
	sl := &sleeps{}
	s := newShipper(t, col, sl, func(o *capture.ShipperOptions) { o.MinBackoff, o.MaxBackoff = time.Second, 10*time.Second })
	enqueue(t, s, 0, 1)
	if err := s.Flush(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	waits := sl.all()
	if len(waits) != 8 {
		t.Fatalf("%d waits", len(waits))
	}
	for i, d := range waits {
		if ceil := min(10*time.Second, time.Second<<i); d < 0 || d > ceil {
			t.Errorf("wait %d: %v, above %v", i, d, ceil)
		}
	}
}

// A 401: the token is invalidated and the batch sent again at once with a
// new one, once; a second 401 backs off.
func TestShipperRefreshesTokenOn401(t *testing.T) {
	col := newCollector(t)
	sl := &sleeps{}
	s := newShipper(t, col, sl, nil)
	enqueue(t, s, 0, 2)
	if err := s.Flush(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	col.revoke("tok-1") // as if the server's keys rotated
	enqueue(t, s, 2, 4)
	if err := s.Flush(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	col.mu.Lock()
	tokens, posts := col.tokens, col.posts
	col.mu.Unlock()
	if tokens != 2 || posts != 3 || len(sl.all()) != 0 {
		t.Errorf("%d tokens, %d posts, waits %v", tokens, posts, sl.all())
	}
	if st := s.Stats(); st.Sent != 4 || st.TokenRefreshes != 1 {
		t.Errorf("stats %+v", st)
	}

	// Refused twice in a row: one immediate refresh, then backoff.
	col.setFault(func(n int, w http.ResponseWriter, _ *http.Request) bool {
		if n > 5 {
			return false
		}
		w.WriteHeader(http.StatusUnauthorized)
		return true
	})
	enqueue(t, s, 4, 5)
	if err := s.Flush(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := len(sl.all()); got != 1 {
		t.Errorf("%d waits after two 401s, want 1", got)
	}
}

// Refusals that retrying cannot fix: a whole batch (400, 413) or single
// events (provenance: a client-only token sending verified user ids).
func TestShipperRefusals(t *testing.T) {
	t.Run("batch refused", func(t *testing.T) {
		col := newCollector(t)
		col.setFault(func(n int, w http.ResponseWriter, _ *http.Request) bool {
			if n == 1 {
				w.WriteHeader(http.StatusRequestEntityTooLarge)
				return true
			}
			return false
		})
		sl := &sleeps{}
		s := newShipper(t, col, sl, func(o *capture.ShipperOptions) { o.BatchSize = 5 })
		enqueue(t, s, 0, 10)
		if err := s.Flush(ctxTimeout(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.DroppedInvalid != 5 || st.Sent != 5 || st.Retries != 0 || len(sl.all()) != 0 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("events rejected", func(t *testing.T) {
		col := newCollector(t)
		col.reject = func(e *callsign.EventJSON) string {
			if e.UserID != "" {
				return "provenance"
			}
			return ""
		}
		s := newShipper(t, col, &sleeps{}, nil)
		s.Enqueue(testEvent(1)) // UserID alice
		e := testEvent(2)
		e.UserID, e.ClientUserID = "", "bob"
		s.Enqueue(e)
		if err := s.Flush(ctxTimeout(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.Sent != 1 || st.DroppedRejected != 1 || st.Retries != 0 || !strings.Contains(st.LastError, "provenance") {
			t.Errorf("stats %+v", st)
		}
	})
}

// The answer to a batch is lost after the server stored it: the batch is
// sent again, and the server's deduplication keeps it from being counted
// twice.
func TestShipperLostAcknowledgement(t *testing.T) {
	col := newCollector(t)
	col.afterAck = func(n int, w http.ResponseWriter) bool {
		if n == 1 {
			closeConn(w)
			return true
		}
		return false
	}
	s := newShipper(t, col, &sleeps{}, nil)
	enqueue(t, s, 0, 20)
	if err := s.Flush(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := storedIDs(col); !slices.Equal(got, wantIDs(0, 20)) {
		t.Errorf("stored %d events", len(got))
	}
	if st := s.Stats(); st.Duplicates != 20 || st.Retries != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestShipperCloseGivesUp(t *testing.T) {
	col := newCollector(t)
	col.setFault(func(_ int, w http.ResponseWriter, _ *http.Request) bool { w.WriteHeader(503); return true })
	blocking := func(ctx context.Context, d time.Duration) error { <-ctx.Done(); return ctx.Err() }
	s, err := capture.NewShipper(capture.ShipperOptions{Server: col.url(), Tokens: &client.ServerTokenSource{Server: col.url(), SecretToken: testSecret},
		BatchSize: 10, FlushInterval: time.Hour, Logger: slog.New(slog.DiscardHandler), Sleep: blocking})
	if err != nil {
		t.Fatal(err)
	}
	enqueue(t, s, 0, 25)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v", err)
	}
	if st := s.Stats(); st.DroppedShutdown != 25 || st.Sent != 0 {
		t.Errorf("stats %+v", st)
	}
	if s.Enqueue(testEvent(99)) || s.Stats().DroppedClosed != 1 {
		t.Error("Enqueue after Close kept an event")
	}
	if err := s.Flush(context.Background()); !errors.Is(err, capture.ErrClosed) {
		t.Errorf("Flush after Close = %v", err)
	}
}

// Queue-full drops are logged at most once per WarnInterval.
func TestShipperWarningsRateLimited(t *testing.T) {
	col := newCollector(t)
	col.setFault(func(_ int, w http.ResponseWriter, _ *http.Request) bool { w.WriteHeader(503); return true })
	var mu sync.Mutex
	var logs bytes.Buffer
	now := testNow
	s := newShipper(t, col, &sleeps{}, func(o *capture.ShipperOptions) {
		o.QueueSize, o.BatchSize = 5, 1
		o.Logger = slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
		o.WarnInterval = 10 * time.Second
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	enqueue(t, s, 0, 100)
	mu.Lock()
	now = now.Add(11 * time.Second)
	mu.Unlock()
	enqueue(t, s, 100, 200)
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logs.String(), "event queue full"); n != 2 {
		t.Errorf("%d queue-full warnings, want 2:\n%s", n, logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// The collector is down: batches go to the spool; the process stops; a new
// Shipper on the same directory replays them, oldest first, when the
// collector is back, and deletes each segment once acknowledged.
func TestSpoolReplayAfterRestart(t *testing.T) {
	dir := t.TempDir()
	col := newCollector(t)
	col.setFault(func(_ int, w http.ResponseWriter, _ *http.Request) bool { w.WriteHeader(503); return true })
	spoolOpts := func(o *capture.ShipperOptions) { o.SpoolDir, o.BatchSize, o.SpoolAfter = dir, 10, 2 }
	s1 := newShipper(t, col, &sleeps{}, spoolOpts)
	enqueue(t, s1, 0, 55)
	if err := s1.Flush(ctxTimeout(t, 5*time.Second)); err == nil {
		t.Fatal("Flush reported success with the collector down")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	s1.Close(ctx)
	st := s1.Stats()
	if st.Spooled != 55 || st.Sent != 0 || st.SpoolSegments != 6 || st.DroppedShutdown != 0 {
		t.Fatalf("stats %+v", st)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) != 6 {
		t.Fatalf("%d segment files", len(segs))
	}

	col.setFault(nil)
	s2 := newShipper(t, col, &sleeps{}, spoolOpts)
	if st := s2.Stats(); st.SpoolSegments != 6 {
		t.Fatalf("the new Shipper sees %d segments", st.SpoolSegments)
	}
	if err := s2.Flush(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := storedIDs(col); !slices.Equal(got, wantIDs(0, 55)) {
		t.Fatalf("stored %d events", len(got))
	}
	col.mu.Lock()
	first := col.batches[0]
	col.mu.Unlock()
	if first[0] != testEvent(0).ID {
		t.Errorf("replay did not start with the oldest batch: %v", first)
	}
	if st := s2.Stats(); st.Replayed != 55 || st.SpoolSegments != 0 || st.SpoolBytes != 0 {
		t.Errorf("stats %+v", st)
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "*.seg")); len(segs) != 0 {
		t.Errorf("files left: %v", segs)
	}
}

// Batches spooled by a Shipper that compressed with gzip are replayed as
// gzip by the next one, which sends its own batches as snappy.
func TestSpoolReplaysEachBatchInItsEncoding(t *testing.T) {
	dir := t.TempDir()
	col := newCollector(t)
	col.setFault(func(_ int, w http.ResponseWriter, _ *http.Request) bool { w.WriteHeader(503); return true })
	s1 := newShipper(t, col, &sleeps{}, func(o *capture.ShipperOptions) {
		o.SpoolDir, o.BatchSize, o.SpoolAfter, o.Compression = dir, 10, 1, capture.CompressionGzip
	})
	enqueue(t, s1, 0, 20)
	s1.Flush(ctxTimeout(t, 5*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	s1.Close(ctx)
	if st := s1.Stats(); st.Spooled != 20 || st.SpoolSegments != 2 {
		t.Fatalf("stats %+v", st)
	}

	// A new collector: a post s1 gave up on may still reach the old one.
	col2 := newCollector(t)
	s2 := newShipper(t, col2, &sleeps{}, func(o *capture.ShipperOptions) { o.SpoolDir, o.BatchSize = dir, 10 })
	if err := s2.Flush(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	enqueue(t, s2, 20, 30)
	if err := s2.Flush(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := storedIDs(col2); !slices.Equal(got, wantIDs(0, 30)) {
		t.Fatalf("stored %d events", len(got))
	}
	col2.mu.Lock()
	encs := slices.Clone(col2.encs)
	col2.mu.Unlock()
	if want := []string{"gzip", "gzip", "snappy"}; !slices.Equal(encs, want) {
		t.Fatalf("Content-Encoding of the posts: %q, want %q", encs, want)
	}
}

// While the collector is down the spool absorbs the queue (no queue-full
// drops), within its byte bound: the oldest segments go first, counted.
func TestSpoolBounded(t *testing.T) {
	dir := t.TempDir()
	col := newCollector(t)
	col.setFault(func(_ int, w http.ResponseWriter, _ *http.Request) bool { w.WriteHeader(503); return true })
	const maxBytes = 4096
	s := newShipper(t, col, &sleeps{}, func(o *capture.ShipperOptions) {
		o.SpoolDir, o.BatchSize, o.SpoolAfter, o.SpoolMaxBytes, o.QueueSize = dir, 10, 1, maxBytes, 50
	})
	for i := range 400 {
		s.Enqueue(testEvent(i))
		if i%40 == 39 {
			s.Flush(ctxTimeout(t, 5*time.Second))
		}
	}
	s.Flush(ctxTimeout(t, 5*time.Second))
	st := s.Stats()
	if st.SpoolBytes > maxBytes || st.DroppedSpoolFull == 0 || st.DroppedQueueFull != 0 {
		t.Fatalf("stats %+v", st)
	}
	var total int64
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	for _, f := range segs {
		fi, _ := os.Stat(f)
		total += fi.Size()
	}
	if total > maxBytes {
		t.Fatalf("spool holds %d bytes, bound %d", total, maxBytes)
	}
	col.setFault(nil)
	if err := s.Close(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	st = s.Stats()
	if got := uint64(len(col.stored())); got != st.Sent || got+st.DroppedSpoolFull != 400 {
		t.Errorf("stored %d, dropped %d, stats %+v", got, st.DroppedSpoolFull, st)
	}
	// What survived is the newest.
	if ids := storedIDs(col); len(ids) == 0 || ids[len(ids)-1] != testEvent(399).ID {
		t.Errorf("the newest events were not kept")
	}
}

// Corrupt segments, and a write a crash interrupted, are removed; the good
// segments are still replayed.
func TestSpoolCorruptSegments(t *testing.T) {
	dir := t.TempDir()
	col := newCollector(t)
	col.setFault(func(_ int, w http.ResponseWriter, _ *http.Request) bool { w.WriteHeader(503); return true })
	opts := func(o *capture.ShipperOptions) { o.SpoolDir, o.BatchSize, o.SpoolAfter = dir, 5, 1 }
	s1 := newShipper(t, col, &sleeps{}, opts)
	enqueue(t, s1, 0, 10)
	s1.Flush(ctxTimeout(t, 5*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	s1.Close(ctx)
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) != 2 {
		t.Fatalf("%d segments", len(segs))
	}
	second, _ := os.ReadFile(segs[1])
	flipped := bytes.Clone(second)
	flipped[len(flipped)-3] ^= 0xff
	for name, data := range map[string][]byte{
		"00000000000000000000.seg": []byte("garbage"),
		"00000000000000000003.seg": second[:len(second)/2], // torn
		"09999999999999999998.seg": flipped,
		"00000000000000000005.tmp": second, // an interrupted write
	} {
		os.WriteFile(filepath.Join(dir, name), data, 0o600)
	}
	os.Remove(segs[1])
	col.setFault(nil)
	s2 := newShipper(t, col, &sleeps{}, opts)
	if err := s2.Flush(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if st := s2.Stats(); st.CorruptSegments != 3 || st.Replayed != 5 || st.SpoolSegments != 0 {
		t.Errorf("stats %+v", st)
	}
	if got := storedIDs(col); !slices.Equal(got, wantIDs(0, 5)) {
		t.Errorf("stored %v", got)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.seg")); len(left) != 0 {
		t.Errorf("files left: %v", left)
	}
}

// A spool directory serves one Shipper at a time: a second one is refused
// while the first is open, and welcome once it is closed.
func TestSpoolDirLocked(t *testing.T) {
	if !flock.Supported {
		t.Skip("no flock here")
	}
	dir := t.TempDir()
	opts := capture.ShipperOptions{Server: "http://127.0.0.1:1", Tokens: client.StaticToken("t"), SpoolDir: dir}
	a, err := capture.NewShipper(opts)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := capture.NewShipper(opts); err == nil || !strings.Contains(err.Error(), "in use by another Shipper") {
		if b != nil {
			b.Close(t.Context())
		}
		t.Fatalf("second Shipper on %s: %v, want refused", dir, err)
	}
	if err := a.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	c, err := capture.NewShipper(opts)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	c.Close(t.Context())
}

func TestNewShipperValidates(t *testing.T) {
	tok := client.StaticToken("t")
	for _, o := range []capture.ShipperOptions{
		{Server: "http://127.0.0.1:1"},
		{Server: "", Tokens: tok},
		{Server: "ftp://x", Tokens: tok},
		{Server: "http://127.0.0.1:1", Tokens: tok, SpoolDir: "/dev/null/x"},
		{Server: "http://127.0.0.1:1", Tokens: tok, Compression: "br"},
		{Server: "http://127.0.0.1:1", Tokens: tok, Compression: "GZIP"},
	} {
		if _, err := capture.NewShipper(o); err == nil {
			t.Errorf("NewShipper(%+v) accepted", o)
		}
	}
}
