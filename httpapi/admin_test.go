package httpapi_test

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/httpapi"
	"github.com/callsignhq/callsign/sqlite"
)

func TestAdminScenarios(t *testing.T) {
	e := newEnv(t, httpapi.Config{})
	a := e.createApp("a", "")
	b := e.createApp("b", "")
	revoked := e.adminDo("POST", "/v2/admin/tokens", `{"name":"old"}`)
	if revoked.status != 201 || !strings.HasPrefix(revoked.str("token"), "cs_adm_") {
		t.Fatalf("create admin token: %d %s", revoked.status, revoked.raw)
	}
	e.adminDo("DELETE", "/v2/admin/tokens/"+revoked.str("id"), "")

	adm := []string{"Authorization", "Bearer " + e.admin, "Content-Type", ctJSON}
	as := func(tok string) []string { return []string{"Authorization", "Bearer " + tok, "Content-Type", ctJSON} }
	noSecret := func(t *testing.T, r *response) {
		t.Helper()
		if strings.Contains(string(r.raw), "secret_token") || strings.Contains(string(r.raw), "cs_sec_") {
			t.Fatalf("a secret is shown again: %s", r.raw)
		}
	}

	e.run(t, []scenario{
		// Admin authentication.
		{name: "no credentials", method: "GET", path: "/v2/apps", status: 401, code: "unauthorized",
			check: func(t *testing.T, r *response) {
				if r.header.Get("WWW-Authenticate") == "" {
					t.Fatal("401 without WWW-Authenticate")
				}
			}},
		{name: "unknown admin token", method: "GET", path: "/v2/apps", headers: as(callsign.GenerateToken(callsign.TokenAdmin)), status: 401, code: "unauthorized"},
		{name: "revoked admin token", method: "GET", path: "/v2/apps", headers: as(revoked.str("token")), status: 401, code: "revoked"},
		{name: "secret token on the admin API", method: "GET", path: "/v2/apps", headers: as(a.secret), status: 401, code: "wrong_token_kind"},
		{name: "garbage token", method: "GET", path: "/v2/apps", headers: as("x"), status: 401, code: "malformed_token"},

		// Apps.
		{name: "list apps", method: "GET", path: "/v2/apps", headers: adm, status: 200, check: func(t *testing.T, r *response) {
			apps, _ := r.body["apps"].([]any)
			if len(apps) != 2 {
				t.Fatalf("%d apps", len(apps))
			}
			noSecret(t, r)
		}},
		{name: "get app", method: "GET", path: "/v2/apps/" + a.id, headers: adm, status: 200, check: func(t *testing.T, r *response) {
			if r.str("public_token") != a.public || r.str("name") != "a" {
				t.Fatalf("app = %s", r.raw)
			}
			noSecret(t, r)
		}},
		{name: "get unknown app", method: "GET", path: "/v2/apps/app_nope", headers: adm, status: 404, code: "not_found"},
		{name: "create without name", method: "POST", path: "/v2/apps", body: `{}`, headers: adm, status: 400, code: "missing_field"},
		{name: "create with empty name", method: "POST", path: "/v2/apps", body: `{"name":" "}`, headers: adm, status: 400, code: "invalid_request"},
		{name: "create with long name", method: "POST", path: "/v2/apps", body: `{"name":"` + strings.Repeat("n", 201) + `"}`, headers: adm, status: 400, code: "invalid_request"},
		{name: "create with control char in name", method: "POST", path: "/v2/apps", body: `{"name":"a\u0007"}`, headers: adm, status: 400, code: "invalid_request"},
		{name: "ttl too short", method: "POST", path: "/v2/apps", body: `{"name":"x","access_token_ttl_seconds":10}`, headers: adm, status: 400, code: "invalid_request"},
		{name: "ttl too long", method: "POST", path: "/v2/apps", body: `{"name":"x","access_token_ttl_seconds":99999999}`, headers: adm, status: 400, code: "invalid_request"},
		{name: "origin with a path", method: "POST", path: "/v2/apps", body: `{"name":"x","allowed_origins":["https://a.example/app"]}`, headers: adm, status: 400, code: "invalid_request"},
		{name: "origin not http", method: "POST", path: "/v2/apps", body: `{"name":"x","allowed_origins":["ftp://a.example"]}`, headers: adm, status: 400, code: "invalid_request"},
		{name: "create with unknown field", method: "POST", path: "/v2/apps", body: `{"name":"x","owner":"me"}`, headers: adm, status: 400, code: "unknown_field"},
		{name: "create without content type", method: "POST", path: "/v2/apps", body: `{"name":"x"}`, headers: []string{"Authorization", "Bearer " + e.admin}, status: 415, code: "unsupported_media_type"},
		{name: "update app", method: "PATCH", path: "/v2/apps/" + b.id, body: `{"name":"b2","allowed_origins":["http://localhost:3000"],"access_token_ttl_seconds":3600}`, headers: adm, status: 200,
			check: func(t *testing.T, r *response) {
				if r.str("name") != "b2" || r.body["access_token_ttl_seconds"] != float64(3600) || r.body["allowed_origins"].([]any)[0] != "http://localhost:3000" {
					t.Fatalf("updated app = %s", r.raw)
				}
			}},
		{name: "update unknown app", method: "PATCH", path: "/v2/apps/app_nope", body: `{"name":"x"}`, headers: adm, status: 404, code: "not_found"},

		// Secrets.
		{name: "create secret", method: "POST", path: "/v2/apps/" + a.id + "/secrets", body: `{"name":"ci"}`, headers: adm, status: 201, check: func(t *testing.T, r *response) {
			if err := callsign.ParseTokenOf(r.str("secret_token"), callsign.TokenSecret); err != nil || r.str("name") != "ci" || r.str("id") == "" {
				t.Fatalf("secret = %s (%v)", r.raw, err)
			}
		}},
		{name: "list secrets", method: "GET", path: "/v2/apps/" + a.id + "/secrets", headers: adm, status: 200, check: func(t *testing.T, r *response) {
			s, _ := r.body["secrets"].([]any)
			if len(s) != 2 {
				t.Fatalf("%d secrets: %s", len(s), r.raw)
			}
			noSecret(t, r)
		}},
		{name: "create secret without name", method: "POST", path: "/v2/apps/" + a.id + "/secrets", body: `{}`, headers: adm, status: 400, code: "missing_field"},
		{name: "create secret of unknown app", method: "POST", path: "/v2/apps/app_nope/secrets", body: `{"name":"x"}`, headers: adm, status: 404, code: "not_found"},
		{name: "list secrets of unknown app", method: "GET", path: "/v2/apps/app_nope/secrets", headers: adm, status: 404, code: "not_found"},
		{name: "revoke another app's secret", method: "DELETE", path: "/v2/apps/" + b.id + "/secrets/" + a.secretID, headers: adm, status: 404, code: "not_found"},
		{name: "revoke unknown secret", method: "DELETE", path: "/v2/apps/" + a.id + "/secrets/sec_nope", headers: adm, status: 404, code: "not_found"},
		{name: "revoke secret", method: "DELETE", path: "/v2/apps/" + a.id + "/secrets/" + a.secretID, headers: adm, status: 204},
		{name: "revoke secret again", method: "DELETE", path: "/v2/apps/" + a.id + "/secrets/" + a.secretID, headers: adm, status: 204},

		// Admin tokens and keys.
		{name: "list admin tokens", method: "GET", path: "/v2/admin/tokens", headers: adm, status: 200, check: func(t *testing.T, r *response) {
			if strings.Contains(string(r.raw), "cs_adm_") {
				t.Fatalf("admin token shown: %s", r.raw)
			}
		}},
		{name: "revoke unknown admin token", method: "DELETE", path: "/v2/admin/tokens/adm_nope", headers: adm, status: 404, code: "not_found"},
		{name: "unknown path", method: "GET", path: "/v2/nothing", status: 404, code: "not_found"},
		{name: "healthz", method: "GET", path: "/healthz", status: 200},
	})

	// A revoked app can get no new secret.
	e.adminDo("DELETE", "/v2/apps/"+b.id, "")
	if r := e.adminDo("POST", "/v2/apps/"+b.id+"/secrets", `{"name":"x"}`); r.status != 401 || r.code() != "revoked" {
		t.Fatalf("secret for a revoked app: %d %s", r.status, r.raw)
	}
}

