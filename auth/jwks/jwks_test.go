package jwks_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/auth/jwks"
	jose "github.com/go-jose/go-jose/v4"
)

// Test keys, made once per test binary.
var (
	rsaKey = sync.OnceValue(func() *rsa.PrivateKey { k, _ := rsa.GenerateKey(rand.Reader, 2048); return k })
	ecKey  = sync.OnceValue(func() *ecdsa.PrivateKey { k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); return k })
	edKey  = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
)

func secret(n int) []byte { return []byte(strings.Repeat("s", n)) }

func TestNewKey(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	tests := []struct {
		name string
		alg  string
		key  any
		ok   bool
	}{
		{"HS256 secret", jwks.HS256, secret(32), true},
		{"HS512 short secret (the verifiers decide)", jwks.HS512, secret(13), true},
		{"HS256 empty secret", jwks.HS256, []byte{}, false},
		{"HS256 with an RSA key", jwks.HS256, &rsaKey().PublicKey, false},
		{"RS256 public", jwks.RS256, &rsaKey().PublicKey, true},
		{"RS256 private gives its public half", jwks.RS256, rsaKey(), true},
		{"RS256 1024 bits", jwks.RS256, &small.PublicKey, false},
		{"RS256 with a secret", jwks.RS256, secret(32), false},
		{"ES256 P-256", jwks.ES256, &ecKey().PublicKey, true},
		{"ES256 P-384", jwks.ES256, &p384.PublicKey, false},
		{"ES256 with an Ed25519 key", jwks.ES256, edKey.Public(), false},
		{"EdDSA public", jwks.EdDSA, edKey.Public(), true},
		{"EdDSA private gives its public half", jwks.EdDSA, edKey, true},
		{"EdDSA short", jwks.EdDSA, ed25519.PublicKey(make([]byte, 31)), false},
		{"none", "none", secret(32), false},
		{"PS256 unsupported", "PS256", &rsaKey().PublicKey, false},
		{"lower-case alg", "hs256", secret(32), false},
		{"nil key", jwks.ES256, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := jwks.NewKey("kid", tt.alg, tt.key)
			if (err == nil) != tt.ok {
				t.Fatalf("NewKey = %v, %v; want ok=%v", k, err, tt.ok)
			}
			if err != nil {
				return
			}
			if k.ID() != "kid" || k.Alg() != tt.alg {
				t.Fatalf("key = %q %q", k.ID(), k.Alg())
			}
			switch k.Public().(type) {
			case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
				t.Fatalf("a private key is kept: %T", k.Public())
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	mk := func(kid, alg string, key any) [32]byte {
		t.Helper()
		k, err := jwks.NewKey(kid, alg, key)
		if err != nil {
			t.Fatal(err)
		}
		return k.Fingerprint()
	}
	base := mk("k1", jwks.HS256, secret(32))
	if mk("k1", jwks.HS256, secret(32)) != base {
		t.Fatal("the same key has two fingerprints")
	}
	for name, fp := range map[string][32]byte{
		"other kid":    mk("k2", jwks.HS256, secret(32)),
		"other alg":    mk("k1", jwks.HS384, secret(32)),
		"other secret": mk("k1", jwks.HS256, secret(33)),
	} {
		if fp == base {
			t.Errorf("%s: same fingerprint", name)
		}
	}
	if mk("k1", jwks.EdDSA, edKey) != mk("k1", jwks.EdDSA, edKey.Public()) {
		t.Error("a private key and its public half differ")
	}
}

func jwkJSON(t testing.TB, kid, alg, use string, key any) string {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg, Use: use})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func set(keys ...string) string { return `{"keys":[` + strings.Join(keys, ",") + `]}` }

func TestParseSet(t *testing.T) {
	rsaPub, ecPub, edPub := &rsaKey().PublicKey, &ecKey().PublicKey, edKey.Public()
	tests := []struct {
		name    string
		doc     string
		opts    jwks.ParseOptions
		want    []string // kid:alg of the kept keys, in order
		skipped []string // kids skipped
		err     bool
	}{
		{name: "the four kinds", opts: jwks.ParseOptions{AllowSymmetric: true},
			doc:  set(jwkJSON(t, "r", "RS256", "sig", rsaPub), jwkJSON(t, "e", "ES256", "", ecPub), jwkJSON(t, "o", "EdDSA", "sig", edPub), jwkJSON(t, "h", "HS256", "", secret(32))),
			want: []string{"r:RS256", "e:ES256", "o:EdDSA", "h:HS256"}},
		{name: "no alg and no default", doc: set(jwkJSON(t, "o", "", "", edPub)), skipped: []string{"o"}},
		{name: "no alg, default given", doc: set(jwkJSON(t, "o", "", "", edPub)), opts: jwks.ParseOptions{DefaultAlg: "EdDSA"}, want: []string{"o:EdDSA"}},
		{name: "default does not override the key's alg", doc: set(jwkJSON(t, "r", "RS256", "", rsaPub)), opts: jwks.ParseOptions{DefaultAlg: "EdDSA"}, want: []string{"r:RS256"}},
		{name: "default that does not suit the key", doc: set(jwkJSON(t, "r", "", "", rsaPub)), opts: jwks.ParseOptions{DefaultAlg: "EdDSA"}, skipped: []string{"r"}},
		{name: "alg that does not suit the key", doc: set(jwkJSON(t, "r", "ES256", "", rsaPub)), skipped: []string{"r"}},
		{name: "alg none", doc: set(`{"kty":"oct","kid":"n","alg":"none","k":"` + base64.RawURLEncoding.EncodeToString(secret(32)) + `"}`), opts: jwks.ParseOptions{AllowSymmetric: true}, skipped: []string{"n"}},
		{name: "oct refused by default", doc: set(jwkJSON(t, "h", "HS256", "", secret(32))), skipped: []string{"h"}},
		{name: "oct too short for its alg", doc: set(jwkJSON(t, "h", "HS512", "", secret(32))), opts: jwks.ParseOptions{AllowSymmetric: true}, skipped: []string{"h"}},
		{name: "encryption key", doc: set(jwkJSON(t, "r", "RS256", "enc", rsaPub)), skipped: []string{"r"}},
		{name: "key_ops without verify", doc: set(`{"kty":"OKP","crv":"Ed25519","kid":"o","alg":"EdDSA","key_ops":["encrypt"],"x":"` + base64.RawURLEncoding.EncodeToString(edPub.(ed25519.PublicKey)) + `"}`), skipped: []string{"o"}},
		{name: "key_ops with verify", doc: set(`{"kty":"OKP","crv":"Ed25519","kid":"o","alg":"EdDSA","key_ops":["verify"],"x":"` + base64.RawURLEncoding.EncodeToString(edPub.(ed25519.PublicKey)) + `"}`), want: []string{"o:EdDSA"}},
		{name: "private key published", doc: set(jwkJSON(t, "o", "EdDSA", "", edKey), jwkJSON(t, "r", "RS256", "", rsaKey())), skipped: []string{"o", "r"}},
		{name: "unknown kty skipped, others kept", doc: set(`{"kty":"XYZ","kid":"x"}`, jwkJSON(t, "o", "EdDSA", "", edPub)), want: []string{"o:EdDSA"}, skipped: []string{"x"}},
		{name: "RSA key too small", doc: set(`{"kty":"RSA","kid":"r","alg":"RS256","e":"AQAB","n":"` + base64.RawURLEncoding.EncodeToString(make([]byte, 128)) + `"}`), skipped: []string{"r"}},
		{name: "EC point not on the curve", doc: set(`{"kty":"EC","crv":"P-256","kid":"e","alg":"ES256","x":"` + base64.RawURLEncoding.EncodeToString(make([]byte, 32)) + `","y":"` + base64.RawURLEncoding.EncodeToString(make([]byte, 32)) + `"}`), skipped: []string{"e"}},
		{name: "duplicate kid drops both", doc: set(jwkJSON(t, "k", "EdDSA", "", edPub), jwkJSON(t, "k", "ES256", "", ecPub), jwkJSON(t, "o", "EdDSA", "", edPub)), want: []string{"o:EdDSA"}, skipped: []string{"k", "k"}},
		{name: "key without kid", doc: set(jwkJSON(t, "", "EdDSA", "", edPub)), want: []string{":EdDSA"}},
		{name: "empty set", doc: `{"keys":[]}`, want: nil},
		{name: "too many keys", doc: set(jwkJSON(t, "a", "EdDSA", "", edPub), jwkJSON(t, "b", "EdDSA", "", edPub)), opts: jwks.ParseOptions{MaxKeys: 1}, err: true},
		{name: "no keys member", doc: `{"kty":"OKP"}`, err: true},
		{name: "keys not an array", doc: `{"keys":{}}`, err: true},
		{name: "not JSON", doc: `<html>`, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var skipped []string
			tt.opts.OnSkip = func(kid string, err error) { skipped = append(skipped, kid) }
			s, err := jwks.ParseSet([]byte(tt.doc), tt.opts)
			if (err != nil) != tt.err {
				t.Fatalf("ParseSet: %v, want error %v", err, tt.err)
			}
			if err != nil {
				return
			}
			var got []string
			for _, k := range s.Keys() {
				got = append(got, k.ID()+":"+k.Alg())
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("keys = %q, want %q", got, tt.want)
			}
			slices.Sort(skipped)
			if !slices.Equal(skipped, tt.skipped) {
				t.Fatalf("skipped = %q, want %q", skipped, tt.skipped)
			}
		})
	}
}

// RFC 8037 Appendix A.2 (an Ed25519 public JWK) and A.3 (its RFC 7638
// thumbprint): ParseSet reads the key go-jose reads, and go-jose computes
// the published thumbprint from it. A.1's private JWK of the same key is
// refused (private members in a public set).
func TestRFC8037Vectors(t *testing.T) {
	var v struct {
		PrivateJWK json.RawMessage `json:"private_jwk"`
		PublicJWK  json.RawMessage `json:"public_jwk"`
		Thumbprint string          `json:"thumbprint_sha256"`
	}
	raw, err := os.ReadFile("testdata/rfc8037_appendix_a.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	s, err := jwks.ParseSet([]byte(`{"keys":[`+string(v.PublicJWK)+`]}`), jwks.ParseOptions{DefaultAlg: jwks.EdDSA})
	if err != nil || s.Len() != 1 {
		t.Fatalf("ParseSet: %v, %d keys", err, s.Len())
	}
	k := s.Lookup("")
	jk := jose.JSONWebKey{Key: k.Public()}
	tp, err := jk.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.RawURLEncoding.EncodeToString(tp); got != v.Thumbprint {
		t.Fatalf("thumbprint = %s, RFC 8037 A.3 says %s", got, v.Thumbprint)
	}
	s, err = jwks.ParseSet([]byte(`{"keys":[`+string(v.PrivateJWK)+`]}`), jwks.ParseOptions{DefaultAlg: jwks.EdDSA})
	if err != nil || s.Len() != 0 {
		t.Fatalf("private JWK: %v, %d keys", err, s.Len())
	}
}

func TestSet(t *testing.T) {
	k1, _ := jwks.NewKey("k1", jwks.EdDSA, edKey)
	k1b, _ := jwks.NewKey("k1", jwks.HS256, secret(32))
	if _, err := jwks.NewSet(k1, k1b); err == nil {
		t.Fatal("NewSet accepted a kid twice")
	}
	s, err := jwks.NewSet(k1)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := s.Key(context.Background(), "k1"); err != nil || k != k1 {
		t.Fatalf("Key(k1) = %v, %v", k, err)
	}
	for _, kid := range []string{"k2", "", "K1", "../../etc/passwd"} {
		_, err := s.Key(context.Background(), kid)
		if !errors.Is(err, jwks.ErrUnknownKey) || auth.Code(err) != auth.CodeUnknownKey {
			t.Fatalf("Key(%q) = %v", kid, err)
		}
	}
}

// FuzzParseSet: ParseSet never panics, and every key it keeps is one
// NewKey accepts, under a supported algorithm, within the limits.
func FuzzParseSet(f *testing.F) {
	f.Add([]byte(set(jwkJSON(f, "r", "RS256", "sig", &rsaKey().PublicKey), jwkJSON(f, "e", "ES256", "", &ecKey().PublicKey))))
	f.Add([]byte(set(jwkJSON(f, "o", "", "", edKey.Public()), jwkJSON(f, "h", "HS256", "", secret(40)))))
	f.Add([]byte(set(jwkJSON(f, "o", "EdDSA", "", edKey))))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","alg":"ES256","kid":"a3"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","e":"AQAB","n":"AQAB","x5c":["AAAA"]}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, opts := range []jwks.ParseOptions{{}, {DefaultAlg: jwks.EdDSA, AllowSymmetric: true, MaxKeys: 3}} {
			s, err := jwks.ParseSet(data, opts)
			if err != nil {
				continue
			}
			max := opts.MaxKeys
			if max == 0 {
				max = jwks.DefaultMaxKeys
			}
			if s.Len() > max {
				t.Fatalf("%d keys over the limit %d", s.Len(), max)
			}
			seen := map[string]bool{}
			for _, k := range s.Keys() {
				if !jwks.Supported(k.Alg()) || seen[k.ID()] {
					t.Fatalf("key %q alg %q (seen %v)", k.ID(), k.Alg(), seen[k.ID()])
				}
				seen[k.ID()] = true
				again, err := jwks.NewKey(k.ID(), k.Alg(), k.Public())
				if err != nil || again.Fingerprint() != k.Fingerprint() {
					t.Fatalf("kept key %q does not stand on its own: %v", k.ID(), err)
				}
				if b, ok := k.Public().([]byte); ok && (!opts.AllowSymmetric || len(b) < jwks.MinSecretLen(k.Alg())) {
					t.Fatalf("symmetric key %q kept", k.ID())
				}
				if r, ok := k.Public().(*rsa.PublicKey); ok && r.N.Cmp(new(big.Int).Lsh(big.NewInt(1), jwks.MinRSABits-1)) < 0 {
					t.Fatalf("small RSA key kept")
				}
			}
		}
	})
}
