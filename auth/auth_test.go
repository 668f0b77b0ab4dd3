package auth_test

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth"
)

// fake is an Authenticator for one scheme that detects "Authorization:
// <prefix> <verdict>" and answers with the verdict: "ok" accepts, anything
// else is the failure code.
type fake struct {
	scheme callsign.Scheme
	prefix string
	scopes []string
}

func (f fake) Scheme() callsign.Scheme { return f.scheme }
func (f fake) Detect(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Authorization"), f.prefix+" ")
}
func (f fake) Authenticate(r *http.Request) (*callsign.Principal, error) {
	verdict := strings.TrimPrefix(r.Header.Get("Authorization"), f.prefix+" ")
	if verdict == "ok" {
		return &callsign.Principal{Scheme: f.scheme, KeyID: "key-" + f.prefix, UserID: "user-" + f.prefix, Scopes: f.scopes}, nil
	}
	if verdict == "broken" {
		return nil, errors.New("locator: database down")
	}
	return &callsign.Principal{KeyID: "presented-key"}, auth.NewError(verdict, "fake: "+verdict)
}

type result struct {
	status int
	header http.Header
	code   string
	p      map[string]any
}

func serve(t *testing.T, mw *auth.Middleware, headers ...string) result {
	t.Helper()
	srv := httptest.NewServer(mw.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := callsign.PrincipalFrom(r.Context())
		if !ok {
			t.Error("no Principal in the context")
		}
		json.NewEncoder(w).Encode(map[string]any{"scheme": p.Scheme, "user": p.UserID, "client_user": p.ClientUserID,
			"key": p.KeyID, "request_id": p.RequestID, "app": p.AppID, "anonymous": p.Anonymous()})
	})))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	res := result{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode == 200 {
		json.Unmarshal(b, &res.p)
	} else {
		var e struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(b, &e); err != nil || e.Error.Message == "" {
			t.Fatalf("refusal not in the error shape: %q", b)
		}
		res.code = e.Error.Code
	}
	return res
}

func newMW(t *testing.T, o auth.Options) *auth.Middleware {
	t.Helper()
	if o.Authenticators == nil {
		o.Authenticators = []auth.Authenticator{fake{scheme: callsign.SchemeAppToken, prefix: "App"}, fake{scheme: callsign.SchemeHMAC, prefix: "HMAC", scopes: nil},
			fake{scheme: callsign.SchemeRequestToken, prefix: "Req", scopes: []string{"notes:read"}}, fake{scheme: callsign.SchemeJWT, prefix: "Bearer", scopes: []string{"FULL"}}}
	}
	o.Logger = slog.New(slog.DiscardHandler)
	mw, err := auth.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return mw
}

