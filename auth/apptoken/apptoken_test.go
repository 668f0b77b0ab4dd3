package apptoken_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth/apptoken"
	"github.com/callsignhq/callsign/auth/jwks"
	"github.com/callsignhq/callsign/auth/tokencache"
	"github.com/golang-jwt/jwt/v5"
)

const issuer = "https://callsign.example"

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func newKey(t testing.TB, id string) *callsign.SigningKey {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	copy(seed, id)
	priv := ed25519.NewKeyFromSeed(seed)
	return &callsign.SigningKey{ID: id, Public: priv.Public().(ed25519.PublicKey), Private: priv, CreatedAt: t0}
}

func at(t time.Time) func() time.Time { return func() time.Time { return t } }

func TestMintVerify(t *testing.T) {
	k := newKey(t, "k1")
	keys := apptoken.NewJWKS([]*callsign.SigningKey{k})
	for _, user := range []string{"", "alice", "ユーザー 7"} {
		t.Run("user="+user, func(t *testing.T) {
			tok, exp, err := apptoken.Mint(k, issuer, "app_1", user, t0, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if !exp.Equal(t0.Add(time.Hour)) {
				t.Fatalf("exp = %v", exp)
			}
			c, err := apptoken.NewVerifier(keys, issuer, at(t0.Add(59*time.Minute))).Verify(tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.AppID != "app_1" || c.UserID != user || c.Scope != "ingest" || c.ID == "" {
				t.Fatalf("claims = %+v", c)
			}
		})
	}
}

// sign builds a JWS by hand so that the attack rows can put anything in the
// header and claims.
func sign(header, claims map[string]any, signer func([]byte) []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	return in + "." + base64.RawURLEncoding.EncodeToString(signer([]byte(in)))
}

func TestVerifyAttacks(t *testing.T) {
	k := newKey(t, "k1")
	other := newKey(t, "k2")
	keys := apptoken.NewJWKS([]*callsign.SigningKey{k})
	v := apptoken.NewVerifier(keys, issuer, at(t0))
	good := func() (map[string]any, map[string]any) {
		return map[string]any{"alg": "EdDSA", "typ": apptoken.Type, "kid": "k1"},
			map[string]any{"iss": issuer, "aud": []string{apptoken.Audience}, "iat": t0.Unix(), "exp": t0.Add(time.Hour).Unix(),
				"jti": "j1", "app_id": "app_1", "scope": "ingest"}
	}
	ed := func(key *callsign.SigningKey) func([]byte) []byte {
		return func(b []byte) []byte { return ed25519.Sign(key.Private, b) }
	}
	hs := func(secret []byte) func([]byte) []byte {
		return func(b []byte) []byte {
			s, _ := jwt.SigningMethodHS256.Sign(string(b), secret)
			return s
		}
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
	valid := mod(nil, nil, ed(k))
	if _, err := v.Verify(valid); err != nil {
		t.Fatalf("the untouched token must verify: %v", err)
	}
	parts := strings.Split(valid, ".")

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"alg none", mod(func(h map[string]any) { h["alg"] = "none" }, nil, func([]byte) []byte { return nil }), apptoken.ErrInvalid},
		{"alg NoNe", mod(func(h map[string]any) { h["alg"] = "NoNe" }, nil, func([]byte) []byte { return nil }), apptoken.ErrInvalid},
		{"HS256 with the public key as secret", mod(func(h map[string]any) { h["alg"] = "HS256" }, nil, hs(k.Public)), apptoken.ErrInvalid},
		{"signed by an unpublished key under a known kid", mod(nil, nil, ed(other)), apptoken.ErrInvalid},
		{"unknown kid", mod(func(h map[string]any) { h["kid"] = "k9" }, nil, ed(k)), apptoken.ErrUnknownKey},
		{"kid with path characters", mod(func(h map[string]any) { h["kid"] = "../../etc/passwd" }, nil, ed(k)), apptoken.ErrUnknownKey},
		{"no kid", mod(func(h map[string]any) { delete(h, "kid") }, nil, ed(k)), apptoken.ErrUnknownKey},
		{"jwk header ignored", mod(func(h map[string]any) {
			h["kid"] = "k9"
			h["jwk"] = map[string]string{"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(other.Public)}
		}, nil, ed(other)), apptoken.ErrUnknownKey},
		{"wrong typ", mod(func(h map[string]any) { h["typ"] = "JWT" }, nil, ed(k)), apptoken.ErrType},
		{"no typ", mod(func(h map[string]any) { delete(h, "typ") }, nil, ed(k)), apptoken.ErrType},
		{"expired", mod(nil, func(c map[string]any) { c["exp"] = t0.Add(-time.Minute).Unix() }, ed(k)), apptoken.ErrInvalid},
		{"no exp", mod(nil, func(c map[string]any) { delete(c, "exp") }, ed(k)), apptoken.ErrInvalid},
		{"iat in the future", mod(nil, func(c map[string]any) { c["iat"] = t0.Add(time.Hour).Unix() }, ed(k)), apptoken.ErrInvalid},
		{"wrong issuer", mod(nil, func(c map[string]any) { c["iss"] = "https://evil.example" }, ed(k)), apptoken.ErrInvalid},
		{"wrong audience", mod(nil, func(c map[string]any) { c["aud"] = "something-else" }, ed(k)), apptoken.ErrInvalid},
		{"no app_id", mod(nil, func(c map[string]any) { delete(c, "app_id") }, ed(k)), apptoken.ErrInvalid},
		{"wrong scope", mod(nil, func(c map[string]any) { c["scope"] = "admin" }, ed(k)), apptoken.ErrInvalid},
		{"no jti", mod(nil, func(c map[string]any) { delete(c, "jti") }, ed(k)), apptoken.ErrInvalid},
		{"payload swapped", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"app_id":"app_2"}`)) + "." + parts[2], apptoken.ErrInvalid},
		{"padded base64", parts[0] + "=." + parts[1] + "." + parts[2], apptoken.ErrMalformed},
		{"two segments", parts[0] + "." + parts[1], apptoken.ErrMalformed},
		{"four segments", valid + ".x", apptoken.ErrMalformed},
		{"empty", "", apptoken.ErrMalformed},
		{"oversized", strings.Repeat("a", apptoken.MaxTokenLen+1), apptoken.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(tt.token)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %+v, %v; want %v", c, err, tt.want)
			}
		})
	}
}

func TestParseJWKS(t *testing.T) {
	k := newKey(t, "k1")
	doc, _ := json.Marshal(apptoken.NewJWKS([]*callsign.SigningKey{k}))
	s, err := apptoken.ParseJWKS(doc)
	if err != nil {
		t.Fatal(err)
	}
	if pk, ok := s.PublicKey("k1"); !ok || !pk.Equal(k.Public) {
		t.Fatalf("PublicKey(k1) = %x, %v", pk, ok)
	}
	bad := []string{
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"short"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + base64.RawURLEncoding.EncodeToString(k.Public) + `","kid":""}]}`,
		`not json`,
	}
	for _, b := range bad {
		if _, err := apptoken.ParseJWKS([]byte(b)); err == nil {
			t.Errorf("ParseJWKS(%s) accepted", b)
		}
	}
	// Keys of other types are skipped, not fatal.
	s, err = apptoken.ParseJWKS([]byte(`{"keys":[{"kty":"RSA","n":"x","e":"AQAB","kid":"r"}]}`))
	if err != nil || len(s.Keys) != 0 {
		t.Fatalf("RSA key: %v, %d keys", err, len(s.Keys))
	}
}

func Example() {
	// The server mints (package httpapi does this in POST /v2/tokens/upgrade).
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	key := &callsign.SigningKey{ID: "k1", Public: priv.Public().(ed25519.PublicKey), Private: priv}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	tok, _, _ := apptoken.Mint(key, "https://callsign.example", "app_1", "alice", now, 24*time.Hour)

	// Anyone with the JWKS verifies offline.
	jwks := apptoken.NewJWKS([]*callsign.SigningKey{key})
	v := apptoken.NewVerifier(jwks, "https://callsign.example", func() time.Time { return now.Add(time.Hour) })
	c, err := v.Verify(tok)
	fmt.Println(c.AppID, c.UserID, err)
	// Output: app_1 alice <nil>
}

func BenchmarkVerify(b *testing.B) {
	k := newKey(b, "k1")
	tok, _, _ := apptoken.Mint(k, issuer, "app_1", "alice", t0, time.Hour)
	v := apptoken.NewVerifier(apptoken.NewJWKS([]*callsign.SigningKey{k}), issuer, at(t0))
	b.Run("apptoken.Verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The Authenticator on a request, with the key from a JWK Set: the full
	// check (cache disabled), then a cache hit.
	keys, _ := jwks.NewSet(func() *jwks.Key { k, _ := jwks.NewKey(k.ID, jwks.EdDSA, k.Public); return k }())
	r := httptest.NewRequest("POST", "/ingest", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	for _, c := range []struct {
		name  string
		cache int
	}{{"Authenticator-cold", 0}, {"Authenticator-warm", tokencache.DefaultSize}} {
		a, err := apptoken.NewAuthenticator(keys, issuer, apptoken.WithNow(at(t0)), apptoken.WithCacheSize(c.cache))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Authenticate(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// The floor: the signature check alone, on the same signing input.
	i := strings.LastIndexByte(tok, '.')
	msg := []byte(tok[:i])
	sig, _ := base64.RawURLEncoding.DecodeString(tok[i+1:])
	b.Run("ed25519.Verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !ed25519.Verify(k.Public, msg, sig) {
				b.Fatal("bad signature")
			}
		}
	})
}
