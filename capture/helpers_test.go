package capture_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/capture"
	"github.com/callsignhq/callsign/client"
	"github.com/klauspost/compress/s2"
)

const testSecret = "cs_sec_test-secret"

// collector is a loopback callsign server that speaks the ingest contract:
// POST /v2/tokens/server (Bearer secret) mints tokens, POST /v2/events
// takes snappy, gzip or plain JSON batches, deduplicates by id and reports
// per-event rejections. fault, when set, can answer a post instead.
type collector struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	ids      map[string]int // id -> times stored (must stay 1)
	events   []callsign.EventJSON
	batches  [][]string // ids of each batch, in arrival order
	bodies   [][]byte   // decompressed bodies
	posts    int
	encs     []string // Content-Encoding of each post, in arrival order
	tokens   int
	valid    map[string]bool
	fault    func(n int, w http.ResponseWriter, r *http.Request) bool
	reject   func(e *callsign.EventJSON) string
	afterAck func(n int, w http.ResponseWriter) bool // true: the answer is lost (connection closed)
	accepted chan int                                // events accepted per batch
}

func newCollector(t *testing.T) *collector {
	t.Helper()
	c := &collector{t: t, ids: map[string]int{}, valid: map[string]bool{}, accepted: make(chan int, 1000)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v2/tokens/server", c.token)
	mux.HandleFunc("POST /v2/events", c.ingest)
	c.srv = httptest.NewServer(mux)
	t.Cleanup(c.srv.Close)
	return c
}

func (c *collector) url() string { return c.srv.URL }

func (c *collector) setFault(f func(n int, w http.ResponseWriter, r *http.Request) bool) {
	c.mu.Lock()
	c.fault = f
	c.mu.Unlock()
}

func (c *collector) token(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	if r.Header.Get("Authorization") != "Bearer "+testSecret || r.Header.Get("Content-Type") != "application/json" || string(b) != "{}" {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"code":"unauthorized","message":"bad secret"}}`)
		return
	}
	c.mu.Lock()
	c.tokens++
	tok := fmt.Sprintf("tok-%d", c.tokens)
	c.valid[tok] = true
	c.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]string{"appAccessToken": tok, "expiresAt": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
}

// revoke makes the collector refuse tok from now on.
func (c *collector) revoke(tok string) {
	c.mu.Lock()
	delete(c.valid, tok)
	c.mu.Unlock()
}

func (c *collector) ingest(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.posts++
	c.encs = append(c.encs, r.Header.Get("Content-Encoding"))
	n, fault := c.posts, c.fault
	c.mu.Unlock()
	if fault != nil && fault(n, w, r) {
		return
	}
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	c.mu.Lock()
	ok := c.valid[tok]
	c.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.Header.Get("Content-Type") != "application/json" {
		w.WriteHeader(http.StatusUnsupportedMediaType)
		return
	}
	var body io.Reader = r.Body
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			c.t.Errorf("collector: gzip: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		body = zr
	case "snappy":
		b, err := io.ReadAll(r.Body)
		if err == nil {
			b, err = s2.Decode(nil, b)
		}
		if err != nil {
			c.t.Errorf("collector: snappy: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		body = bytes.NewReader(b)
	case "":
	default:
		c.t.Errorf("collector: Content-Encoding %q", enc)
		w.WriteHeader(http.StatusUnsupportedMediaType)
		return
	}
	raw, err := io.ReadAll(io.LimitReader(body, callsign.MaxBatchBytes+1))
	if err != nil {
		c.t.Errorf("collector: body does not decompress: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if len(raw) > callsign.MaxBatchBytes {
		c.t.Errorf("collector: batch of %d bytes", len(raw))
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	var batch struct {
		Events []callsign.EventJSON `json:"events"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&batch); err != nil || len(batch.Events) == 0 {
		c.t.Errorf("collector: batch does not decode: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if len(batch.Events) > callsign.MaxEventsPerBatch {
		c.t.Errorf("collector: batch of %d events", len(batch.Events))
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	type rejection struct {
		Index   int    `json:"index"`
		ID      string `json:"id"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	ans := struct {
		Accepted   int         `json:"accepted"`
		Duplicates int         `json:"duplicates"`
		Rejected   []rejection `json:"rejected"`
	}{Rejected: []rejection{}}
	c.mu.Lock()
	var ids []string
	for i := range batch.Events {
		e := &batch.Events[i]
		if c.reject != nil {
			if code := c.reject(e); code != "" {
				ans.Rejected = append(ans.Rejected, rejection{i, e.ID, code, "refused by the test collector"})
				continue
			}
		}
		ids = append(ids, e.ID)
		if c.ids[e.ID] > 0 {
			ans.Duplicates++
			continue
		}
		c.ids[e.ID]++
		c.events = append(c.events, *e)
		ans.Accepted++
	}
	c.batches = append(c.batches, ids)
	c.bodies = append(c.bodies, raw)
	after := c.afterAck
	c.mu.Unlock()
	if after != nil && after(n, w) {
		return
	}
	select {
	case c.accepted <- ans.Accepted:
	default:
	}
	json.NewEncoder(w).Encode(ans)
}

// stored returns a copy of the events stored.
func (c *collector) stored() []callsign.EventJSON {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]callsign.EventJSON(nil), c.events...)
}

func (c *collector) allBodies() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Join(c.bodies, []byte("\n"))
}

// closeConn drops the connection without an answer.
func closeConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

// sleeps records the waits a Shipper asks for and returns at once.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// newShipper returns a Shipper to col with a ServerTokenSource, instant
// sleeps and a long flush interval (tests flush explicitly), closed at
// the end of the test.
func newShipper(t *testing.T, col *collector, sl *sleeps, mod func(*capture.ShipperOptions)) *capture.Shipper {
	t.Helper()
	o := capture.ShipperOptions{
		Server:        col.url(),
		Tokens:        &client.ServerTokenSource{Server: col.url(), SecretToken: testSecret},
		FlushInterval: time.Hour,
		Logger:        slog.New(slog.DiscardHandler),
		Sleep:         sl.sleep,
	}
	if mod != nil {
		mod(&o)
	}
	s, err := capture.NewShipper(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.Close(ctx)
	})
	return s
}

func testEvent(i int) *callsign.Event {
	return &callsign.Event{
		ID: fmt.Sprintf("evt-%06d", i), Time: time.Date(2026, 5, 1, 12, 0, 0, i*1000, time.UTC), Method: "GET",
		Route: "GET /notes/{id}", URI: fmt.Sprintf("/notes/%d", i), Status: 200, Latency: 1500 * time.Microsecond,
		UserID: "alice", Scheme: callsign.SchemeJWT,
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// sink collects events on a channel.
type sink struct{ ch chan *callsign.Event }

func newSink() *sink { return &sink{ch: make(chan *callsign.Event, 100000)} }

func (s *sink) Enqueue(e *callsign.Event) bool {
	select {
	case s.ch <- e:
		return true
	default:
		return false
	}
}

// next waits for the next event.
func (s *sink) next(t *testing.T) *callsign.Event {
	t.Helper()
	select {
	case e := <-s.ch:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event captured")
		return nil
	}
}
