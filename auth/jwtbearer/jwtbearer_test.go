package jwtbearer_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
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
	"github.com/golang-jwt/jwt/v5"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

const (
	iss = "https://issuer.example"
	aud = "https://api.example"
)

var hsSecret = []byte("0123456789abcdef0123456789abcdef") // 32 bytes

// Test keys, made once per test binary.
var (
	rsaKey  = sync.OnceValue(func() *rsa.PrivateKey { k, _ := rsa.GenerateKey(rand.Reader, 2048); return k })
	ecKey   = sync.OnceValue(func() *ecdsa.PrivateKey { k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); return k })
	edKey   = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	evilKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{6}, 32)) // the attacker's
)

func at(t time.Time) func() time.Time { return func() time.Time { return t } }

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// signer signs a JWS signing input.
type signer func(input string) []byte

func hs(secret []byte) signer {
	return func(in string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(in))
		return m.Sum(nil)
	}
}

func viaJWT(m jwt.SigningMethod, key any) signer {
	return func(in string) []byte {
		s, err := m.Sign(in, key)
		if err != nil {
			panic(err)
		}
		return s
	}
}

func noSig(string) []byte { return nil }

// raw builds a compact JWS from literal header and claims JSON, so that
// attack rows can put anything in them.
func raw(header, claims string, sign signer) string {
	in := b64([]byte(header)) + "." + b64([]byte(claims))
	return in + "." + b64(sign(in))
}

