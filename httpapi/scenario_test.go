package httpapi_test

import (
	"bytes"
	"encoding/json"
	"github.com/callsignhq/callsign/internal/testserver"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/callsignhq/callsign/auth/apptoken"
	"github.com/callsignhq/callsign/httpapi"
	"github.com/callsignhq/callsign/keyring"
	"github.com/callsignhq/callsign/sqlite"
)

// env is a real callsign server on a loopback port over a real embedded
// store in a temporary directory.
type env struct {
	t     testing.TB
	url   string
	store *sqlite.DB
	ring  *keyring.Ring
	api   *httpapi.Server
	logs  *syncBuffer
	admin string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnv(t testing.TB, cfg httpapi.Config) *env {
	t.Helper()
	logs := &syncBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	}
	s := testserver.Start(t, cfg)
	return &env{t: t, url: s.URL, store: s.Store, ring: s.Ring, api: s.API, logs: logs, admin: s.Admin}
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (r *response) code() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (r *response) str(k string) string { s, _ := r.body[k].(string); return s }

// do sends a request; headers are pairs (name, value), repeated names allowed.
func (e *env) do(method, path, body string, headers ...string) *response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := &response{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			e.t.Fatalf("%s %s: answer is not a JSON object: %q", method, path, raw)
		}
	}
	return r
}

const ctJSON = "application/json"

func (e *env) adminDo(method, path, body string) *response {
	e.t.Helper()
	return e.do(method, path, body, "Authorization", "Bearer "+e.admin, "Content-Type", ctJSON)
}

type appFixture struct {
	id, public, secret, secretID string
}

func (e *env) createApp(name string, extra string) appFixture {
	e.t.Helper()
	r := e.adminDo("POST", "/v2/apps", `{"name":`+jsonString(name)+extra+`}`)
	if r.status != http.StatusCreated {
		e.t.Fatalf("create app: %d %s", r.status, r.raw)
	}
	sec, _ := r.body["secret"].(map[string]any)
	sid, _ := sec["id"].(string)
	return appFixture{id: r.str("id"), public: r.str("public_token"), secret: r.str("secret_token"), secretID: sid}
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

func upgradeBody(public string, userID ...string) string {
	m := map[string]string{"public_token": public}
	if len(userID) > 0 {
		m["user_id"] = userID[0]
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// verify checks an access token against the server's published JWKS.
func (e *env) verify(tok string) (*apptoken.Claims, error) {
	e.t.Helper()
	r := e.do("GET", "/.well-known/jwks.json", "")
	keys, err := apptoken.ParseJWKS(r.raw)
	if err != nil {
		e.t.Fatal(err)
	}
	return apptoken.NewVerifier(keys, e.api.Issuer(), nil).Verify(tok)
}

// scenario is one request and what must come back, after PocketBase's
// tests.ApiScenario.
type scenario struct {
	name    string
	method  string
	path    string
	body    string
	headers []string
	status  int
	code    string // error code, "" for a success
	check   func(t *testing.T, r *response)
}

func (e *env) run(t *testing.T, scenarios []scenario) {
	t.Helper()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			e.t = t
			r := e.do(sc.method, sc.path, sc.body, sc.headers...)
			if r.status != sc.status || r.code() != sc.code {
				t.Fatalf("%s %s = %d %q (%s); want %d %q", sc.method, sc.path, r.status, r.code(), r.raw, sc.status, sc.code)
			}
			if sc.code != "" {
				e, _ := r.body["error"].(map[string]any)
				if msg, _ := e["message"].(string); msg == "" {
					t.Fatalf("error without a message: %s", r.raw)
				}
			}
			if r.header.Get("X-Request-Id") == "" {
				t.Fatal("no X-Request-Id in the answer")
			}
			if sc.check != nil {
				sc.check(t, r)
			}
		})
	}
}
