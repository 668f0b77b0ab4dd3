package jwks_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/auth/jwks"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// clock is an injected clock that tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: t0} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// issuer is a JWKS endpoint on loopback whose answer the test changes.
type issuer struct {
	*httptest.Server
	mu       sync.Mutex
	doc      string
	status   int
	header   http.Header
	requests atomic.Int64
	// gate, when set, holds every request until it is closed; arrived
	// receives a value as each request arrives.
	gate    chan struct{}
	arrived chan struct{}
}

func newIssuer(t *testing.T, doc string) *issuer {
	t.Helper()
	is := &issuer{doc: doc, status: http.StatusOK, header: http.Header{}}
	is.Server = httptest.NewServer(http.HandlerFunc(is.serve))
	t.Cleanup(is.Close)
	return is
}

func (is *issuer) serve(w http.ResponseWriter, r *http.Request) {
	is.requests.Add(1)
	is.mu.Lock()
	doc, status, gate, arrived := is.doc, is.status, is.gate, is.arrived
	for k, v := range is.header {
		w.Header()[k] = v
	}
	is.mu.Unlock()
	if arrived != nil {
		arrived <- struct{}{}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	w.WriteHeader(status)
	io.WriteString(w, doc)
}

func (is *issuer) set(doc string, status int, cacheControl string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.doc, is.status = doc, status
	is.header = http.Header{}
	if cacheControl != "" {
		is.header.Set("Cache-Control", cacheControl)
	}
}

func edJWK(t testing.TB, kid string) string {
	seed := make([]byte, ed25519.SeedSize)
	copy(seed, kid)
	return jwkJSON(t, kid, "EdDSA", "sig", ed25519.NewKeyFromSeed(seed).Public())
}

func newRemote(t *testing.T, url string, c *clock, opts jwks.Options) *jwks.Remote {
	t.Helper()
	opts.Now = c.Now
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r, err := jwks.NewRemote(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustKey(t *testing.T, r *jwks.Remote, kid string) *jwks.Key {
	t.Helper()
	k, err := r.Key(context.Background(), kid)
	if err != nil {
		t.Fatalf("Key(%q): %v", kid, err)
	}
	return k
}

func TestRemoteRefreshSchedule(t *testing.T) {
	tests := []struct {
		name         string
		cacheControl string
		lifetime     time.Duration
	}{
		{"no Cache-Control: RefreshEvery", "", 5 * time.Minute},
		{"max-age honoured", "public, max-age=60", time.Minute},
		{"max-age below the minimum interval", "max-age=1", 10 * time.Second},
		{"max-age above the cap", "max-age=86400", time.Hour},
		{"no-store", "no-store", 10 * time.Second},
		{"garbage max-age ignored", "max-age=soon", 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := newIssuer(t, set(edJWK(t, "k1")))
			is.set(set(edJWK(t, "k1")), 200, tt.cacheControl)
			c := newClock()
			r := newRemote(t, is.URL, c, jwks.Options{})
			mustKey(t, r, "k1")
			is.set(set(edJWK(t, "k2")), 200, tt.cacheControl)
			c.Advance(tt.lifetime - time.Second)
			mustKey(t, r, "k1")
			if n := is.requests.Load(); n != 1 {
				t.Fatalf("%d fetches before the set's lifetime ended", n)
			}
			c.Advance(time.Second)
			if _, err := r.Key(context.Background(), "k1"); !errors.Is(err, jwks.ErrUnknownKey) {
				t.Fatalf("after the lifetime, k1 (removed by the issuer) = %v", err)
			}
			mustKey(t, r, "k2")
			if n := is.requests.Load(); n != 2 {
				t.Fatalf("%d fetches, want 2", n)
			}
		})
	}
}

func TestRemoteUnknownKid(t *testing.T) {
	is := newIssuer(t, set(edJWK(t, "k1")))
	c := newClock()
	r := newRemote(t, is.URL, c, jwks.Options{})
	mustKey(t, r, "k1")

	// The issuer rotates k2 in; a token of k2 arrives 1 s later.
	is.set(set(edJWK(t, "k1"), edJWK(t, "k2")), 200, "")
	c.Advance(time.Second)
	_, err := r.Key(context.Background(), "k2")
	if !errors.Is(err, jwks.ErrUnknownKey) || auth.Code(err) != auth.CodeUnknownKey {
		t.Fatalf("within the minimum interval: %v", err)
	}
	if n := is.requests.Load(); n != 1 {
		t.Fatalf("%d fetches within the minimum interval", n)
	}
	c.Advance(9 * time.Second)
	mustKey(t, r, "k2")
	if n := is.requests.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}

	// A flood of made-up kids: at most one fetch per interval.
	for i := range 1000 {
		if i%100 == 0 {
			c.Advance(time.Second)
		}
		if _, err := r.Key(context.Background(), "made-up"); !errors.Is(err, jwks.ErrUnknownKey) {
			t.Fatal(err)
		}
	}
	if n := is.requests.Load(); n != 3 {
		t.Fatalf("1000 unknown kids over 10 s caused %d fetches, want 3", n)
	}
}

// Many requests with a new kid at once: one fetch, and all of them get
// the key.
func TestRemoteConcurrentMisses(t *testing.T) {
	is := newIssuer(t, set(edJWK(t, "k1")))
	c := newClock()
	r := newRemote(t, is.URL, c, jwks.Options{})
	mustKey(t, r, "k1")
	is.set(set(edJWK(t, "k1"), edJWK(t, "k2")), 200, "")
	is.mu.Lock()
	is.gate, is.arrived = make(chan struct{}), make(chan struct{}, 100)
	is.mu.Unlock()
	c.Advance(time.Minute)

	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := r.Key(context.Background(), "k2")
			errs <- err
		})
	}
	<-is.arrived // one fetch is in flight, held by the issuer
	close(is.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := is.requests.Load(); got != 2 {
		t.Fatalf("%d concurrent misses caused %d fetches, want 1 (+1 initial)", n, got-1)
	}
}