// obj builds a JSON object from a map, for rows that change one member.
func obj(m map[string]any) string {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func goodClaims() map[string]any {
	return map[string]any{"iss": iss, "aud": aud, "sub": "alice", "iat": t0.Add(-time.Minute).Unix(), "exp": t0.Add(time.Hour).Unix(), "jti": "j1", "scope": "read write"}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func newAuth(t testing.TB, opts ...jwtbearer.Option) *jwtbearer.Authenticator {
	t.Helper()
	base := []jwtbearer.Option{
		jwtbearer.WithKey("hs", jwks.HS256, hsSecret),
		jwtbearer.WithKey("rs", jwks.RS256, &rsaKey().PublicKey),
		jwtbearer.WithKey("es", jwks.ES256, &ecKey().PublicKey),
		jwtbearer.WithKey("ed", jwks.EdDSA, edKey.Public()),
		jwtbearer.WithIssuer(iss),
		jwtbearer.WithAudience(aud),
		jwtbearer.WithNow(at(t0)),
		jwtbearer.WithLogger(slog.New(slog.DiscardHandler)),
	}
	a, err := jwtbearer.New(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func rsaPublicPEM(t testing.TB) []byte {
	der, err := x509.MarshalPKIXPublicKey(&rsaKey().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// attackerCert is a self-signed certificate for the attacker's key, for
// the x5c row.
func attackerCert(t testing.TB) string {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: iss}, NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, evilKey.Public(), evilKey)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// TestAttacks is one named row per attack, each with the exact code.
func TestAttacks(t *testing.T) {
	// The attacker's server, to which no request may ever be made.
	var attackerHits atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { attackerHits.Add(1) }))
	t.Cleanup(attacker.Close)

	a := newAuth(t)
	hdr := func(alg, kid string, kv ...any) string {
		m := map[string]any{"alg": alg, "typ": "JWT"}
		if kid != "" {
			m["kid"] = kid
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return obj(m)
	}
	good := obj(goodClaims())
	valid := raw(hdr("HS256", "hs"), good, hs(hsSecret))
	if p, err := a.Verify(context.Background(), valid); err != nil || p.UserID != "alice" {
		t.Fatalf("the untouched token: %+v, %v", p, err)
	}
	parts := strings.Split(valid, ".")
	evilJWK := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(evilKey.Public().(ed25519.PublicKey))}
	long := func(n int) string { return strings.Repeat("u", n) }

	tests := []struct {
		name  string
		token string
		code  string
	}{
		// alg none, whatever its case.
		{"alg none", raw(hdr("none", "hs"), good, noSig), auth.CodeAlgNotAllowed},
		{"alg None", raw(hdr("None", "hs"), good, noSig), auth.CodeAlgNotAllowed},
		{"alg NONE", raw(hdr("NONE", "hs"), good, noSig), auth.CodeAlgNotAllowed},
		{"alg nOnE", raw(hdr("nOnE", "hs"), good, noSig), auth.CodeAlgNotAllowed},
		{"alg none with a signature", raw(hdr("none", "hs"), good, hs(hsSecret)), auth.CodeAlgNotAllowed},
		{"alg none without kid", raw(hdr("none", ""), good, noSig), auth.CodeAlgNotAllowed},

		// Key confusion and algorithm substitution.
		{"RS256 key confusion: HS256 signed with the RSA public key PEM", raw(hdr("HS256", "rs"), good, hs(rsaPublicPEM(t))), auth.CodeAlgNotAllowed},
		{"RS256 key confusion: HS256 signed with the RSA modulus", raw(hdr("HS256", "rs"), good, hs(rsaKey().N.Bytes())), auth.CodeAlgNotAllowed},
		{"ES256 token for an RS256 key", raw(hdr("ES256", "rs"), good, viaJWT(jwt.SigningMethodES256, ecKey())), auth.CodeAlgNotAllowed},
		{"EdDSA token for an HS256 key", raw(hdr("EdDSA", "hs"), good, viaJWT(jwt.SigningMethodEdDSA, edKey)), auth.CodeAlgNotAllowed},
		{"HS512 token for an HS256 key", raw(hdr("HS512", "hs"), good, viaJWT(jwt.SigningMethodHS512, hsSecret)), auth.CodeAlgNotAllowed},
		{"alg in the wrong case", raw(hdr("hs256", "hs"), good, hs(hsSecret)), auth.CodeAlgNotAllowed},
		{"unsupported alg PS256", raw(hdr("PS256", "rs"), good, viaJWT(jwt.SigningMethodPS256, rsaKey())), auth.CodeAlgNotAllowed},
		{"no alg", raw(`{"kid":"hs"}`, good, hs(hsSecret)), auth.CodeMalformed},

		// Keys named by the token are never used.
		{"jwk header with the attacker's key, known kid", raw(hdr("EdDSA", "ed", "jwk", evilJWK), good, viaJWT(jwt.SigningMethodEdDSA, evilKey)), auth.CodeBadSignature},
		{"jwk header with the attacker's key, no kid", raw(hdr("EdDSA", "", "jwk", evilJWK), good, viaJWT(jwt.SigningMethodEdDSA, evilKey)), auth.CodeUnknownKey},
		{"jku at the attacker's set, unknown kid", raw(hdr("EdDSA", "evil", "jku", attacker.URL+"/jwks.json"), good, viaJWT(jwt.SigningMethodEdDSA, evilKey)), auth.CodeUnknownKey},
		{"jku at the attacker's set, known kid", raw(hdr("EdDSA", "ed", "jku", attacker.URL+"/jwks.json"), good, viaJWT(jwt.SigningMethodEdDSA, evilKey)), auth.CodeBadSignature},
		{"x5u at the attacker's certificate", raw(hdr("EdDSA", "ed", "x5u", attacker.URL+"/cert.pem"), good, viaJWT(jwt.SigningMethodEdDSA, evilKey)), auth.CodeBadSignature},
		{"x5c with the attacker's certificate", raw(hdr("EdDSA", "ed", "x5c", []string{attackerCert(t)}), good, viaJWT(jwt.SigningMethodEdDSA, evilKey)), auth.CodeBadSignature},

		// Header members we do not understand, or refuse.
		{"unknown crit", raw(hdr("HS256", "hs", "crit", []string{"exp"}, "exp", 1), good, hs(hsSecret)), auth.CodeUnsupported},
		{"crit b64 (RFC 7797)", raw(hdr("HS256", "hs", "crit", []string{"b64"}, "b64", false), good, hs(hsSecret)), auth.CodeUnsupported},
		{"an app access token", raw(hdr("EdDSA", "ed", "typ", "callsign-at+jwt"), good, viaJWT(jwt.SigningMethodEdDSA, edKey)), auth.CodeUnsupported},
		{"an app access token, media type spelling", raw(hdr("EdDSA", "ed", "typ", "application/Callsign-AT+JWT"), good, viaJWT(jwt.SigningMethodEdDSA, edKey)), auth.CodeUnsupported},
		{"typ not accepted", raw(hdr("HS256", "hs", "typ", "dpop+jwt"), good, hs(hsSecret)), auth.CodeUnsupported},

		// kid.
		{"kid unknown", raw(hdr("HS256", "nope"), good, hs(hsSecret)), auth.CodeUnknownKey},
		{"kid with path characters", raw(hdr("HS256", "../../etc/passwd"), good, hs(hsSecret)), auth.CodeUnknownKey},
		{"kid with SQL", raw(hdr("HS256", "' OR 1=1 --"), good, hs(hsSecret)), auth.CodeUnknownKey},
		{"kid /dev/null with an empty secret", raw(hdr("HS256", "/dev/null"), good, hs(nil)), auth.CodeUnknownKey},
		{"no kid and no kid-less key", raw(hdr("HS256", ""), good, hs(hsSecret)), auth.CodeUnknownKey},
		{"kid not a string", raw(`{"alg":"HS256","kid":7}`, good, hs(hsSecret)), auth.CodeMalformed},

		// Duplicate members: two parsers, two readings.
		{"duplicate alg in the header", raw(`{"alg":"HS256","kid":"hs","alg":"none"}`, good, hs(hsSecret)), auth.CodeMalformed},
		{"duplicate kid in the header", raw(`{"alg":"HS256","kid":"hs","kid":"rs"}`, good, hs(hsSecret)), auth.CodeMalformed},
		{"duplicate sub in the claims", raw(hdr("HS256", "hs"), strings.TrimSuffix(good, "}")+`,"sub":"admin"}`, hs(hsSecret)), auth.CodeMalformed},
		{"duplicate exp in the claims, escaped", raw(hdr("HS256", "hs"), strings.TrimSuffix(good, "}")+`,"\u0065xp":99999999999}`, hs(hsSecret)), auth.CodeMalformed},

		// Encoding.
		{"padding on the header", parts[0] + "=." + parts[1] + "." + parts[2], auth.CodeMalformed},
		{"padding on the signature", parts[0] + "." + parts[1] + "." + parts[2] + "=", auth.CodeMalformed},
		{"non-zero trailing bits in the signature", parts[0] + "." + parts[1] + "." + flipTrailingBits(t, parts[2]), auth.CodeMalformed},
		{"standard base64 alphabet", parts[0] + "." + parts[1] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(parts[2]) + "+", auth.CodeMalformed},
		{"two segments", parts[0] + "." + parts[1], auth.CodeMalformed},
		{"four segments", valid + "." + parts[2], auth.CodeMalformed},
		{"one segment", parts[0], auth.CodeMalformed},
		{"empty", "", auth.CodeMalformed},
		{"header not JSON", b64([]byte("HS256")) + "." + parts[1] + "." + parts[2], auth.CodeMalformed},
		{"claims not an object", raw(hdr("HS256", "hs"), `["alice"]`, hs(hsSecret)), auth.CodeMalformed},
		{"a claim past float64's range", raw(hdr("HS256", "hs"), strings.TrimSuffix(good, "}")+`,"big":2`+strings.Repeat("0", 320)+`}`, hs(hsSecret)), auth.CodeMalformed},
		{"exp past float64's range", raw(hdr("HS256", "hs"), strings.Replace(good, `"exp":`, `"exp":1e400,"x":`, 1), hs(hsSecret)), auth.CodeMalformed},
		{"claims not UTF-8", raw(hdr("HS256", "hs"), strings.TrimSuffix(good, "}")+",\"x\":\"\xc3\x28\"}", hs(hsSecret)), auth.CodeMalformed},
		{"over the size limit", raw(hdr("HS256", "hs"), obj(with(goodClaims(), "pad", long(jwtbearer.DefaultMaxTokenLen))), hs(hsSecret)), auth.CodeTooLarge},

		// Signature.
		{"signed with another secret", raw(hdr("HS256", "hs"), good, hs([]byte("another secret, 32 bytes long!!!"))), auth.CodeBadSignature},
		{"payload swapped", parts[0] + "." + b64([]byte(obj(with(goodClaims(), "sub", "admin")))) + "." + parts[2], auth.CodeBadSignature},
		{"signature stripped", parts[0] + "." + parts[1] + ".", auth.CodeBadSignature},

		// Time.
		{"expired", raw(hdr("HS256", "hs"), obj(with(goodClaims(), "exp", t0.Add(-31*time.Second).Unix())), hs(hsSecret)), auth.CodeExpired},
		{"nbf in the future", raw(hdr("HS256", "hs"), obj(with(goodClaims(), "nbf", t0.Add(time.Minute).Unix())), hs(hsSecret)), auth.CodeNotYetValid},
		{"iat in the future", raw(hdr("HS256", "hs"), obj(with(goodClaims(), "iat", t0.Add(time.Minute).Unix())), hs(hsSecret)), auth.CodeNotYetValid},
		{"missing exp", raw(hdr("HS256", "hs"), obj(with(goodClaims(), "exp", nil)), hs(hsSecret)), auth.CodeInvalidClaims},
		{"exp a string", raw(hdr("HS256", "hs"), obj(with(goodClaims(), "exp", "tomorrow")), hs(hsSecret)), auth.CodeInvalidClaims},

		// Issuer and audience.
		{"wrong iss", raw(hdr("HS256", "hs"), obj(with(goodClaims(), "iss", "https://evil.example")), hs(hsSecret)), auth.CodeInvalidClaims},
		{"missing iss", raw(hdr("HS256", "hs"), obj(with(goodClaims(), "iss", nil)), hs(hsSecret)), auth.CodeInvalidClaims},
		{"wrong aud", raw(hdr("HS256", "hs"), obj(with(goodClaims(), "aud", "https://other.example")), hs(hsSecret)), auth.CodeInvalidClaims},
		{"missing aud", raw(hdr("HS256", "hs"), obj(with(goodClaims(), "aud", nil)), hs(hsSecret)), auth.CodeInvalidClaims},

		// The user claim.
		{"user claim missing", raw(hdr("HS256", "hs"), obj(with(goodClaims(), "sub", nil)), hs(hsSecret)), auth.CodeInvalidClaims},
		{"user claim not a string", raw(hdr("HS256", "hs"), obj(with(goodClaims(), "sub", 42)), hs(hsSecret)), auth.CodeInvalidClaims},
		{"user claim empty", raw(hdr("HS256", "hs"), obj(with(goodClaims(), "sub", "")), hs(hsSecret)), auth.CodeInvalidClaims},
		{"user claim too long", raw(hdr("HS256", "hs"), obj(with(goodClaims(), "sub", long(callsign.MaxUserIDLen+1))), hs(hsSecret)), auth.CodeInvalidClaims},
		{"user claim with a line break", raw(hdr("HS256", "hs"), obj(with(goodClaims(), "sub", "alice\nlevel=ERROR")), hs(hsSecret)), auth.CodeInvalidClaims},
		{"scope not a string", raw(hdr("HS256", "hs"), obj(with(goodClaims(), "scope", []string{"admin"})), hs(hsSecret)), auth.CodeInvalidClaims},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := a.Verify(context.Background(), tt.token)
			if got := auth.Code(err); got != tt.code {
				t.Fatalf("Verify = %+v, %v; code %q, want %q", p, err, got, tt.code)
			}
			if p == nil || p.Scheme != callsign.SchemeJWT || p.UserID != "" || p.Claims != nil {
				t.Fatalf("partial principal = %+v", p)
			}
		})
	}
	if n := attackerHits.Load(); n != 0 {
		t.Fatalf("the attacker's server got %d requests", n)
	}
}

// flipTrailingBits gives an unpadded base64url string whose length is not
// a multiple of 4 a non-zero unused low bit: a lenient decoder reads the
// same bytes.
func flipTrailingBits(t *testing.T, s string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, s[len(s)-1])
	out := s[:len(s)-1] + string(alphabet[i|1])
	a, _ := base64.RawURLEncoding.DecodeString(s)
	b, err := base64.RawURLEncoding.DecodeString(out)
	if out == s || err != nil || !bytes.Equal(a, b) {
		t.Fatalf("flipTrailingBits(%q) = %q is not a second spelling", s, out)
	}
	return out
}

