// End-to-end tests of the callsign binary. TestMain builds it once; the
// tests then run it as `callsign serve` on a loopback port and as the CLI
// against that server, and check what an operator or a client would see:
// exit codes, stdout and stderr, HTTP answers, log lines and the files in
// the data directory.
package main_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth/apptoken"
	"github.com/callsignhq/callsign/sqlite"
)

// bin is the callsign binary TestMain builds.
var bin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "callsign-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "callsign")
	args := []string{"build", "-o", bin}
	if raceEnabled() {
		// The race detector then watches the server too; the test binary
		// was built with -race, so the instrumented packages are cached.
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building callsign:", err)
		return 1
	}
	return m.Run()
}

func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

var (
	adminTokenLine = regexp.MustCompile(`^cs_adm_[0-9A-Za-z]{38}\n$`)
	publicTokenRE  = regexp.MustCompile(`^cs_pub_[0-9A-Za-z]{38}$`)
	secretTokenRE  = regexp.MustCompile(`^cs_sec_[0-9A-Za-z]{38}$`)
	saneIDRE       = regexp.MustCompile(`^[0-9A-Za-z._:-]{1,128}$`)
	// anyTokenRE finds every callsign token and JWT in a text.
	anyTokenRE = regexp.MustCompile(`cs_(?:pub|sec|adm)_[0-9A-Za-z]{38}|eyJ[0-9A-Za-z_-]*\.[0-9A-Za-z_-]+\.[0-9A-Za-z_-]+`)
)

// lifecycleMsgs are the log messages of `serve` that belong to no request.
var lifecycleMsgs = []string{"callsign serving", "shutting down", "retention deleted events", "retention failed", "retention run failed"}

// harness runs callsign processes for one test. It remembers every token
// that went through a request, a response or the CLI's stdout; when the
// test ends it checks every server's log: JSON lines, a request_id on each
// line of a request, a log line for each answered request, and none of the
// tokens.
type harness struct {
	t      *testing.T
	client *http.Client

	mu      sync.Mutex
	tokens  map[string]bool
	servers []*server
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	h := &harness{t: t, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}, tokens: map[string]bool{}}
	// Registered first, so it runs after every server has been stopped.
	t.Cleanup(h.checkLogs)
	t.Cleanup(tr.CloseIdleConnections)
	return h
}

// remember records the tokens in s.
func (h *harness) remember(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, tok := range anyTokenRE.FindAllString(s, -1) {
		h.tokens[tok] = true
	}
}

func (h *harness) knownTokens() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.tokens))
	for tok := range h.tokens {
		out = append(out, tok)
	}
	slices.Sort(out)
	return out
}

// server is a running `callsign serve`.
type server struct {
	h          *harness
	addr, url  string
	data       string
	cmd        *exec.Cmd
	logs       syncBuffer
	exited     chan struct{}
	waitErr    error
	requestIDs []string // X-Request-Id of every answer; guarded by h.mu
}

// start runs `callsign serve --addr addr --data data` (a free port if addr
// is "") and waits until GET /healthz answers 200.
func (h *harness) start(data, addr string) *server {
	t := h.t
	t.Helper()
	if addr == "" {
		addr = freeAddr(t)
	}
	s := &server{h: h, addr: addr, url: "http://" + addr, data: data, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, "serve", "--addr", addr, "--data", data)
	s.cmd.Env = childEnv()
	s.cmd.Stderr = &s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
	})
	h.mu.Lock()
	h.servers = append(h.servers, s)
	h.mu.Unlock()
	s.waitReady()
	return s
}

// waitReady polls GET /healthz every 20ms for up to 10s.
func (s *server) waitReady() {
	t := s.h.t
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := s.h.client.Get(s.url + "/healthz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			s.h.mu.Lock()
			s.requestIDs = append(s.requestIDs, resp.Header.Get("X-Request-Id"))
			s.h.mu.Unlock()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("callsign serve on %s not ready after 10s (last error %v); log:\n%s", s.addr, err, s.logs.String())
		}
		select {
		case <-s.exited:
			t.Fatalf("callsign serve exited before being ready: %v; log:\n%s", s.waitErr, s.logs.String())
		case <-tick.C:
		}
	}
}

// stop sends sig and requires the server to exit 0 within 5 seconds.
func (s *server) stop(sig os.Signal) {
	s.h.t.Helper()
	s.signal(sig)
	s.waitExit(sig)
}

func (s *server) signal(sig os.Signal) {
	s.h.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.h.t.Fatal(err)
	}
}

// waitExit requires the server to exit 0 within 5 seconds of sig.
func (s *server) waitExit(sig os.Signal) {
	t := s.h.t
	t.Helper()
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
		t.Fatalf("callsign serve did not exit within 5s of %v; log:\n%s", sig, s.logs.String())
	}
	if s.waitErr != nil {
		t.Fatalf("callsign serve after %v: %v (want exit status 0); log:\n%s", sig, s.waitErr, s.logs.String())
	}
}

// waitFor polls cond every 20ms for up to 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10s", what)
		}
		<-tick.C
	}
}