// After a rotation the new key signs and tokens signed by the old key keep
// verifying, because the old key stays in the JWKS.
func TestKeyRotation(t *testing.T) {
	e := newEnv(t, httpapi.Config{})
	a := e.createApp("a", "")
	up := func() string {
		r := e.do("POST", "/v2/tokens/upgrade", upgradeBody(a.public), "Content-Type", ctJSON)
		if r.status != 200 {
			t.Fatalf("upgrade: %d %s", r.status, r.raw)
		}
		return r.str("appAccessToken")
	}
	old := up()
	r := e.adminDo("POST", "/v2/keys/rotate", "")
	if r.status != http.StatusOK || r.str("kid") == "" {
		t.Fatalf("rotate: %d %s", r.status, r.raw)
	}
	fresh := up()
	if _, err := e.verify(old); err != nil {
		t.Fatalf("token of the retired key: %v", err)
	}
	if _, err := e.verify(fresh); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	jwks := e.do("GET", "/.well-known/jwks.json", "")
	if keys, _ := jwks.body["keys"].([]any); len(keys) != 2 || !strings.Contains(string(jwks.raw), r.str("kid")) {
		t.Fatalf("JWKS after rotation: %s", jwks.raw)
	}
	if strings.Contains(string(jwks.raw), `"d"`) {
		t.Fatalf("JWKS holds a private key: %s", jwks.raw)
	}
}