// The partial Principal of a refusal names the kid.
func TestPartialPrincipal(t *testing.T) {
	a := newAuth(t)
	p, err := a.Verify(context.Background(), raw(`{"alg":"HS256","kid":"hs"}`, obj(with(goodClaims(), "exp", t0.Add(-time.Hour).Unix())), hs(hsSecret)))
	if !errors.Is(err, jwtbearer.ErrExpired) || p.KeyID != "hs" || p.Scheme != callsign.SchemeJWT || p.UserID != "" {
		t.Fatalf("Verify = %+v, %v", p, err)
	}
}

// Every algorithm, with a token golang-jwt mints.
func TestAlgorithms(t *testing.T) {
	a := newAuth(t)
	tests := []struct {
		name string
		m    jwt.SigningMethod
		kid  string
		key  any
	}{
		{"HS256", jwt.SigningMethodHS256, "hs", hsSecret},
		{"RS256", jwt.SigningMethodRS256, "rs", rsaKey()},
		{"ES256", jwt.SigningMethodES256, "es", ecKey()},
		{"EdDSA", jwt.SigningMethodEdDSA, "ed", edKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := mint(t, tt.m, tt.kid, tt.key, jwt.MapClaims(goodClaims()))
			p, err := a.Verify(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			want := &callsign.Principal{Scheme: callsign.SchemeJWT, KeyID: tt.kid, UserID: "alice", Scopes: []string{"read", "write"},
				ExpiresAt: t0.Add(time.Hour), Claims: map[string]any{"iss": iss, "sub": "alice", "jti": "j1"}}
			if !equalPrincipal(p, want) {
				t.Fatalf("principal = %+v, want %+v", p, want)
			}
		})
	}
}

