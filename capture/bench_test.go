package capture_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/capture"
	"github.com/callsignhq/callsign/client"
	"github.com/golang-jwt/jwt/v5"
)

// discardWriter is a ResponseWriter that costs nothing, so that the
// benchmarks measure the middleware and not httptest.ResponseRecorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// releasingSink returns events to the pool at once: the hot path alone.
type releasingSink struct{}

func (releasingSink) Enqueue(e *callsign.Event) bool { capture.ReleaseEvent(e); return true }

func benchHandler() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /notes/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		io.WriteString(w, `{"id":"42","text":"hello"}`)
	})
	return mux
}

func benchRequest(b *testing.B) *http.Request {
	r := httptest.NewRequest("GET", "/notes/42?page=2&q=secret", nil)
	r.Header.Set("User-Agent", "bench/1.0")
	r.RemoteAddr = "203.0.113.7:51234"
	return r
}

func runHandler(b *testing.B, h http.Handler, r *http.Request) {
	b.Helper()
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		h.ServeHTTP(w, r)
	}
}

// BenchmarkMiddleware measures the capture's cost per call: each
// captured/... variant against the same handler unwrapped, in the same
// run.
func BenchmarkMiddleware(b *testing.B) {
	mux := benchHandler()
	opts := capture.Options{QueryAllow: []string{"page"}}

	b.Run("unwrapped", func(b *testing.B) { runHandler(b, mux, benchRequest(b)) })
	b.Run("captured", func(b *testing.B) {
		runHandler(b, capture.New(opts, releasingSink{}).Handler(mux), benchRequest(b))
	})

	// Behind the auth middleware (JWT bearer, verified-token cache): the
	// setup of a real API.
	mw, err := auth.New(auth.Options{Authenticators: authenticators(b), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	tok := func() string {
		t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"id": "user-42", "exp": testNow.Add(time.Hour).Unix()})
		t.Header["kid"] = "k1"
		s, _ := t.SignedString(jwtSecret)
		return s
	}()
	authReq := func(b *testing.B) *http.Request {
		r := benchRequest(b)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}
	b.Run("auth", func(b *testing.B) { runHandler(b, mw.Handler(mux), authReq(b)) })
	b.Run("auth+captured", func(b *testing.B) {
		runHandler(b, capture.New(opts, releasingSink{}).Handler(mw.Handler(capture.ReportPattern(mux))), authReq(b))
	})
	b.Run("auth+captured-muxlookup", func(b *testing.B) {
		o := opts
		o.Mux = mux
		runHandler(b, capture.New(o, releasingSink{}).Handler(mw.Handler(mux)), authReq(b))
	})

	// With a real Shipper behind it: the queue send on the request path,
	// encoding and shipping on the Shipper's goroutine (its allocations are
	// counted too, amortized over batches).
	b.Run("auth+captured+shipper", func(b *testing.B) {
		col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, `{"accepted":0,"duplicates":0,"rejected":[]}`)
		}))
		defer col.Close()
		sh, err := capture.NewShipper(capture.ShipperOptions{Server: col.URL, Tokens: client.StaticToken("t"), QueueSize: 1 << 16,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		defer sh.Close(context.Background())
		runHandler(b, capture.New(opts, sh).Handler(mw.Handler(capture.ReportPattern(mux))), authReq(b))
		b.StopTimer()
		st := sh.Stats()
		b.ReportMetric(float64(st.DroppedQueueFull)/float64(b.N), "dropped/op")
	})
}

// BenchmarkShipperEncode measures the Shipper's batching, for each
// compression: each op is one event encoded to JSON into a batch; every
// 500 events the batch is compressed.
func BenchmarkShipperEncode(b *testing.B) {
	tmpl := callsign.Event{ID: capture.NewEventID(testNow), Time: testNow, Method: "GET", Route: "GET /notes/{id}",
		URI: "/notes/42?page=2&q=REDACTED", Status: 200, Latency: 1234 * time.Microsecond, RequestBytes: 0, ResponseBytes: 27,
		UserID: "user-42", ClientUserID: "bob", Scheme: callsign.SchemeJWT, KeyID: "k1", RequestID: "3kTMd9fTqWZe-1a2b",
		RemoteIP: "203.0.113.0", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"}
	// Distinct ids, latencies, users and request ids, as in real traffic.
	var ids, users, reqIDs [1024]string
	for i := range ids {
		ids[i] = capture.NewEventID(testNow.Add(time.Duration(i) * time.Millisecond))
		users[i] = fmt.Sprintf("user-%d", i*7919%1000)
		reqIDs[i] = callsign.NewRequestID()
	}
	for _, c := range []capture.Compression{capture.CompressionSnappy, capture.CompressionGzip, capture.CompressionNone} {
		b.Run(string(c), func(b *testing.B) {
			enc := capture.NewBatchEncoder(c)
			var sent int
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				e := capture.GetEvent()
				*e = tmpl
				e.ID, e.UserID, e.RequestID = ids[i%1024], users[i%1024], reqIDs[i%1024]
				e.Latency += time.Duration(i%5000) * time.Microsecond
				enc.Add(e)
				if i%500 == 499 {
					sent += len(enc.Seal())
				}
			}
			sent += len(enc.Seal())
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
			b.ReportMetric(float64(sent)/float64(b.N), "sent-bytes/event")
		})
	}
}
