package reqtoken_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/auth/reqtoken"
	"github.com/callsignhq/callsign/replay"
)

// echoed is what the test server answers: the Principal and what the
// handler read of the request.
type echoed struct {
	Scheme    string         `json:"scheme"`
	KeyID     string         `json:"key_id"`
	UserID    string         `json:"user_id"`
	Scopes    []string       `json:"scopes"`
	ExpiresAt time.Time      `json:"expires_at"`
	Claims    map[string]any `json:"claims"`
	RequestID string         `json:"request_id"`
	Method    string         `json:"method"`
	URI       string         `json:"uri"`
	Body      string         `json:"body"`
	Error     *struct {
		Code string `json:"code"`
	} `json:"error"`
}

// roundTripFunc lets a test stand between the signer and the network.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// server runs the auth middleware with a request-token Authenticator in
// front of a handler that echoes the Principal and the body, on loopback.
// Refusals are collected with their precise codes.
func server(t *testing.T, now time.Time, maxBody int64) (*httptest.Server, func() []string) {
	t.Helper()
	v := newVerifier(t, func(o *reqtoken.Options) {
		o.Now, o.MaxBodyBytes = at(now), maxBody
		o.Sessions = sessions(map[string]reqtoken.Session{
			sid:    {UserID: uid, PublicKey: pub, Scopes: []string{"FULL"}},
			"read": {UserID: uid, PublicKey: pub, Scopes: []string{"READ"}},
		})
	})
	var mu sync.Mutex
	var codes []string
	mw, err := auth.New(auth.Options{
		Authenticators: []auth.Authenticator{reqtoken.NewAuthenticator(v)},
		Logger:         slog.New(slog.DiscardHandler),
		OnFailure: func(r *http.Request, p *callsign.Principal, err error) {
			mu.Lock()
			defer mu.Unlock()
			codes = append(codes, auth.Code(err)+" key="+p.KeyID)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mw.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := callsign.PrincipalFrom(r.Context())
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		json.NewEncoder(w).Encode(echoed{Scheme: string(p.Scheme), KeyID: p.KeyID, UserID: p.UserID, Scopes: p.Scopes,
			ExpiresAt: p.ExpiresAt, Claims: p.Claims, RequestID: p.RequestID, Method: r.Method, URI: r.RequestURI, Body: string(b)})
	})))
	t.Cleanup(srv.Close)
	return srv, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), codes...) }
}