func mint(t testing.TB, m jwt.SigningMethod, kid string, key any, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func equalPrincipal(a, b *callsign.Principal) bool {
	if a == nil || b == nil {
		return a == b
	}
	if len(a.Claims) != len(b.Claims) {
		return false
	}
	for k, v := range a.Claims {
		if b.Claims[k] != v {
			return false
		}
	}
	return a.AppID == b.AppID && a.Scheme == b.Scheme && a.KeyID == b.KeyID && a.UserID == b.UserID &&
		slices.Equal(a.Scopes, b.Scopes) && a.ExpiresAt.Equal(b.ExpiresAt)
}

func TestLeeway(t *testing.T) {
	tests := []struct {
		name   string
		claims map[string]any
		code   string
	}{
		{"exp 29 s ago, within the 30 s leeway", with(goodClaims(), "exp", t0.Add(-29*time.Second).Unix()), ""},
		{"exp exactly 30 s ago", with(goodClaims(), "exp", t0.Add(-30*time.Second).Unix()), auth.CodeExpired},
		{"nbf 30 s ahead", with(goodClaims(), "nbf", t0.Add(30*time.Second).Unix()), ""},
		{"nbf 31 s ahead", with(goodClaims(), "nbf", t0.Add(31*time.Second).Unix()), auth.CodeNotYetValid},
		{"iat 30 s ahead", with(goodClaims(), "iat", t0.Add(30*time.Second).Unix()), ""},
		{"no iat", with(goodClaims(), "iat", nil), ""},
	}
	a := newAuth(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.Verify(context.Background(), mint(t, jwt.SigningMethodHS256, "hs", hsSecret, jwt.MapClaims(tt.claims)))
			if auth.Code(err) != tt.code {
				t.Fatalf("Verify: %v, want code %q", err, tt.code)
			}
		})
	}
}

