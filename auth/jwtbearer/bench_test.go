package jwtbearer_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/callsignhq/callsign/auth/jwks"
	"github.com/callsignhq/callsign/auth/jwtbearer"
	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkHS256 compares, on one typical token: the full check (cache
// disabled), a cache hit, golang-jwt's Parse alone, and the HMAC of the
// signing input alone.
func BenchmarkHS256(b *testing.B) {
	tok := mint(b, jwt.SigningMethodHS256, "hs", hsSecret, jwt.MapClaims(goodClaims()))
	ctx := context.Background()
	verify := func(a *jwtbearer.Authenticator) func(b *testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.Run("jwtbearer-cold", verify(newAuth(b, jwtbearer.WithCacheSize(0))))
	b.Run("jwtbearer-warm", verify(newAuth(b)))
	b.Run("golang-jwt-Parse", func(b *testing.B) {
		b.ReportAllocs()
		p := jwt.NewParser(jwt.WithValidMethods([]string{jwks.HS256}), jwt.WithTimeFunc(at(t0)), jwt.WithExpirationRequired())
		key := func(*jwt.Token) (any, error) { return hsSecret, nil }
		for b.Loop() {
			if _, err := p.Parse(tok, key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("crypto-hmac", func(b *testing.B) {
		b.ReportAllocs()
		i := strings.LastIndexByte(tok, '.')
		input := []byte(tok[:i])
		sig, _ := base64.RawURLEncoding.DecodeString(tok[i+1:])
		for b.Loop() {
			m := hmac.New(sha256.New, hsSecret)
			m.Write(input)
			if !hmac.Equal(m.Sum(nil), sig) {
				b.Fatal("bad mac")
			}
		}
	})
}
