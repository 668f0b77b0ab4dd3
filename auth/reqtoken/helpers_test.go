package reqtoken_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/callsignhq/callsign/auth/reqtoken"
	"github.com/callsignhq/callsign/replay"
)

// The key and ids of testdata/mixin_vectors.json.
var (
	seed = func() []byte {
		s := make([]byte, 32)
		for i := range s {
			s[i] = byte(i)
		}
		return s
	}()
	key = ed25519.NewKeyFromSeed(seed)
	pub = key.Public().(ed25519.PublicKey)

	otherKey = ed25519.NewKeyFromSeed(make([]byte, 32)) // an attacker's

	t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

const (
	uid = "6a87e67f-02fb-47cf-b31f-32a13dd5b3d9"
	sid = "f1b3d1a8-2f5e-4a0c-9d8e-7c6b5a493827"
)

func at(t time.Time) func() time.Time { return func() time.Time { return t } }

// sessions is a locator over a fixed map.
func sessions(m map[string]reqtoken.Session) func(context.Context, string) (reqtoken.Session, error) {
	return func(_ context.Context, id string) (reqtoken.Session, error) {
		s, ok := m[id]
		if !ok {
			return reqtoken.Session{}, reqtoken.ErrUnknownSession
		}
		return s, nil
	}
}

func defaultSessions() map[string]reqtoken.Session {
	return map[string]reqtoken.Session{sid: {UserID: uid, PublicKey: pub, Scopes: []string{"FULL"}}}
}

// newVerifier returns a Verifier at t0 over defaultSessions with a fresh
// replay store, changed by mod.
func newVerifier(t testing.TB, mod func(*reqtoken.Options)) *reqtoken.Verifier {
	t.Helper()
	o := reqtoken.Options{Sessions: sessions(defaultSessions()), Now: at(t0)}
	if mod != nil {
		mod(&o)
	}
	if o.Replay == nil {
		o.Replay = replay.NewMemory(1000, o.Now)
	}
	v, err := reqtoken.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// request is a server-side request as net/http would hand it over.
func request(method, uri, body, token string) *http.Request {
	r := httptest.NewRequest(method, uri, strings.NewReader(body))
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

// sign signs with the test key at t0 (by default).
func sign(t testing.TB, method, uri, body string, opts ...reqtoken.SignOption) string {
	t.Helper()
	tok, err := reqtoken.Sign(uid, sid, key, method, uri, []byte(body), append([]reqtoken.SignOption{reqtoken.WithClock(at(t0))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// rawToken signs header and claims JSON, byte for byte as given, with k.
func rawToken(header, claims string, k ed25519.PrivateKey) string {
	msg := b64(header) + "." + b64(claims)
	return msg + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(k, []byte(msg)))
}

const stdHeader = `{"alg":"EdDSA","typ":"JWT"}`

// claimsJSON returns the claims of a valid token for GET /v1/things at t0,
// with the given members changed (a nil value deletes one).
func claimsJSON(change map[string]any) string {
	sum := reqtoken.Digest("GET", "/v1/things", nil)
	c := map[string]any{
		"uid": uid, "sid": sid, "iat": t0.Unix(), "exp": t0.Unix() + 60,
		"jti": "00000000-0000-4000-8000-00000000000a", "scp": "FULL",
		"sig": hexs(sum[:]),
	}
	for k, v := range change {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	b, _ := json.Marshal(c)
	return string(b)
}

// prepend adds raw members at the start of a JSON object.
func prepend(obj, members string) string { return "{" + members + "," + obj[1:] }

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	s := make([]byte, 0, 2*len(b))
	for _, c := range b {
		s = append(s, digits[c>>4], digits[c&15])
	}
	return string(s)
}

func ed25519Sign(k ed25519.PrivateKey, msg string) []byte { return ed25519.Sign(k, []byte(msg)) }
