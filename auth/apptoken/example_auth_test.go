package apptoken_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/auth/apptoken"
	"github.com/callsignhq/callsign/auth/jwks"
)

// An API that takes callsign app access tokens verifies them offline,
// against the keys the callsign server publishes.
func ExampleNewAuthenticator() {
	// The callsign server: its signing key, its JWKS, a token it minted.
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	key := &callsign.SigningKey{ID: "k1", Public: priv.Public().(ed25519.PublicKey), Private: priv}
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(apptoken.NewJWKS([]*callsign.SigningKey{key}))
	}))
	defer server.Close()
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	tok, _, _ := apptoken.Mint(key, "https://callsign.example", "app_1", "alice", now, 24*time.Hour)

	// The API: the JWKS is fetched on first use and cached.
	keys, err := jwks.NewRemote(server.URL+"/.well-known/jwks.json", jwks.Options{Now: func() time.Time { return now }})
	if err != nil {
		panic(err)
	}
	a, err := apptoken.NewAuthenticator(keys, "https://callsign.example", apptoken.WithNow(func() time.Time { return now.Add(time.Hour) }))
	if err != nil {
		panic(err)
	}
	p, err := a.Verify(context.Background(), tok)
	fmt.Println(p.Scheme, p.AppID, p.UserID, p.Scopes, err)

	// Behind the middleware, with apptoken first among the Bearer schemes.
	mw, _ := auth.New(auth.Options{Authenticators: []auth.Authenticator{a}})
	_ = mw.With(auth.WithScopes(apptoken.Scope))
	// Output: apptoken app_1 alice [ingest] <nil>
}
