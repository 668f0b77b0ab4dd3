package capture_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/auth/hmacsig"
	"github.com/callsignhq/callsign/auth/jwks"
	"github.com/callsignhq/callsign/auth/jwtbearer"
	"github.com/callsignhq/callsign/capture"
	"github.com/callsignhq/callsign/replay"
	"github.com/golang-jwt/jwt/v5"
)

var (
	hmacSecret = []byte("0123456789abcdef0123456789abcdef-hmac")
	jwtSecret  = []byte("0123456789abcdef0123456789abcdef-jwt")
	testNow    = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
)

// testAPI is seed 000's shape: protected routes behind the real auth
// middleware (HMAC signatures and JWT bearer), an open route whose API
// identifies its user itself, all behind the capture.
type testAPI struct {
	srv   *httptest.Server
	sink  *sink
	inner *http.ServeMux
}

func authenticators(t testing.TB) []auth.Authenticator {
	t.Helper()
	keys, err := hmacsig.StaticKeys(map[string]string{"key-1": string(hmacSecret)}, false)
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return testNow }
	hv, err := hmacsig.New(hmacsig.Options{Keys: keys, Replay: replay.NewMemory(0, now), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	jv, err := jwtbearer.New(jwtbearer.WithKey("k1", jwks.HS256, jwtSecret), jwtbearer.WithUserClaim("id"), jwtbearer.WithNow(now),
		jwtbearer.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	return []auth.Authenticator{hv, jv}
}

func notesMux() *http.ServeMux {
	inner := http.NewServeMux()
	inner.HandleFunc("GET /notes/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":%q}`, r.PathValue("id"))
	})
	inner.HandleFunc("POST /notes", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"bytes":%d}`, len(b))
	})
	return inner
}

func newTestAPI(t *testing.T, opts capture.Options) *testAPI {
	t.Helper()
	mw, err := auth.New(auth.Options{Authenticators: authenticators(t), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	inner := notesMux()
	top := http.NewServeMux()
	top.Handle("/", mw.Handler(capture.ReportPattern(inner)))
	top.HandleFunc("GET /open/profile", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "profile") })
	opts.Mux = inner // for refused calls, which never reach inner
	if opts.IdentifyUser == nil {
		opts.IdentifyUser = func(r *http.Request, _ capture.Response) string { return r.Header.Get("X-Session-User") }
	}
	s := newSink()
	srv := httptest.NewServer(capture.New(opts, s).Handler(top))
	t.Cleanup(srv.Close)
	return &testAPI{srv: srv, sink: s, inner: inner}
}

