package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth/hmacsig"
	"github.com/callsignhq/callsign/auth/reqtoken"
	"github.com/callsignhq/callsign/client"
	"github.com/callsignhq/callsign/httpapi"
	"github.com/callsignhq/callsign/keyring"
	"github.com/callsignhq/callsign/sqlite"
	"github.com/golang-jwt/jwt/v5"
)

const (
	jwtSecret  = "creditscore-jwt-secret-0123456789abcdef"
	hmacKey    = "abc123"
	hmacSecret = "creditscore-hmac-secret-0123456789abcdef"
	uid        = "89e0bdee-c355-47f2-945a-be48be875606"
	sid        = "c09cf313-7ded-425d-ad3f-a1ce4cfd5e5e"
)

// callsignServer is a real callsign server on loopback with one app.
type callsignServer struct {
	url    string
	app    *callsign.App
	secret string
}

func startCallsign(t *testing.T) *callsignServer {
	t.Helper()
	dir := t.TempDir()
	store, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	kek, _ := keyring.LoadKEK(filepath.Join(dir, "master.key"), "")
	ring, _ := keyring.New(store, kek, keyring.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	api, err := httpapi.New(httpapi.Config{Store: store, Events: store, Keys: ring, Issuer: url, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: api}}
	srv.Start()
	t.Cleanup(srv.Close)
	app := callsign.NewApp("creditscore", time.Now())
	sec, tok := callsign.NewSecret(app.ID, "backend", time.Now())
	if err := store.CreateApp(context.Background(), app, sec); err != nil {
		t.Fatal(err)
	}
	return &callsignServer{url: url, app: app, secret: tok}
}

// writeConfig writes the contract's configuration file.
func writeConfig(t *testing.T, cs *callsignServer, pub ed25519.PublicKey) string {
	t.Helper()
	cfg := fmt.Sprintf(`{
  "jwt": {"keys": [{"kid": "k1", "alg": "HS256", "secret": %q}], "user_claim": "id"},
  "hmac": {"keys": {%q: %q}, "signed_headers": ["User-Agent", "Content-Type"], "expires_in": "300s"},
  "reqtoken": {"sessions": {%q: {"uid": %q, "public_key": %q}}, "max_age": "5m"},
  "callsign": {"server": %q}
}`, jwtSecret, hmacKey, hmacSecret, sid, uid, base64.RawURLEncoding.EncodeToString(pub), cs.url)
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func hs256(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type answer struct {
	status int
	body   map[string]any
}

func call(t *testing.T, hc *http.Client, method, url, body string, headers ...string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	a.status = resp.StatusCode
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &a.body); err != nil {
		t.Fatalf("%s %s: not JSON: %q", method, url, b)
	}
	return a
}

// testSchemes runs the contract against a creditscore API at base.
func testSchemes(t *testing.T, base string, cs *callsignServer, priv ed25519.PrivateKey) {
	hmacClient := &http.Client{Transport: &hmacsig.Transport{Signer: &hmacsig.Signer{APIKey: hmacKey, Secret: []byte(hmacSecret),
		SignedHeaders: []string{"User-Agent", "Content-Type"}}}}
	reqClient := &http.Client{Transport: &reqtoken.Transport{UserID: uid, SessionID: sid, Key: priv}}
	appClient := &http.Client{Transport: &client.BearerTransport{Source: &client.UpgradeSource{Server: cs.url, PublicToken: cs.app.PublicToken, SecretToken: cs.secret, UserID: "carol"}}}
	anonApp := &http.Client{Transport: &client.BearerTransport{Source: &client.UpgradeSource{Server: cs.url, PublicToken: cs.app.PublicToken}}}
	jwtTok := hs256(t, jwt.MapClaims{"id": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	ct := []string{"Content-Type", "application/json", "User-Agent", "test/1"}

	tests := []struct {
		name              string
		hc                *http.Client
		headers           []string
		scheme, user, key string
		app               string
	}{
		{"jwt bearer (seed 000)", http.DefaultClient, append([]string{"Authorization", "Bearer " + jwtTok}, ct...), "jwt", "alice", "k1", ""},
		{"hmac", hmacClient, ct, "hmac", hmacKey, hmacKey, ""},
		{"request token", reqClient, ct, "reqtoken", uid, sid, ""},
		{"app access token bound to a user", appClient, ct, "apptoken", "carol", "", cs.app.ID},
		{"anonymous app access token", anonApp, ct, "apptoken", "", "", cs.app.ID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := call(t, tt.hc, "GET", base+"/whoami", "", append(tt.headers, "X-Client-User-Id", "asserted-by-client", "X-Request-Id", "req-42")...)
			b := a.body
			if a.status != 200 || b["scheme"] != tt.scheme || b["user_id"] != tt.user || b["client_user_id"] != "asserted-by-client" || b["request_id"] != "req-42" {
				t.Fatalf("whoami = %d %v", a.status, b)
			}
			if tt.key != "" && b["key_id"] != tt.key {
				t.Fatalf("key_id = %v, want %s", b["key_id"], tt.key)
			}
			if b["app_id"] != tt.app {
				t.Fatalf("app_id = %v, want %q", b["app_id"], tt.app)
			}
			if a := call(t, tt.hc, "GET", base+"/creditscore", "", tt.headers...); a.status != 200 || a.body["credit_rating"].(float64) < 500 || a.body["credit_rating"].(float64) > 899 {
				t.Fatalf("creditscore = %d %v", a.status, a.body)
			}
			note := strings.Repeat("n", 1<<20) // exactly 1 MiB
			if tt.scheme == "jwt" {
				note = `{"text":"hello"}`
			}
			a = call(t, tt.hc, "POST", base+"/notes", note, tt.headers...)
			if a.status != 201 || a.body["bytes"] != float64(len(note)) {
				t.Fatalf("notes = %d %v", a.status, a.body)
			}
			if p, _ := a.body["principal"].(map[string]any); p["scheme"] != tt.scheme {
				t.Fatalf("notes principal = %v", a.body["principal"])
			}
		})
	}

	refusals := []struct {
		name    string
		headers []string
		status  int
		code    string
	}{
		{"no credentials", nil, 401, "missing_credentials"},
		{"jwt with the wrong secret", []string{"Authorization", "Bearer " + func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"id": "alice", "exp": time.Now().Add(time.Hour).Unix()})
			tok.Header["kid"] = "k1"
			s, _ := tok.SignedString([]byte("another-secret-of-at-least-32-bytes!!"))
			return s
		}()}, 401, "bad_signature"},
		{"expired jwt", []string{"Authorization", "Bearer " + hs256(t, jwt.MapClaims{"id": "alice", "exp": time.Now().Add(-time.Hour).Unix()})}, 401, "expired"},
		{"garbage", []string{"Authorization", "Basic dXNlcjpwYXNz"}, 401, "malformed"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			a := call(t, http.DefaultClient, "GET", base+"/creditscore", "", tt.headers...)
			e, _ := a.body["error"].(map[string]any)
			if a.status != tt.status || e["code"] != tt.code {
				t.Fatalf("= %d %v, want %d %s", a.status, a.body, tt.status, tt.code)
			}
		})
	}
	t.Run("note over 1 MiB", func(t *testing.T) {
		a := call(t, hmacClient, "POST", base+"/notes", strings.Repeat("n", 1<<20+1), ct...)
		if a.status != 413 {
			t.Fatalf("= %d %v", a.status, a.body)
		}
	})
	t.Run("replayed request token", func(t *testing.T) {
		tok, err := reqtoken.Sign(uid, sid, priv, "GET", "/whoami", nil)
		if err != nil {
			t.Fatal(err)
		}
		first := call(t, http.DefaultClient, "GET", base+"/whoami", "", "Authorization", "Bearer "+tok)
		again := call(t, http.DefaultClient, "GET", base+"/whoami", "", "Authorization", "Bearer "+tok)
		e, _ := again.body["error"].(map[string]any)
		if first.status != 200 || again.status != 401 || e["code"] != "replayed" {
			t.Fatalf("first %d, again %d %v", first.status, again.status, again.body)
		}
	})
}

