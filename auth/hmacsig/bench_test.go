package hmacsig_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/callsignhq/callsign/auth/hmacsig"
)

// BenchmarkVerify compares a full verification of a request with two signed
// headers with the bare HMAC-SHA256 of the same string to sign.
func BenchmarkVerify(b *testing.B) {
	sh := []string{"Content-Type", "User-Agent"}
	r := httptest.NewRequest("POST", "http://api.example.com/notes?x=1", nil)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", "client/1")
	s := &hmacsig.Signer{APIKey: apiKey, Secret: []byte(secret), SignedHeaders: sh, Now: func() time.Time { return t0 }}
	sts, err := s.Sign(r)
	if err != nil {
		b.Fatal(err)
	}
	v, err := hmacsig.New(hmacsig.Options{SignedHeaders: sh, Keys: staticKeys(b), Now: func() time.Time { return t0 }})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("hmacsig.Verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("crypto/hmac", func(b *testing.B) {
		b.ReportAllocs()
		key, msg := []byte(secret), []byte(sts)
		var sum [sha256.Size]byte
		for b.Loop() {
			m := hmac.New(sha256.New, key)
			m.Write(msg)
			m.Sum(sum[:0])
		}
	})
}