func TestScopes(t *testing.T) {
	tests := []struct {
		name   string
		claims map[string]any
		want   []string
		code   string
	}{
		{"scope", with(goodClaims(), "scope", "a  b"), []string{"a", "b"}, ""},
		{"scp string", with(goodClaims(), "scope", nil, "scp", "a b"), []string{"a", "b"}, ""},
		{"scp array", with(goodClaims(), "scope", nil, "scp", []string{"a", "b"}), []string{"a", "b"}, ""},
		{"scope wins over scp", with(goodClaims(), "scope", "a", "scp", []string{"b"}), []string{"a"}, ""},
		{"none", with(goodClaims(), "scope", nil), nil, ""},
		{"empty scope", with(goodClaims(), "scope", ""), nil, ""},
		{"scp with a number", with(goodClaims(), "scope", nil, "scp", []any{"a", 1}), nil, auth.CodeInvalidClaims},
		{"scp with a space", with(goodClaims(), "scope", nil, "scp", []string{"a b"}), nil, auth.CodeInvalidClaims},
		{"scp an object", with(goodClaims(), "scope", nil, "scp", map[string]any{}), nil, auth.CodeInvalidClaims},
	}
	a := newAuth(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := a.Verify(context.Background(), mint(t, jwt.SigningMethodHS256, "hs", hsSecret, jwt.MapClaims(tt.claims)))
			if auth.Code(err) != tt.code {
				t.Fatalf("Verify: %v, want code %q", err, tt.code)
			}
			if err == nil && !slices.Equal(p.Scopes, tt.want) {
				t.Fatalf("scopes = %q, want %q", p.Scopes, tt.want)
			}
		})
	}
}