// reply is an HTTP answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request to s: bearer as Authorization: Bearer unless empty,
// body as JSON unless nil (a string is sent as is), then hdr as pairs of
// header names and values.
func (s *server) do(method, path, bearer string, body any, hdr ...string) reply {
	t := s.h.t
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, ok := body.(string)
		if !ok {
			j, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			b = string(j)
		}
		s.h.remember(b)
		rd = strings.NewReader(b)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		s.h.remember(bearer)
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	s.h.remember(path)
	resp, err := s.h.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	s.h.remember(string(b))
	s.h.mu.Lock()
	s.requestIDs = append(s.requestIDs, resp.Header.Get("X-Request-Id"))
	s.h.mu.Unlock()
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// want fails the test unless the answer has the given status.
func (r reply) want(t *testing.T, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.body)
	}
}

// object decodes the answer as a JSON object.
func (r reply) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v; body: %s", err, r.body)
	}
	return m
}

// errorCode checks the API's error shape and returns its code.
func (r reply) errorCode(t *testing.T) string {
	t.Helper()
	var e struct {
		Error *struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error == nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("answer is not {\"error\":{\"code\",\"message\"}}: %s", r.body)
	}
	return e.Error.Code
}

// str returns the string field k of m, failing if it is not one.
func str(t *testing.T, m map[string]any, k string) string {
	t.Helper()
	v, ok := m[k].(string)
	if !ok || v == "" {
		t.Fatalf("field %q is %v, want a non-empty string; object: %v", k, m[k], m)
	}
	return v
}

// result is the outcome of a CLI run.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the callsign CLI with args and the environment without
// CALLSIGN_* variables plus env.
func (h *harness) run(env []string, args ...string) result {
	t := h.t
	t.Helper()
	for _, a := range args {
		h.remember(a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(childEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	h.remember(r.stdout)
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("callsign %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("callsign %s: timed out", strings.Join(args, " "))
	}
	return r
}

// ok fails the test unless the run exited 0.
func (r result) ok(t *testing.T) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit status %d, want 0; stderr: %s", r.code, r.stderr)
	}
	return r
}

// failed fails the test unless the run exited non-zero with nothing on
// stdout and exactly one line on stderr starting "callsign: ", and returns
// that line.
func (r result) failed(t *testing.T) string {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("exit status 0, want non-zero; stdout: %q", r.stdout)
	}
	if r.stdout != "" {
		t.Errorf("stdout %q, want nothing", r.stdout)
	}
	if !strings.HasPrefix(r.stderr, "callsign: ") || !strings.HasSuffix(r.stderr, "\n") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("stderr %q, want one line starting \"callsign: \"", r.stderr)
	}
	return strings.TrimSuffix(r.stderr, "\n")
}

// json decodes the run's stdout as a JSON object.
func (r result) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("stdout is not a JSON object: %v; stdout: %q", err, r.stdout)
	}
	return m
}

// adminToken runs `callsign admin token --data dir` and checks that it
// printed one admin token and nothing else on stdout.
func (h *harness) adminToken(dir string) string {
	t := h.t
	t.Helper()
	r := h.run(nil, "admin", "token", "--data", dir).ok(t)
	if !adminTokenLine.MatchString(r.stdout) {
		t.Fatalf("admin token stdout %q, want exactly one line matching %s", r.stdout, adminTokenLine)
	}
	return strings.TrimSuffix(r.stdout, "\n")
}

// checkLogs checks the log of every server the test ran.
func (h *harness) checkLogs() {
	t := h.t
	tokens := h.knownTokens()
	h.mu.Lock()
	servers := slices.Clone(h.servers)
	h.mu.Unlock()
	for _, s := range servers {
		<-s.exited // the server cleanups ran before this one
		logs := s.logs.Bytes()
		logged := map[string]bool{}
		for i, line := range bytes.Split(logs, []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				t.Errorf("server %s: log line %d is not JSON: %q", s.addr, i+1, line)
				continue
			}
			msg, _ := m["msg"].(string)
			if slices.Contains(lifecycleMsgs, msg) {
				continue
			}
			id, _ := m["request_id"].(string)
			if id == "" {
				t.Errorf("server %s: log line %d has no request_id: %s", s.addr, i+1, line)
			}
			if msg == "request" {
				logged[id] = true
			}
		}
		h.mu.Lock()
		ids := slices.Clone(s.requestIDs)
		h.mu.Unlock()
		for _, id := range ids {
			if !saneIDRE.MatchString(id) {
				t.Errorf("server %s: answered with X-Request-Id %q", s.addr, id)
			} else if !logged[id] {
				t.Errorf("server %s: no \"request\" log line with request_id %q", s.addr, id)
			}
		}
		for _, tok := range tokens {
			if leaked(logs, tok) {
				t.Errorf("server %s: log contains the token %s", s.addr, tok)
			}
		}
	}
}

// leaked reports whether data holds tok, or the random part of a callsign
// token, or the signature of a JWT.
func leaked(data []byte, tok string) bool {
	if bytes.Contains(data, []byte(tok)) {
		return true
	}
	if strings.HasPrefix(tok, "cs_") {
		return bytes.Contains(data, []byte(tok[len("cs_xxx_"):]))
	}
	return bytes.Contains(data, []byte(tok[strings.LastIndexByte(tok, '.')+1:]))
}

