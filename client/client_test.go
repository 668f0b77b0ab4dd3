package client_test

import (
	"context"
	"errors"
	"github.com/callsignhq/callsign/internal/testserver"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth/apptoken"
	"github.com/callsignhq/callsign/client"
	"github.com/callsignhq/callsign/httpapi"
)

type server struct {
	url    string
	issuer string
	app    *callsign.App
	secret string
}

// newServer starts a real callsign server on loopback with one app whose
// access tokens live ttl.
func newServer(t *testing.T, ttl time.Duration) *server {
	t.Helper()
	s := testserver.Start(t, httpapi.Config{})
	app, secret := s.NewApp(t, "test", func(a *callsign.App) { a.AccessTokenTTL = ttl })
	return &server{url: s.URL, issuer: testserver.Issuer, app: app, secret: secret}
}

func (s *server) verify(t *testing.T, tok string) *apptoken.Claims {
	t.Helper()
	resp, err := http.Get(s.url + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	keys, err := apptoken.ParseJWKS(b)
	if err != nil {
		t.Fatal(err)
	}
	c, err := apptoken.NewVerifier(keys, s.issuer, nil).Verify(tok)
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	return c
}

// countingClient counts the upgrades it sends.
func countingClient(n *atomic.Int32) *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		n.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestUpgradeSource(t *testing.T) {
	s := newServer(t, 10*time.Minute)
	tests := []struct {
		name     string
		secret   string
		user     string
		wantUser string
	}{
		{"anonymous", "", "", ""},
		{"bound to a verified user", s.secret, "alice", "alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			now := time.Now()
			src := &client.UpgradeSource{Server: s.url, PublicToken: s.app.PublicToken, SecretToken: tt.secret, UserID: tt.user,
				HTTPClient: countingClient(&n), Now: func() time.Time { return now }}
			tok, err := src.Token(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if c := s.verify(t, tok); c.UserID != tt.wantUser || c.AppID != s.app.ID {
				t.Fatalf("claims %+v", c)
			}
			again, _ := src.Token(context.Background())
			if again != tok || n.Load() != 1 {
				t.Fatalf("second Token upgraded again (%d upgrades)", n.Load())
			}
			now = now.Add(9*time.Minute + time.Second) // within RefreshBefore (1 min) of expiry
			fresh, err := src.Token(context.Background())
			if err != nil || fresh == tok || n.Load() != 2 {
				t.Fatalf("no refresh before expiry: %v, %d upgrades", err, n.Load())
			}
		})
	}
}

func TestUpgradeSourceErrors(t *testing.T) {
	s := newServer(t, 0)
	tests := []struct {
		name string
		src  *client.UpgradeSource
		code string
	}{
		{"unknown public token", &client.UpgradeSource{Server: s.url, PublicToken: callsign.GenerateToken(callsign.TokenPublic)}, "unauthorized"},
		{"wrong secret", &client.UpgradeSource{Server: s.url, PublicToken: s.app.PublicToken, SecretToken: callsign.GenerateToken(callsign.TokenSecret), UserID: "u"}, "unauthorized"},
		{"bad user id", &client.UpgradeSource{Server: s.url, PublicToken: s.app.PublicToken, SecretToken: s.secret, UserID: "a\nb"}, "invalid_user_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.src.Token(context.Background())
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Code != tt.code {
				t.Fatalf("Token = %v, want code %s", err, tt.code)
			}
		})
	}
	if _, err := (&client.UpgradeSource{Server: s.url, PublicToken: s.app.PublicToken, UserID: "u"}).Token(context.Background()); err == nil {
		t.Fatal("a user id without a secret was sent")
	}
}

// BearerTransport sends the token, and after a 401 upgrades again and
// retries once, replaying the body.
func TestBearerTransportRetriesOnce(t *testing.T) {
	s := newServer(t, 0)
	var calls atomic.Int32
	var bodies []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.verify(t, tok)
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusUnauthorized) // as if the token had been refused
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer api.Close()
	src := &client.UpgradeSource{Server: s.url, PublicToken: s.app.PublicToken}
	hc := &http.Client{Transport: &client.BearerTransport{Source: src}}
	req, _ := http.NewRequest("POST", api.URL+"/events", strings.NewReader("payload"))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || calls.Load() != 2 || bodies[1] != "payload" {
		t.Fatalf("status %d after %d calls, bodies %q", resp.StatusCode, calls.Load(), bodies)
	}
	if req.Header.Get("Authorization") != "" {
		t.Fatal("the caller's request was modified")
	}
}

func ExampleUpgradeSource() {
	// A backend that has authenticated its user "alice" gets access tokens
	// bound to her, refreshed before they expire, on every request.
	src := &client.UpgradeSource{
		Server:      "http://127.0.0.1:8080",
		PublicToken: "cs_pub_...",
		SecretToken: "cs_sec_...",
		UserID:      "alice",
	}
	hc := &http.Client{Transport: &client.BearerTransport{Source: src}}
	_ = hc // hc.Post("https://api.example.com/notes", "application/json", body)
}