func jwtToken(t *testing.T, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(jwtSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hmacSign(t *testing.T, r *http.Request, key string, secret []byte, at time.Time) {
	t.Helper()
	s := &hmacsig.Signer{APIKey: key, Secret: secret, Now: func() time.Time { return at }}
	if _, err := s.Sign(r); err != nil {
		t.Fatal(err)
	}
}

// Every scheme and every provenance, and the failures with their precise
// codes, through the real auth middleware over loopback HTTP.
func TestCaptureFields(t *testing.T) {
	api := newTestAPI(t, capture.Options{})
	valid := jwt.MapClaims{"id": "user-42", "exp": testNow.Add(time.Hour).Unix()}
	expired := jwt.MapClaims{"id": "user-42", "exp": testNow.Add(-time.Hour).Unix()}
	tests := []struct {
		name    string
		method  string
		path    string
		body    string
		prepare func(t *testing.T, r *http.Request)
		repeat  bool // send twice, check the second call
		want    callsign.Event
	}{
		{"hmac verified", "GET", "/notes/42", "", func(t *testing.T, r *http.Request) { hmacSign(t, r, "key-1", hmacSecret, testNow) }, false,
			callsign.Event{Status: 200, Route: "GET /notes/{id}", Scheme: callsign.SchemeHMAC, UserID: "key-1", KeyID: "key-1"}},
		{"hmac unknown key", "GET", "/notes/42", "", func(t *testing.T, r *http.Request) { hmacSign(t, r, "key-x", hmacSecret, testNow) }, false,
			callsign.Event{Status: 401, Route: "GET /notes/{id}", Scheme: callsign.SchemeHMAC, KeyID: "key-x", AuthError: auth.CodeUnknownKey}},
		{"hmac bad signature", "GET", "/notes/42", "", func(t *testing.T, r *http.Request) { hmacSign(t, r, "key-1", jwtSecret, testNow) }, false,
			callsign.Event{Status: 401, Route: "GET /notes/{id}", Scheme: callsign.SchemeHMAC, KeyID: "key-1", AuthError: auth.CodeBadSignature}},
		{"hmac expired", "GET", "/notes/42", "", func(t *testing.T, r *http.Request) { hmacSign(t, r, "key-1", hmacSecret, testNow.Add(-time.Hour)) }, false,
			callsign.Event{Status: 401, Route: "GET /notes/{id}", Scheme: callsign.SchemeHMAC, KeyID: "key-1", AuthError: auth.CodeExpired}},
		{"hmac replayed", "GET", "/notes/7", "", func(t *testing.T, r *http.Request) { hmacSign(t, r, "key-1", hmacSecret, testNow) }, true,
			callsign.Event{Status: 401, Route: "GET /notes/{id}", Scheme: callsign.SchemeHMAC, KeyID: "key-1", AuthError: auth.CodeReplayed}},
		{"jwt verified", "GET", "/notes/42", "", func(t *testing.T, r *http.Request) { r.Header.Set("Authorization", "Bearer "+jwtToken(t, "k1", valid)) }, false,
			callsign.Event{Status: 200, Route: "GET /notes/{id}", Scheme: callsign.SchemeJWT, UserID: "user-42", KeyID: "k1"}},
		{"jwt verified and client-asserted", "GET", "/notes/42", "", func(t *testing.T, r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+jwtToken(t, "k1", valid))
			r.Header.Set("X-Client-User-Id", "bob")
		}, false, callsign.Event{Status: 200, Route: "GET /notes/{id}", Scheme: callsign.SchemeJWT, UserID: "user-42", ClientUserID: "bob", KeyID: "k1"}},
		{"jwt with a body", "POST", "/notes", "hello world", func(t *testing.T, r *http.Request) { r.Header.Set("Authorization", "Bearer "+jwtToken(t, "k1", valid)) }, false,
			callsign.Event{Status: 201, Route: "POST /notes", Scheme: callsign.SchemeJWT, UserID: "user-42", KeyID: "k1", RequestBytes: 11}},
		{"jwt expired: the user is not recorded", "GET", "/notes/42", "", func(t *testing.T, r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+jwtToken(t, "k1", expired))
		}, false,
			callsign.Event{Status: 401, Route: "GET /notes/{id}", Scheme: callsign.SchemeJWT, KeyID: "k1", AuthError: auth.CodeExpired}},
		{"jwt unknown kid", "GET", "/notes/42", "", func(t *testing.T, r *http.Request) { r.Header.Set("Authorization", "Bearer "+jwtToken(t, "k9", valid)) }, false,
			callsign.Event{Status: 401, Route: "GET /notes/{id}", Scheme: callsign.SchemeJWT, KeyID: "k9", AuthError: auth.CodeUnknownKey}},
		{"no credentials", "GET", "/notes/42", "", func(t *testing.T, r *http.Request) {}, false,
			callsign.Event{Status: 401, Route: "GET /notes/{id}", AuthError: auth.CodeMissing}},
		{"malformed credentials", "GET", "/notes/42", "", func(t *testing.T, r *http.Request) { r.Header.Set("Authorization", "Basic dTpw") }, false,
			callsign.Event{Status: 401, Route: "GET /notes/{id}", AuthError: auth.CodeMalformed}},
		{"API-asserted user", "GET", "/open/profile", "", func(t *testing.T, r *http.Request) { r.Header.Set("X-Session-User", "carol") }, false,
			callsign.Event{Status: 200, Route: "GET /open/profile", APIUserID: "carol"}},
		{"API-asserted and client-asserted, no auth middleware", "GET", "/open/profile", "", func(t *testing.T, r *http.Request) {
			r.Header.Set("X-Session-User", "carol")
			r.Header.Set("X-Client-User-Id", "dave")
		}, false, callsign.Event{Status: 200, Route: "GET /open/profile", APIUserID: "carol", ClientUserID: "dave"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp *http.Response
			var respBody []byte
			before := time.Now()
			for range 1 + btoi(tt.repeat) {
				req, _ := http.NewRequest(tt.method, api.srv.URL+tt.path, strings.NewReader(tt.body))
				if tt.body == "" {
					req.Body = nil
				}
				req.Header.Set("User-Agent", "capture-test/1")
				tt.prepare(t, req)
				var err error
				resp, err = http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				respBody, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				if tt.repeat && resp.StatusCode == 200 {
					api.sink.next(t) // the first call's event
				}
			}
			e := api.sink.next(t)
			after := time.Now()
			got := callsign.Event{Status: e.Status, Route: e.Route, Scheme: e.Scheme, UserID: e.UserID, APIUserID: e.APIUserID,
				ClientUserID: e.ClientUserID, KeyID: e.KeyID, AuthError: e.AuthError, RequestBytes: e.RequestBytes}
			if got.Status != resp.StatusCode {
				t.Errorf("event status %d, response %d", got.Status, resp.StatusCode)
			}
			if !equalEvents(got, tt.want) {
				t.Errorf("event\n got %+v\nwant %+v", got, tt.want)
			}
			if len(e.ID) != 22 || strings.Trim(e.ID, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != "" {
				t.Errorf("id %q", e.ID)
			}
			if e.Method != tt.method || e.URI != tt.path || e.UserAgent != "capture-test/1" || e.RemoteIP != "127.0.0.0" {
				t.Errorf("method %q uri %q ua %q ip %q", e.Method, e.URI, e.UserAgent, e.RemoteIP)
			}
			if e.ResponseBytes != int64(len(respBody)) {
				t.Errorf("response bytes %d, body %d", e.ResponseBytes, len(respBody))
			}
			if e.Time.Before(before.Add(-time.Millisecond)) || e.Time.After(after) || e.Latency < 0 || e.Latency > after.Sub(before) {
				t.Errorf("time %v latency %v, call in [%v, %v]", e.Time, e.Latency, before, after)
			}
			if id := resp.Header.Get("X-Request-Id"); id != "" && e.RequestID != id {
				t.Errorf("request id %q, response's %q", e.RequestID, id)
			}
			if e.Weight != 0 {
				t.Errorf("weight %v without sampling", e.Weight)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func equalEvents(a, b callsign.Event) bool {
	return a.Status == b.Status && a.Route == b.Route && a.Scheme == b.Scheme && a.UserID == b.UserID && a.APIUserID == b.APIUserID &&
		a.ClientUserID == b.ClientUserID && a.KeyID == b.KeyID && a.AuthError == b.AuthError && a.RequestBytes == b.RequestBytes
}

// Refusals the auth middleware reports and then serves anyway, or refuses
// with a verified principal.
func TestCaptureAuthVariants(t *testing.T) {
	valid := jwt.MapClaims{"id": "user-42", "exp": testNow.Add(time.Hour).Unix()}
	expired := jwt.MapClaims{"id": "user-42", "exp": testNow.Add(-time.Hour).Unix()}
	tests := []struct {
		name   string
		opts   []auth.Option
		claims jwt.MapClaims
		want   callsign.Event
	}{
		{"anonymous on invalid keeps the failure code", []auth.Option{auth.WithAnonymousOnInvalid()}, expired,
			callsign.Event{Status: 200, Scheme: callsign.SchemeJWT, KeyID: "k1", AuthError: auth.CodeExpired, ClientUserID: "bob"}},
		{"insufficient scope keeps the verified user", []auth.Option{auth.WithScopes("notes:write")}, valid,
			callsign.Event{Status: 403, Scheme: callsign.SchemeJWT, KeyID: "k1", UserID: "user-42", AuthError: auth.CodeInsufficientScope, ClientUserID: "bob"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mw, err := auth.New(auth.Options{Authenticators: authenticators(t), Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			s := newSink()
			h := capture.New(capture.Options{}, s).Handler(mw.With(tt.opts...).Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
			r := httptest.NewRequest("GET", "/x", nil)
			r.Header.Set("Authorization", "Bearer "+jwtToken(t, "k1", tt.claims))
			r.Header.Set("X-Client-User-Id", "bob")
			h.ServeHTTP(httptest.NewRecorder(), r)
			e := s.next(t)
			got := callsign.Event{Status: e.Status, Scheme: e.Scheme, UserID: e.UserID, ClientUserID: e.ClientUserID, KeyID: e.KeyID, AuthError: e.AuthError}
			tt.want.Route, got.Route = "", ""
			if !equalEvents(got, tt.want) {
				t.Errorf("event\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// copyRequest is middleware that serves a copy of the request, as the
// auth middleware does.
func copyRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { next.ServeHTTP(w, r.WithContext(r.Context())) })
}

func TestRoute(t *testing.T) {
	mux := notesMux()
	long := "/" + strings.Repeat("a", 300)
	tests := []struct {
		name  string
		opts  capture.Options
		chain func(h http.Handler) http.Handler
		path  string
		want  string
	}{
		{"mux wrapped directly: r.Pattern", capture.Options{}, func(h http.Handler) http.Handler { return h }, "/notes/42", "GET /notes/{id}"},
		{"behind middleware, nothing else: the path", capture.Options{}, copyRequest, "/notes/42", "/notes/42"},
		{"behind middleware with Mux", capture.Options{Mux: mux}, copyRequest, "/notes/42", "GET /notes/{id}"},
		{"behind middleware with ReportPattern", capture.Options{}, func(h http.Handler) http.Handler { return copyRequest(capture.ReportPattern(h)) }, "/notes/42", "GET /notes/{id}"},
		{"Route hook first", capture.Options{Mux: mux, Route: func(*http.Request) string { return "custom" }}, copyRequest, "/notes/42", "custom"},
		{"Route hook without an answer", capture.Options{Mux: mux, Route: func(*http.Request) string { return "" }}, copyRequest, "/notes/42", "GET /notes/{id}"},
		{"no pattern matches: the path", capture.Options{Mux: mux}, copyRequest, "/nowhere", "/nowhere"},
		{"long path cut", capture.Options{}, copyRequest, long, long[:callsign.MaxRouteLen]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSink()
			capture.New(tt.opts, s).Handler(tt.chain(mux)).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", tt.path, nil))
			if got := s.next(t).Route; got != tt.want {
				t.Errorf("route %q, want %q", got, tt.want)
			}
		})
	}
}

func TestQueryRedaction(t *testing.T) {
	longURI := "/s?page=" + strings.Repeat("9", 3000)
	tests := []struct {
		name string
		opts capture.Options
		uri  string
		want string
	}{
		{"default redacts every value", capture.Options{}, "/s?q=hello&token=abc&bare", "/s?q=REDACTED&token=REDACTED&REDACTED"},
		{"allow-list", capture.Options{QueryAllow: []string{"page", "Sort"}}, "/s?q=x&page=2&sort=asc&PAGE=3", "/s?q=REDACTED&page=2&sort=asc&PAGE=3"},
		{"allow-list on decoded names", capture.Options{QueryAllow: []string{"page"}}, "/s?pa%67e=2&pag%65x=1", "/s?pa%67e=2&pag%65x=REDACTED"},
		{"bare allowed name", capture.Options{QueryAllow: []string{"debug"}}, "/s?debug&sk_live_123", "/s?debug&REDACTED"},
		{"no query", capture.Options{}, "/s", "/s"},
		{"empty query", capture.Options{}, "/s?", "/s?"},
		{"deny-list", capture.Options{Query: capture.QueryRedactDenied, QueryDeny: []string{"ssn"}},
			"/s?q=hello&access_token=abc&X-Api-KEY=1&tok%65n=2&client_secret=s&user_ssn=1&page=2",
			"/s?q=hello&access_token=REDACTED&X-Api-KEY=REDACTED&tok%65n=REDACTED&client_secret=REDACTED&user_ssn=REDACTED&page=2"},
		{"drop", capture.Options{Query: capture.QueryDrop}, "/s?token=abc", "/s"},
		{"keep", capture.Options{Query: capture.QueryKeep}, "/s?token=abc", "/s?token=abc"},
		{"long URI cut", capture.Options{QueryAllow: []string{"page"}}, longURI, longURI[:callsign.MaxURILen]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSink()
			capture.New(tt.opts, s).Handler(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", tt.uri, nil))
			if got := s.next(t).URI; got != tt.want {
				t.Errorf("URI %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRemoteIP(t *testing.T) {
	tests := []struct {
		name   string
		opts   capture.Options
		remote string
		header string
		want   string
	}{
		{"truncated by default", capture.Options{}, "203.0.113.77:1234", "", "203.0.113.0"},
		{"full", capture.Options{RemoteIP: capture.IPFull}, "203.0.113.77:1234", "", "203.0.113.77"},
		{"off", capture.Options{RemoteIP: capture.IPOff}, "203.0.113.77:1234", "", ""},
		{"IPv6 truncated to /48", capture.Options{}, "[2001:db8:1:2::5]:443", "", "2001:db8:1::"},
		{"IPv6 zone dropped", capture.Options{RemoteIP: capture.IPFull}, "[fe80::1%eth0]:443", "", "fe80::1"},
		{"IPv4-mapped", capture.Options{}, "[::ffff:203.0.113.77]:1", "", "203.0.113.0"},
		{"proxy header: its last address", capture.Options{RemoteIPHeader: "X-Forwarded-For"}, "10.0.0.1:1", "1.1.1.1, 198.51.100.7", "198.51.100.0"},
		{"proxy header absent", capture.Options{RemoteIPHeader: "X-Forwarded-For"}, "10.0.0.1:1", "", "10.0.0.0"},
		{"header ignored unless configured", capture.Options{RemoteIP: capture.IPFull}, "10.0.0.1:1", "1.1.1.1", "10.0.0.1"},
		{"unparseable", capture.Options{}, "@unix", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSink()
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			if tt.header != "" {
				r.Header.Set("X-Forwarded-For", tt.header)
			}
			capture.New(tt.opts, s).Handler(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), r)
			if got := s.next(t).RemoteIP; got != tt.want {
				t.Errorf("IP %q, want %q", got, tt.want)
			}
		})
	}
}

// Credentials in headers and query strings never reach the server, even
// when the headers are asked for: the serialized batches are searched.
func TestSecretsNeverLeave(t *testing.T) {
	col := newCollector(t)
	sh := newShipper(t, col, &sleeps{}, nil)
	mw, err := auth.New(auth.Options{Authenticators: authenticators(t), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	inner := http.NewServeMux()
	inner.HandleFunc("GET /notes/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Set-Cookie", "sid=cookie-secret-2")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok")
	})
	c := capture.New(capture.Options{
		Headers:         []string{"Authorization", "Cookie", "X-Api-Key", "X-Acme-Signature", "Accept"},
		ResponseHeaders: []string{"Set-Cookie", "Content-Type"},
		QueryAllow:      []string{"page"},
	}, sh)
	srv := httptest.NewServer(c.Handler(mw.Handler(capture.ReportPattern(inner))))
	defer srv.Close()

	secrets := []string{"query-secret-1", "cookie-secret-1", "cookie-secret-2", "apikey-secret", "sig-secret"}
	req, _ := http.NewRequest("GET", srv.URL+"/notes/1?page=2&access_token=query-secret-1", nil)
	req.Header.Set("Cookie", "sid=cookie-secret-1")
	req.Header.Set("X-Api-Key", "apikey-secret")
	req.Header.Set("X-Acme-Signature", "sig-secret")
	req.Header.Set("Accept", "text/plain")
	hmacSign(t, req, "key-1", hmacSecret, testNow)
	_, sig, _ := strings.Cut(req.Header.Get("Authorization"), "Signature=")
	sig, _, _ = strings.Cut(sig, ",")
	secrets = append(secrets, sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if err := sh.Flush(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	body := string(col.allBodies())
	for _, s := range secrets {
		if strings.Contains(body, s) {
			t.Errorf("secret %q in the batch: %s", s, body)
		}
	}
	ev := col.stored()
	if len(ev) != 1 {
		t.Fatalf("%d events", len(ev))
	}
	md := ev[0].Metadata
	for k, want := range map[string]string{"req.authorization": capture.Redacted, "req.cookie": capture.Redacted, "req.x-api-key": capture.Redacted,
		"req.x-acme-signature": capture.Redacted, "req.accept": "text/plain", "resp.set-cookie": capture.Redacted, "resp.content-type": "text/plain"} {
		if md[k] != want {
			t.Errorf("metadata %s = %q, want %q", k, md[k], want)
		}
	}
	if ev[0].URI != "/notes/1?page=2&access_token=REDACTED" || ev[0].UserID != "key-1" {
		t.Errorf("event %+v", ev[0])
	}
}

func TestSkipMaskMetadata(t *testing.T) {
	s := newSink()
	c := capture.New(capture.Options{
		Skip: func(r *http.Request) bool { return r.URL.Path == "/healthz" },
		Mask: func(e *callsign.Event) {
			e.UserAgent = ""
			e.URI = strings.ReplaceAll(e.URI, "secret-path-token", "{token}")
		},
		IdentifyCompany: func(r *http.Request, resp capture.Response) string { return "acme" },
		Metadata: func(r *http.Request, resp capture.Response) map[string]string {
			md := map[string]string{"status_seen": fmt.Sprint(resp.Status), "plan": resp.Header.Get("X-Plan")}
			for i := range 40 {
				md[fmt.Sprintf("z%02d-%s", i, strings.Repeat("x", 300))] = strings.Repeat("v", 300)
			}
			return md
		},
		IdentifyUser: func(*http.Request, capture.Response) string { return "bad\nid" },
	}, s)
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Plan", "pro")
		w.WriteHeader(http.StatusAccepted)
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/healthz", nil))
	r := httptest.NewRequest("GET", "/reset/secret-path-token", nil)
	r.Header.Set("User-Agent", "ua")
	h.ServeHTTP(httptest.NewRecorder(), r)
	e := s.next(t)
	if e.URI != "/reset/{token}" || e.UserAgent != "" {
		t.Errorf("Mask not applied (or /healthz not skipped): %q %q", e.URI, e.UserAgent)
	}
	if e.CompanyID != "acme" || e.APIUserID != "" {
		t.Errorf("company %q, API user %q (an invalid id must not be recorded)", e.CompanyID, e.APIUserID)
	}
	if len(e.Metadata) != callsign.MaxMetadataEntries || e.Metadata["plan"] != "pro" || e.Metadata["status_seen"] != "202" {
		t.Errorf("metadata: %d entries, plan %q, status %q", len(e.Metadata), e.Metadata["plan"], e.Metadata["status_seen"])
	}
	for k, v := range e.Metadata {
		if len(k) > callsign.MaxMetadataLen || len(v) > callsign.MaxMetadataLen {
			t.Errorf("metadata entry over the limit: %d/%d bytes", len(k), len(v))
		}
	}
	select {
	case e := <-s.ch:
		t.Errorf("unexpected event %s", e.URI)
	default:
	}
}

func TestSampling(t *testing.T) {
	const n, rate = 4000, 0.25
	run := func(withIDs bool) []string {
		s := newSink()
		h := capture.New(capture.Options{SampleRate: rate}, s).Handler(http.NotFoundHandler())
		for i := range n {
			r := httptest.NewRequest("GET", fmt.Sprintf("/x?i=%d", i), nil)
			if withIDs {
				r.Header.Set("X-Request-Id", fmt.Sprintf("req-%d", i))
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
		}
		close(s.ch)
		var kept []string
		for e := range s.ch {
			if e.Weight != 1/rate {
				t.Fatalf("weight %v, want %v", e.Weight, 1/rate)
			}
			kept = append(kept, e.RequestID)
		}
		// Within 5 standard deviations of n·rate.
		if len(kept) < 850 || len(kept) > 1150 {
			t.Errorf("kept %d of %d at rate %v", len(kept), n, rate)
		}
		return kept
	}
	a, b := run(true), run(true)
	if !slices.Equal(a, b) {
		t.Error("sampling by request id is not deterministic")
	}
	run(false)
}

func TestBodyLogging(t *testing.T) {
	big := strings.Repeat("x", 10000)
	tests := []struct {
		name             string
		opts             capture.Options
		reqType, resType string
		wantReq, wantRes string
	}{
		{"off by default", capture.Options{}, "application/json", "application/json", "", ""},
		{"json logged", capture.Options{LogBodies: true}, "application/json; charset=utf-8", "application/json", `{"a":1}`, big[:capture.DefaultMaxBodyBytes]},
		{"other types not logged", capture.Options{LogBodies: true}, "application/octet-stream", "text/html", "", ""},
		{"wildcards and limit", capture.Options{LogBodies: true, BodyContentTypes: []string{"text/*"}, MaxBodyBytes: 5}, "text/csv", "text/html", `{"a":`, "xxxxx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSink()
			h := capture.New(tt.opts, s).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.ReadAll(r.Body)
				w.Header().Set("Content-Type", tt.resType)
				io.WriteString(w, big[:5000])
				w.Write([]byte(big[5000:]))
			}))
			r := httptest.NewRequest("POST", "/", strings.NewReader(`{"a":1}`))
			r.Header.Set("Content-Type", tt.reqType)
			h.ServeHTTP(httptest.NewRecorder(), r)
			e := s.next(t)
			if e.RequestBody != tt.wantReq || e.ResponseBody != tt.wantRes {
				t.Errorf("bodies %q / %d bytes, want %q / %d bytes", e.RequestBody, len(e.ResponseBody), tt.wantReq, len(tt.wantRes))
			}
			if e.RequestBytes != 7 || e.ResponseBytes != 10000 {
				t.Errorf("bytes %d/%d", e.RequestBytes, e.ResponseBytes)
			}
		})
	}
}

// A handler that writes, flushes and waits for the client to have read the
// first chunk before it writes the second: over real loopback HTTP, it only
// finishes if the capture lets the response stream.
func TestStreaming(t *testing.T) {
	s := newSink()
	clientGotFirst := make(chan struct{})
	h := capture.New(capture.Options{}, s).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		select {
		case <-clientGotFirst:
		case <-time.After(5 * time.Second):
			t.Error("the first chunk did not reach the client: the response does not stream")
			return
		}
		io.WriteString(w, "second\n")
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "first\n" {
		t.Fatalf("first chunk %q, %v", line, err)
	}
	close(clientGotFirst)
	if rest, _ := io.ReadAll(br); string(rest) != "second\n" {
		t.Fatalf("second chunk %q", rest)
	}
	if e := s.next(t); e.Status != 200 || e.ResponseBytes != 13 {
		t.Errorf("status %d, bytes %d", e.Status, e.ResponseBytes)
	}
}

// http.ResponseController reaches the server's writer through Unwrap.
func TestResponseController(t *testing.T) {
	s := newSink()
	errs := make(chan error, 4)
	h := capture.New(capture.Options{}, s).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		errs <- rc.SetReadDeadline(time.Now().Add(time.Minute))
		errs <- rc.SetWriteDeadline(time.Now().Add(time.Minute))
		errs <- rc.EnableFullDuplex()
		w.WriteHeader(http.StatusTeapot)
		errs <- rc.Flush()
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("ResponseController: %v", err)
		}
	}
	if e := s.next(t); e.Status != http.StatusTeapot {
		t.Errorf("status %d", e.Status)
	}

	// A writer that cannot flush or hijack says so.
	s2 := newSink()
	capture.New(capture.Options{}, s2).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, err := http.NewResponseController(w).Hijack(); !errors.Is(err, http.ErrNotSupported) {
			t.Errorf("Hijack on a recorder: %v", err)
		}
		if err := http.NewResponseController(w).SetWriteDeadline(time.Time{}); !errors.Is(err, http.ErrNotSupported) {
			t.Errorf("SetWriteDeadline on a recorder: %v", err)
		}
	})).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	s2.next(t)
}

// An upgraded connection: the handler hijacks it and speaks its protocol;
// the event records 101.
func TestHijack(t *testing.T) {
	s := newSink()
	h := capture.New(capture.Options{}, s).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo: " + line)
		brw.Flush()
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("%v %v", resp, err)
	}
	io.WriteString(conn, "hello\n")
	if line, _ := br.ReadString('\n'); line != "echo: hello\n" {
		t.Fatalf("got %q", line)
	}
	if e := s.next(t); e.Status != 101 || e.Route != "/ws" {
		t.Errorf("status %d route %q", e.Status, e.Route)
	}
}

func TestPanic(t *testing.T) {
	for _, v := range []any{"boom", http.ErrAbortHandler} {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			s := newSink()
			h := capture.New(capture.Options{}, s).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Before", "1")
				panic(v)
			}))
			func() {
				defer func() {
					if got := recover(); got != v {
						t.Errorf("recovered %v, want %v re-raised", got, v)
					}
				}()
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/p", nil))
			}()
			if e := s.next(t); e.Status != 500 || e.Route != "/p" {
				t.Errorf("status %d route %q", e.Status, e.Route)
			}
		})
	}
}

func TestStatusAndCounts(t *testing.T) {
	tests := []struct {
		name      string
		h         http.HandlerFunc
		status    int
		respBytes int64
	}{
		{"nothing written is a 200", func(w http.ResponseWriter, r *http.Request) {}, 200, 0},
		{"informational before the final status", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusNotFound)
		}, 404, 0},
		{"io.Copy through ReadFrom", func(w http.ResponseWriter, r *http.Request) { io.Copy(w, strings.NewReader("0123456789")) }, 200, 10},
		{"WriteString", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "abc") }, 200, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSink()
			srv := httptest.NewServer(capture.New(capture.Options{}, s).Handler(tt.h))
			defer srv.Close()
			resp, err := http.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if e := s.next(t); e.Status != tt.status || e.ResponseBytes != tt.respBytes || resp.StatusCode != tt.status {
				t.Errorf("event %d/%d bytes, response %d", e.Status, e.ResponseBytes, resp.StatusCode)
			}
		})
	}
}

