package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/httpapi"
)

func TestUpgradeScenarios(t *testing.T) {
	e := newEnv(t, httpapi.Config{})
	a := e.createApp("a", `,"allowed_origins":["https://a.example"]`)
	b := e.createApp("b", "")
	revokedApp := e.createApp("gone", "")
	if r := e.adminDo("DELETE", "/v2/apps/"+revokedApp.id, ""); r.status != http.StatusNoContent {
		t.Fatalf("revoke app: %d %s", r.status, r.raw)
	}
	revokedSecret := e.adminDo("POST", "/v2/apps/"+a.id+"/secrets", `{"name":"old"}`)
	if r := e.adminDo("DELETE", "/v2/apps/"+a.id+"/secrets/"+revokedSecret.str("id"), ""); r.status != http.StatusNoContent {
		t.Fatalf("revoke secret: %d %s", r.status, r.raw)
	}

	const up = "/v2/tokens/upgrade"
	ct := []string{"Content-Type", ctJSON}
	withSecret := func(sec string) []string { return []string{"Content-Type", ctJSON, "Authorization", "Bearer " + sec} }
	unknownSecret := callsign.GenerateToken(callsign.TokenSecret)
	typo := func(s string) string { // a substitution inside the base62 alphabet
		c := byte('a')
		if s[12] == 'a' {
			c = 'b'
		}
		return s[:12] + string(c) + s[13:]
	}

	bound := func(want string) func(t *testing.T, r *response) {
		return func(t *testing.T, r *response) {
			t.Helper()
			if r.str("userId") != want {
				t.Fatalf("userId = %q, want %q", r.str("userId"), want)
			}
			if _, has := r.body["userId"]; want == "" && has {
				t.Fatal("anonymous answer has a userId field")
			}
			exp, err := time.Parse(time.RFC3339, r.str("expiresAt"))
			if err != nil || exp.Before(time.Now().Add(23*time.Hour)) {
				t.Fatalf("expiresAt = %q (%v), want about 24h ahead", r.str("expiresAt"), err)
			}
			c, err := e.verify(r.str("appAccessToken"))
			if err != nil {
				t.Fatalf("access token does not verify against the JWKS: %v", err)
			}
			if c.AppID != a.id || c.UserID != want {
				t.Fatalf("claims app_id=%q user_id=%q, want %q %q", c.AppID, c.UserID, a.id, want)
			}
		}
	}

	e.run(t, []scenario{
		{name: "anonymous", method: "POST", path: up, body: upgradeBody(a.public), headers: ct, status: 200, check: bound("")},
		{name: "bound to a verified user", method: "POST", path: up, body: upgradeBody(a.public, "alice"), headers: withSecret(a.secret), status: 200, check: bound("alice")},
		{name: "user id of 256 bytes", method: "POST", path: up, body: upgradeBody(a.public, strings.Repeat("u", 256)), headers: withSecret(a.secret), status: 200, check: bound(strings.Repeat("u", 256))},
		{name: "unicode user id", method: "POST", path: up, body: upgradeBody(a.public, "名前 ü"), headers: withSecret(a.secret), status: 200, check: bound("名前 ü")},
		{name: "content type with charset", method: "POST", path: up, body: upgradeBody(a.public), headers: []string{"Content-Type", "application/json; charset=utf-8"}, status: 200},

		// The body.
		{name: "missing public_token", method: "POST", path: up, body: `{}`, headers: ct, status: 400, code: "missing_field"},
		{name: "null public_token", method: "POST", path: up, body: `{"public_token":null}`, headers: ct, status: 400, code: "missing_field"},
		{name: "public_token not a string", method: "POST", path: up, body: `{"public_token":42}`, headers: ct, status: 400, code: "invalid_request"},
		{name: "unknown field", method: "POST", path: up, body: `{"public_token":"` + a.public + `","scope":"admin"}`, headers: ct, status: 400, code: "unknown_field"},
		{name: "duplicate field", method: "POST", path: up, body: `{"public_token":"` + b.public + `","public_token":"` + a.public + `"}`, headers: ct, status: 400, code: "duplicate_field"},
		{name: "trailing garbage", method: "POST", path: up, body: upgradeBody(a.public) + `{}`, headers: ct, status: 400, code: "trailing_data"},
		{name: "not JSON", method: "POST", path: up, body: `public_token=x`, headers: ct, status: 400, code: "invalid_json"},
		{name: "truncated JSON", method: "POST", path: up, body: `{"public_token":"`, headers: ct, status: 400, code: "invalid_json"},
		{name: "empty body", method: "POST", path: up, body: ``, headers: ct, status: 400, code: "invalid_json"},
		{name: "array body", method: "POST", path: up, body: `["x"]`, headers: ct, status: 400, code: "invalid_json"},
		{name: "invalid UTF-8", method: "POST", path: up, body: "{\"public_token\":\"" + a.public + "\",\"user_id\":\"\xff\"}", headers: withSecret(a.secret), status: 400, code: "invalid_json"},
		{name: "body over the limit", method: "POST", path: up, body: `{"public_token":"` + strings.Repeat("x", httpapi.MaxUpgradeBody) + `"}`, headers: ct, status: 413, code: "body_too_large"},
		{name: "wrong content type", method: "POST", path: up, body: upgradeBody(a.public), headers: []string{"Content-Type", "text/plain"}, status: 415, code: "unsupported_media_type"},
		{name: "no content type", method: "POST", path: up, body: upgradeBody(a.public), status: 415, code: "unsupported_media_type"},
		{name: "form content type", method: "POST", path: up, body: upgradeBody(a.public), headers: []string{"Content-Type", "application/x-www-form-urlencoded"}, status: 415, code: "unsupported_media_type"},

		// The user id.
		{name: "user_id without a secret", method: "POST", path: up, body: upgradeBody(a.public, "alice"), headers: ct, status: 401, code: "unauthorized"},
		{name: "secret without user_id", method: "POST", path: up, body: upgradeBody(a.public), headers: withSecret(a.secret), status: 400, code: "missing_field"},
		{name: "empty user_id", method: "POST", path: up, body: upgradeBody(a.public, ""), headers: withSecret(a.secret), status: 400, code: "invalid_user_id"},
		{name: "user_id of 257 bytes", method: "POST", path: up, body: upgradeBody(a.public, strings.Repeat("u", 257)), headers: withSecret(a.secret), status: 400, code: "invalid_user_id"},
		{name: "user_id with newline", method: "POST", path: up, body: upgradeBody(a.public, "ali\nce"), headers: withSecret(a.secret), status: 400, code: "invalid_user_id"},
		{name: "user_id with NUL", method: "POST", path: up, body: upgradeBody(a.public, "ali\x00ce"), headers: withSecret(a.secret), status: 400, code: "invalid_user_id"},
		{name: "user_id with DEL", method: "POST", path: up, body: upgradeBody(a.public, "ali\x7fce"), headers: withSecret(a.secret), status: 400, code: "invalid_user_id"},
		{name: "user_id with C1 control", method: "POST", path: up, body: upgradeBody(a.public, "ali\u0085ce"), headers: withSecret(a.secret), status: 400, code: "invalid_user_id"},
		{name: "user_id a number", method: "POST", path: up, body: `{"public_token":"` + a.public + `","user_id":7}`, headers: withSecret(a.secret), status: 400, code: "invalid_request"},

		// The public token.
		{name: "malformed public token", method: "POST", path: up, body: upgradeBody("pk_live_123"), headers: ct, status: 401, code: "malformed_token"},
		{name: "public token with a typo", method: "POST", path: up, body: upgradeBody(typo(a.public)), headers: ct, status: 401, code: "bad_checksum"},
		{name: "secret token as public token", method: "POST", path: up, body: upgradeBody(a.secret), headers: ct, status: 401, code: "wrong_token_kind"},
		{name: "unknown public token", method: "POST", path: up, body: upgradeBody(callsign.GenerateToken(callsign.TokenPublic)), headers: ct, status: 401, code: "unauthorized"},
		{name: "revoked app", method: "POST", path: up, body: upgradeBody(revokedApp.public), headers: ct, status: 401, code: "revoked"},

		// The secret token.
		{name: "unknown secret", method: "POST", path: up, body: upgradeBody(a.public, "alice"), headers: withSecret(unknownSecret), status: 401, code: "unauthorized"},
		{name: "secret with a typo", method: "POST", path: up, body: upgradeBody(a.public, "alice"), headers: withSecret(typo(a.secret)), status: 401, code: "bad_checksum"},
		{name: "malformed secret", method: "POST", path: up, body: upgradeBody(a.public, "alice"), headers: withSecret("hunter2"), status: 401, code: "malformed_token"},
		{name: "public token as secret", method: "POST", path: up, body: upgradeBody(a.public, "alice"), headers: withSecret(a.public), status: 401, code: "wrong_token_kind"},
		{name: "admin token as secret", method: "POST", path: up, body: upgradeBody(a.public, "alice"), headers: withSecret(e.admin), status: 401, code: "wrong_token_kind"},
		{name: "revoked secret", method: "POST", path: up, body: upgradeBody(a.public, "alice"), headers: withSecret(revokedSecret.str("secret_token")), status: 401, code: "revoked"},
		{name: "secret of another app", method: "POST", path: up, body: upgradeBody(a.public, "alice"), headers: withSecret(b.secret), status: 403, code: "app_mismatch"},
		{name: "Basic scheme", method: "POST", path: up, body: upgradeBody(a.public, "alice"), headers: []string{"Content-Type", ctJSON, "Authorization", "Basic " + a.secret}, status: 401, code: "malformed_token"},
		{name: "Bearer without token", method: "POST", path: up, body: upgradeBody(a.public, "alice"), headers: []string{"Content-Type", ctJSON, "Authorization", "Bearer "}, status: 401, code: "malformed_token"},
		{name: "two Authorization headers", method: "POST", path: up, body: upgradeBody(a.public, "alice"),
			headers: []string{"Content-Type", ctJSON, "Authorization", "Bearer " + a.secret, "Authorization", "Bearer " + b.secret}, status: 401, code: "malformed_token"},

		// CORS.
		{name: "allowed origin", method: "POST", path: up, body: upgradeBody(a.public), headers: []string{"Content-Type", ctJSON, "Origin", "https://a.example"}, status: 200,
			check: func(t *testing.T, r *response) {
				if got := r.header.Get("Access-Control-Allow-Origin"); got != "https://a.example" {
					t.Fatalf("Access-Control-Allow-Origin = %q", got)
				}
			}},
		{name: "origin not allowed by the app", method: "POST", path: up, body: upgradeBody(b.public), headers: []string{"Content-Type", ctJSON, "Origin", "https://a.example"}, status: 403, code: "origin_not_allowed",
			check: func(t *testing.T, r *response) {
				if got := r.header.Get("Access-Control-Allow-Origin"); got != "" {
					t.Fatalf("Access-Control-Allow-Origin = %q on a refusal", got)
				}
			}},
		{name: "preflight of an allowed origin", method: "OPTIONS", path: up, headers: []string{"Origin", "https://a.example", "Access-Control-Request-Method", "POST"}, status: 204,
			check: func(t *testing.T, r *response) {
				if r.header.Get("Access-Control-Allow-Origin") != "https://a.example" || !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") {
					t.Fatalf("preflight headers: %v", r.header)
				}
			}},
		{name: "preflight of an unknown origin", method: "OPTIONS", path: up, headers: []string{"Origin", "https://evil.example", "Access-Control-Request-Method", "POST"}, status: 403, code: "origin_not_allowed"},
		{name: "GET on the upgrade endpoint", method: "GET", path: up, status: 405, code: "method_not_allowed",
			check: func(t *testing.T, r *response) {
				if !strings.Contains(r.header.Get("Allow"), "POST") {
					t.Fatalf("Allow = %q", r.header.Get("Allow"))
				}
			}},
	})
}