// assertNotInFiles fails if any file under dir holds one of tokens.
func assertNotInFiles(t *testing.T, dir string, tokens ...string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, tok := range tokens {
			if leaked(b, tok) {
				t.Errorf("%s holds the token %s in plaintext", path, tok)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatalf("no files in data directory %s", dir)
	}
}

// childEnv is the environment without CALLSIGN_* variables, which would
// change the commands' defaults. A race-enabled binary would sleep a second
// before exiting; GORACE turns that off.
func childEnv() []string {
	var env []string
	gorace := "atexit_sleep_ms=0"
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "CALLSIGN_"):
		case strings.HasPrefix(kv, "GORACE="):
			if v := strings.TrimPrefix(kv, "GORACE="); strings.Contains(v, "atexit_sleep_ms") {
				gorace = v
			} else {
				gorace = v + " " + gorace
			}
		default:
			env = append(env, kv)
		}
	}
	return append(env, "GORACE="+gorace)
}

// freeAddr returns 127.0.0.1:PORT with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
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

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

func (s *syncBuffer) String() string { return string(s.Bytes()) }

// typo returns tok with its last character changed, which breaks its
// checksum.
func typo(tok string) string {
	last := byte('A')
	if tok[len(tok)-1] == 'A' {
		last = 'B'
	}
	return tok[:len(tok)-1] + string(last)
}