func TestMiddleware(t *testing.T) {
	required := newMW(t, auth.Options{AppID: "app_1"})
	optional := required.With(auth.WithOptional())
	lenient := required.With(auth.WithAnonymousOnInvalid())
	scoped := required.With(auth.WithScopes("notes:read"))
	onlyJWT := required.With(auth.WithSchemes(callsign.SchemeJWT))

	tests := []struct {
		name    string
		mw      *auth.Middleware
		headers []string
		status  int
		code    string
		scheme  string
		user    string
	}{
		{"required: each scheme", required, []string{"Authorization", "HMAC ok"}, 200, "", "hmac", "user-HMAC"},
		{"required: jwt", required, []string{"Authorization", "Bearer ok"}, 200, "", "jwt", "user-Bearer"},
		{"required: no credentials", required, nil, 401, "missing_credentials", "", ""},
		{"required: unknown scheme", required, []string{"Authorization", "Digest x"}, 401, "malformed", "", ""},
		{"required: two Authorization headers", required, []string{"Authorization", "HMAC ok", "Authorization", "Bearer ok"}, 401, "ambiguous", "", ""},
		{"bad signature", required, []string{"Authorization", "HMAC bad_signature"}, 401, "bad_signature", "", ""},
		{"unknown key answers as a bad signature", required, []string{"Authorization", "HMAC unknown_key"}, 401, "bad_signature", "", ""},
		{"expired", required, []string{"Authorization", "Bearer expired"}, 401, "expired", "", ""},
		{"replayed", required, []string{"Authorization", "Req replayed"}, 401, "replayed", "", ""},
		{"replay store full", required, []string{"Authorization", "Req replay_store_full"}, 503, "replay_store_full", "", ""},
		{"body too large", required, []string{"Authorization", "Req body_too_large"}, 413, "body_too_large", "", ""},
		{"host not allowed", required, []string{"Authorization", "HMAC host_not_allowed"}, 403, "host_not_allowed", "", ""},
		{"locator broken", required, []string{"Authorization", "HMAC broken"}, 500, "internal", "", ""},
		{"optional: no credentials is anonymous", optional, nil, 200, "", "", ""},
		{"optional: valid credentials identify", optional, []string{"Authorization", "Bearer ok"}, 200, "", "jwt", "user-Bearer"},
		{"optional: invalid credentials are refused", optional, []string{"Authorization", "Bearer expired"}, 401, "expired", "", ""},
		{"lenient: invalid credentials are anonymous", lenient, []string{"Authorization", "Bearer expired"}, 200, "", "", ""},
		{"lenient: internal errors still fail", lenient, []string{"Authorization", "HMAC broken"}, 500, "internal", "", ""},
		{"scopes: granted", scoped, []string{"Authorization", "Req ok"}, 200, "", "reqtoken", "user-Req"},
		{"scopes: FULL grants all", scoped, []string{"Authorization", "Bearer ok"}, 200, "", "jwt", "user-Bearer"},
		{"scopes: credentials without scopes", scoped, []string{"Authorization", "HMAC ok"}, 403, "insufficient_scope", "", ""},
		{"schemes: allowed", onlyJWT, []string{"Authorization", "Bearer ok"}, 200, "", "jwt", "user-Bearer"},
		{"schemes: another scheme", onlyJWT, []string{"Authorization", "HMAC ok"}, 401, "scheme_not_allowed", "", ""},
		{"client user id kept apart", required, []string{"Authorization", "HMAC ok", "X-Client-User-Id", "mallory"}, 200, "", "hmac", "user-HMAC"},
		{"client user id with a control character", required, []string{"Authorization", "HMAC ok", "X-Client-User-Id", "a\u0085b"}, 400, "invalid_client_user_id", "", ""},
		{"client user id over 256 bytes", required, []string{"Authorization", "HMAC ok", "X-Client-User-Id", strings.Repeat("u", 257)}, 400, "invalid_client_user_id", "", ""},
		{"two client user ids", required, []string{"Authorization", "HMAC ok", "X-Client-User-Id", "a", "X-Client-User-Id", "b"}, 400, "invalid_client_user_id", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := serve(t, tt.mw, tt.headers...)
			if r.status != tt.status || r.code != tt.code {
				t.Fatalf("= %d %q, want %d %q", r.status, r.code, tt.status, tt.code)
			}
			if r.header.Get("X-Request-Id") == "" {
				t.Fatal("no X-Request-Id")
			}
			if tt.status == 401 && !strings.Contains(r.header.Get("WWW-Authenticate"), "realm=") {
				t.Fatalf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
			}
			if tt.status != 200 {
				return
			}
			if r.p["scheme"] != tt.scheme || r.p["user"] != tt.user || r.p["app"] != "app_1" {
				t.Fatalf("principal = %v", r.p)
			}
			if (tt.scheme == "") != (r.p["anonymous"] == true) {
				t.Fatalf("anonymous = %v for scheme %q", r.p["anonymous"], tt.scheme)
			}
			// The client-asserted id never becomes the verified one.
			for i := 0; i+1 < len(tt.headers); i += 2 {
				if tt.headers[i] == "X-Client-User-Id" && (r.p["client_user"] != tt.headers[i+1] || r.p["user"] == tt.headers[i+1]) {
					t.Fatalf("client user id mixed up: %v", r.p)
				}
			}
		})
	}
}

func TestWWWAuthenticateNamesAcceptedSchemes(t *testing.T) {
	mw := newMW(t, auth.Options{})
	if got := serve(t, mw).header.Get("WWW-Authenticate"); got != `APIKey realm="api", Bearer realm="api"` && got != `Bearer realm="api", APIKey realm="api"` {
		t.Fatalf("WWW-Authenticate = %q", got)
	}
	if got := serve(t, mw.With(auth.WithSchemes(callsign.SchemeJWT))).header.Get("WWW-Authenticate"); got != `Bearer realm="api"` {
		t.Fatalf("JWT only: WWW-Authenticate = %q", got)
	}
}

func TestOmitRequestID(t *testing.T) {
	mw := newMW(t, auth.Options{OmitRequestID: true})
	r := serve(t, mw, "Authorization", "HMAC ok", "X-Request-Id", "req-7")
	if r.header.Get("X-Request-Id") != "" || r.p["request_id"] != "req-7" {
		t.Fatalf("sane client id: echoed %q, Principal has %v", r.header.Get("X-Request-Id"), r.p["request_id"])
	}
	r = serve(t, mw, "Authorization", "HMAC ok", "X-Request-Id", "bad id\"")
	if r.header.Get("X-Request-Id") != "" || r.p["request_id"] != "" {
		t.Fatalf("insane client id: echoed %q, Principal has %v", r.header.Get("X-Request-Id"), r.p["request_id"])
	}
	r = serve(t, mw, "Authorization", "HMAC ok")
	if r.header.Get("X-Request-Id") != "" || r.p["request_id"] != "" {
		t.Fatalf("no client id: echoed %q, Principal has %v", r.header.Get("X-Request-Id"), r.p["request_id"])
	}
}

