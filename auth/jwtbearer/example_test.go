package jwtbearer_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/auth/jwks"
	"github.com/callsignhq/callsign/auth/jwtbearer"
	"github.com/golang-jwt/jwt/v5"
)

// Seed 000's configuration: its tokens come from jwt.io, HS256 without kid,
// signed with "mytokensecret", the user in the "id" claim. The secret is
// too short, so it takes AllowWeakSecrets, and New says so in the log.
func ExampleNew() {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{} // a stable output for the example
		}
		return a
	}}))
	a, err := jwtbearer.New(
		jwtbearer.WithKey("", jwks.HS256, []byte("mytokensecret")), // kid "": the key of tokens without kid
		jwtbearer.WithUserClaim("id"),
		jwtbearer.AllowWeakSecrets(),
		jwtbearer.WithLogger(logger),
		jwtbearer.WithNow(func() time.Time { return now }),
	)
	if err != nil {
		panic(err)
	}

	// The API: the user is identified when a valid token is there (seed 000
	// serves anonymous callers too).
	mw, _ := auth.New(auth.Options{Authenticators: []auth.Authenticator{a}, Mode: auth.Optional, Logger: slog.New(slog.DiscardHandler)})
	api := mw.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := callsign.PrincipalFrom(r.Context())
		fmt.Printf("scheme=%q user_id=%q\n", p.Scheme, p.UserID)
	}))

	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"id": "user-42", "exp": now.Add(time.Hour).Unix()}).
		SignedString([]byte("mytokensecret"))
	r := httptest.NewRequest("GET", "/creditscore", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	api.ServeHTTP(httptest.NewRecorder(), r)
	api.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/creditscore", nil))

	// What seed 000 accepted: a token that chooses its own algorithm.
	_, err = a.Verify(context.Background(), "eyJhbGciOiJub25lIn0.eyJpZCI6ImFkbWluIiwiZXhwIjo5OTk5OTk5OTk5fQ.")
	fmt.Println(auth.Code(err))
	// Output:
	// level=WARN msg="jwtbearer: accepting a weak HMAC secret (AllowWeakSecrets); anyone holding one token can brute-force it: rotate it" kid="" alg=HS256 bytes=13 required=32
	// scheme="jwt" user_id="user-42"
	// scheme="" user_id=""
	// alg_not_allowed
}

// Keys from the issuer's JWK Set, refreshed on its schedule and when a
// token names a new kid.
func ExampleWithKeySource() {
	keys, err := jwks.NewRemote("https://issuer.example/.well-known/jwks.json", jwks.Options{})
	if err != nil {
		panic(err)
	}
	a, err := jwtbearer.New(
		jwtbearer.WithKeySource(keys),
		jwtbearer.WithIssuer("https://issuer.example"),
		jwtbearer.WithAudience("https://api.example"),
	)
	fmt.Println(a.Scheme(), err)
	// Output: jwt <nil>
}
