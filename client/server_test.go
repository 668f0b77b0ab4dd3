package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth/apptoken"
	"github.com/callsignhq/callsign/client"
)

const fakeSecret = "cs_sec_fake"

// fakeTokenServer speaks POST /v2/tokens/server as the contract says; the
// tokens it mints live ttl from now().
type fakeTokenServer struct {
	url string
	mu  sync.Mutex
	n   int
	now func() time.Time
	ttl time.Duration
	bad []string // contract violations seen
}

func newFakeTokenServer(t *testing.T, now func() time.Time, ttl time.Duration) *fakeTokenServer {
	t.Helper()
	f := &fakeTokenServer{now: now, ttl: ttl}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/v2/tokens/server" {
			http.NotFound(w, r)
			return
		}
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != "application/json" || string(b) != "{}" {
			f.mu.Lock()
			f.bad = append(f.bad, fmt.Sprintf("content type %q, body %q", r.Header.Get("Content-Type"), b))
			f.mu.Unlock()
		}
		if r.Header.Get("Authorization") != "Bearer "+fakeSecret {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"code":"unauthorized","message":"The secret token is not valid."}}`)
			return
		}
		f.mu.Lock()
		f.n++
		tok := fmt.Sprintf("srv-%d", f.n)
		f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]string{"appAccessToken": tok, "expiresAt": f.now().Add(f.ttl).UTC().Format(time.RFC3339)})
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func TestServerTokenSource(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	f := newFakeTokenServer(t, clock, 10*time.Minute)
	src := &client.ServerTokenSource{Server: f.url + "/", SecretToken: fakeSecret, Now: clock}
	ctx := context.Background()
	steps := []struct {
		name    string
		advance time.Duration
		inval   bool
		want    string
	}{
		{"first token", 0, false, "srv-1"},
		{"cached", 5 * time.Minute, false, "srv-1"},
		{"refreshed within a minute of expiry", 4*time.Minute + time.Second, false, "srv-2"},
		{"invalidated", 0, true, "srv-3"},
		{"cached again", time.Second, false, "srv-3"},
	}
	for _, st := range steps {
		now = now.Add(st.advance)
		if st.inval {
			src.Invalidate()
		}
		tok, err := src.Token(ctx)
		if err != nil || tok != st.want {
			t.Fatalf("%s: Token = %q, %v; want %q", st.name, tok, err, st.want)
		}
	}
	if len(f.bad) > 0 {
		t.Errorf("contract violations: %v", f.bad)
	}
}

func TestServerTokenSourceErrors(t *testing.T) {
	f := newFakeTokenServer(t, time.Now, time.Hour)
	tests := []struct {
		name string
		src  *client.ServerTokenSource
		code string
	}{
		{"wrong secret", &client.ServerTokenSource{Server: f.url, SecretToken: "cs_sec_wrong"}, "unauthorized"},
		{"no secret", &client.ServerTokenSource{Server: f.url}, ""},
		{"no server", &client.ServerTokenSource{SecretToken: fakeSecret}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.src.Token(context.Background())
			if err == nil {
				t.Fatal("no error")
			}
			var ae *client.APIError
			if tt.code != "" && (!errors.As(err, &ae) || ae.Code != tt.code) {
				t.Fatalf("Token = %v, want code %s", err, tt.code)
			}
			if strings.Contains(err.Error(), "cs_sec_") {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}

// BearerTransport invalidates a ServerTokenSource after a 401 and retries
// once with a new token.
func TestBearerTransportWithServerTokenSource(t *testing.T) {
	f := newFakeTokenServer(t, time.Now, time.Hour)
	var mu sync.Mutex
	var seen []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		n := len(seen)
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer api.Close()
	hc := &http.Client{Transport: &client.BearerTransport{Source: &client.ServerTokenSource{Server: f.url, SecretToken: fakeSecret}}}
	resp, err := hc.Post(api.URL, "application/json", strings.NewReader(`{"events":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || len(seen) != 2 || seen[0] != "Bearer srv-1" || seen[1] != "Bearer srv-2" {
		t.Fatalf("status %d, authorizations %v", resp.StatusCode, seen)
	}
}

// Against the real server: the token is an ingest:server token of the
// app, bound to no user.
func TestServerTokenSourceRealServer(t *testing.T) {
	s := newServer(t, 10*time.Minute)
	src := &client.ServerTokenSource{Server: s.url, SecretToken: s.secret}
	tok, err := src.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c := s.verify(t, tok); c.AppID != s.app.ID || c.Scope != apptoken.ScopeServer || c.UserID != "" {
		t.Fatalf("claims %+v", c)
	}
	_, err = (&client.ServerTokenSource{Server: s.url, SecretToken: callsign.GenerateToken(callsign.TokenSecret)}).Token(context.Background())
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Fatalf("unknown secret: %v", err)
	}
}

func ExampleServerTokenSource() {
	// A server-side shipper holds the app's secret token and sends events
	// with short-lived server ingest tokens, refreshed before they expire.
	src := &client.ServerTokenSource{Server: "http://127.0.0.1:8080", SecretToken: "cs_sec_..."}
	hc := &http.Client{Transport: &client.BearerTransport{Source: src}}
	_ = hc // or capture.ShipperOptions{Server: ..., Tokens: src}
}