func TestRequestID(t *testing.T) {
	mw := newMW(t, auth.Options{})
	r := serve(t, mw, "Authorization", "HMAC ok", "X-Request-Id", "req-7")
	if r.header.Get("X-Request-Id") != "req-7" || r.p["request_id"] != "req-7" {
		t.Fatalf("sane id not kept: %q %v", r.header.Get("X-Request-Id"), r.p["request_id"])
	}
	r = serve(t, mw, "Authorization", "HMAC ok", "X-Request-Id", "bad id\"")
	if got := r.header.Get("X-Request-Id"); got == "bad id\"" || !callsign.ValidRequestID(got) || r.p["request_id"] != got {
		t.Fatalf("insane id kept or not replaced: %q", got)
	}
	seen := map[string]bool{}
	for range 1000 {
		id := callsign.NewRequestID()
		if seen[id] || !callsign.ValidRequestID(id) {
			t.Fatalf("NewRequestID gave %q twice or invalid", id)
		}
		seen[id] = true
	}
}

// OnFailure sees the precise code (unknown_key) that the caller does not.
func TestOnFailure(t *testing.T) {
	var mu sync.Mutex
	var got []string
	mw := newMW(t, auth.Options{OnFailure: func(r *http.Request, p *callsign.Principal, err error) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, auth.Code(err)+"/"+string(p.Scheme)+"/"+p.KeyID+"/"+p.RequestID)
	}})
	serve(t, mw, "Authorization", "HMAC unknown_key", "X-Request-Id", "r1")
	serve(t, mw.With(auth.WithAnonymousOnInvalid()), "Authorization", "Bearer expired", "X-Request-Id", "r2")
	serve(t, mw, "Authorization", "HMAC ok", "X-Request-Id", "r3")
	want := []string{"unknown_key/hmac/presented-key/r1", "expired/jwt/presented-key/r2"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("OnFailure saw %v, want %v", got, want)
	}
}

func TestNewValidates(t *testing.T) {
	bad := []auth.Options{
		{},
		{Authenticators: []auth.Authenticator{nil}},
		{Authenticators: []auth.Authenticator{fake{scheme: "hmac", prefix: "A"}, fake{scheme: "hmac", prefix: "B"}}},
		{Authenticators: []auth.Authenticator{fake{scheme: "hmac", prefix: "A"}}, Schemes: []callsign.Scheme{callsign.SchemeJWT}},
	}
	for i, o := range bad {
		if _, err := auth.New(o); err == nil {
			t.Errorf("New(bad options %d) succeeded", i)
		}
	}
}

func TestReadBody(t *testing.T) {
	r := httptest.NewRequest("POST", "/", strings.NewReader("hello"))
	b, err := auth.ReadBody(r, 5)
	if err != nil || string(b) != "hello" {
		t.Fatalf("ReadBody = %q, %v", b, err)
	}
	again, _ := io.ReadAll(r.Body)
	if string(again) != "hello" {
		t.Fatalf("body not restored: %q", again)
	}
	r = httptest.NewRequest("POST", "/", strings.NewReader("hello!"))
	r.ContentLength = -1
	if _, err := auth.ReadBody(r, 5); !errors.Is(err, auth.ErrBodyTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}
}

func TestPeekJWT(t *testing.T) {
	h, p, ok := auth.PeekJWT("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig")
	if !ok || string(h) != `{"alg":"HS256"}` || string(p) != `{"sub":"x"}` {
		t.Fatalf("PeekJWT = %q %q %v", h, p, ok)
	}
	for _, bad := range []string{"", "a.b", "a", "!!.eyJ9.x", strings.Repeat("a", auth.MaxBearerLen+1)} {
		if _, _, ok := auth.PeekJWT(bad); ok {
			t.Errorf("PeekJWT(%q) ok", bad)
		}
	}
}

// recorder is a ResponseWriter wrapper implementing callsign.AuthRecorder,
// as the capture middleware does.
type recorder struct {
	http.ResponseWriter
	p    *callsign.Principal
	code string
	n    int
}

func (r *recorder) RecordAuth(p *callsign.Principal, code string) { r.p, r.code, r.n = p, code, r.n+1 }

type wrapped struct{ http.ResponseWriter }

func (w wrapped) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestAuthRecorder(t *testing.T) {
	mw := newMW(t, auth.Options{})
	h := mw.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	tests := []struct {
		name, authz, code, user string
		calls                   int
	}{
		{"success", "HMAC ok", "", "user-HMAC", 1},
		{"failure with the precise code", "HMAC unknown_key", "unknown_key", "", 1},
		{"no credentials", "", "missing_credentials", "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{ResponseWriter: httptest.NewRecorder()}
			r := httptest.NewRequest("GET", "/", nil)
			if tt.authz != "" {
				r.Header.Set("Authorization", tt.authz)
			}
			h.ServeHTTP(wrapped{rec}, r) // found through Unwrap
			if rec.n != tt.calls || rec.code != tt.code || rec.p == nil || rec.p.UserID != tt.user {
				t.Fatalf("recorded %d× %+v %q", rec.n, rec.p, rec.code)
			}
		})
	}
}