// blockingTransport answers every request with doc once release is closed.
type blockingTransport struct {
	calls   atomic.Int64
	release chan struct{}
	doc     string
}

func (b *blockingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	b.calls.Add(1)
	<-b.release
	return &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{}, Body: io.NopCloser(strings.NewReader(b.doc)), Request: r}, nil
}

// With the minimum interval disabled, only singleflight stands between
// concurrent misses and as many fetches: synctest.Wait proves every caller
// is waiting while exactly one fetch is in flight.
func TestRemoteSingleflight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bt := &blockingTransport{release: make(chan struct{}), doc: set(edJWK(t, "k1"))}
		r, err := jwks.NewRemote("https://issuer.invalid/jwks.json", jwks.Options{
			Client: &http.Client{Transport: bt}, MinRefreshInterval: -1, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		const n = 20
		got := make(chan error, n)
		for range n {
			go func() {
				_, err := r.Key(context.Background(), "k1")
				got <- err
			}()
		}
		synctest.Wait()
		if c := bt.calls.Load(); c != 1 {
			t.Fatalf("%d fetches in flight for %d concurrent callers, want 1", c, n)
		}
		close(bt.release)
		for range n {
			if err := <-got; err != nil {
				t.Fatal(err)
			}
		}
		if r.Fetches() != 1 {
			t.Fatalf("Fetches = %d", r.Fetches())
		}
	})
}

