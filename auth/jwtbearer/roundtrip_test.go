package jwtbearer_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/auth/jwks"
	"github.com/callsignhq/callsign/auth/jwtbearer"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// whoami answers with the Principal the middleware put in the context.
var whoami = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	p, _ := callsign.PrincipalFrom(r.Context())
	json.NewEncoder(w).Encode(p)
})

// serve puts a behind auth.New's middleware on a loopback server.
func serve(t *testing.T, a auth.Authenticator, opts ...auth.Option) string {
	t.Helper()
	mw, err := auth.New(auth.Options{Authenticators: []auth.Authenticator{a}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mw.With(opts...).Handler(whoami))
	t.Cleanup(srv.Close)
	return srv.URL
}

type answer struct {
	status    int
	principal callsign.Principal
	code      string
	challenge string
}

func call(t *testing.T, url, token string) answer {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/creditscore", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate")}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &a.principal); err != nil {
			t.Fatalf("answer %s: %v", body, err)
		}
	} else {
		var e struct{ Error struct{ Code string } }
		json.Unmarshal(body, &e)
		a.code = e.Error.Code
	}
	return a
}

// Tokens minted by golang-jwt, the interop peer, go through the middleware
// over real HTTP.
func TestRoundTrip(t *testing.T) {
	url := serve(t, newAuth(t))
	tests := []struct {
		name   string
		m      jwt.SigningMethod
		kid    string
		key    any
		claims map[string]any
		status int
		code   string
	}{
		{"HS256", jwt.SigningMethodHS256, "hs", hsSecret, goodClaims(), 200, ""},
		{"RS256", jwt.SigningMethodRS256, "rs", rsaKey(), goodClaims(), 200, ""},
		{"ES256", jwt.SigningMethodES256, "es", ecKey(), goodClaims(), 200, ""},
		{"EdDSA", jwt.SigningMethodEdDSA, "ed", edKey, goodClaims(), 200, ""},
		{"HS384 for an HS256 key", jwt.SigningMethodHS384, "hs", hsSecret, goodClaims(), 401, auth.CodeAlgNotAllowed},
		{"unknown kid answers as a bad signature", jwt.SigningMethodHS256, "other", hsSecret, goodClaims(), 401, auth.CodeBadSignature},
		{"expired", jwt.SigningMethodEdDSA, "ed", edKey, with(goodClaims(), "exp", t0.Add(-time.Hour).Unix()), 401, auth.CodeExpired},
		{"wrong audience", jwt.SigningMethodES256, "es", ecKey(), with(goodClaims(), "aud", "someone-else"), 401, auth.CodeInvalidClaims},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := call(t, url, mint(t, tt.m, tt.kid, tt.key, jwt.MapClaims(tt.claims)))
			if got.status != tt.status || got.code != tt.code {
				t.Fatalf("answer %d %q, want %d %q", got.status, got.code, tt.status, tt.code)
			}
			if tt.status != 200 {
				if !strings.HasPrefix(got.challenge, "Bearer") {
					t.Fatalf("WWW-Authenticate = %q", got.challenge)
				}
				return
			}
			p := got.principal
			if p.Scheme != callsign.SchemeJWT || p.UserID != "alice" || p.KeyID != tt.kid || !slices.Equal(p.Scopes, []string{"read", "write"}) ||
				p.RequestID == "" || !p.ExpiresAt.Equal(t0.Add(time.Hour)) || p.Claims["iss"] != iss {
				t.Fatalf("principal = %+v", p)
			}
		})
	}
	if got := call(t, url, ""); got.status != 401 || got.code != auth.CodeMissing {
		t.Fatalf("no token: %+v", got)
	}
}