// A token without kid uses the key configured with kid "" and no other; a
// token with a kid never falls back to it.
func TestKidlessKey(t *testing.T) {
	a, err := jwtbearer.New(jwtbearer.WithKey("", jwks.HS256, hsSecret), jwtbearer.WithNow(at(t0)))
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims(goodClaims())
	if _, err := a.Verify(context.Background(), mint(t, jwt.SigningMethodHS256, "", hsSecret, claims)); err != nil {
		t.Fatalf("no kid: %v", err)
	}
	if _, err := a.Verify(context.Background(), mint(t, jwt.SigningMethodHS256, "k1", hsSecret, claims)); auth.Code(err) != auth.CodeUnknownKey {
		t.Fatalf("kid k1: %v", err)
	}
	if _, err := newAuth(t).Verify(context.Background(), mint(t, jwt.SigningMethodHS256, "", hsSecret, claims)); auth.Code(err) != auth.CodeUnknownKey {
		t.Fatalf("no kid, no kid-less key: %v", err)
	}
}

func TestWeakSecrets(t *testing.T) {
	tests := []struct {
		name    string
		alg     string
		secret  []byte
		allow   bool
		ok      bool
		warning bool
	}{
		{"seed 000's 13-byte secret refused", jwks.HS256, []byte("mytokensecret"), false, false, false},
		{"seed 000's secret with AllowWeakSecrets", jwks.HS256, []byte("mytokensecret"), true, true, true},
		{"31 bytes refused", jwks.HS256, bytes.Repeat([]byte("x"), 31), false, false, false},
		{"32 bytes for HS256", jwks.HS256, bytes.Repeat([]byte("x"), 32), false, true, false},
		{"32 bytes for HS384 refused", jwks.HS384, bytes.Repeat([]byte("x"), 32), false, false, false},
		{"48 bytes for HS384", jwks.HS384, bytes.Repeat([]byte("x"), 48), false, true, false},
		{"64 bytes for HS512", jwks.HS512, bytes.Repeat([]byte("x"), 64), false, true, false},
		{"empty secret refused even with AllowWeakSecrets", jwks.HS256, nil, true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			opts := []jwtbearer.Option{jwtbearer.WithKey("", tt.alg, tt.secret), jwtbearer.WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))}
			if tt.allow {
				opts = append(opts, jwtbearer.AllowWeakSecrets())
			}
			_, err := jwtbearer.New(opts...)
			if (err == nil) != tt.ok {
				t.Fatalf("New: %v, want ok=%v", err, tt.ok)
			}
			if got := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "weak HMAC secret"); got != tt.warning {
				t.Fatalf("warning logged = %v, want %v: %s", got, tt.warning, logs.String())
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name string
		opts []jwtbearer.Option
	}{
		{"no keys", nil},
		{"a bad key", []jwtbearer.Option{jwtbearer.WithKey("k", jwks.RS256, hsSecret)}},
		{"kid twice", []jwtbearer.Option{jwtbearer.WithKey("k", jwks.HS256, hsSecret), jwtbearer.WithKey("k", jwks.EdDSA, edKey)}},
		{"keys and a source", []jwtbearer.Option{jwtbearer.WithKey("k", jwks.HS256, hsSecret), jwtbearer.WithKeySource(&jwks.Set{})}},
		{"negative leeway", []jwtbearer.Option{jwtbearer.WithKey("k", jwks.HS256, hsSecret), jwtbearer.WithLeeway(-time.Second)}},
		{"empty user claim", []jwtbearer.Option{jwtbearer.WithKey("k", jwks.HS256, hsSecret), jwtbearer.WithUserClaim("")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := jwtbearer.New(tt.opts...); err == nil {
				t.Fatal("New accepted")
			}
		})
	}
}