func TestEventIDs(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for i := range 20000 {
		id := capture.NewEventID(testNow.Add(time.Duration(i/10) * time.Millisecond))
		if len(id) != 22 || seen[id] {
			t.Fatalf("id %q (len %d, seen %v)", id, len(id), seen[id])
		}
		seen[id] = true
		if i%10 == 0 && id[:9] <= prev {
			t.Fatalf("ids do not sort by time: %q after %q", id, prev)
		}
		prev = id[:9]
	}
}

// The capture must not pull a database driver into a customer's API.
func TestNoDatabaseDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, d := range strings.Fields(string(out)) {
		if d == "database/sql" || strings.HasPrefix(d, "modernc.org/sqlite") || strings.Contains(d, "pgx") {
			t.Errorf("capture depends on %s", d)
		}
	}
}

// Whatever a client sends (a path with control bytes, a Latin-1
// User-Agent, a crafted key id), the event is one the server accepts: valid
// UTF-8 without control characters, within the limits.
func TestFieldsAreWireSafe(t *testing.T) {
	s := newSink()
	h := capture.New(capture.Options{RemoteIP: capture.IPFull}, s).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// What the auth middleware reports for a refused credential.
		w.(callsign.AuthRecorder).RecordAuth(&callsign.Principal{Scheme: callsign.SchemeJWT, KeyID: "kid\n\x85" + strings.Repeat("k", 300)}, "unknown_key")
		w.WriteHeader(401)
	}))
	r := httptest.NewRequest("GET", "/a%0Ab%FF/"+strings.Repeat("%C3%A9", 200)+"?x=\xff", nil)
	r.Header.Set("User-Agent", "caf\xe9\tbrowser"+strings.Repeat("é", 400))
	h.ServeHTTP(httptest.NewRecorder(), r)
	e := s.next(t)
	for _, f := range []struct {
		name, v string
		max     int
	}{{"route", e.Route, callsign.MaxRouteLen}, {"uri", e.URI, callsign.MaxURILen}, {"user_agent", e.UserAgent, callsign.MaxUserAgentLen}, {"key_id", e.KeyID, callsign.MaxUserIDLen}} {
		if len(f.v) == 0 || len(f.v) > f.max || !utf8.ValidString(f.v) || strings.ContainsFunc(f.v, unicode.IsControl) {
			t.Errorf("%s %q (%d bytes) would be refused", f.name, f.v, len(f.v))
		}
	}
	if e.AuthError != "unknown_key" || !strings.HasPrefix(e.KeyID, "kid\ufffd\ufffdkk") {
		t.Errorf("auth error %q, key id %q", e.AuthError, e.KeyID[:10])
	}
}

