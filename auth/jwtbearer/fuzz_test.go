package jwtbearer_test

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth"
	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify: Verify never panics, refuses with one of the package's codes
// (a static key set cannot fail with internal), and accepts only tokens
// whose Principal is complete. The same token verified again (a cache hit)
// gives the same answer.
func FuzzVerify(f *testing.F) {
	good := goodClaims()
	seeds := []string{
		mint(f, jwt.SigningMethodHS256, "hs", hsSecret, jwt.MapClaims(good)),
		mint(f, jwt.SigningMethodRS256, "rs", rsaKey(), jwt.MapClaims(good)),
		mint(f, jwt.SigningMethodES256, "es", ecKey(), jwt.MapClaims(good)),
		mint(f, jwt.SigningMethodEdDSA, "ed", edKey, jwt.MapClaims(good)),
		raw(`{"alg":"none","kid":"hs"}`, obj(good), noSig),
		raw(`{"alg":"HS256","kid":"hs","alg":"none"}`, obj(good), hs(hsSecret)),
		raw(`{"alg":"HS256","kid":"hs","crit":["exp"]}`, obj(good), hs(hsSecret)),
		raw(`{"alg":"HS256","kid":"hs"}`, `{"sub":"a","exp":1e400}`, hs(hsSecret)),
		raw(`{"alg":"HS256","kid":"hs"}`, `{"sub":"a","exp":-9223372036854775808,"nbf":1e18,"iat":"x"}`, hs(hsSecret)),
		raw(`{"alg":"HS256","kid":"hs"}`, `{"sub":{"a":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}}`, hs(hsSecret)),
		"eyJhbGciOiJIUzI1NiJ9..", "...", "a.b.c", "",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	known := map[string]bool{auth.CodeMalformed: true, auth.CodeTooLarge: true, auth.CodeAlgNotAllowed: true, auth.CodeUnsupported: true,
		auth.CodeUnknownKey: true, auth.CodeBadSignature: true, auth.CodeExpired: true, auth.CodeNotYetValid: true, auth.CodeInvalidClaims: true}
	a := newAuth(f)
	f.Fuzz(func(t *testing.T, token string) {
		for range 2 {
			p, err := a.Verify(context.Background(), token)
			if p == nil || p.Scheme != callsign.SchemeJWT {
				t.Fatalf("principal %+v", p)
			}
			if err != nil {
				if !known[auth.Code(err)] {
					t.Fatalf("code %q: %v", auth.Code(err), err)
				}
				if p.UserID != "" {
					t.Fatalf("a refusal with a user: %+v", p)
				}
				continue
			}
			if p.UserID == "" || len(p.UserID) > callsign.MaxUserIDLen || !utf8.ValidString(p.UserID) || p.ExpiresAt.IsZero() ||
				strings.Count(token, ".") != 2 {
				t.Fatalf("accepted %q as %+v", token, p)
			}
		}
	})
}
