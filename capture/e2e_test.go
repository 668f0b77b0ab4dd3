package capture_test

import (
	"context"
	"encoding/json"
	"github.com/callsignhq/callsign/internal/testserver"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/capture"
	"github.com/callsignhq/callsign/client"
	"github.com/callsignhq/callsign/httpapi"
	"github.com/golang-jwt/jwt/v5"
)

// realServer is the callsign server (embedded store) on loopback with one
// app.
type realServer struct {
	url    string
	app    *callsign.App
	secret string
}

func newRealServer(t *testing.T) *realServer {
	t.Helper()
	s := testserver.Start(t, httpapi.Config{})
	app, secret := s.NewApp(t, "creditscore", nil)
	return &realServer{url: s.URL, app: app, secret: secret}
}

// events lists the app's events through GET /v2/events with the secret.
func (s *realServer) events(t *testing.T, query url.Values) []callsign.EventJSON {
	t.Helper()
	req, _ := http.NewRequest("GET", s.url+"/v2/events?"+query.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+s.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /v2/events: %d %s", resp.StatusCode, b)
	}
	var page struct {
		Events []callsign.EventJSON `json:"events"`
	}
	if err := json.Unmarshal(b, &page); err != nil {
		t.Fatal(err)
	}
	return page.Events
}

// Seed 000's API, captured and shipped to the real server with a server
// token: a JWT call is attributed to its verified user, a refused one
// carries its failure code, an API-asserted user keeps its provenance.
func TestEndToEndServerToken(t *testing.T) {
	cs := newRealServer(t)
	sh, err := capture.NewShipper(capture.ShipperOptions{Server: cs.url,
		Tokens: &client.ServerTokenSource{Server: cs.url, SecretToken: cs.secret}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mw, err := auth.New(auth.Options{Authenticators: authenticators(t), Logger: slog.New(slog.DiscardHandler), Mode: auth.Optional})
	if err != nil {
		t.Fatal(err)
	}
	inner := notesMux()
	c := capture.New(capture.Options{Mux: inner, Now: time.Now,
		IdentifyUser: func(r *http.Request, _ capture.Response) string { return r.Header.Get("X-Session-User") }}, sh)
	api := httptest.NewServer(c.Handler(mw.Handler(capture.ReportPattern(inner))))
	defer api.Close()

	call := func(tok, session string) {
		req, _ := http.NewRequest("GET", api.URL+"/notes/42?token=leak", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if session != "" {
			req.Header.Set("X-Session-User", session)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	call(jwtToken(t, "k1", jwt.MapClaims{"id": "user-42", "exp": testNow.Add(time.Hour).Unix()}), "")
	call(jwtToken(t, "k1", jwt.MapClaims{"id": "user-42", "exp": testNow.Add(-time.Hour).Unix()}), "")
	call("", "carol")
	if err := sh.Close(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if st := sh.Stats(); st.Sent != 3 || st.DroppedRejected != 0 {
		t.Fatalf("stats %+v", st)
	}
	byUser := cs.events(t, url.Values{"user_id": {"user-42"}})
	if len(byUser) != 1 || byUser[0].Scheme != "jwt" || byUser[0].Route != "GET /notes/{id}" || byUser[0].URI != "/notes/42?token=REDACTED" {
		t.Errorf("user-42's events: %+v", byUser)
	}
	all := cs.events(t, url.Values{})
	var refused, asserted int
	for _, e := range all {
		if e.AuthError == auth.CodeExpired && e.Status == 401 && e.UserID == "" && e.KeyID == "k1" {
			refused++
		}
		if e.APIUserID == "carol" && e.UserID == "" {
			asserted++
		}
	}
	if len(all) != 3 || refused != 1 || asserted != 1 {
		t.Errorf("events: %+v", all)
	}
}

// Every compression the Shipper offers is one the real server takes.
func TestEndToEndCompressions(t *testing.T) {
	cs := newRealServer(t)
	for i, c := range []capture.Compression{capture.CompressionSnappy, capture.CompressionGzip, capture.CompressionNone} {
		t.Run(string(c), func(t *testing.T) {
			sh, err := capture.NewShipper(capture.ShipperOptions{Server: cs.url, Compression: c, BatchSize: 7,
				Tokens: &client.ServerTokenSource{Server: cs.url, SecretToken: cs.secret}, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			user := "user-" + string(c)
			for j := range 20 {
				e := testEvent(i*100 + j)
				e.ID, e.Time, e.UserID = capture.NewEventID(time.Now()), time.Now(), user
				sh.Enqueue(e)
			}
			if err := sh.Close(ctxTimeout(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			if st := sh.Stats(); st.Sent != 20 || st.Batches != 3 {
				t.Fatalf("stats %+v", st)
			}
			if got := cs.events(t, url.Values{"user_id": {user}}); len(got) != 20 {
				t.Fatalf("%d of %s's events stored", len(got), user)
			}
		})
	}
}

// tokenFunc is a TokenSource the Shipper cannot recognise.
type tokenFunc func(context.Context) (string, error)

func (f tokenFunc) Token(ctx context.Context) (string, error) { return f(ctx) }

// A client holding only the public token ships with an anonymous access
// token: the server takes client-asserted ids and rejects verified and
// API-asserted ones. The Shipper knows an UpgradeSource without secret and
// clears those ids (the events still count); told nothing, it counts the
// rejections and does not retry them.
func TestEndToEndPublicToken(t *testing.T) {
	cs := newRealServer(t)
	up := &client.UpgradeSource{Server: cs.url, PublicToken: cs.app.PublicToken}
	tests := []struct {
		name           string
		tokens         client.TokenSource
		sent, rejected uint64
	}{
		{"UpgradeSource: ids cleared", up, 3, 0},
		{"opaque source: rejected", tokenFunc(up.Token), 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sl := &sleeps{}
			sh, err := capture.NewShipper(capture.ShipperOptions{Server: cs.url, Tokens: tt.tokens, Logger: slog.New(slog.DiscardHandler), Sleep: sl.sleep})
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			sh.Enqueue(&callsign.Event{Time: now, Method: "GET", Route: "/x", Status: 200, ClientUserID: "bob"})
			sh.Enqueue(&callsign.Event{Time: now, Method: "GET", Route: "/x", Status: 200, UserID: "mallory", ClientUserID: "bob"})
			sh.Enqueue(&callsign.Event{Time: now, Method: "GET", Route: "/x", Status: 200, APIUserID: "mallory", ClientUserID: "bob"})
			if err := sh.Close(ctxTimeout(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			if st := sh.Stats(); st.Sent != tt.sent || st.DroppedRejected != tt.rejected || st.Retries != 0 {
				t.Errorf("stats %+v", st)
			}
			if ev := cs.events(t, url.Values{"user_id": {"mallory"}}); len(ev) != 0 {
				t.Errorf("mallory's events: %+v", ev)
			}
		})
	}
	if ev := cs.events(t, url.Values{"client_user_id": {"bob"}}); len(ev) != 4 {
		t.Errorf("bob has %d events, want 4", len(ev))
	}
}