// Many concurrent calls through the middleware and a real Shipper: every
// event arrives once, with its own id (pooled writers and events are not
// shared between calls).
func TestConcurrentCapture(t *testing.T) {
	col := newCollector(t)
	sh := newShipper(t, col, &sleeps{}, func(o *capture.ShipperOptions) { o.FlushInterval = 5 * time.Millisecond })
	h := capture.New(capture.Options{QueryAllow: []string{"i"}}, sh).Handler(notesMux())
	srv := httptest.NewServer(h)
	defer srv.Close()
	const workers, calls = 8, 100
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				resp, err := http.Get(fmt.Sprintf("%s/notes/%d?i=%d", srv.URL, w, i))
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	if err := sh.Close(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	got := col.stored()
	seen := map[string]bool{}
	for _, e := range got {
		seen[e.URI] = true
		if e.Route != "GET /notes/{id}" || e.Status != 200 || e.ResponseBytes != int64(len(fmt.Sprintf(`{"id":%q}`, strings.TrimPrefix(strings.Split(e.URI, "?")[0], "/notes/")))) {
			t.Fatalf("event %+v", e)
		}
	}
	if len(got) != workers*calls || len(seen) != workers*calls {
		t.Errorf("%d events, %d distinct URIs, want %d", len(got), len(seen), workers*calls)
	}
}