func TestRemoteFailureKeepsLastGoodSet(t *testing.T) {
	big := `{"keys":[],"pad":"` + strings.Repeat("x", 2<<20) + `"}`
	tests := []struct {
		name   string
		doc    string
		status int
		opts   jwks.Options
	}{
		{name: "server error", doc: "oops", status: 500},
		{name: "not found", doc: "", status: 404},
		{name: "not JSON", doc: "<html>", status: 200},
		{name: "over the size limit", doc: big, status: 200},
		{name: "over a configured size limit", doc: set(edJWK(t, "k1"), edJWK(t, "k2")), status: 200, opts: jwks.Options{MaxBytes: 200}},
		{name: "too many keys", doc: set(edJWK(t, "a"), edJWK(t, "b"), edJWK(t, "c")), status: 200, opts: jwks.Options{Parse: jwks.ParseOptions{MaxKeys: 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := newIssuer(t, set(edJWK(t, "k1")))
			c := newClock()
			var logs bytes.Buffer
			tt.opts.Logger = slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))
			r := newRemote(t, is.URL, c, tt.opts)
			k1 := mustKey(t, r, "k1")

			is.set(tt.doc, tt.status, "")
			c.Advance(5 * time.Minute) // the set is due
			if k := mustKey(t, r, "k1"); k.Fingerprint() != k1.Fingerprint() {
				t.Fatal("k1 changed")
			}
			if n := is.requests.Load(); n != 2 {
				t.Fatalf("%d fetches, want 2", n)
			}
			if err := r.Refresh(context.Background()); err == nil {
				t.Fatal("Refresh succeeded")
			}
			if !strings.Contains(logs.String(), "keeping the last good set") {
				t.Fatalf("failure not logged: %s", logs.String())
			}
			// Retried after the minimum interval, not on every call.
			c.Advance(5 * time.Second)
			mustKey(t, r, "k1")
			if n := is.requests.Load(); n != 3 {
				t.Fatalf("%d fetches, want 3", n)
			}
			is.set(set(edJWK(t, "k2")), 200, "")
			c.Advance(10 * time.Second)
			mustKey(t, r, "k2")
		})
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestRemoteNoSetYet(t *testing.T) {
	is := newIssuer(t, "")
	is.set("", 503, "")
	c := newClock()
	r := newRemote(t, is.URL, c, jwks.Options{})
	_, err := r.Key(context.Background(), "k1")
	if err == nil || errors.Is(err, jwks.ErrUnknownKey) || auth.Code(err) != auth.CodeInternal {
		t.Fatalf("no set: %v (code %s)", err, auth.Code(err))
	}
	r.Key(context.Background(), "k1")
	if n := is.requests.Load(); n != 1 {
		t.Fatalf("%d fetches within the minimum interval", n)
	}
	is.set(set(edJWK(t, "k1")), 200, "")
	c.Advance(10 * time.Second)
	mustKey(t, r, "k1")
}

func TestRemoteTimeout(t *testing.T) {
	is := newIssuer(t, set(edJWK(t, "k1")))
	is.gate = make(chan struct{}) // never opened: the client's timeout ends the request
	c := newClock()
	r := newRemote(t, is.URL, c, jwks.Options{Timeout: 50 * time.Millisecond})
	if err := r.Refresh(context.Background()); err == nil {
		t.Fatal("a request that never answers succeeded")
	}
}

func TestRemoteDoesNotFollowRedirects(t *testing.T) {
	target := newIssuer(t, set(edJWK(t, "k1")))
	redirector := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	t.Cleanup(redirector.Close)
	r := newRemote(t, redirector.URL, newClock(), jwks.Options{})
	if err := r.Refresh(context.Background()); err == nil {
		t.Fatal("a redirect was followed")
	}
	if n := target.requests.Load(); n != 0 {
		t.Fatalf("the redirect target got %d requests", n)
	}
}

func TestNewRemote(t *testing.T) {
	for _, u := range []string{"", "ftp://x/jwks", "/jwks.json", "https://"} {
		if _, err := jwks.NewRemote(u, jwks.Options{}); err == nil {
			t.Errorf("NewRemote(%q) accepted", u)
		}
	}
	if _, err := jwks.NewRemote("https://x/jwks", jwks.Options{Parse: jwks.ParseOptions{DefaultAlg: "none"}}); err == nil {
		t.Error("DefaultAlg none accepted")
	}
}