// An unknown secret and a wrong one are the same answer: the lookup is by
// hash, so the caller cannot learn which secrets exist.
func TestUnknownAndWrongSecretLookAlike(t *testing.T) {
	e := newEnv(t, httpapi.Config{})
	a := e.createApp("a", "")
	var answers []string
	for _, sec := range []string{callsign.GenerateToken(callsign.TokenSecret), callsign.GenerateToken(callsign.TokenSecret)} {
		r := e.do("POST", "/v2/tokens/upgrade", upgradeBody(a.public, "alice"), "Content-Type", ctJSON, "Authorization", "Bearer "+sec)
		answers = append(answers, string(r.raw))
		if r.status != 401 {
			t.Fatalf("status %d", r.status)
		}
	}
	if answers[0] != answers[1] {
		t.Fatalf("answers differ:\n%s\n%s", answers[0], answers[1])
	}
}

// Revoking a secret or an app takes effect on the very next request.
func TestRevocationIsImmediate(t *testing.T) {
	e := newEnv(t, httpapi.Config{})
	a := e.createApp("a", "")
	up := func() *response {
		return e.do("POST", "/v2/tokens/upgrade", upgradeBody(a.public, "alice"), "Content-Type", ctJSON, "Authorization", "Bearer "+a.secret)
	}
	if r := up(); r.status != 200 {
		t.Fatalf("before revocation: %d %s", r.status, r.raw)
	}
	e.adminDo("DELETE", "/v2/apps/"+a.id+"/secrets/"+a.secretID, "")
	if r := up(); r.status != 401 || r.code() != "revoked" {
		t.Fatalf("after revoking the secret: %d %s", r.status, r.raw)
	}
	if r := e.do("POST", "/v2/tokens/upgrade", upgradeBody(a.public), "Content-Type", ctJSON); r.status != 200 {
		t.Fatalf("anonymous upgrade after revoking a secret: %d %s", r.status, r.raw)
	}
	e.adminDo("DELETE", "/v2/apps/"+a.id, "")
	if r := e.do("POST", "/v2/tokens/upgrade", upgradeBody(a.public), "Content-Type", ctJSON); r.status != 401 || r.code() != "revoked" {
		t.Fatalf("after revoking the app: %d %s", r.status, r.raw)
	}
}

