package reqtoken_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/auth/reqtoken"
	"github.com/callsignhq/callsign/replay"
)

// codes are the codes verification may return.
var codes = map[string]bool{
	"": true, auth.CodeMissing: true, auth.CodeMalformed: true, auth.CodeTooLarge: true, auth.CodeAlgNotAllowed: true,
	auth.CodeUnsupported: true, auth.CodeInvalidClaims: true, auth.CodeNotYetValid: true, auth.CodeExpired: true,
	auth.CodeUnknownKey: true, auth.CodeBadSignature: true, auth.CodeBodyTooLarge: true, auth.CodeBodyMismatch: true,
	auth.CodeInsufficientScope: true, auth.CodeUserMismatch: true, auth.CodeReplayed: true, auth.CodeReplayStoreFull: true,
}

func fuzzVerifier(f *testing.F) *reqtoken.Verifier {
	v, err := reqtoken.New(reqtoken.Options{Sessions: sessions(defaultSessions()), Replay: replay.NewMemory(1<<16, at(t0)),
		Now: at(t0), MaxBodyBytes: 1 << 10})
	if err != nil {
		f.Fatal(err)
	}
	return v
}

// FuzzVerify signs arbitrary header and claims JSON with the session's key,
// so that the fuzzer reaches the JSON reader and every check after the
// signature. It never panics, every error has a known code, and whatever
// is accepted golang-jwt also accepts, with the same claims (no parser
// differential).
func FuzzVerify(f *testing.F) {
	f.Add(stdHeader, claimsJSON(nil), "GET", "/v1/things", "")
	f.Add(stdHeader, claimsJSON(map[string]any{"sig": sigOf("POST", "/v1/transfers", `{"a":1}`)}), "POST", "/v1/transfers", `{"a":1}`)
	f.Add(`{"alg":"EdDSA","jwk":{"x":[1,2,{"y":null}]}}`, prepend(claimsJSON(nil), `"\u0078":"\ud83d\ude00","n":-1.5e3`), "GET", "/v1/things", "")
	f.Add(`{"alg":"EdDSA","alg":"none"}`, claimsJSON(nil), "GET", "/v1/things", "")
	f.Add(stdHeader, prepend(claimsJSON(nil), `"UID":"x"`), "GET", "/v1/things", "")
	f.Add(`{"alg":"none"}`, `{}`, "GET", "/", "")
	v := fuzzVerifier(f)
	f.Fuzz(func(t *testing.T, header, claims, method, uri, body string) {
		tok := rawToken(header, claims, key)
		c, err := v.VerifyToken(context.Background(), tok, method, uri, []byte(body))
		if !codes[auth.Code(err)] {
			t.Fatalf("unknown code %q: %v", auth.Code(err), err)
		}
		if err != nil {
			return
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(claims), &m); err != nil {
			t.Fatalf("accepted claims encoding/json refuses: %v", err)
		}
		for name, got := range map[string]string{"uid": c.UserID, "sid": c.SessionID, "jti": c.ID, "scp": c.Scope} {
			if m[name] != got {
				t.Fatalf("%s: we read %q, encoding/json %q", name, got, m[name])
			}
		}
		if s, _ := m["sig"].(string); s != sigOf(method, uri, body) {
			t.Fatalf("accepted with sig %q for %s %s", s, method, uri)
		}
		jt, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return pub, nil },
			jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithTimeFunc(at(t0)), jwt.WithLeeway(reqtoken.DefaultLeeway))
		if err != nil || !jt.Valid {
			t.Fatalf("we accept what golang-jwt refuses: %v", err)
		}
	})
}

// FuzzVerifyToken feeds arbitrary tokens and requests.
func FuzzVerifyToken(f *testing.F) {
	f.Add(rawToken(stdHeader, claimsJSON(nil), key), "GET", "/v1/things", "")
	f.Add(b64(`{"alg":"none"}`)+"."+b64(claimsJSON(nil))+".", "GET", "/v1/things", "")
	f.Add("a.b.c.d", "GET", "/", "")
	f.Add("..", "", "", "")
	if b, err := os.ReadFile("testdata/mixin_vectors.json"); err == nil {
		var vf struct{ Vectors []vector }
		json.Unmarshal(b, &vf)
		for _, vec := range vf.Vectors {
			f.Add(vec.Token, vec.Method, vec.URI, vec.Body)
		}
	}
	v := fuzzVerifier(f)
	f.Fuzz(func(t *testing.T, tok, method, uri, body string) {
		_, err := v.VerifyToken(context.Background(), tok, method, uri, []byte(body))
		if !codes[auth.Code(err)] {
			t.Fatalf("unknown code %q: %v", auth.Code(err), err)
		}
	})
}

// FuzzParsePrivateKey: never panics, a key it returns is whole, and its
// errors are fixed sentences (no key material).
func FuzzParsePrivateKey(f *testing.F) {
	f.Add(hex.EncodeToString(seed))
	f.Add(hex.EncodeToString(key))
	f.Add(base64.RawURLEncoding.EncodeToString(key))
	f.Add(base64.StdEncoding.EncodeToString(seed))
	f.Add("zz")
	bad := append([]byte(nil), key...)
	bad[63] ^= 1
	f.Add(base64.RawURLEncoding.EncodeToString(bad))
	_, e1 := reqtoken.ParsePrivateKey("")
	_, e2 := reqtoken.ParsePrivateKey(base64.RawURLEncoding.EncodeToString(bad))
	fixed := map[string]bool{e1.Error(): true, e2.Error(): true}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := reqtoken.ParsePrivateKey(s)
		if err != nil {
			if !fixed[err.Error()] {
				t.Fatalf("error %q is not one of the fixed sentences", err)
			}
			return
		}
		if len(k) != 64 {
			t.Fatalf("key of %d bytes", len(k))
		}
		k2, err := reqtoken.ParsePrivateKey(hex.EncodeToString(k.Seed()))
		if err != nil || !k2.Equal(k) {
			t.Fatal("key does not round-trip through its seed")
		}
		if _, err := reqtoken.Sign(uid, sid, k, "GET", "/", nil, reqtoken.WithClock(func() time.Time { return t0 })); err != nil {
			t.Fatal(err)
		}
	})
}