func TestRequestID(t *testing.T) {
	e := newEnv(t, httpapi.Config{})
	tests := []struct {
		name, in string
		echoed   bool
	}{
		{"uuid", "3f2b8f9e-5d3c-4a8e-9d8b-0c1d2e3f4a5b", true},
		{"short", "req-1", true},
		{"with space", "req 1", false},
		{"too long", strings.Repeat("a", 129), false},
		{"log injection", `x","level":"ERROR`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("GET", "/healthz", "", "X-Request-Id", tt.in)
			got := r.header.Get("X-Request-Id")
			if (got == tt.in) != tt.echoed || got == "" {
				t.Fatalf("X-Request-Id %q answered %q", tt.in, got)
			}
			if !strings.Contains(e.logs.String(), `"request_id":"`+got+`"`) {
				t.Fatalf("request id %q not in the logs", got)
			}
		})
	}
}

// failingEvents is a real event store whose BackgroundErr the test sets.
type failingEvents struct {
	callsign.EventStore
	err atomic.Pointer[error]
}

func (f *failingEvents) BackgroundErr() error {
	if p := f.err.Load(); p != nil {
		return *p
	}
	return nil
}

// GET /healthz says "degraded" while the event store's background work
// fails, without the error's text (which may name files), and "ok" again
// once it is well.
func TestHealthzDegraded(t *testing.T) {
	store, err := sqlite.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	events := &failingEvents{EventStore: store}
	e := newEnv(t, httpapi.Config{Events: events})

	if r := e.do("GET", "/healthz", ""); r.status != 200 || r.str("status") != "ok" {
		t.Fatalf("healthy: %d %s", r.status, r.raw)
	}
	failure := errors.New("sqlite: aggregating events into rollups has been failing since 2026-11-24T08:00:00Z: disk I/O error in /srv/secret/path")
	events.err.Store(&failure)
	r := e.do("GET", "/healthz", "")
	if r.status != 200 || r.str("status") != "degraded" || !strings.Contains(string(r.raw), "background work of the event store is failing") {
		t.Fatalf("failing: %d %s", r.status, r.raw)
	}
	if strings.Contains(string(r.raw), "/srv/secret") {
		t.Errorf("healthz shows the error's details: %s", r.raw)
	}
	events.err.Store(nil)
	if r := e.do("GET", "/healthz", ""); r.status != 200 || r.str("status") != "ok" {
		t.Fatalf("well again: %d %s", r.status, r.raw)
	}
}