func TestTypes(t *testing.T) {
	tok := func(typ string) string {
		h := map[string]any{"alg": "HS256", "kid": "hs"}
		if typ != "-" {
			h["typ"] = typ
		}
		return raw(obj(h), obj(goodClaims()), hs(hsSecret))
	}
	tests := []struct {
		name  string
		types []string // nil: default
		typ   string   // "-": none
		ok    bool
	}{
		{"default, no typ", nil, "-", true},
		{"default, JWT", nil, "JWT", true},
		{"default, jwt", nil, "jwt", true},
		{"default, application/jwt", nil, "application/jwt", true},
		{"default, at+jwt", nil, "at+jwt", false},
		{"at+jwt required, at+jwt", []string{"at+jwt"}, "application/at+jwt", true},
		{"at+jwt required, no typ", []string{"at+jwt"}, "-", false},
		{"app tokens listed are still refused", []string{"callsign-at+jwt"}, "callsign-at+jwt", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []jwtbearer.Option
			if tt.types != nil {
				opts = append(opts, jwtbearer.WithTypes(tt.types...))
			}
			_, err := newAuth(t, opts...).Verify(context.Background(), tok(tt.typ))
			if (err == nil) != tt.ok || (err != nil && auth.Code(err) != auth.CodeUnsupported) {
				t.Fatalf("Verify: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestDetect(t *testing.T) {
	a := newAuth(t)
	valid := mint(t, jwt.SigningMethodHS256, "hs", hsSecret, jwt.MapClaims(goodClaims()))
	tests := []struct {
		name   string
		header string
		want   bool
	}{
		{"bearer JWT", "Bearer " + valid, true},
		{"lower-case scheme", "bearer " + valid, true},
		{"oversized JWT (refused later as too_large)", "Bearer " + valid + strings.Repeat("A", 10<<10), true},
		{"opaque bearer", "Bearer cs_sec_0123456789abcdefghijklmnopqrstuvwxyz", false},
		{"basic", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", false},
		{"APIKey", "APIKey key=abc", false},
		{"none", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			if got := a.Detect(r); got != tt.want {
				t.Fatalf("Detect = %v, want %v", got, tt.want)
			}
		})
	}
}