func TestUpgradeRateLimits(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	t.Run("per client IP", func(t *testing.T) {
		e := newEnv(t, httpapi.Config{UpgradeRatePerIP: 1, Now: func() time.Time { return now }})
		a := e.createApp("a", "")
		var last *response
		for range 3 { // burst is 2 seconds' worth: 2
			last = e.do("POST", "/v2/tokens/upgrade", upgradeBody(a.public), "Content-Type", ctJSON)
		}
		if last.status != 429 || last.code() != "rate_limited" || last.header.Get("Retry-After") != "1" {
			t.Fatalf("third upgrade: %d %s Retry-After=%q", last.status, last.raw, last.header.Get("Retry-After"))
		}
	})
	t.Run("per app", func(t *testing.T) {
		e := newEnv(t, httpapi.Config{UpgradeRatePerApp: 0.5, Now: func() time.Time { return now }})
		a := e.createApp("a", "")
		b := e.createApp("b", "")
		e.do("POST", "/v2/tokens/upgrade", upgradeBody(a.public), "Content-Type", ctJSON)
		r := e.do("POST", "/v2/tokens/upgrade", upgradeBody(a.public), "Content-Type", ctJSON)
		if r.status != 429 || r.header.Get("Retry-After") != "2" {
			t.Fatalf("second upgrade of app a: %d %s Retry-After=%q", r.status, r.raw, r.header.Get("Retry-After"))
		}
		if r := e.do("POST", "/v2/tokens/upgrade", upgradeBody(b.public), "Content-Type", ctJSON); r.status != 200 {
			t.Fatalf("app b is limited by app a's traffic: %d %s", r.status, r.raw)
		}
	})
}

func TestAccessTokenTTLPerApp(t *testing.T) {
	e := newEnv(t, httpapi.Config{})
	a := e.createApp("short", `,"access_token_ttl_seconds":600`)
	r := e.do("POST", "/v2/tokens/upgrade", upgradeBody(a.public), "Content-Type", ctJSON)
	exp, _ := time.Parse(time.RFC3339, r.str("expiresAt"))
	if d := time.Until(exp); d > 10*time.Minute || d < 9*time.Minute {
		t.Fatalf("token lives %v, want 10m", d)
	}
	c, err := e.verify(r.str("appAccessToken"))
	if err != nil || c.ExpiresAt.Sub(c.IssuedAt.Time) != 10*time.Minute {
		t.Fatalf("claims %+v, %v", c, err)
	}
}