// Seed 000's API: optional authentication, HS256 tokens signed with
// "mytokensecret" and without kid, the user in the "id" claim.
func TestRoundTripSeed000(t *testing.T) {
	a, err := jwtbearer.New(jwtbearer.WithKey("", jwks.HS256, []byte("mytokensecret")), jwtbearer.AllowWeakSecrets(),
		jwtbearer.WithUserClaim("id"), jwtbearer.WithNow(at(t0)), jwtbearer.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, a, auth.WithOptional())
	tok := mint(t, jwt.SigningMethodHS256, "", []byte("mytokensecret"), jwt.MapClaims{"id": "user-42", "exp": t0.Add(time.Hour).Unix()})
	if got := call(t, url, tok); got.status != 200 || got.principal.UserID != "user-42" {
		t.Fatalf("token: %+v", got)
	}
	if got := call(t, url, ""); got.status != 200 || got.principal.Scheme != callsign.SchemeNone || got.principal.UserID != "" {
		t.Fatalf("anonymous: %+v", got)
	}
	// What seed 000's key function let through: the token's own alg.
	forged := raw(`{"alg":"none","typ":"JWT"}`, `{"id":"admin","exp":9999999999}`, noSig)
	if got := call(t, url, forged); got.status != 401 || got.code != auth.CodeAlgNotAllowed {
		t.Fatalf("alg none: %+v", got)
	}
}

// jwksIssuer publishes a JWK Set on loopback and counts its fetches.
type jwksIssuer struct {
	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetches atomic.Int64
}

func (is *jwksIssuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	is.fetches.Add(1)
	is.mu.Lock()
	defer is.mu.Unlock()
	w.Header().Set("Content-Type", "application/jwk-set+json")
	json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: is.keys})
}

func (is *jwksIssuer) publish(keys ...jose.JSONWebKey) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys = keys
}

// Keys from the issuer's JWK Set, fetched over HTTP; a key rotated in is
// picked up by the unknown-kid refresh, within the minimum interval.
func TestRoundTripJWKS(t *testing.T) {
	is := &jwksIssuer{}
	is.publish(
		jose.JSONWebKey{Key: &rsaKey().PublicKey, KeyID: "rs", Algorithm: "RS256", Use: "sig"},
		jose.JSONWebKey{Key: &ecKey().PublicKey, KeyID: "es", Algorithm: "ES256", Use: "sig"},
		jose.JSONWebKey{Key: edKey.Public(), KeyID: "ed", Algorithm: "EdDSA", Use: "sig"},
	)
	jwksSrv := httptest.NewServer(is)
	t.Cleanup(jwksSrv.Close)
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	remote, err := jwks.NewRemote(jwksSrv.URL+"/.well-known/jwks.json", jwks.Options{Now: clock, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	a, err := jwtbearer.New(jwtbearer.WithKeySource(remote), jwtbearer.WithIssuer(iss), jwtbearer.WithAudience(aud), jwtbearer.WithNow(clock))
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, a)
	for _, c := range []struct {
		m   jwt.SigningMethod
		kid string
		key any
	}{{jwt.SigningMethodRS256, "rs", rsaKey()}, {jwt.SigningMethodES256, "es", ecKey()}, {jwt.SigningMethodEdDSA, "ed", edKey}} {
		if got := call(t, url, mint(t, c.m, c.kid, c.key, jwt.MapClaims(goodClaims()))); got.status != 200 || got.principal.KeyID != c.kid {
			t.Fatalf("%s: %+v", c.kid, got)
		}
	}
	if n := is.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}

	// Rotation: ed2 is published; its first token comes 1 s later.
	is.publish(jose.JSONWebKey{Key: evilKey.Public(), KeyID: "ed2", Algorithm: "EdDSA", Use: "sig"},
		jose.JSONWebKey{Key: edKey.Public(), KeyID: "ed", Algorithm: "EdDSA", Use: "sig"})
	fresh := mint(t, jwt.SigningMethodEdDSA, "ed2", evilKey, jwt.MapClaims(goodClaims()))
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	if got := call(t, url, fresh); got.status != 401 || got.code != auth.CodeBadSignature {
		t.Fatalf("within the minimum interval: %+v", got)
	}
	mu.Lock()
	now = now.Add(jwks.DefaultMinRefreshInterval)
	mu.Unlock()
	if got := call(t, url, fresh); got.status != 200 || got.principal.KeyID != "ed2" {
		t.Fatalf("after the minimum interval: %+v", got)
	}
	// The retired RSA key is gone: its tokens, even cached ones, are refused.
	if got := call(t, url, mint(t, jwt.SigningMethodRS256, "rs", rsaKey(), jwt.MapClaims(goodClaims()))); got.status != 401 {
		t.Fatalf("retired key: %+v", got)
	}
	if n := is.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
}
