package reqtoken_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/auth/reqtoken"
	"github.com/callsignhq/callsign/replay"
)

// A request that a row sends: GET /v1/things with no body unless said.
type req struct{ method, uri, body string }

var getThings = req{"GET", "/v1/things", ""}

// tweakLastChar changes the unused low bits of a base64url segment's last
// character: a non-canonical encoding of the same bytes.
func tweakLastChar(seg string) string {
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alpha, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alpha[i|1])
}

func segments(tok string) []string { return strings.Split(tok, ".") }

func hs256(header, claims string, secret []byte) string {
	msg := b64(header) + "." + b64(claims)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(msg))
	return msg + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// TestAttacks: each row is one way to get a request through without the
// key, or with a token that is not for this request; each asserts the
// precise code. want "" means the row must be accepted (controls).
func TestAttacks(t *testing.T) {
	valid := claimsJSON(nil)
	otherPub := base64.RawURLEncoding.EncodeToString(otherKey.Public().(ed25519.PublicKey))
	tests := []struct {
		name  string
		token func(t *testing.T) string
		req   req                      // getThings if zero
		now   time.Time                // t0 if zero
		opts  func(*reqtoken.Options)  // changes to the Verifier
		first func(*reqtoken.Verifier) // runs before the checked request
		want  string
	}{
		{name: "control: valid", token: func(*testing.T) string { return rawToken(stdHeader, valid, key) }},
		{name: "control: Sign", token: func(t *testing.T) string { return sign(t, "GET", "/v1/things", "") }},

		// Algorithm.
		{name: "alg none", want: auth.CodeAlgNotAllowed, token: func(*testing.T) string {
			return b64(`{"alg":"none","typ":"JWT"}`) + "." + b64(valid) + "."
		}},
		{name: "alg None", want: auth.CodeAlgNotAllowed, token: func(*testing.T) string {
			return b64(`{"alg":"None","typ":"JWT"}`) + "." + b64(valid) + "."
		}},
		{name: "alg NONE", want: auth.CodeAlgNotAllowed, token: func(*testing.T) string {
			return b64(`{"alg":"NONE","typ":"JWT"}`) + "." + b64(valid) + "."
		}},
		{name: "alg none with a signature", want: auth.CodeAlgNotAllowed, token: func(*testing.T) string {
			return rawToken(`{"alg":"none"}`, valid, key)
		}},
		{name: "alg HS256 keyed with the public key (key confusion)", want: auth.CodeAlgNotAllowed, token: func(*testing.T) string {
			return hs256(`{"alg":"HS256","typ":"JWT"}`, valid, pub)
		}},
		{name: "alg HS256 keyed with the base64url public key", want: auth.CodeAlgNotAllowed, token: func(*testing.T) string {
			return hs256(`{"alg":"HS256","typ":"JWT"}`, valid, []byte(base64.RawURLEncoding.EncodeToString(pub)))
		}},
		{name: "alg eddsa (case)", want: auth.CodeAlgNotAllowed, token: func(*testing.T) string {
			return rawToken(`{"alg":"eddsa","typ":"JWT"}`, valid, key)
		}},
		{name: "alg Ed25519", want: auth.CodeAlgNotAllowed, token: func(*testing.T) string {
			return rawToken(`{"alg":"Ed25519","typ":"JWT"}`, valid, key)
		}},
		{name: "alg ES256", want: auth.CodeAlgNotAllowed, token: func(*testing.T) string {
			return rawToken(`{"alg":"ES256","typ":"JWT"}`, valid, key)
		}},
		{name: "alg missing", want: auth.CodeMalformed, token: func(*testing.T) string {
			return rawToken(`{"typ":"JWT"}`, valid, key)
		}},
		{name: "alg not a string", want: auth.CodeMalformed, token: func(*testing.T) string {
			return rawToken(`{"alg":["EdDSA"],"typ":"JWT"}`, valid, key)
		}},

		// Header parameters.
		{name: "crit unknown", want: auth.CodeUnsupported, token: func(*testing.T) string {
			return rawToken(`{"alg":"EdDSA","crit":["exp2"],"exp2":1}`, valid, key)
		}},
		{name: "crit empty", want: auth.CodeUnsupported, token: func(*testing.T) string {
			return rawToken(`{"alg":"EdDSA","crit":[]}`, valid, key)
		}},
		{name: "crit b64 false (RFC 7797)", want: auth.CodeUnsupported, token: func(*testing.T) string {
			return rawToken(`{"alg":"EdDSA","b64":false,"crit":["b64"]}`, valid, key)
		}},
		{name: "typ of another kind", want: auth.CodeUnsupported, token: func(*testing.T) string {
			return rawToken(`{"alg":"EdDSA","typ":"callsign-at+jwt"}`, valid, key)
		}},
		{name: "control: typ jwt, any case", token: func(*testing.T) string {
			return rawToken(`{"alg":"EdDSA","typ":"jwt"}`, valid, key)
		}},
		{name: "control: no typ", token: func(*testing.T) string {
			return rawToken(`{"alg":"EdDSA"}`, valid, key)
		}},
		{name: "control: kid jku x5u jwk headers ignored", token: func(*testing.T) string {
			return rawToken(`{"alg":"EdDSA","kid":"other","jku":"https://evil.example/jwks","x5u":"https://evil.example/cert",`+
				`"jwk":{"kty":"OKP","crv":"Ed25519","x":"`+otherPub+`"},"typ":"JWT"}`, valid, key)
		}},
		{name: "jwk header carrying the attacker's key", want: auth.CodeBadSignature, token: func(*testing.T) string {
			return rawToken(`{"alg":"EdDSA","jwk":{"kty":"OKP","crv":"Ed25519","x":"`+otherPub+`"},"typ":"JWT"}`, valid, otherKey)
		}},
		{name: "jku to the attacker's key set", want: auth.CodeBadSignature, token: func(*testing.T) string {
			return rawToken(`{"alg":"EdDSA","jku":"https://evil.example/jwks","kid":"evil","typ":"JWT"}`, valid, otherKey)
		}},
		{name: "x5u to the attacker's certificate", want: auth.CodeBadSignature, token: func(*testing.T) string {
			return rawToken(`{"alg":"EdDSA","x5u":"https://evil.example/cert","typ":"JWT"}`, valid, otherKey)
		}},

		// Duplicate members.
		{name: "duplicate header alg, none last", want: auth.CodeMalformed, token: func(*testing.T) string {
			return rawToken(`{"alg":"EdDSA","alg":"none"}`, valid, key)
		}},
		{name: "duplicate header alg, EdDSA last", want: auth.CodeMalformed, token: func(*testing.T) string {
			return rawToken(`{"alg":"none","alg":"EdDSA"}`, valid, key)
		}},
		{name: "duplicate header alg, escaped name", want: auth.CodeMalformed, token: func(*testing.T) string {
			return rawToken(`{"alg":"EdDSA","\u0061lg":"none"}`, valid, key)
		}},
		{name: "duplicate header alg, other case", want: auth.CodeMalformed, token: func(*testing.T) string {
			return rawToken(`{"alg":"EdDSA","ALG":"none"}`, valid, key)
		}},
		{name: "duplicate claim uid", want: auth.CodeMalformed, token: func(*testing.T) string {
			return rawToken(stdHeader, prepend(valid, `"uid":"someone-else"`), key)
		}},
		{name: "duplicate claim uid, escaped name", want: auth.CodeMalformed, token: func(*testing.T) string {
			return rawToken(stdHeader, prepend(valid, `"\u0075id":"someone-else"`), key)
		}},
		{name: "duplicate claim uid, other case", want: auth.CodeMalformed, token: func(*testing.T) string {
			return rawToken(stdHeader, prepend(valid, `"UID":"someone-else"`), key)
		}},
		{name: "duplicate claim exp", want: auth.CodeMalformed, token: func(*testing.T) string {
			return rawToken(stdHeader, prepend(valid, `"exp":99999999999`), key)
		}},
		{name: "duplicate claim sig", want: auth.CodeMalformed, token: func(*testing.T) string {
			return rawToken(stdHeader, prepend(valid, `"sig":"0000000000000000000000000000000000000000000000000000000000000000"`), key)
		}},

		// Encoding.
		{name: "padding on a segment", want: auth.CodeMalformed, token: func(*testing.T) string {
			s := segments(rawToken(stdHeader, valid, key))
			return s[0] + "." + s[1] + "." + s[2] + "=="
		}},
		{name: "padded header", want: auth.CodeMalformed, token: func(*testing.T) string {
			h := base64.URLEncoding.EncodeToString([]byte(`{"alg":"EdDSA"} `)) // 16 bytes: "==" padding
			msg := h + "." + b64(valid)
			return msg + "." + base64.RawURLEncoding.EncodeToString(edSign(msg))
		}},
		{name: "signature with non-zero trailing bits", want: auth.CodeMalformed, token: func(*testing.T) string {
			s := segments(rawToken(stdHeader, valid, key))
			return s[0] + "." + s[1] + "." + tweakLastChar(s[2])
		}},
		{name: "claims with non-zero trailing bits, signed as sent", want: auth.CodeMalformed, token: func(t *testing.T) string {
			c := b64(valid)
			if len(c)%4 == 0 {
				c = b64(valid + " ")
			}
			msg := b64(stdHeader) + "." + tweakLastChar(c)
			return msg + "." + base64.RawURLEncoding.EncodeToString(edSign(msg))
		}},
		{name: "standard base64 alphabet", want: auth.CodeMalformed, token: func(*testing.T) string {
			s := segments(rawToken(stdHeader, valid, key))
			return s[0] + "." + s[1] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(s[2]) + "+/"
		}},
		{name: "line break inside a segment", want: auth.CodeMalformed, token: func(*testing.T) string {
			s := segments(rawToken(stdHeader, valid, key))
			return s[0] + "." + s[1][:10] + "\n" + s[1][10:] + "." + s[2]
		}},
		{name: "invalid UTF-8 in a claim", want: auth.CodeMalformed, token: func(*testing.T) string {
			return rawToken(stdHeader, prepend(valid, "\"x\":\"\xff\""), key)
		}},
		{name: "lone surrogate in a claim", want: auth.CodeMalformed, token: func(*testing.T) string {
			return rawToken(stdHeader, prepend(valid, `"x":"\ud800"`), key)
		}},
		{name: "data after the claims object", want: auth.CodeMalformed, token: func(*testing.T) string {
			return rawToken(stdHeader, valid+"{}", key)
		}},
		{name: "claims not an object", want: auth.CodeMalformed, token: func(*testing.T) string {
			return rawToken(stdHeader, `["uid","sid"]`, key)
		}},

		// Segments.
		{name: "two segments", want: auth.CodeMalformed, token: func(*testing.T) string {
			s := segments(rawToken(stdHeader, valid, key))
			return s[0] + "." + s[1]
		}},
		{name: "four segments", want: auth.CodeMalformed, token: func(*testing.T) string {
			return rawToken(stdHeader, valid, key) + ".AAAA"
		}},
		{name: "five segments (JWE)", want: auth.CodeMalformed, token: func(*testing.T) string {
			return b64(`{"alg":"dir","enc":"A128GCM"}`) + "..AAAA.AAAA.AAAA"
		}},
		{name: "empty signature", want: auth.CodeMalformed, token: func(*testing.T) string {
			s := segments(rawToken(stdHeader, valid, key))
			return s[0] + "." + s[1] + "."
		}},
		{name: "empty claims", want: auth.CodeMalformed, token: func(*testing.T) string {
			s := segments(rawToken(stdHeader, valid, key))
			return s[0] + ".." + s[2]
		}},
		{name: "no token", want: auth.CodeMissing, token: func(*testing.T) string { return "" }},
		{name: "dots only", want: auth.CodeMalformed, token: func(*testing.T) string { return ".." }},

		// Signature.
		{name: "signature of another key", want: auth.CodeBadSignature, token: func(*testing.T) string {
			return rawToken(stdHeader, valid, otherKey)
		}},
		{name: "signature bit flipped", want: auth.CodeBadSignature, token: func(*testing.T) string {
			s := segments(rawToken(stdHeader, valid, key))
			sig, _ := base64.RawURLEncoding.DecodeString(s[2])
			sig[10] ^= 1
			return s[0] + "." + s[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
		}},
		{name: "claims changed after signing", want: auth.CodeBadSignature, token: func(*testing.T) string {
			s := segments(rawToken(stdHeader, valid, key))
			return s[0] + "." + b64(claimsJSON(map[string]any{"uid": "someone-else"})) + "." + s[2]
		}},

		// Claims.
		{name: "no uid", want: auth.CodeInvalidClaims, token: claimsRow(map[string]any{"uid": nil})},
		{name: "no sid", want: auth.CodeInvalidClaims, token: claimsRow(map[string]any{"sid": nil})},
		{name: "no jti", want: auth.CodeInvalidClaims, token: claimsRow(map[string]any{"jti": nil})},
		{name: "no sig", want: auth.CodeInvalidClaims, token: claimsRow(map[string]any{"sig": nil})},
		{name: "no scp", want: auth.CodeInvalidClaims, token: claimsRow(map[string]any{"scp": nil})},
		{name: "no iat", want: auth.CodeInvalidClaims, token: claimsRow(map[string]any{"iat": nil})},
		{name: "no exp", want: auth.CodeInvalidClaims, token: claimsRow(map[string]any{"exp": nil})},
		{name: "exp a string", want: auth.CodeInvalidClaims, token: claimsRow(map[string]any{"exp": "1767323105"})},
		{name: "iat a fraction", want: auth.CodeInvalidClaims, token: claimsRow(map[string]any{"iat": float64(t0.Unix()) + 0.5})},
		{name: "iat negative", want: auth.CodeInvalidClaims, token: claimsRow(map[string]any{"iat": -1})},
		{name: "exp after year 9999", want: auth.CodeInvalidClaims, token: claimsRow(map[string]any{"exp": int64(1e15)})},
		{name: "uid not a string", want: auth.CodeInvalidClaims, token: claimsRow(map[string]any{"uid": 42})},
		{name: "sig in upper case", want: auth.CodeInvalidClaims, token: func(*testing.T) string {
			s := reqtoken.Digest("GET", "/v1/things", nil)
			return rawToken(stdHeader, claimsJSON(map[string]any{"sig": strings.ToUpper(hexs(s[:]))}), key)
		}},
		{name: "jti with a colon", want: auth.CodeInvalidClaims, token: claimsRow(map[string]any{"jti": "a:b"})},
		{name: "sid with a control character", want: auth.CodeInvalidClaims, token: claimsRow(map[string]any{"sid": sid + "\n"})},
		{name: "exp before iat", want: auth.CodeInvalidClaims, token: claimsRow(map[string]any{"exp": t0.Unix() - 1})},
		{name: "lifetime over 90 days", want: auth.CodeInvalidClaims, token: claimsRow(map[string]any{"exp": t0.Unix() + 90*86400 + 1})},
		{name: "control: lifetime of 90 days", token: claimsRow(map[string]any{"exp": t0.Unix() + 90*86400})},

		// Time.
		{name: "expired", want: auth.CodeExpired, now: t0.Add(90 * time.Second), token: validRow},
		{name: "control: expired within leeway", now: t0.Add(89 * time.Second), token: validRow},
		{name: "iat in the future", want: auth.CodeNotYetValid, token: claimsRow(map[string]any{"iat": t0.Unix() + 31, "exp": t0.Unix() + 91})},
		{name: "control: iat in the future within leeway", token: claimsRow(map[string]any{"iat": t0.Unix() + 30, "exp": t0.Unix() + 90})},
		{name: "nbf in the future", want: auth.CodeNotYetValid, token: claimsRow(map[string]any{"nbf": t0.Unix() + 31})},
		{name: "older than MaxAge though exp is far", want: auth.CodeExpired, now: t0.Add(5*time.Minute + 30*time.Second),
			token: claimsRow(map[string]any{"exp": t0.Unix() + 86400})},
		{name: "control: just within MaxAge", now: t0.Add(5*time.Minute + 29*time.Second),
			token: claimsRow(map[string]any{"exp": t0.Unix() + 86400})},
		{name: "older than a shorter MaxAge", want: auth.CodeExpired, now: t0.Add(31 * time.Second), token: validRow,
			opts: func(o *reqtoken.Options) { o.MaxAge, o.Leeway = time.Second, 30*time.Second }},

		// Single use.
		{name: "replayed jti", want: auth.CodeReplayed, token: validRow, first: func(v *reqtoken.Verifier) {
			v.Verify(request("GET", "/v1/things", "", rawToken(stdHeader, valid, key)))
		}},
		{name: "replayed jti with another request", want: auth.CodeReplayed,
			token: claimsRow(map[string]any{"sig": sigOf("POST", "/v1/other", "x")}), req: req{"POST", "/v1/other", "x"},
			first: func(v *reqtoken.Verifier) {
				v.Verify(request("GET", "/v1/things", "", rawToken(stdHeader, valid, key)))
			}},
		{name: "control: a refused request does not use up the jti", token: validRow, first: func(v *reqtoken.Verifier) {
			v.Verify(request("GET", "/v1/things?x", "", rawToken(stdHeader, valid, key)))
		}},
		{name: "replay store full", want: auth.CodeReplayStoreFull, token: validRow, opts: func(o *reqtoken.Options) {
			o.Replay = replay.NewMemory(1, o.Now)
			o.Replay.Use(context.Background(), "someone:else", t0.Add(time.Hour))
		}},

		// The request.
		{name: "sig of another method", want: auth.CodeBodyMismatch, token: validRow, req: req{"DELETE", "/v1/things", ""}},
		{name: "sig of the method in another case", want: auth.CodeBodyMismatch, token: validRow, req: req{"get", "/v1/things", ""}},
		{name: "sig of another path", want: auth.CodeBodyMismatch, token: validRow, req: req{"GET", "/v1/admin", ""}},
		{name: "query added", want: auth.CodeBodyMismatch, token: validRow, req: req{"GET", "/v1/things?all=1", ""}},
		{name: "empty query added", want: auth.CodeBodyMismatch, token: validRow, req: req{"GET", "/v1/things?", ""}},
		{name: "query reordered", want: auth.CodeBodyMismatch, req: req{"GET", "/v1/things?b=2&a=1", ""},
			token: func(t *testing.T) string { return sign(t, "GET", "/v1/things?a=1&b=2", "") }},
		{name: "path escape decoded", want: auth.CodeBodyMismatch, req: req{"GET", "/v1/a/b", ""},
			token: func(t *testing.T) string { return sign(t, "GET", "/v1/a%2Fb", "") }},
		{name: "control: path escape kept", req: req{"GET", "/v1/a%2Fb?q=%20x", ""},
			token: func(t *testing.T) string { return sign(t, "GET", "/v1/a%2Fb?q=%20x", "") }},
		{name: "body added", want: auth.CodeBodyMismatch, token: validRow, req: req{"GET", "/v1/things", "{}"}},
		{name: "body changed after signing", want: auth.CodeBodyMismatch, req: req{"POST", "/v1/transfers", `{"amount":"1000"}`},
			token: func(t *testing.T) string { return sign(t, "POST", "/v1/transfers", `{"amount":"1"}`) }},
		{name: "body with a trailing newline", want: auth.CodeBodyMismatch, req: req{"POST", "/v1/transfers", "{}\n"},
			token: func(t *testing.T) string { return sign(t, "POST", "/v1/transfers", "{}") }},
		{name: "control: body", req: req{"POST", "/v1/transfers", `{"amount":"1"}`},
			token: func(t *testing.T) string { return sign(t, "POST", "/v1/transfers", `{"amount":"1"}`) }},

		// Who.
		{name: "uid does not own sid", want: auth.CodeUserMismatch, token: claimsRow(map[string]any{"uid": "someone-else"})},
		{name: "unknown sid", want: auth.CodeUnknownKey, token: claimsRow(map[string]any{"sid": "no-such-session"})},
		{name: "session locator fails", want: auth.CodeInternal, token: validRow, opts: func(o *reqtoken.Options) {
			o.Sessions = func(context.Context, string) (reqtoken.Session, error) {
				return reqtoken.Session{}, errors.New("db down")
			}
		}},
		{name: "scp FULL from a READ session", want: auth.CodeInsufficientScope, token: validRow, opts: readSession},
		{name: "scp beyond the session's", want: auth.CodeInsufficientScope, token: claimsRow(map[string]any{"scp": "READ WRITE"}), opts: readSession},
		{name: "control: scp within the session's", token: claimsRow(map[string]any{"scp": "READ"}), opts: readSession},
		{name: "session without scopes", want: auth.CodeInsufficientScope, token: validRow, opts: func(o *reqtoken.Options) {
			o.Sessions = sessions(map[string]reqtoken.Session{sid: {UserID: uid, PublicKey: pub}})
		}},

		// Size.
		{name: "token over the size limit", want: auth.CodeTooLarge, token: func(*testing.T) string {
			return rawToken(stdHeader, claimsJSON(map[string]any{"pad": strings.Repeat("x", 4000)}), key)
		}},
		{name: "control: unknown claims under the size limit", token: func(*testing.T) string {
			return rawToken(stdHeader, claimsJSON(map[string]any{"pad": strings.Repeat("x", 2000), "extra": map[string]any{"a": []any{1, "b", nil, true}}}), key)
		}},
		{name: "body over the size limit", want: auth.CodeBodyTooLarge, req: req{"POST", "/v1/transfers", strings.Repeat("x", 17)},
			opts:  func(o *reqtoken.Options) { o.MaxBodyBytes = 16 },
			token: func(t *testing.T) string { return sign(t, "POST", "/v1/transfers", strings.Repeat("x", 17)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := tt.now
			if now.IsZero() {
				now = t0
			}
			v := newVerifier(t, func(o *reqtoken.Options) {
				o.Now = at(now)
				if tt.opts != nil {
					tt.opts(o)
				}
			})
			if tt.first != nil {
				tt.first(v)
			}
			r := tt.req
			if r.method == "" {
				r = getThings
			}
			c, err := v.Verify(request(r.method, r.uri, r.body, tt.token(t)))
			if got := auth.Code(err); got != tt.want {
				t.Fatalf("code %q (%v), want %q", got, err, tt.want)
			}
			if err == nil && (c.UserID != uid || c.SessionID != sid || c.ID == "") {
				t.Fatalf("accepted with claims %+v", c)
			}
			if err != nil && (c.UserID != "" || c.ID != "") {
				t.Fatalf("refused but claims %+v leak more than the sid", c)
			}
		})
	}
}

func edSign(msg string) []byte {
	return ed25519Sign(key, msg)
}

func validRow(*testing.T) string { return rawToken(stdHeader, claimsJSON(nil), key) }

func claimsRow(change map[string]any) func(*testing.T) string {
	return func(*testing.T) string { return rawToken(stdHeader, claimsJSON(change), key) }
}

func sigOf(method, uri, body string) string {
	s := reqtoken.Digest(method, uri, []byte(body))
	return hexs(s[:])
}

func readSession(o *reqtoken.Options) {
	o.Sessions = sessions(map[string]reqtoken.Session{sid: {UserID: uid, PublicKey: pub, Scopes: []string{"READ"}}})
}

// A body over the limit without a Content-Length is cut off while read.
func TestVerifyBodyTooLargeChunked(t *testing.T) {
	v := newVerifier(t, func(o *reqtoken.Options) { o.MaxBodyBytes = 16 })
	body := strings.Repeat("x", 17)
	r := httptest.NewRequest("POST", "/v1/transfers", strings.NewReader(body))
	r.ContentLength = -1
	r.Header.Set("Authorization", "Bearer "+sign(t, "POST", "/v1/transfers", body))
	if _, err := v.Verify(r); !errors.Is(err, auth.ErrBodyTooLarge) {
		t.Fatalf("err = %v, want auth.ErrBodyTooLarge", err)
	}
	if _, err := v.VerifyToken(context.Background(), sign(t, "POST", "/v1/transfers", body), "POST", "/v1/transfers", []byte(body)); !errors.Is(err, auth.ErrBodyTooLarge) {
		t.Fatalf("VerifyToken err = %v, want auth.ErrBodyTooLarge", err)
	}
}