func TestAdminToken(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dir := filepath.Join(t.TempDir(), "data") // does not exist yet

	fresh := h.adminToken(dir) // no server on dir
	s := h.start(dir, "")
	running := h.adminToken(dir) // a server runs on dir
	if fresh == running {
		t.Fatal("two admin token runs printed the same token")
	}
	for name, tok := range map[string]string{"made on a fresh dir": fresh, "made while serving": running} {
		if r := s.do("GET", "/v2/apps", tok, nil); r.status != http.StatusOK {
			t.Errorf("GET /v2/apps with the admin token %s: status %d, want 200; body: %s", name, r.status, r.body)
		}
	}
	if r := s.do("GET", "/v2/apps", callsign.GenerateToken(callsign.TokenAdmin), nil); r.status != http.StatusUnauthorized {
		t.Errorf("GET /v2/apps with an unknown admin token: status %d, want 401", r.status)
	}

	// admin tokens list and revoke also work on the directory of a running
	// server, and a revoked token is refused from the next request on.
	r := h.run(nil, "--json", "admin", "tokens", "list", "--data", dir).ok(t)
	if strings.Contains(r.stdout, fresh) || strings.Contains(r.stdout, running) {
		t.Fatalf("admin tokens list shows a token: %s", r.stdout)
	}
	var list struct {
		AdminTokens []struct{ ID, Name string } `json:"admin_tokens"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.AdminTokens) != 2 {
		t.Fatalf("admin tokens list --json: %v; want 2 tokens in %s", err, r.stdout)
	}
	h.run(nil, "admin", "tokens", "revoke", list.AdminTokens[0].ID, "--data", dir).ok(t)
	if r := s.do("GET", "/v2/apps", fresh, nil); r.status != http.StatusUnauthorized || r.errorCode(t) != "revoked" {
		t.Errorf("GET /v2/apps with a revoked admin token: %d %s, want 401 revoked", r.status, r.body)
	}
	s.do("GET", "/v2/apps", running, nil).want(t, http.StatusOK)
}

func TestAPIContract(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dir := t.TempDir()
	s := h.start(dir, "")
	adm := h.adminToken(dir)

	r := s.do("POST", "/v2/apps", adm, map[string]any{"name": "Credit Score"})
	r.want(t, http.StatusCreated)
	app := r.object(t)
	appID, pub, sec0 := str(t, app, "id"), str(t, app, "public_token"), str(t, app, "secret_token")
	if str(t, app, "name") != "Credit Score" || !publicTokenRE.MatchString(pub) || !secretTokenRE.MatchString(sec0) {
		t.Fatalf("POST /v2/apps answered %s", r.body)
	}

	r = s.do("GET", "/v2/apps/"+appID, adm, nil)
	r.want(t, http.StatusOK)
	got := r.object(t)
	if str(t, got, "id") != appID || str(t, got, "name") != "Credit Score" || str(t, got, "public_token") != pub {
		t.Errorf("GET /v2/apps/{id} answered %s", r.body)
	}
	if _, ok := got["secret_token"]; ok || bytes.Contains(r.body, []byte(sec0)) {
		t.Errorf("GET /v2/apps/{id} shows the secret: %s", r.body)
	}

	r = s.do("POST", "/v2/apps/"+appID+"/secrets", adm, map[string]any{"name": "backend"})
	r.want(t, http.StatusCreated)
	secret := r.object(t)
	secID, sec1 := str(t, secret, "id"), str(t, secret, "secret_token")
	if str(t, secret, "name") != "backend" || !secretTokenRE.MatchString(sec1) || sec1 == sec0 {
		t.Fatalf("POST /v2/apps/{id}/secrets answered %s", r.body)
	}

	r = s.do("GET", "/v2/apps/"+appID+"/secrets", adm, nil)
	r.want(t, http.StatusOK)
	var secrets struct{ Secrets []map[string]any }
	if err := json.Unmarshal(r.body, &secrets); err != nil || len(secrets.Secrets) != 2 {
		t.Fatalf("GET /v2/apps/{id}/secrets: %v; want 2 secrets in %s", err, r.body)
	}
	for _, x := range secrets.Secrets {
		if _, ok := x["secret_token"]; ok {
			t.Errorf("GET /v2/apps/{id}/secrets shows a secret_token: %s", r.body)
		}
	}
	if bytes.Contains(r.body, []byte(sec0)) || bytes.Contains(r.body, []byte(sec1)) || !bytes.Contains(r.body, []byte(secID)) {
		t.Errorf("GET /v2/apps/{id}/secrets answered %s", r.body)
	}

	// An anonymous upgrade, and one bound to a user with the secret.
	r = s.do("POST", "/v2/tokens/upgrade", "", map[string]any{"public_token": pub})
	r.want(t, http.StatusOK)
	anon := r.object(t)
	anonTok := str(t, anon, "appAccessToken")
	if _, ok := anon["userId"]; ok {
		t.Errorf("anonymous upgrade answered a userId: %s", r.body)
	}
	exp, err := time.Parse(time.RFC3339, str(t, anon, "expiresAt"))
	if err != nil || !exp.After(time.Now()) {
		t.Errorf("expiresAt %v: %v, want an RFC 3339 time in the future", anon["expiresAt"], err)
	}
	r = s.do("POST", "/v2/tokens/upgrade", sec1, map[string]any{"public_token": pub, "user_id": "alice"})
	r.want(t, http.StatusOK)
	bound := r.object(t)
	boundTok := str(t, bound, "appAccessToken")
	if str(t, bound, "userId") != "alice" {
		t.Errorf("bound upgrade answered %s, want userId alice", r.body)
	}
	str(t, bound, "expiresAt")

	// Both verify offline against the published keys.
	r = s.do("GET", "/.well-known/jwks.json", "", nil)
	r.want(t, http.StatusOK)
	keys, err := apptoken.ParseJWKS(r.body)
	if err != nil || len(keys.Keys) == 0 {
		t.Fatalf("JWKS: %v, %s", err, r.body)
	}
	v := apptoken.NewVerifier(keys, "http://"+s.addr, nil)
	for _, c := range []struct{ name, tok, user string }{{"anonymous", anonTok, ""}, {"bound", boundTok, "alice"}} {
		claims, err := v.Verify(c.tok)
		if err != nil {
			t.Errorf("%s token: %v", c.name, err)
			continue
		}
		if claims.AppID != appID || claims.UserID != c.user {
			t.Errorf("%s token: app_id %q user_id %q, want %q %q", c.name, claims.AppID, claims.UserID, appID, c.user)
		}
	}
	if _, err := apptoken.NewVerifier(keys, "http://callsign.invalid", nil).Verify(boundTok); err == nil {
		t.Error("token verified with another issuer")
	}

	// A revoked secret is refused from the next upgrade on; the app's other
	// secret keeps working.
	r = s.do("DELETE", "/v2/apps/"+appID+"/secrets/"+secID, adm, nil)
	r.want(t, http.StatusNoContent)
	r = s.do("POST", "/v2/tokens/upgrade", sec1, map[string]any{"public_token": pub, "user_id": "alice"})
	if r.status != http.StatusUnauthorized || r.errorCode(t) != "revoked" {
		t.Errorf("upgrade with a revoked secret: %d %s, want 401 revoked", r.status, r.body)
	}
	r = s.do("POST", "/v2/tokens/upgrade", sec0, map[string]any{"public_token": pub, "user_id": "bob"})
	r.want(t, http.StatusOK)
	if str(t, r.object(t), "userId") != "bob" {
		t.Errorf("upgrade with the app's first secret answered %s", r.body)
	}

	// Refusals, each in the API's error shape.
	r = s.do("POST", "/v2/apps", adm, map[string]any{"name": "Other"})
	r.want(t, http.StatusCreated)
	otherSec := str(t, r.object(t), "secret_token")
	for _, c := range []struct {
		name, method, path, bearer string
		body                       any
		status                     int
		code                       string
	}{
		{"admin API without a token", "GET", "/v2/apps", "", nil, 401, "unauthorized"},
		{"admin API with a secret token", "GET", "/v2/apps", sec0, nil, 401, "wrong_token_kind"},
		{"admin API with an unknown admin token", "GET", "/v2/apps", callsign.GenerateToken(callsign.TokenAdmin), nil, 401, "unauthorized"},
		{"admin API with a mistyped admin token", "GET", "/v2/apps", typo(adm), nil, 401, "bad_checksum"},
		{"unknown app", "GET", "/v2/apps/app_nope", adm, nil, 404, "not_found"},
		{"app without a name", "POST", "/v2/apps", adm, map[string]any{}, 400, "missing_field"},
		{"app with an unknown field", "POST", "/v2/apps", adm, map[string]any{"name": "x", "nmae": "y"}, 400, "unknown_field"},
		{"secret of an unknown app", "GET", "/v2/apps/app_nope/secrets", adm, nil, 404, "not_found"},
		{"upgrade binding a user without a secret", "POST", "/v2/tokens/upgrade", "", map[string]any{"public_token": pub, "user_id": "alice"}, 401, "unauthorized"},
		{"upgrade with a secret but no user", "POST", "/v2/tokens/upgrade", sec0, map[string]any{"public_token": pub}, 400, "missing_field"},
		{"upgrade of an unknown public token", "POST", "/v2/tokens/upgrade", "", map[string]any{"public_token": callsign.GenerateToken(callsign.TokenPublic)}, 401, "unauthorized"},
		{"upgrade of a mistyped public token", "POST", "/v2/tokens/upgrade", "", map[string]any{"public_token": typo(pub)}, 401, "bad_checksum"},
		{"upgrade of a secret as public token", "POST", "/v2/tokens/upgrade", "", map[string]any{"public_token": sec0}, 401, "wrong_token_kind"},
		{"upgrade with another app's secret", "POST", "/v2/tokens/upgrade", otherSec, map[string]any{"public_token": pub, "user_id": "alice"}, 403, "app_mismatch"},
		{"nothing there", "GET", "/nope", "", nil, 404, "not_found"},
		{"wrong method", "DELETE", "/healthz", "", nil, 405, "method_not_allowed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := s.do(c.method, c.path, c.bearer, c.body)
			if code := r.errorCode(t); r.status != c.status || code != c.code {
				t.Errorf("%s %s: %d %s, want %d %s", c.method, c.path, r.status, code, c.status, c.code)
			}
		})
	}
}

func TestCLI(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dir := t.TempDir()
	s := h.start(dir, "")
	adm := h.adminToken(dir)
	cs := func(args ...string) result {
		t.Helper()
		return h.run(nil, append([]string{"--server", s.url, "--token", adm}, args...)...)
	}

	app := cs("apps", "create", "Credit Score", "--json").ok(t).json(t)
	appID, pub, sec0 := str(t, app, "id"), str(t, app, "public_token"), str(t, app, "secret_token")
	if !publicTokenRE.MatchString(pub) || !secretTokenRE.MatchString(sec0) {
		t.Fatalf("apps create --json printed %v", app)
	}

	r := cs("apps", "create", "Second").ok(t)
	if !strings.Contains(r.stdout, "SECRET_TOKEN") || !strings.Contains(r.stderr, "shown only now") {
		t.Errorf("apps create (table): stdout %q stderr %q", r.stdout, r.stderr)
	}

	r = cs("apps", "list").ok(t)
	if !strings.HasPrefix(r.stdout, "ID ") || !strings.Contains(r.stdout, appID) || !strings.Contains(r.stdout, pub) || strings.Contains(r.stdout, sec0) {
		t.Errorf("apps list printed %q", r.stdout)
	}
	r = cs("apps", "show", appID).ok(t)
	if !strings.Contains(r.stdout, pub) || strings.Contains(r.stdout, sec0) {
		t.Errorf("apps show printed %q", r.stdout)
	}
	shown := cs("apps", "show", appID, "--json").ok(t).json(t)
	if str(t, shown, "public_token") != pub || shown["secret_token"] != nil {
		t.Errorf("apps show --json printed %v", shown)
	}
	// The admin token may come from the environment instead of --token.
	r = h.run([]string{"CALLSIGN_ADMIN_TOKEN=" + adm, "CALLSIGN_SERVER=" + s.url}, "apps", "show", appID).ok(t)
	if !strings.Contains(r.stdout, pub) {
		t.Errorf("apps show with CALLSIGN_ADMIN_TOKEN printed %q", r.stdout)
	}

	secret := cs("secrets", "create", appID, "backend", "--json").ok(t).json(t)
	secID, sec1 := str(t, secret, "id"), str(t, secret, "secret_token")
	if !secretTokenRE.MatchString(sec1) {
		t.Fatalf("secrets create --json printed %v", secret)
	}
	r = cs("secrets", "list", appID).ok(t)
	if !strings.Contains(r.stdout, secID) || strings.Contains(r.stdout, sec0) || strings.Contains(r.stdout, sec1) {
		t.Errorf("secrets list printed %q", r.stdout)
	}

	anon := cs("token", "upgrade", "--public", pub, "--json").ok(t).json(t)
	anonTok := str(t, anon, "appAccessToken")
	if _, ok := anon["userId"]; ok {
		t.Errorf("anonymous token upgrade printed a userId: %v", anon)
	}
	bound := cs("token", "upgrade", "--public", pub, "--secret", sec1, "--user", "alice", "--json").ok(t).json(t)
	boundTok := str(t, bound, "appAccessToken")
	if str(t, bound, "userId") != "alice" {
		t.Errorf("bound token upgrade printed %v", bound)
	}
	r = cs("token", "upgrade", "--public", pub).ok(t) // table output
	if !strings.Contains(r.stdout, "APPACCESSTOKEN") {
		t.Errorf("token upgrade printed %q", r.stdout)
	}

	keys := cs("keys", "list", "--json").ok(t).json(t)
	if ks, _ := keys["keys"].([]any); len(ks) != 1 {
		t.Fatalf("keys list --json printed %v, want one key", keys)
	}
	rotated := cs("keys", "rotate", "--json").ok(t).json(t)
	kid := str(t, rotated, "kid")
	r = cs("keys", "list").ok(t)
	if !strings.Contains(r.stdout, kid) || strings.Count(r.stdout, "\n") != 3 {
		t.Errorf("keys list after rotate printed %q, want a header and 2 keys", r.stdout)
	}

	// Tokens signed before the rotation still verify; so do new ones.
	after := cs("token", "upgrade", "--public", pub, "--secret", sec1, "--user", "bob", "--json").ok(t).json(t)
	for _, c := range []struct{ name, tok, user string }{
		{"anonymous", anonTok, ""},
		{"bound", boundTok, "alice"},
		{"signed by the new key", str(t, after, "appAccessToken"), "bob"},
	} {
		claims := cs("token", "verify", c.tok, "--json").ok(t).json(t)
		if claims["app_id"] != appID || claims["user_id"] != c.user || claims["iss"] != s.url {
			t.Errorf("token verify of the %s token printed %v", c.name, claims)
		}
	}

	r = cs("secrets", "revoke", appID, secID).ok(t)
	if !strings.Contains(r.stderr, secID) {
		t.Errorf("secrets revoke: stderr %q", r.stderr)
	}
	line := cs("token", "upgrade", "--public", pub, "--secret", sec1, "--user", "alice").failed(t)
	if !strings.Contains(line, "revoked") || strings.Contains(line, sec1) {
		t.Errorf("upgrade with a revoked secret: %q", line)
	}

	t.Run("errors", func(t *testing.T) {
		down := "http://" + freeAddr(t)
		for _, c := range []struct {
			name string
			args []string
			want string // in the error line
		}{
			{"unknown app", []string{"--server", s.url, "--token", adm, "apps", "show", "nope"}, "not_found"},
			{"no admin token", []string{"--server", s.url, "apps", "list"}, "no admin token"},
			{"unknown admin token", []string{"--server", s.url, "--token", callsign.GenerateToken(callsign.TokenAdmin), "apps", "list"}, "401"},
			{"server down", []string{"--server", down, "--token", adm, "apps", "list"}, "cannot reach"},
			{"server not a URL", []string{"--server", "127.0.0.1:1", "--token", adm, "apps", "list"}, "--server"},
			{"unknown command", []string{"nope"}, "unknown command"},
			{"unknown flag", []string{"apps", "list", "--nope"}, "unknown flag"},
			{"missing argument", []string{"apps", "show"}, "arg"},
			{"upgrade without --public", []string{"--server", s.url, "token", "upgrade"}, "--public"},
			{"verify garbage", []string{"--server", s.url, "token", "verify", "garbage"}, "malformed"},
			{"bad log format", []string{"serve", "--log-format", "xml", "--data", t.TempDir(), "--addr", freeAddr(t)}, "--log-format"},
			{"second server on a data dir", []string{"serve", "--data", s.data, "--addr", freeAddr(t)}, "another callsign serve is running"},
		} {
			t.Run(c.name, func(t *testing.T) {
				line := h.run(nil, c.args...).failed(t)
				if !strings.Contains(line, c.want) {
					t.Errorf("error line %q does not mention %q", line, c.want)
				}
				if strings.Contains(line, adm) {
					t.Errorf("error line shows the admin token: %q", line)
				}
			})
		}
	})
}

// TestHelp runs --help on every command the root's help lists, recursively.
func TestHelp(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	seen := map[string]bool{}
	var walk func(path []string)
	walk = func(path []string) {
		r := h.run(nil, append(slices.Clone(path), "--help")...)
		name := strings.Join(append([]string{"callsign"}, path...), " ")
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%s --help: exit status %d, stdout %q, stderr %q", name, r.code, r.stdout, r.stderr)
			return
		}
		seen[name] = true
		for _, sub := range subcommands(r.stdout) {
			if sub != "help" {
				walk(append(slices.Clone(path), sub))
			}
		}
	}
	walk(nil)
	for _, want := range []string{
		"callsign serve", "callsign admin token", "callsign admin tokens list", "callsign admin tokens revoke",
		"callsign apps create", "callsign apps list", "callsign apps show", "callsign apps update", "callsign apps revoke",
		"callsign secrets create", "callsign secrets list", "callsign secrets revoke",
		"callsign keys list", "callsign keys rotate", "callsign token upgrade", "callsign token verify",
		"callsign events", "callsign metrics",
	} {
		if !seen[want] {
			t.Errorf("%s --help not reached from callsign --help (reached: %v)", want, slices.Sorted(maps.Keys(seen)))
		}
	}
}

// subcommands returns the names under "Available Commands:" in a cobra help.
func subcommands(help string) []string {
	_, rest, ok := strings.Cut(help, "Available Commands:\n")
	if !ok {
		return nil
	}
	var out []string
	for _, line := range strings.Split(rest, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(line, "  ") {
			break
		}
		out = append(out, f[0])
	}
	return out
}

func TestStoreURLRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, c := range []struct {
		name, url string
		secret    string // must not appear in the message
		want      string // must appear in the message
	}{
		{"postgres", "postgres://u:p@h/db", "p@", "postgres"},
		{"postgresql", "postgresql://admin:hunter2@db.internal:5432/callsign?sslmode=require", "hunter2", "postgres"},
		{"unparsable", "postgres://u:s3cr%zz@h/db", "s3cr", "--store"},
		{"unknown engine", "foo://x", "", "foo"},
		{"not a URL", "just-a-path", "", "--store"},
	} {
		for _, cmd := range [][]string{
			{"serve", "--addr", freeAddr(t), "--data", t.TempDir(), "--store", c.url},
			{"admin", "token", "--data", t.TempDir(), "--store", c.url},
		} {
			t.Run(c.name+"/"+cmd[0], func(t *testing.T) {
				line := h.run(nil, cmd...).failed(t)
				if c.secret != "" && strings.Contains(line, c.secret) {
					t.Errorf("error line shows the password: %q", line)
				}
				if !strings.Contains(line, c.want) {
					t.Errorf("error line %q does not mention %q", line, c.want)
				}
			})
		}
	}
}

// While a server runs on a data directory, a CLI command does not migrate
// the store under it (the server may be an older version): it asks for the
// server to be stopped. Any command refuses a store migrated by a newer
// callsign.
func TestCLIDoesNotMigrateUnderARunningServer(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dir := filepath.Join(t.TempDir(), "data")
	h.start(dir, "")
	h.run(nil, "admin", "tokens", "list", "--data", dir).ok(t) // current schema: fine

	c, err := sql.Open("sqlite", "file:"+(&url.URL{Path: filepath.Join(dir, sqlite.FileName)}).EscapedPath()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var cur int
	if err := c.QueryRow("PRAGMA user_version").Scan(&cur); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		version int
		want    string
	}{
		{"older: a newer CLI beside an older server", cur - 1, "stop it and run this again"},
		{"newer: an older CLI", cur + 1, "upgrade callsign"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Exec(fmt.Sprintf("PRAGMA user_version = %d", tt.version)); err != nil {
				t.Fatal(err)
			}
			if line := h.run(nil, "admin", "tokens", "list", "--data", dir).failed(t); !strings.Contains(line, tt.want) {
				t.Errorf("error line %q does not say %q", line, tt.want)
			}
		})
	}
}

func TestRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dir := t.TempDir()
	adm := h.adminToken(dir)
	s := h.start(dir, "")
	addr := s.addr

	r := s.do("POST", "/v2/apps", adm, map[string]any{"name": "Credit Score"})
	r.want(t, http.StatusCreated)
	app := r.object(t)
	appID, pub, sec0 := str(t, app, "id"), str(t, app, "public_token"), str(t, app, "secret_token")
	r = s.do("POST", "/v2/apps/"+appID+"/secrets", adm, map[string]any{"name": "backend"})
	r.want(t, http.StatusCreated)
	sec1 := str(t, r.object(t), "secret_token")
	r = s.do("POST", "/v2/tokens/upgrade", sec1, map[string]any{"public_token": pub, "user_id": "alice"})
	r.want(t, http.StatusOK)
	before := str(t, r.object(t), "appAccessToken")
	assertNotInFiles(t, dir, adm, sec0, sec1)

	start := time.Now()
	s.stop(syscall.SIGTERM)
	t.Logf("graceful shutdown took %v", time.Since(start))
	assertNotInFiles(t, dir, adm, sec0, sec1)

	s = h.start(dir, addr) // same address, so the same issuer
	r = s.do("GET", "/v2/apps/"+appID, adm, nil)
	r.want(t, http.StatusOK)
	if got := r.object(t); got["public_token"] != pub || got["name"] != "Credit Score" {
		t.Errorf("after restart GET /v2/apps/{id} answered %s", r.body)
	}
	for _, sec := range []string{sec0, sec1} {
		r = s.do("POST", "/v2/tokens/upgrade", sec, map[string]any{"public_token": pub, "user_id": "bob"})
		r.want(t, http.StatusOK)
		if str(t, r.object(t), "userId") != "bob" {
			t.Errorf("after restart bound upgrade answered %s", r.body)
		}
	}
	r = s.do("GET", "/.well-known/jwks.json", "", nil)
	r.want(t, http.StatusOK)
	keys, err := apptoken.ParseJWKS(r.body)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := apptoken.NewVerifier(keys, s.url, nil).Verify(before); err != nil || c.UserID != "alice" {
		t.Errorf("token minted before the restart: %v, %v", c, err)
	}
	for _, path := range []string{"/v2/apps", "/v2/apps/" + appID, "/v2/apps/" + appID + "/secrets", "/v2/admin/tokens", "/v2/keys", "/.well-known/jwks.json", "/healthz"} {
		r := s.do("GET", path, adm, nil)
		r.want(t, http.StatusOK)
		for _, tok := range []string{sec0, sec1, adm} {
			if bytes.Contains(r.body, []byte(tok)) {
				t.Errorf("GET %s shows the token %s: %s", path, tok, r.body)
			}
		}
	}
	assertNotInFiles(t, dir, adm, sec0, sec1)
	s.stop(syscall.SIGINT)
	assertNotInFiles(t, dir, adm, sec0, sec1)
}

func TestRequestIDsAndLogs(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dir := t.TempDir()
	s := h.start(dir, "")
	adm := h.adminToken(dir)

	r := s.do("POST", "/v2/apps", adm, map[string]any{"name": "Credit Score"})
	r.want(t, http.StatusCreated)
	app := r.object(t)
	appID, pub, sec := str(t, app, "id"), str(t, app, "public_token"), str(t, app, "secret_token")
	r = s.do("POST", "/v2/tokens/upgrade", sec, map[string]any{"public_token": pub, "user_id": "alice"}, "X-Request-Id", "req-123")
	r.want(t, http.StatusOK)
	if got := r.header.Get("X-Request-Id"); got != "req-123" {
		t.Errorf("X-Request-Id answered %q, want the caller's req-123", got)
	}

	long := strings.Repeat("r", 128)
	tooLong := strings.Repeat("x1", 150)
	replaced := []string{"has spaces in it", tooLong, long + "9", "req<script>"}
	for _, c := range []struct {
		name string
		ids  []string // X-Request-Id headers sent
		echo bool
	}{
		{"none", nil, false},
		{"sane", []string{"0190b7c2-7b1e-7f5a-9c1d-3e0a8f6b2d4c"}, true},
		{"128 bytes", []string{long}, true},
		{"129 bytes", []string{long + "9"}, false},
		{"300 bytes", []string{tooLong}, false},
		{"spaces", []string{"has spaces in it"}, false},
		{"markup", []string{"req<script>"}, false},
		{"two headers", []string{"req-a", "req-b"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var hdr []string
			for _, id := range c.ids {
				hdr = append(hdr, "X-Request-Id", id)
			}
			r := s.do("GET", "/healthz", "", nil, hdr...)
			r.want(t, http.StatusOK)
			got := r.header.Get("X-Request-Id")
			switch {
			case c.echo && got != c.ids[0]:
				t.Errorf("X-Request-Id answered %q, want the caller's %q", got, c.ids[0])
			case !c.echo && (slices.Contains(c.ids, got) || !saneIDRE.MatchString(got)):
				t.Errorf("X-Request-Id answered %q for %q, want a new sane id", got, c.ids)
			}
		})
	}

	// Tokens put in a path by mistake are not logged.
	for _, path := range []string{
		"/v2/apps/" + sec,
		"/v2/apps/" + appID + "/secrets/" + sec,
		"/v2/apps/" + adm,
		"/" + sec + "/x",
	} {
		r := s.do("GET", path, adm, nil)
		if r.status < 400 {
			t.Errorf("GET %s: status %d, want an error", path, r.status)
		}
	}
	s.do("DELETE", "/v2/apps/"+appID+"/secrets/"+sec, adm, nil)

	s.stop(syscall.SIGTERM)
	logs := s.logs.String()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			lines = append(lines, m)
		}
	}
	found := false
	for _, m := range lines {
		if m["request_id"] == "req-123" && m["msg"] == "request" && m["path"] == "/v2/tokens/upgrade" {
			found = true
		}
	}
	if !found {
		t.Errorf("no request log line with request_id req-123; log:\n%s", logs)
	}
	for _, id := range replaced {
		if strings.Contains(logs, id) {
			t.Errorf("log contains the refused request id %q", id)
		}
	}
	if !strings.Contains(logs, "[redacted]") {
		t.Errorf("no redacted path in the log:\n%s", logs)
	}
	// checkLogs (at cleanup) then checks that no token is in the log.
}

// TestGracefulShutdown stops the server while a request is in flight: the
// request completes and the server exits 0.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dir := t.TempDir()
	s := h.start(dir, "")
	adm := h.adminToken(dir)

	// With Expect: 100-continue the server asks for the body only once the
	// handler reads it: from then on the request is surely in flight.
	got100 := make(chan struct{})
	body, bodyW := io.Pipe()
	req, err := http.NewRequest("POST", s.url+"/v2/apps", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+adm)
	req.Header.Set("Expect", "100-continue")
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{Got100Continue: func() { close(got100) }}))
	tr := &http.Transport{ExpectContinueTimeout: time.Minute}
	t.Cleanup(tr.CloseIdleConnections)
	type answer struct {
		status int
		body   []byte
		err    error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			done <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- answer{resp.StatusCode, b, err}
	}()
	select {
	case <-got100:
	case a := <-done:
		t.Fatalf("request ended before the server read its body: %+v", a)
	case <-time.After(10 * time.Second):
		t.Fatal("no 100 Continue within 10s")
	}

	s.signal(syscall.SIGTERM)
	waitFor(t, "a \"shutting down\" log line", func() bool { return strings.Contains(s.logs.String(), `"shutting down"`) })
	io.WriteString(bodyW, `{"name":"in flight"}`)
	bodyW.Close()
	var a answer
	select {
	case a = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("in-flight request got no answer within 10s of shutdown")
	}
	h.remember(string(a.body))
	if a.err != nil || a.status != http.StatusCreated {
		t.Fatalf("in-flight request during shutdown: %d %s %v, want 201", a.status, a.body, a.err)
	}
	s.waitExit(syscall.SIGTERM)
}

// TestLogsRedactPublicAndAccessTokensInPath sends public and access tokens
// in a request path by mistake; neither must reach the log.
func TestLogsRedactPublicAndAccessTokensInPath(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dir := t.TempDir()
	s := h.start(dir, "")
	adm := h.adminToken(dir)
	r := s.do("POST", "/v2/apps", adm, map[string]any{"name": "Credit Score"})
	r.want(t, http.StatusCreated)
	pub := str(t, r.object(t), "public_token")
	r = s.do("POST", "/v2/tokens/upgrade", "", map[string]any{"public_token": pub})
	r.want(t, http.StatusOK)
	access := str(t, r.object(t), "appAccessToken")
	s.do("GET", "/v2/apps/"+pub, adm, nil).want(t, http.StatusNotFound)
	s.do("GET", "/v2/apps/"+access, adm, nil).want(t, http.StatusNotFound)
	s.stop(syscall.SIGTERM)
	// checkLogs fails the test if either token is in the log.
}
