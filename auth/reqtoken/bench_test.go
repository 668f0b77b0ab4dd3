package reqtoken_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/callsignhq/callsign/auth/reqtoken"
	"github.com/callsignhq/callsign/replay"
)

type rewindBody struct{ bytes.Reader }

func (*rewindBody) Close() error { return nil }

// BenchmarkVerify compares, in one run, a full verification of a valid
// token for a small POST (parse, checks, session lookup, signature, body
// read and digest, replay store insert) with the Ed25519 check alone on the
// same signing input, and with golang-jwt's parse of the same token.
// Each iteration verifies a token with its own jti (the replay store would
// refuse a second use), signed beforehand in batches of 128 with the timer
// stopped: a batch stays in cache, as a request a server has just read
// does, rather than each token coming cold from a slice of b.N.
func BenchmarkVerify(b *testing.B) {
	const method, uri, body = "POST", "/v1/transfers", `{"amount":"0.01","asset":"965e5c6e-434c-3fa9-b780-c50f43cd955c"}`
	const batch = 128
	n := 0
	next := func(b *testing.B, toks []string, hdrs [][]string) {
		b.StopTimer()
		for i := range toks {
			toks[i] = sign(b, method, uri, body, reqtoken.WithID(fmt.Sprintf("00000000-0000-4000-8000-%012x", n)))
			hdrs[i] = []string{"Bearer " + toks[i]}
			n++
		}
		b.StartTimer()
	}

	b.Run("reqtoken.Verify", func(b *testing.B) {
		v := newVerifier(b, func(o *reqtoken.Options) { o.Replay = replay.NewMemory(b.N+1, o.Now) })
		r := httptest.NewRequest(method, uri, nil)
		var rb rewindBody
		toks, hdrs := make([]string, batch), make([][]string, batch)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if i%batch == 0 {
				next(b, toks, hdrs)
			}
			rb.Reset([]byte(body))
			r.Body, r.ContentLength = &rb, int64(len(body))
			r.Header["Authorization"] = hdrs[i%batch]
			if _, err := v.Verify(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reqtoken.VerifyToken", func(b *testing.B) {
		v := newVerifier(b, func(o *reqtoken.Options) { o.Replay = replay.NewMemory(b.N+1, o.Now) })
		ctx, bb := context.Background(), []byte(body)
		toks, hdrs := make([]string, batch), make([][]string, batch)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if i%batch == 0 {
				next(b, toks, hdrs)
			}
			if _, err := v.VerifyToken(ctx, toks[i%batch], method, uri, bb); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Ed25519 verification takes variable time (it depends on the
	// signature and the message's hash), so the baselines cycle through
	// 128 tokens like those above rather than repeating one.
	fixed := make([]string, batch)
	next(b, fixed, make([][]string, batch))
	b.Run("ed25519.Verify", func(b *testing.B) {
		msgs, sigs := make([][]byte, batch), make([][]byte, batch)
		for i, tok := range fixed {
			j := strings.LastIndexByte(tok, '.')
			msgs[i] = []byte(tok[:j])
			sigs[i], _ = base64.RawURLEncoding.DecodeString(tok[j+1:])
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if !ed25519.Verify(pub, msgs[i%batch], sigs[i%batch]) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("golang-jwt.Parse", func(b *testing.B) {
		keyFunc := func(*jwt.Token) (any, error) { return pub, nil }
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			t, err := jwt.Parse(fixed[i%batch], keyFunc, jwt.WithTimeFunc(at(t0)))
			if err != nil || !t.Valid {
				b.Fatal(err)
			}
			if _, ok := t.Claims.(jwt.MapClaims)["sig"].(string); !ok {
				b.Fatal("no sig")
			}
		}
	})
}

func BenchmarkDetect(b *testing.B) {
	a := reqtoken.NewAuthenticator(newVerifier(b, nil))
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+sign(b, "GET", "/", ""))
	b.ReportAllocs()
	for range b.N {
		if !a.Detect(r) {
			b.Fatal("not detected")
		}
	}
}
