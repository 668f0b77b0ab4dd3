package reqtoken_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/callsignhq/callsign/auth/reqtoken"
)

func TestParsePrivateKey(t *testing.T) {
	bad64 := append([]byte(nil), key...)
	bad64[40] ^= 1 // public half no longer the seed's
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"hex seed (bot-api SessionPrivateKey)", hex.EncodeToString(seed), true},
		{"hex seed, upper case", strings.ToUpper(hex.EncodeToString(seed)), true},
		{"base64url 64-byte key (fox Keystore.PrivateKey)", base64.RawURLEncoding.EncodeToString(key), true},
		{"std base64 64-byte key", base64.StdEncoding.EncodeToString(key), true},
		{"hex 64-byte key", hex.EncodeToString(key), true},
		{"base64url seed", base64.RawURLEncoding.EncodeToString(seed), true},
		{"surrounding white space", "  " + hex.EncodeToString(seed) + "\n", true},
		{"64-byte key with a wrong public half", base64.RawURLEncoding.EncodeToString(bad64), false},
		{"hex of 31 bytes", hex.EncodeToString(seed[:31]), false},
		{"not hex, not base64", strings.Repeat("z", 63) + "!", false},
		{"base64 of 48 bytes", base64.RawURLEncoding.EncodeToString(append(seed, seed[:16]...)), false},
		{"line break inside", base64.RawURLEncoding.EncodeToString(key)[:40] + "\n" + base64.RawURLEncoding.EncodeToString(key)[40:], false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := reqtoken.ParsePrivateKey(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err == nil && !k.Equal(key) {
				t.Fatal("a different key")
			}
			if err != nil {
				assertNoKeyMaterial(t, err.Error(), tt.in)
			}
		})
	}
}

// assertNoKeyMaterial fails if msg contains in or a long run of it (the
// Mixin bot SDK puts the raw key in its error).
func assertNoKeyMaterial(t testing.TB, msg, in string) {
	t.Helper()
	in = strings.TrimSpace(in)
	for i := 0; i+8 <= len(in); i++ {
		if strings.Contains(msg, in[i:i+8]) {
			t.Fatalf("error %q contains key material %q", msg, in[i:i+8])
		}
	}
	if raw, err := hex.DecodeString(in); err == nil && len(raw) >= 8 && strings.Contains(msg, string(raw[:8])) {
		t.Fatalf("error contains raw key bytes")
	}
}

func TestParsePublicKey(t *testing.T) {
	for _, in := range []string{base64.RawURLEncoding.EncodeToString(pub), base64.StdEncoding.EncodeToString(pub), hex.EncodeToString(pub)} {
		if k, err := reqtoken.ParsePublicKey(in); err != nil || !k.Equal(pub) {
			t.Errorf("ParsePublicKey(%q) = %v, %v", in, k, err)
		}
	}
	if _, err := reqtoken.ParsePublicKey(base64.RawURLEncoding.EncodeToString(key)); err == nil {
		t.Error("a 64-byte value accepted as a public key")
	}
}

func TestSignErrors(t *testing.T) {
	tests := []struct {
		name     string
		uid, sid string
		key      ed25519.PrivateKey
		method   string
		opts     []reqtoken.SignOption
	}{
		{"seed instead of key", uid, sid, ed25519.PrivateKey(seed), "GET", nil},
		{"no uid", "", sid, key, "GET", nil},
		{"no sid", uid, "", key, "GET", nil},
		{"no method", uid, sid, key, "", nil},
		{"lifetime zero", uid, sid, key, "GET", []reqtoken.SignOption{reqtoken.WithLifetime(0)}},
		{"lifetime over 90 days", uid, sid, key, "GET", []reqtoken.SignOption{reqtoken.WithLifetime(reqtoken.MaxLifetime + time.Second)}},
		{"jti with a colon", uid, sid, key, "GET", []reqtoken.SignOption{reqtoken.WithID("a:b")}},
		{"scope with a double space", uid, sid, key, "GET", []reqtoken.SignOption{reqtoken.WithScope("A  B")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := reqtoken.Sign(tt.uid, tt.sid, tt.key, tt.method, "/", nil, tt.opts...); err == nil {
				t.Fatal("signed")
			}
		})
	}
}

// Sign's defaults: a one-minute lifetime, scp FULL, a fresh UUIDv4 jti.
func TestSignDefaults(t *testing.T) {
	seen := map[string]bool{}
	for range 3 {
		tok := sign(t, "GET", "/me", "")
		c, err := newVerifier(t, nil).Verify(request("GET", "/me", "", tok))
		if err != nil {
			t.Fatal(err)
		}
		if c.Scope != "FULL" || c.ExpiresAt.Sub(c.IssuedAt) != time.Minute || !c.IssuedAt.Equal(t0) || len(c.ID) != 36 || c.ID[14] != '4' || seen[c.ID] {
			t.Fatalf("claims %+v", c)
		}
		seen[c.ID] = true
	}
}