func TestCreditScoreInProcess(t *testing.T) {
	cs := startCallsign(t)
	pub, priv, _ := ed25519.GenerateKey(nil)
	cfg, err := loadConfig(writeConfig(t, cs, pub))
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := newHandler(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	testSchemes(t, srv.URL, cs, priv)
}

// The contract: go run ./examples/creditscore --addr HOST:PORT --config FILE.
func TestCreditScoreBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "creditscore")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cs := startCallsign(t)
	pub, priv, _ := ed25519.GenerateKey(nil)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "--addr", addr, "--config", writeConfig(t, cs, pub))
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "creditscore serving") {
				close(ready)
				break
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("creditscore did not start")
	}
	testSchemes(t, "http://"+addr, cs, priv)
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ name, cfg string }{
		{"empty", `{}`},
		{"unknown field", `{"jwt": {"keys": [], "user_clam": "id"}}`},
		{"bad duration", `{"hmac": {"keys": {"a": "0123456789abcdef0123456789abcdef"}, "expires_in": "300"}}`},
		{"weak jwt secret", `{"jwt": {"keys": [{"kid": "k1", "alg": "HS256", "secret": "mytokensecret"}]}}`},
		{"weak hmac secret", `{"hmac": {"keys": {"a": "short"}}}`},
		{"bad public key", `{"reqtoken": {"sessions": {"s": {"uid": "u", "public_key": "nope"}}}}`},
		{"alg none", `{"jwt": {"keys": [{"kid": "k1", "alg": "none", "secret": "0123456789abcdef0123456789abcdef"}]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.json")
			os.WriteFile(path, []byte(tt.cfg), 0o600)
			cfg, err := loadConfig(path)
			if err == nil {
				_, _, err = newHandler(cfg, slog.New(slog.DiscardHandler))
			}
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
	// Seed 000's weak secret works when explicitly allowed.
	path := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(path, []byte(`{"jwt": {"keys": [{"alg": "HS256", "secret": "mytokensecret"}], "user_claim": "id", "allow_weak_secrets": true}}`), 0o600)
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := newHandler(cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("allow_weak_secrets: %v", err)
	}
}

// The configuration README.md tells a newcomer to use must load.
func TestConfigExampleLoads(t *testing.T) {
	cfg, err := loadConfig("config.example.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := newHandler(cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
}

// The end-to-end path: the example ships its events to the callsign
// server named in its config; a JWT-authenticated request like seed 000's
// shows up attributed to its (verified) user, and a refused one with its
// precise failure code, within 5 seconds.
func TestEventsReachTheServer(t *testing.T) {
	cs := startCallsign(t)
	pub, _, _ := ed25519.GenerateKey(nil)
	path := writeConfig(t, cs, pub)
	b, _ := os.ReadFile(path)
	b = []byte(strings.Replace(string(b), `"callsign": {"server": "`+cs.url+`"}`,
		`"callsign": {"server": "`+cs.url+`", "public_token": "`+cs.app.PublicToken+`", "secret_token": "`+cs.secret+`"}`, 1))
	os.WriteFile(path, b, 0o600)
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	h, shipper, err := newHandler(cfg, slog.New(slog.DiscardHandler))
	if err != nil || shipper == nil {
		t.Fatalf("newHandler: %v, shipper %v", err, shipper)
	}
	defer shipper.Close(context.Background())
	srv := httptest.NewServer(h)
	defer srv.Close()

	good := call(t, http.DefaultClient, "GET", srv.URL+"/creditscore", "", "Authorization", "Bearer "+hs256(t, jwt.MapClaims{"id": "alice", "exp": time.Now().Add(time.Hour).Unix()}), "X-Request-Id", "seed-000-call")
	bad := call(t, http.DefaultClient, "GET", srv.URL+"/creditscore", "", "Authorization", "Bearer "+hs256(t, jwt.MapClaims{"id": "alice", "exp": time.Now().Add(-time.Hour).Unix()}), "X-Request-Id", "expired-call")
	if good.status != 200 || bad.status != 401 {
		t.Fatalf("calls: %d %d", good.status, bad.status)
	}

	deadline := time.Now().Add(5 * time.Second)
	var events []map[string]any
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", cs.url+"/v2/events?limit=10", nil)
		req.Header.Set("Authorization", "Bearer "+cs.secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page struct{ Events []map[string]any }
		json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if events = page.Events; len(events) >= 2 {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling a remote store, bounded by the 5 s deadline
	}
	byReq := map[string]map[string]any{}
	for _, e := range events {
		byReq[fmt.Sprint(e["request_id"])] = e
	}
	e, ok := byReq["seed-000-call"]
	if !ok {
		t.Fatalf("the seed 000 call did not reach the server within 5 s: %v", events)
	}
	if e["user_id"] != "alice" || e["scheme"] != "jwt" || e["route"] != "GET /creditscore" || e["status"] != float64(200) || e["auth_error"] != nil {
		t.Fatalf("event = %v", e)
	}
	f, ok := byReq["expired-call"]
	if !ok || f["auth_error"] != "expired" || f["status"] != float64(401) || f["user_id"] != "" {
		t.Fatalf("refused call's event = %v", f)
	}
}
