package apptoken_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"github.com/callsignhq/callsign/internal/testserver"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/auth/apptoken"
	"github.com/callsignhq/callsign/auth/jwks"
	"github.com/callsignhq/callsign/httpapi"
	"github.com/golang-jwt/jwt/v5"
)

func edKey(t testing.TB, k *callsign.SigningKey) *jwks.Key {
	t.Helper()
	j, err := jwks.NewKey(k.ID, jwks.EdDSA, k.Public)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func keySet(t testing.TB, keys ...*jwks.Key) *jwks.Set {
	t.Helper()
	s, err := jwks.NewSet(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newAuthenticator(t testing.TB, keys jwks.Source, now func() time.Time, opts ...apptoken.AuthOption) *apptoken.Authenticator {
	t.Helper()
	a, err := apptoken.NewAuthenticator(keys, issuer, append([]apptoken.AuthOption{apptoken.WithNow(now)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestAuthenticatorCodes is the attack table of the Authenticator, each row
// with its exact code.
func TestAuthenticatorCodes(t *testing.T) {
	k := newKey(t, "k1")
	other := newKey(t, "k2")
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecJWK, err := jwks.NewKey("es", jwks.ES256, &ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	a := newAuthenticator(t, keySet(t, edKey(t, k), ecJWK), at(t0))
	good := func() (map[string]any, map[string]any) {
		return map[string]any{"alg": "EdDSA", "typ": apptoken.Type, "kid": "k1"},
			map[string]any{"iss": issuer, "aud": []string{apptoken.Audience}, "iat": t0.Unix(), "exp": t0.Add(time.Hour).Unix(),
				"jti": "j1", "app_id": "app_1", "scope": "ingest", "user_id": "alice"}
	}
	ed := func(key *callsign.SigningKey) func([]byte) []byte {
		return func(b []byte) []byte { return ed25519.Sign(key.Private, b) }
	}
	mod := func(fh func(h map[string]any), fc func(c map[string]any), signer func([]byte) []byte) string {
		h, c := good()
		if fh != nil {
			fh(h)
		}
		if fc != nil {
			fc(c)
		}
		return sign(h, c, signer)
	}
	rawTok := func(header, claims string, signer func([]byte) []byte) string {
		in := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(claims))
		return in + "." + base64.RawURLEncoding.EncodeToString(signer([]byte(in)))
	}
	valid := mod(nil, nil, ed(k))
	p, err := a.Verify(context.Background(), valid)
	if err != nil {
		t.Fatal(err)
	}
	want := callsign.Principal{AppID: "app_1", Scheme: callsign.SchemeAppToken, KeyID: "k1", UserID: "alice", Scopes: []string{"ingest"},
		ExpiresAt: t0.Add(time.Hour), Claims: map[string]any{"jti": "j1"}}
	if p.AppID != want.AppID || p.Scheme != want.Scheme || p.KeyID != want.KeyID || p.UserID != want.UserID || !slices.Equal(p.Scopes, want.Scopes) ||
		!p.ExpiresAt.Equal(want.ExpiresAt) || p.Claims["jti"] != "j1" || len(p.Claims) != 1 {
		t.Fatalf("principal = %+v, want %+v", p, want)
	}
	hsPub := func(b []byte) []byte { s, _ := jwt.SigningMethodHS256.Sign(string(b), []byte(k.Public)); return s }
	_, goodClaims := good()
	claimsJSON, _ := json.Marshal(goodClaims)

	tests := []struct {
		name  string
		token string
		code  string
	}{
		{"alg none", mod(func(h map[string]any) { h["alg"] = "none" }, nil, func([]byte) []byte { return nil }), auth.CodeAlgNotAllowed},
		{"alg nOnE", mod(func(h map[string]any) { h["alg"] = "nOnE" }, nil, func([]byte) []byte { return nil }), auth.CodeAlgNotAllowed},
		{"HS256 with the public key as secret", mod(func(h map[string]any) { h["alg"] = "HS256" }, nil, hsPub), auth.CodeAlgNotAllowed},
		{"EdDSA token for an ES256 key", mod(func(h map[string]any) { h["kid"] = "es" }, nil, ed(k)), auth.CodeAlgNotAllowed},
		{"signed by an unpublished key under a known kid", mod(nil, nil, ed(other)), auth.CodeBadSignature},
		{"jwk header with the attacker's key", mod(func(h map[string]any) {
			h["kid"] = "k2"
			h["jwk"] = map[string]string{"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(other.Public)}
		}, nil, ed(other)), auth.CodeUnknownKey},
		{"unknown kid", mod(func(h map[string]any) { h["kid"] = "k9" }, nil, ed(k)), auth.CodeUnknownKey},
		{"kid with path characters", mod(func(h map[string]any) { h["kid"] = "../../etc/passwd" }, nil, ed(k)), auth.CodeUnknownKey},
		{"no kid", mod(func(h map[string]any) { delete(h, "kid") }, nil, ed(k)), auth.CodeUnknownKey},
		{"wrong typ", mod(func(h map[string]any) { h["typ"] = "JWT" }, nil, ed(k)), auth.CodeUnsupported},
		{"crit", mod(func(h map[string]any) { h["crit"] = []string{"exp"} }, nil, ed(k)), auth.CodeUnsupported},
		{"expired", mod(nil, func(c map[string]any) { c["exp"] = t0.Add(-time.Minute).Unix() }, ed(k)), auth.CodeExpired},
		{"iat in the future", mod(nil, func(c map[string]any) { c["iat"] = t0.Add(time.Hour).Unix() }, ed(k)), auth.CodeNotYetValid},
		{"nbf in the future", mod(nil, func(c map[string]any) { c["nbf"] = t0.Add(time.Hour).Unix() }, ed(k)), auth.CodeNotYetValid},
		{"no exp", mod(nil, func(c map[string]any) { delete(c, "exp") }, ed(k)), auth.CodeInvalidClaims},
		{"wrong issuer", mod(nil, func(c map[string]any) { c["iss"] = "https://evil.example" }, ed(k)), auth.CodeInvalidClaims},
		{"wrong audience", mod(nil, func(c map[string]any) { c["aud"] = "something-else" }, ed(k)), auth.CodeInvalidClaims},
		{"no app_id", mod(nil, func(c map[string]any) { delete(c, "app_id") }, ed(k)), auth.CodeInvalidClaims},
		{"wrong scope", mod(nil, func(c map[string]any) { c["scope"] = "admin" }, ed(k)), auth.CodeInvalidClaims},
		{"user_id with a control character", mod(nil, func(c map[string]any) { c["user_id"] = "alice\x1b[31m" }, ed(k)), auth.CodeInvalidClaims},
		{"user_id too long", mod(nil, func(c map[string]any) { c["user_id"] = strings.Repeat("u", callsign.MaxUserIDLen+1) }, ed(k)), auth.CodeInvalidClaims},
		{"duplicate user_id", rawTok(`{"alg":"EdDSA","typ":"callsign-at+jwt","kid":"k1"}`, strings.TrimSuffix(string(claimsJSON), "}")+`,"user_id":"admin"}`, ed(k)), auth.CodeMalformed},
		{"user_id and USER_ID (one struct field)", rawTok(`{"alg":"EdDSA","typ":"callsign-at+jwt","kid":"k1"}`, strings.TrimSuffix(string(claimsJSON), "}")+`,"USER_ID":"admin"}`, ed(k)), auth.CodeMalformed},
		{"duplicate typ", rawTok(`{"alg":"EdDSA","typ":"JWT","kid":"k1","typ":"callsign-at+jwt"}`, string(claimsJSON), ed(k)), auth.CodeMalformed},
		{"padded base64", strings.Replace(valid, ".", "=.", 1), auth.CodeMalformed},
		{"two segments", valid[:strings.LastIndexByte(valid, '.')], auth.CodeMalformed},
		{"oversized", valid + strings.Repeat("A", apptoken.MaxTokenLen), auth.CodeTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := a.Verify(context.Background(), tt.token)
			if got := auth.Code(err); got != tt.code {
				t.Fatalf("Verify = %+v, %v; code %q, want %q", p, err, got, tt.code)
			}
			if p == nil || p.Scheme != callsign.SchemeAppToken || p.UserID != "" || p.AppID != "" {
				t.Fatalf("partial principal = %+v", p)
			}
		})
	}
}

func TestAuthenticatorDetect(t *testing.T) {
	k := newKey(t, "k1")
	a := newAuthenticator(t, keySet(t, edKey(t, k)), at(t0))
	tok, _, _ := apptoken.Mint(k, issuer, "app_1", "", t0, time.Hour)
	bearer, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "a"}).SignedString([]byte("0123456789abcdef0123456789abcdef"))
	tests := []struct {
		name, header string
		want         bool
	}{
		{"app access token", "Bearer " + tok, true},
		// Detect remembers the header segments it accepted: the same
		// answers as without, the segment alone deciding.
		{"app access token again", "Bearer " + tok, true},
		{"its header segment alone", "Bearer " + strings.Split(tok, ".")[0], false},
		{"its header segment, other payload", "Bearer " + strings.Split(tok, ".")[0] + ".e30.x", true},
		{"another JWT", "Bearer " + bearer, false},
		{"opaque token", "Bearer cs_pub_0123456789abcdefghijklmnopqrstuv", false},
		{"not bearer", "APIKey " + tok, false},
		{"nothing", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/ingest", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			if got := a.Detect(r); got != tt.want {
				t.Fatalf("Detect = %v, want %v", got, tt.want)
			}
		})
	}
}

// A cached token is refused exactly when the full check refuses it: at exp
// plus the leeway, and once its key is gone.
func TestAuthenticatorCache(t *testing.T) {
	k := newKey(t, "k1")
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := func(d time.Time) { mu.Lock(); now = d; mu.Unlock() }
	src := &swappable{set: keySet(t, edKey(t, k))}
	a := newAuthenticator(t, src, clock)
	tok, exp, _ := apptoken.Mint(k, issuer, "app_1", "alice", t0, time.Hour)
	for range 3 {
		if _, err := a.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if hits, _ := a.CacheStats(); hits != 2 {
		t.Fatalf("%d cache hits, want 2", hits)
	}
	set(exp.Add(apptoken.DefaultLeeway - 1))
	if _, err := a.Verify(context.Background(), tok); err != nil {
		t.Fatalf("within the leeway: %v", err)
	}
	set(exp.Add(apptoken.DefaultLeeway))
	if _, err := a.Verify(context.Background(), tok); auth.Code(err) != auth.CodeExpired {
		t.Fatalf("at exp + leeway: %v", err)
	}
	set(t0)
	a.Verify(context.Background(), tok)
	src.swap(keySet(t)) // the key is unpublished
	if _, err := a.Verify(context.Background(), tok); auth.Code(err) != auth.CodeUnknownKey {
		t.Fatalf("key gone: %v", err)
	}
}

type swappable struct {
	mu  sync.Mutex
	set *jwks.Set
}

func (s *swappable) Key(ctx context.Context, kid string) (*jwks.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set.Key(ctx, kid)
}

func (s *swappable) swap(set *jwks.Set) { s.mu.Lock(); s.set = set; s.mu.Unlock() }

func TestNewAuthenticator(t *testing.T) {
	if _, err := apptoken.NewAuthenticator(nil, issuer); err == nil {
		t.Error("no key source accepted")
	}
	if _, err := apptoken.NewAuthenticator(keySet(t), ""); err == nil {
		t.Error("no issuer accepted")
	}
}

// callsignServer is a real callsign server on loopback over a real store.
type callsignServer struct {
	url, admin string
	api        *httpapi.Server
}

func startCallsign(t *testing.T) *callsignServer {
	t.Helper()
	s := testserver.Start(t, httpapi.Config{})
	return &callsignServer{url: s.URL, admin: s.Admin, api: s.API}
}

func (s *callsignServer) do(t *testing.T, method, path, body string, headers ...string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(method, s.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	return m
}

// End to end: a real callsign server mints app access tokens (upgrade),
// the API verifies them offline through the middleware, with the server's
// JWKS fetched over HTTP, and picks up a rotated key through the
// unknown-kid refresh.
func TestAuthenticatorAgainstServer(t *testing.T) {
	cs := startCallsign(t)
	app := cs.do(t, "POST", "/v2/apps", `{"name":"shop"}`, "Authorization", "Bearer "+cs.admin)
	appID, public, secret := app["id"].(string), app["public_token"].(string), app["secret_token"].(string)
	upgrade := func(userID string) string {
		t.Helper()
		if userID == "" {
			return cs.do(t, "POST", "/v2/tokens/upgrade", `{"public_token":"`+public+`"}`)["appAccessToken"].(string)
		}
		return cs.do(t, "POST", "/v2/tokens/upgrade", `{"public_token":"`+public+`","user_id":"`+userID+`"}`, "Authorization", "Bearer "+secret)["appAccessToken"].(string)
	}

	var mu sync.Mutex
	now := time.Now() // the server mints with the real clock
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	remote, err := jwks.NewRemote(cs.url+"/.well-known/jwks.json", jwks.Options{Now: clock, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	a := newAuthenticator(t, remote, clock)
	a2, _ := apptoken.NewAuthenticator(remote, cs.api.Issuer(), apptoken.WithNow(clock))
	mw, err := auth.New(auth.Options{Authenticators: []auth.Authenticator{a2}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ingest := httptest.NewServer(mw.With(auth.WithScopes("ingest")).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := callsign.PrincipalFrom(r.Context())
		json.NewEncoder(w).Encode(p)
	})))
	t.Cleanup(ingest.Close)
	call := func(tok string) (int, callsign.Principal, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", ingest.URL+"/ingest", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p callsign.Principal
		var e struct{ Error struct{ Code string } }
		raw, _ := io.ReadAll(resp.Body)
		json.Unmarshal(raw, &p)
		json.Unmarshal(raw, &e)
		return resp.StatusCode, p, e.Error.Code
	}

	bound, anon := upgrade("alice"), upgrade("")
	for _, c := range []struct{ tok, user string }{{bound, "alice"}, {anon, ""}} {
		status, p, code := call(c.tok)
		if status != 200 || p.AppID != appID || p.UserID != c.user || p.Scheme != callsign.SchemeAppToken || !slices.Equal(p.Scopes, []string{"ingest"}) ||
			p.KeyID == "" || p.Claims["jti"] == nil {
			t.Fatalf("user %q: %d %s %+v", c.user, status, code, p)
		}
	}
	// The Authenticator configured with the wrong issuer refuses them.
	if _, err := a.Verify(context.Background(), bound); auth.Code(err) != auth.CodeInvalidClaims {
		t.Fatalf("issuer %q: %v", issuer, err)
	}

	// Rotation: the new key signs; its first token arrives 1 s later.
	cs.do(t, "POST", "/v2/keys/rotate", "", "Authorization", "Bearer "+cs.admin)
	fresh := upgrade("bob")
	advance(time.Second)
	if status, _, code := call(fresh); status != 401 || code != auth.CodeBadSignature { // unknown_key, answered as bad_signature
		t.Fatalf("within the minimum refresh interval: %d %s", status, code)
	}
	advance(jwks.DefaultMinRefreshInterval)
	if status, p, code := call(fresh); status != 200 || p.UserID != "bob" {
		t.Fatalf("after the refresh: %d %s %+v", status, code, p)
	}
	// The retired key stays published: older tokens keep verifying.
	if status, _, code := call(bound); status != 200 {
		t.Fatalf("token of the retired key: %d %s", status, code)
	}
	if n := remote.Fetches(); n != 2 {
		t.Fatalf("%d JWKS fetches, want 2", n)
	}
}

// FuzzAuthenticatorVerify: never panics, refuses with a known code, and
// accepts only complete Principals; a second look (the cache) agrees.
func FuzzAuthenticatorVerify(f *testing.F) {
	k := newKey(f, "k1")
	for _, user := range []string{"", "alice"} {
		tok, _, _ := apptoken.Mint(k, issuer, "app_1", user, t0, time.Hour)
		f.Add(tok)
	}
	f.Add("eyJhbGciOiJub25lIiwidHlwIjoiY2FsbHNpZ24tYXQrand0In0.e30.")
	f.Add("a.b.c")
	known := map[string]bool{auth.CodeMalformed: true, auth.CodeTooLarge: true, auth.CodeAlgNotAllowed: true, auth.CodeUnsupported: true,
		auth.CodeUnknownKey: true, auth.CodeBadSignature: true, auth.CodeExpired: true, auth.CodeNotYetValid: true, auth.CodeInvalidClaims: true}
	a := newAuthenticator(f, keySet(f, edKey(f, k)), at(t0.Add(time.Minute)))
	f.Fuzz(func(t *testing.T, token string) {
		var first string
		for i := range 2 {
			p, err := a.Verify(context.Background(), token)
			if err != nil {
				if !known[auth.Code(err)] || p.UserID != "" || p.AppID != "" {
					t.Fatalf("refusal %v (code %q), principal %+v", err, auth.Code(err), p)
				}
			} else if p.AppID == "" || p.Scheme != callsign.SchemeAppToken || p.ExpiresAt.IsZero() {
				t.Fatalf("accepted %q as %+v", token, p)
			}
			if i == 0 {
				first = auth.Code(err)
			} else if auth.Code(err) != first {
				t.Fatalf("second look %q, first %q", auth.Code(err), first)
			}
		}
	})
}