// TestRoundTrip: a client signing with Transport, over real HTTP on
// loopback, through the auth middleware, to a handler that still reads the
// whole body.
func TestRoundTrip(t *testing.T) {
	srv, failures := server(t, t0, 64)
	tests := []struct {
		name       string
		method     string
		path       string // request-target, appended to the server's URL
		body       string
		sid        string
		reqID      string
		tamper     func(r *http.Request) // runs after signing, before sending
		wantStatus int
		wantCode   string // the code the client sees; precise codes in failures
	}{
		{name: "GET", method: "GET", path: "/v1/things", wantStatus: 200},
		{name: "POST with body", method: "POST", path: "/v1/transfers", body: `{"amount":"1"}`, wantStatus: 200},
		{name: "query kept verbatim", method: "GET", path: "/v1/things?b=2&a=1&a=0&q=%2F%20x&empty=", wantStatus: 200},
		{name: "escaped path", method: "GET", path: "/v1/caf%C3%A9/a%2Fb", wantStatus: 200},
		{name: "empty query", method: "GET", path: "/v1/things?", wantStatus: 200},
		{name: "client request id kept", method: "DELETE", path: "/v1/things/1", reqID: "req-123", wantStatus: 200},
		{name: "scp FULL from a READ session", method: "GET", path: "/v1/things", sid: "read", wantStatus: 403, wantCode: "insufficient_scope"},
		{name: "body changed after signing", method: "POST", path: "/v1/transfers", body: `{"amount":"1"}`, wantStatus: 401, wantCode: "body_mismatch",
			tamper: func(r *http.Request) {
				b := []byte(`{"amount":"9"}`)
				r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
			}},
		{name: "query changed after signing", method: "GET", path: "/v1/things?limit=1", wantStatus: 401, wantCode: "body_mismatch",
			tamper: func(r *http.Request) { r.URL.RawQuery = "limit=1000" }},
		{name: "method changed after signing", method: "GET", path: "/v1/things", wantStatus: 401, wantCode: "body_mismatch",
			tamper: func(r *http.Request) { r.Method = "DELETE" }},
		{name: "unknown session answers as a bad signature", method: "GET", path: "/v1/things", sid: "nope", wantStatus: 401, wantCode: "bad_signature"},
		{name: "body over the limit", method: "POST", path: "/v1/upload", body: strings.Repeat("x", 65), wantStatus: 413, wantCode: "body_too_large"},
		{name: "no token", method: "GET", path: "/v1/things", wantStatus: 401, wantCode: "missing_credentials",
			tamper: func(r *http.Request) { r.Header.Del("Authorization") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.sid
			if s == "" {
				s = sid
			}
			base := srv.Client().Transport
			if tt.tamper != nil {
				inner := base
				base = roundTripFunc(func(r *http.Request) (*http.Response, error) { tt.tamper(r); return inner.RoundTrip(r) })
			}
			c := &http.Client{Transport: &reqtoken.Transport{Base: base, UserID: uid, SessionID: s, Key: key, Now: at(t0)}}
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.reqID != "" {
				req.Header.Set("X-Request-Id", tt.reqID)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got echoed
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if req.Header.Get("Authorization") != "" {
				t.Error("Transport changed the caller's request")
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d %+v, want %d", resp.StatusCode, got, tt.wantStatus)
			}
			if tt.wantCode != "" {
				if got.Error == nil || got.Error.Code != tt.wantCode {
					t.Fatalf("error %+v, want code %s (precise: %v)", got.Error, tt.wantCode, failures())
				}
				return
			}
			jti, _ := got.Claims["jti"].(string)
			if got.Scheme != "reqtoken" || got.KeyID != sid || got.UserID != uid || len(got.Scopes) != 1 || got.Scopes[0] != "FULL" ||
				!got.ExpiresAt.Equal(t0.Add(reqtoken.DefaultLifetime)) || jti == "" {
				t.Fatalf("principal %+v", got)
			}
			if got.Method != tt.method || got.URI != tt.path || got.Body != tt.body {
				t.Fatalf("handler saw %s %s %q, want %s %s %q", got.Method, got.URI, got.Body, tt.method, tt.path, tt.body)
			}
			want := jti // the Transport sets X-Request-Id to the jti when the caller did not
			if tt.reqID != "" {
				want = tt.reqID
			}
			if got.RequestID != want {
				t.Fatalf("request id %q, want %q", got.RequestID, want)
			}
		})
	}
	if f := failures(); len(f) < 3 || !strings.HasPrefix(f[len(f)-3], "unknown_key key=nope") {
		t.Errorf("precise failures %v: want unknown_key with the sid as key id", f)
	}
}

// A token captured on the wire is refused the second time.
func TestRoundTripReplay(t *testing.T) {
	srv, failures := server(t, t0, 0)
	var captured *http.Request
	c := &http.Client{Transport: &reqtoken.Transport{UserID: uid, SessionID: sid, Key: key, Now: at(t0),
		Base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			captured = r.Clone(r.Context())
			return srv.Client().Transport.RoundTrip(r)
		})}}
	resp, err := c.Post(srv.URL+"/v1/transfers", "application/json", strings.NewReader(`{"amount":"1"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("first: status %d", resp.StatusCode)
	}
	captured.Body, _ = captured.GetBody()
	resp, err = srv.Client().Transport.RoundTrip(captured)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || failures()[0] != "replayed key="+sid {
		t.Fatalf("replay: status %d, failures %v", resp.StatusCode, failures())
	}
	// A new request, signed anew, goes through.
	resp, err = c.Post(srv.URL+"/v1/transfers", "application/json", strings.NewReader(`{"amount":"1"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("third: status %d", resp.StatusCode)
	}
}

func TestDetect(t *testing.T) {
	a := reqtoken.NewAuthenticator(newVerifier(t, nil))
	tests := []struct {
		name, authz string
		want        bool
	}{
		{"request token", "Bearer " + sign(t, "GET", "/", ""), true},
		{"scheme in other case", "bearer " + sign(t, "GET", "/", ""), true},
		{"invalid but with sid and sig", "Bearer " + b64(`{"alg":"none"}`) + "." + b64(`{"sid":1,"sig":2}`) + ".", true},
		{"escaped member names", "Bearer " + b64(`{}`) + "." + b64(`{"\u0073id":"a","sig":"b"}`) + ".x", true},
		{"another JWT", "Bearer " + b64(stdHeader) + "." + b64(`{"sub":"u","iss":"x","sid":"a"}`) + ".x", false},
		{"sid and sig only as values", "Bearer " + b64(stdHeader) + "." + b64(`{"sub":"sid","aud":"sig"}`) + ".x", false},
		{"not a JWT", "Bearer abc", false},
		{"HMAC", "APIKey=k,Signature=s,Timestamp=t", false},
		{"none", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.authz != "" {
				r.Header.Set("Authorization", tt.authz)
			}
			if got := a.Detect(r); got != tt.want {
				t.Fatalf("Detect = %v, want %v", got, tt.want)
			}
		})
	}
	if a.Scheme() != callsign.SchemeRequestToken {
		t.Fatal("scheme")
	}
}

func TestNewOptions(t *testing.T) {
	ok := sessions(defaultSessions())
	store := replay.NewMemory(10, nil)
	tests := []struct {
		name string
		o    reqtoken.Options
		ok   bool
	}{
		{"minimal", reqtoken.Options{Sessions: ok, Replay: store}, true},
		{"no replay store", reqtoken.Options{Sessions: ok}, false},
		{"no sessions", reqtoken.Options{Replay: store}, false},
		{"negative MaxAge", reqtoken.Options{Sessions: ok, Replay: store, MaxAge: -1}, false},
		{"negative leeway", reqtoken.Options{Sessions: ok, Replay: store, Leeway: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := reqtoken.New(tt.o); (err == nil) != tt.ok {
				t.Fatalf("New: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
