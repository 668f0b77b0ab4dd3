package httpapi_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth/apptoken"
	"github.com/callsignhq/callsign/httpapi"
	"github.com/klauspost/compress/s2"
)

// clock is a settable clock for Config.Now; the zero value follows the
// wall clock.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }
func (c *clock) cfg() func() time.Time   { return c.now }
func ago(d time.Duration) time.Time      { return time.Now().Add(-d).UTC().Truncate(time.Millisecond) }
func evt(id string) callsign.EventJSON {
	return callsign.EventJSON{ID: id, Time: ago(time.Minute), Method: "GET", Route: "GET /notes/{id}", Status: 200, LatencyMS: 12.5}
}
func withUser(e callsign.EventJSON, u string) callsign.EventJSON { e.UserID = u; return e }

// batch is the JSON of an ingest body of events.
func batch(events ...callsign.EventJSON) string {
	if events == nil {
		events = []callsign.EventJSON{}
	}
	b, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		panic(err)
	}
	return string(b)
}

func gz(s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.String()
}

// sn compresses s in the snappy block format (Content-Encoding: snappy).
func sn(s string) string { return string(s2.EncodeSnappy(nil, []byte(s))) }

// literalSnappy returns s as a valid snappy block of literals of at most 60
// bytes each, as a naive encoder might send it: 1/60 larger than s.
func literalSnappy(s string) string {
	b := binary.AppendUvarint(nil, uint64(len(s)))
	for len(s) > 0 {
		n := min(len(s), 60)
		b = append(b, byte(n-1)<<2) // a literal of n bytes
		b = append(b, s[:n]...)
		s = s[n:]
	}
	return string(b)
}

// shortSnappy returns s compressed, with a header that claims 100 bytes
// more than the data holds.
func shortSnappy(s string) string {
	data := sn(s)
	_, n := binary.Uvarint([]byte(data))
	return string(binary.AppendUvarint(nil, uint64(len(s)+100))) + data[n:]
}

// serverToken gets an ingest:server token with the app's secret.
func (e *env) serverToken(a appFixture) string {
	e.t.Helper()
	r := e.do("POST", "/v2/tokens/server", `{}`, "Content-Type", ctJSON, "Authorization", "Bearer "+a.secret)
	if r.status != 200 {
		e.t.Fatalf("server token: %d %s", r.status, r.raw)
	}
	return r.str("appAccessToken")
}

// clientToken upgrades the public token, bound to user when one is given.
func (e *env) clientToken(a appFixture, user ...string) string {
	e.t.Helper()
	h := []string{"Content-Type", ctJSON}
	if len(user) > 0 {
		h = append(h, "Authorization", "Bearer "+a.secret)
	}
	r := e.do("POST", "/v2/tokens/upgrade", upgradeBody(a.public, user...), h...)
	if r.status != 200 {
		e.t.Fatalf("upgrade: %d %s", r.status, r.raw)
	}
	return r.str("appAccessToken")
}

// ingest posts body with tok; extra headers follow.
func (e *env) ingest(tok, body string, hdr ...string) *response {
	e.t.Helper()
	return e.do("POST", "/v2/events", body, append([]string{"Content-Type", ctJSON, "Authorization", "Bearer " + tok}, hdr...)...)
}

// ingestOK posts events and requires a 200 without rejections.
func (e *env) ingestOK(tok string, events ...callsign.EventJSON) *response {
	e.t.Helper()
	r := e.ingest(tok, batch(events...))
	if r.status != 200 || len(r.body["rejected"].([]any)) != 0 {
		e.t.Fatalf("ingest: %d %s", r.status, r.raw)
	}
	return r
}

// allEvents follows next_cursor from path (a GET /v2/events URL) until it
// is absent, failing on a repeated event or a page out of order.
func (e *env) allEvents(path, secret string) []map[string]any {
	e.t.Helper()
	var out []map[string]any
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		p := path
		if cursor != "" {
			p += "&cursor=" + cursor
		}
		r := e.do("GET", p, "", "Authorization", "Bearer "+secret)
		if r.status != 200 {
			e.t.Fatalf("GET %s: %d %s", p, r.status, r.raw)
		}
		evs, ok := r.body["events"].([]any)
		if !ok {
			e.t.Fatalf("GET %s: no events array: %s", p, r.raw)
		}
		for _, x := range evs {
			m := x.(map[string]any)
			id := m["id"].(string)
			if seen[id] {
				e.t.Fatalf("event %s listed twice", id)
			}
			seen[id] = true
			if n := len(out); n > 0 && parseTime(e.t, out[n-1]["time"]).Before(parseTime(e.t, m["time"])) {
				e.t.Fatalf("not newest first: %v then %v", out[n-1]["time"], m["time"])
			}
			out = append(out, m)
		}
		next, has := r.body["next_cursor"]
		if !has {
			return out
		}
		if cursor = next.(string); cursor == "" || len(evs) == 0 {
			e.t.Fatalf("next_cursor %q after a page of %d", cursor, len(evs))
		}
		if pages > 10000 {
			e.t.Fatal("pagination does not end")
		}
	}
}

func parseTime(t testing.TB, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("time %v: %v", v, err)
	}
	return tm
}

func rejected(t *testing.T, r *response) []map[string]any {
	t.Helper()
	rs, ok := r.body["rejected"].([]any)
	if !ok {
		t.Fatalf("no rejected array: %s", r.raw)
	}
	out := make([]map[string]any, len(rs))
	for i, x := range rs {
		out[i] = x.(map[string]any)
	}
	return out
}

func counts(t *testing.T, r *response, accepted, duplicates, rejectedN int) {
	t.Helper()
	if r.status != 200 || r.body["accepted"] != float64(accepted) || r.body["duplicates"] != float64(duplicates) || len(rejected(t, r)) != rejectedN {
		t.Fatalf("answer %d %s; want accepted %d, duplicates %d, %d rejected", r.status, r.raw, accepted, duplicates, rejectedN)
	}
}

// foreignToken mints an access token for appID with a key the server does
// not know, or with the server's key and odd claims.
func (e *env) mint(appID, user string, key *callsign.SigningKey, issuer string, at time.Time, ttl time.Duration, opts ...apptoken.MintOption) string {
	e.t.Helper()
	if key == nil {
		var err error
		if key, err = e.ring.Signer(context.Background()); err != nil {
			e.t.Fatal(err)
		}
	}
	if issuer == "" {
		issuer = e.api.Issuer()
	}
	tok, _, err := apptoken.Mint(key, issuer, appID, user, at, ttl, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func TestServerTokenScenarios(t *testing.T) {
	e := newEnv(t, httpapi.Config{})
	a := e.createApp("a", `,"access_token_ttl_seconds":600`)
	gone := e.createApp("gone", "")
	e.adminDo("DELETE", "/v2/apps/"+gone.id, "")
	old := e.adminDo("POST", "/v2/apps/"+a.id+"/secrets", `{"name":"old"}`)
	e.adminDo("DELETE", "/v2/apps/"+a.id+"/secrets/"+old.str("id"), "")
	const path = "/v2/tokens/server"
	with := func(tok string) []string { return []string{"Content-Type", ctJSON, "Authorization", "Bearer " + tok} }
	e.run(t, []scenario{
		{name: "server token", method: "POST", path: path, body: `{}`, headers: with(a.secret), status: 200, check: func(t *testing.T, r *response) {
			c, err := e.verify(r.str("appAccessToken"))
			if err != nil || c.Scope != apptoken.ScopeServer || c.UserID != "" || c.AppID != a.id || c.ExpiresAt.Sub(c.IssuedAt.Time) != 10*time.Minute {
				t.Fatalf("claims %+v, %v", c, err)
			}
			if _, has := r.body["userId"]; has || r.str("expiresAt") == "" {
				t.Fatalf("answer %s", r.raw)
			}
		}},
		{name: "whitespace body", method: "POST", path: path, body: " { } ", headers: with(a.secret), status: 200},
		{name: "no credentials", method: "POST", path: path, body: `{}`, headers: []string{"Content-Type", ctJSON}, status: 401, code: "unauthorized"},
		{name: "a field", method: "POST", path: path, body: `{"user_id":"alice"}`, headers: with(a.secret), status: 400, code: "unknown_field"},
		{name: "scope field", method: "POST", path: path, body: `{"scope":"ingest:server"}`, headers: with(a.secret), status: 400, code: "unknown_field"},
		{name: "empty body", method: "POST", path: path, body: ``, headers: with(a.secret), status: 400, code: "invalid_json"},
		{name: "array body", method: "POST", path: path, body: `[]`, headers: with(a.secret), status: 400, code: "invalid_json"},
		{name: "trailing data", method: "POST", path: path, body: `{}{}`, headers: with(a.secret), status: 400, code: "trailing_data"},
		{name: "no content type", method: "POST", path: path, body: `{}`, headers: []string{"Authorization", "Bearer " + a.secret}, status: 415, code: "unsupported_media_type"},
		{name: "unknown secret", method: "POST", path: path, body: `{}`, headers: with(callsign.GenerateToken(callsign.TokenSecret)), status: 401, code: "unauthorized"},
		{name: "revoked secret", method: "POST", path: path, body: `{}`, headers: with(old.str("secret_token")), status: 401, code: "revoked"},
		{name: "revoked app", method: "POST", path: path, body: `{}`, headers: with(gone.secret), status: 401, code: "revoked"},
		{name: "public token", method: "POST", path: path, body: `{}`, headers: with(a.public), status: 401, code: "wrong_token_kind"},
		{name: "admin token", method: "POST", path: path, body: `{}`, headers: with(e.admin), status: 401, code: "wrong_token_kind"},
		{name: "malformed", method: "POST", path: path, body: `{}`, headers: with("nope"), status: 401, code: "malformed_token"},
		{name: "GET", method: "GET", path: path, status: 405, code: "method_not_allowed"},
	})
	t.Run("rate limited per IP", func(t *testing.T) {
		now := time.Now()
		e := newEnv(t, httpapi.Config{UpgradeRatePerIP: 1, Now: func() time.Time { return now }})
		a := e.createApp("a", "")
		var last *response
		for range 3 {
			last = e.do("POST", path, `{}`, with(a.secret)...)
		}
		if last.status != 429 || last.code() != "rate_limited" || last.header.Get("Retry-After") == "" {
			t.Fatalf("third server token: %d %s", last.status, last.raw)
		}
	})
}

func TestIngestErrorScenarios(t *testing.T) {
	e := newEnv(t, httpapi.Config{})
	a := e.createApp("a", `,"allowed_origins":["https://a.example"]`)
	gone := e.createApp("gone", "")
	goneTok := e.serverToken(gone)
	e.adminDo("DELETE", "/v2/apps/"+gone.id, "")
	srv := e.serverToken(a)
	one := batch(evt("e1"))

	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	strangerKey := &callsign.SigningKey{ID: "kstranger", Public: stranger.Public().(ed25519.PublicKey), Private: stranger}
	otherJWT := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","typ":"JWT","kid":"k"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"x"}`)) + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 64))

	auth := func(tok string, more ...string) []string {
		return append([]string{"Content-Type", ctJSON, "Authorization", "Bearer " + tok}, more...)
	}
	big := `{"events":[` + strings.Repeat(" ", callsign.MaxBatchBytes) + `]}`
	bomb := gz(`{"events":[` + strings.Repeat(" ", 50<<20) + `]}`) // 50 MB of blanks in about 50 KB
	random := make([]byte, callsign.MaxBatchBytes+1024)
	rand.Read(random)
	var over []callsign.EventJSON
	for i := range callsign.MaxEventsPerBatch + 1 {
		over = append(over, evt("o"+strconv.Itoa(i)))
	}
	var full []callsign.EventJSON
	for i := range callsign.MaxEventsPerBatch {
		full = append(full, evt("f"+strconv.Itoa(i)))
	}
	nested := `{"events":[{"id":"n1","status":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}]}`

	e.run(t, []scenario{
		// Authentication.
		{name: "no credentials", method: "POST", path: "/v2/events", body: one, headers: []string{"Content-Type", ctJSON}, status: 401, code: "unauthorized"},
		{name: "Basic", method: "POST", path: "/v2/events", body: one, headers: []string{"Content-Type", ctJSON, "Authorization", "Basic " + srv}, status: 401, code: "malformed_token"},
		{name: "garbage token", method: "POST", path: "/v2/events", body: one, headers: auth("garbage"), status: 401, code: "malformed_token"},
		{name: "secret token", method: "POST", path: "/v2/events", body: one, headers: auth(a.secret), status: 401, code: "wrong_token_kind"},
		{name: "public token", method: "POST", path: "/v2/events", body: one, headers: auth(a.public), status: 401, code: "wrong_token_kind"},
		{name: "another JWT", method: "POST", path: "/v2/events", body: one, headers: auth(otherJWT), status: 401, code: "wrong_token_kind"},
		{name: "unknown signing key", method: "POST", path: "/v2/events", body: one, headers: auth(e.mint(a.id, "", strangerKey, "", time.Now(), time.Hour)), status: 401, code: "unauthorized"},
		{name: "expired token", method: "POST", path: "/v2/events", body: one, headers: auth(e.mint(a.id, "", nil, "", time.Now().Add(-2*time.Hour), time.Hour)), status: 401, code: "unauthorized"},
		{name: "other issuer", method: "POST", path: "/v2/events", body: one, headers: auth(e.mint(a.id, "", nil, "https://evil.example", time.Now(), time.Hour)), status: 401, code: "unauthorized"},
		{name: "unknown app", method: "POST", path: "/v2/events", body: one, headers: auth(e.mint("app_nope", "", nil, "", time.Now(), time.Hour)), status: 401, code: "unauthorized"},
		{name: "revoked app", method: "POST", path: "/v2/events", body: one, headers: auth(goneTok), status: 401, code: "revoked"},
		{name: "two Authorization headers", method: "POST", path: "/v2/events", body: one, headers: auth(srv, "Authorization", "Bearer "+srv), status: 401, code: "malformed_token"},

		// Content type and encoding.
		{name: "no content type", method: "POST", path: "/v2/events", body: one, headers: []string{"Authorization", "Bearer " + srv}, status: 415, code: "unsupported_media_type"},
		{name: "text/plain", method: "POST", path: "/v2/events", body: one, headers: []string{"Authorization", "Bearer " + srv, "Content-Type", "text/plain"}, status: 415, code: "unsupported_media_type"},
		{name: "brotli", method: "POST", path: "/v2/events", body: one, headers: auth(srv, "Content-Encoding", "br"), status: 415, code: "unsupported_media_type"},
		{name: "gzip twice", method: "POST", path: "/v2/events", body: gz(gz(one)), headers: auth(srv, "Content-Encoding", "gzip, gzip"), status: 415, code: "unsupported_media_type"},
		{name: "gzip header, plain body", method: "POST", path: "/v2/events", body: one, headers: auth(srv, "Content-Encoding", "gzip"), status: 400, code: "invalid_encoding"},
		{name: "truncated gzip", method: "POST", path: "/v2/events", body: gz(one)[:20], headers: auth(srv, "Content-Encoding", "gzip"), status: 400, code: "invalid_encoding"},
		{name: "gzip with a bad checksum", method: "POST", path: "/v2/events", body: func() string { b := []byte(gz(one)); b[len(b)-6] ^= 1; return string(b) }(), headers: auth(srv, "Content-Encoding", "gzip"), status: 400, code: "invalid_encoding"},
		{name: "gzip of JSON that is not a batch", method: "POST", path: "/v2/events", body: gz(`[1]`), headers: auth(srv, "Content-Encoding", "gzip"), status: 400, code: "invalid_json"},
		{name: "snappy", method: "POST", path: "/v2/events", body: sn(batch(evt("sn1"))), headers: auth(srv, "Content-Encoding", "snappy"), status: 200,
			check: func(t *testing.T, r *response) { counts(t, r, 1, 0, 0) }},
		{name: "snappy header, plain body", method: "POST", path: "/v2/events", body: one, headers: auth(srv, "Content-Encoding", "snappy"), status: 400, code: "invalid_encoding"},
		{name: "truncated snappy", method: "POST", path: "/v2/events", body: sn(one)[:len(sn(one))/2], headers: auth(srv, "Content-Encoding", "snappy"), status: 400, code: "invalid_encoding"},
		{name: "snappy shorter than its header says", method: "POST", path: "/v2/events", body: shortSnappy(one), headers: auth(srv, "Content-Encoding", "snappy"), status: 400, code: "invalid_encoding"},
		{name: "snappy twice", method: "POST", path: "/v2/events", body: sn(sn(one)), headers: auth(srv, "Content-Encoding", "snappy, snappy"), status: 415, code: "unsupported_media_type"},
		{name: "snappy of JSON that is not a batch", method: "POST", path: "/v2/events", body: sn(`[1]`), headers: auth(srv, "Content-Encoding", "snappy"), status: 400, code: "invalid_json"},

		// Size and count.
		{name: "plain body over the limit", method: "POST", path: "/v2/events", body: big, headers: auth(srv), status: 413, code: "body_too_large"},
		{name: "gzip bomb", method: "POST", path: "/v2/events", body: bomb, headers: auth(srv, "Content-Encoding", "gzip"), status: 413, code: "body_too_large"},
		{name: "compressed body over the limit", method: "POST", path: "/v2/events", body: gz(string(random)), headers: auth(srv, "Content-Encoding", "gzip"), status: 413, code: "body_too_large"},
		{name: "snappy bomb", method: "POST", path: "/v2/events", body: sn(`{"events":[` + strings.Repeat(" ", 64<<20) + `]}`), headers: auth(srv, "Content-Encoding", "snappy"), status: 413, code: "body_too_large"},
		{name: "snappy header claiming more than the limit", method: "POST", path: "/v2/events", body: string(binary.AppendUvarint(nil, callsign.MaxBatchBytes+1)) + "x", headers: auth(srv, "Content-Encoding", "snappy"), status: 413, code: "body_too_large"},
		{name: "one event too many", method: "POST", path: "/v2/events", body: batch(over...), headers: auth(srv), status: 413, code: "too_many_events"},
		{name: "a full batch", method: "POST", path: "/v2/events", body: gz(batch(full...)), headers: auth(srv, "Content-Encoding", "gzip"), status: 200,
			check: func(t *testing.T, r *response) { counts(t, r, callsign.MaxEventsPerBatch, 0, 0) }},
		{name: "empty batch", method: "POST", path: "/v2/events", body: `{"events":[]}`, headers: auth(srv), status: 200,
			check: func(t *testing.T, r *response) { counts(t, r, 0, 0, 0) }},

		// The batch, strictly.
		{name: "empty body", method: "POST", path: "/v2/events", body: ``, headers: auth(srv), status: 400, code: "invalid_json"},
		{name: "not JSON", method: "POST", path: "/v2/events", body: `events=1`, headers: auth(srv), status: 400, code: "invalid_json"},
		{name: "array", method: "POST", path: "/v2/events", body: `[{"id":"x"}]`, headers: auth(srv), status: 400, code: "invalid_json"},
		{name: "truncated", method: "POST", path: "/v2/events", body: one[:len(one)-3], headers: auth(srv), status: 400, code: "invalid_json"},
		{name: "trailing data", method: "POST", path: "/v2/events", body: one + `{}`, headers: auth(srv), status: 400, code: "trailing_data"},
		{name: "invalid UTF-8", method: "POST", path: "/v2/events", body: `{"events":[{"id":"x","route":"` + "\xff" + `"}]}`, headers: auth(srv), status: 400, code: "invalid_json"},
		{name: "raw newline in a string", method: "POST", path: "/v2/events", body: `{"events":[{"id":"x","route":"a` + "\n" + `"}]}`, headers: auth(srv), status: 400, code: "invalid_json"},
		{name: "bad escape", method: "POST", path: "/v2/events", body: `{"events":[{"id":"x","route":"\q"}]}`, headers: auth(srv), status: 400, code: "invalid_json"},
		{name: "leading zero", method: "POST", path: "/v2/events", body: `{"events":[{"id":"x","status":0200}]}`, headers: auth(srv), status: 400, code: "invalid_json"},
		{name: "missing events", method: "POST", path: "/v2/events", body: `{}`, headers: auth(srv), status: 400, code: "missing_field"},
		{name: "null events", method: "POST", path: "/v2/events", body: `{"events":null}`, headers: auth(srv), status: 400, code: "missing_field"},
		{name: "unknown top field", method: "POST", path: "/v2/events", body: `{"events":[],"app_id":"x"}`, headers: auth(srv), status: 400, code: "unknown_field"},
		{name: "Events", method: "POST", path: "/v2/events", body: `{"Events":[]}`, headers: auth(srv), status: 400, code: "unknown_field"},
		{name: "events twice", method: "POST", path: "/v2/events", body: `{"events":[],"events":[]}`, headers: auth(srv), status: 400, code: "duplicate_field"},
		{name: "events an object", method: "POST", path: "/v2/events", body: `{"events":{"id":"x"}}`, headers: auth(srv), status: 400, code: "invalid_request"},
		{name: "event a string", method: "POST", path: "/v2/events", body: `{"events":["x"]}`, headers: auth(srv), status: 400, code: "invalid_request"},
		{name: "event null", method: "POST", path: "/v2/events", body: `{"events":[null]}`, headers: auth(srv), status: 400, code: "invalid_request"},
		{name: "unknown event field", method: "POST", path: "/v2/events", body: `{"events":[{"id":"x","stauts":200}]}`, headers: auth(srv), status: 400, code: "unknown_field"},
		{name: "event field in another case", method: "POST", path: "/v2/events", body: `{"events":[{"ID":"x"}]}`, headers: auth(srv), status: 400, code: "unknown_field"},
		{name: "duplicate event field", method: "POST", path: "/v2/events", body: `{"events":[{"id":"x","user_id":"a","user_id":"b"}]}`, headers: auth(srv), status: 400, code: "duplicate_field"},
		{name: "duplicate by escape", method: "POST", path: "/v2/events", body: `{"events":[{"id":"x","\u0069d":"y"}]}`, headers: auth(srv), status: 400, code: "duplicate_field"},
		{name: "duplicate metadata key", method: "POST", path: "/v2/events", body: `{"events":[{"id":"x","metadata":{"k":"1","k":"2"}}]}`, headers: auth(srv), status: 400, code: "duplicate_field"},
		{name: "status a string", method: "POST", path: "/v2/events", body: `{"events":[{"id":"x","status":"200"}]}`, headers: auth(srv), status: 400, code: "invalid_request"},
		{name: "status a fraction", method: "POST", path: "/v2/events", body: `{"events":[{"id":"x","status":200.5}]}`, headers: auth(srv), status: 400, code: "invalid_request"},
		{name: "bytes overflow", method: "POST", path: "/v2/events", body: `{"events":[{"id":"x","request_bytes":99999999999999999999}]}`, headers: auth(srv), status: 400, code: "invalid_request"},
		{name: "latency a string", method: "POST", path: "/v2/events", body: `{"events":[{"id":"x","latency_ms":"5"}]}`, headers: auth(srv), status: 400, code: "invalid_request"},
		{name: "latency out of float range", method: "POST", path: "/v2/events", body: `{"events":[{"id":"x","latency_ms":1e999}]}`, headers: auth(srv), status: 400, code: "invalid_request"},
		{name: "id a number", method: "POST", path: "/v2/events", body: `{"events":[{"id":7}]}`, headers: auth(srv), status: 400, code: "invalid_request"},
		{name: "time a number", method: "POST", path: "/v2/events", body: `{"events":[{"id":"x","time":1700000000}]}`, headers: auth(srv), status: 400, code: "invalid_request"},
		{name: "metadata a list", method: "POST", path: "/v2/events", body: `{"events":[{"id":"x","metadata":["a"]}]}`, headers: auth(srv), status: 400, code: "invalid_request"},
		{name: "metadata value a number", method: "POST", path: "/v2/events", body: `{"events":[{"id":"x","metadata":{"a":1}}]}`, headers: auth(srv), status: 400, code: "invalid_request"},
		{name: "deep nesting", method: "POST", path: "/v2/events", body: nested, headers: auth(srv), status: 400, code: "invalid_json"},

		// CORS, as for the upgrade.
		{name: "allowed origin", method: "POST", path: "/v2/events", body: batch(evt("cors1")), headers: auth(srv, "Origin", "https://a.example"), status: 200,
			check: func(t *testing.T, r *response) {
				if r.header.Get("Access-Control-Allow-Origin") != "https://a.example" {
					t.Fatalf("Access-Control-Allow-Origin = %q", r.header.Get("Access-Control-Allow-Origin"))
				}
			}},
		{name: "origin not allowed", method: "POST", path: "/v2/events", body: batch(evt("cors2")), headers: auth(srv, "Origin", "https://evil.example"), status: 403, code: "origin_not_allowed"},
		{name: "preflight", method: "OPTIONS", path: "/v2/events", headers: []string{"Origin", "https://a.example", "Access-Control-Request-Method", "POST"}, status: 204,
			check: func(t *testing.T, r *response) {
				if !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Content-Encoding") || r.header.Get("Access-Control-Allow-Origin") != "https://a.example" {
					t.Fatalf("preflight headers %v", r.header)
				}
			}},
		{name: "preflight of an unknown origin", method: "OPTIONS", path: "/v2/events", headers: []string{"Origin", "https://evil.example"}, status: 403, code: "origin_not_allowed"},
		{name: "DELETE", method: "DELETE", path: "/v2/events", status: 405, code: "method_not_allowed"},
	})

	// None of the refused batches wrote anything: only the full batch, the
	// snappy event and the allowed-origin event are there.
	if got := len(e.allEvents("/v2/events?limit=1000", a.secret)); got != callsign.MaxEventsPerBatch+2 {
		t.Fatalf("%d events stored, want %d", got, callsign.MaxEventsPerBatch+2)
	}
}

// A malformed batch is refused whole: the valid events before and after
// the fault are not written.
func TestMalformedBatchWritesNothing(t *testing.T) {
	e := newEnv(t, httpapi.Config{})
	a := e.createApp("a", "")
	srv := e.serverToken(a)
	good := batch(evt("m1"), evt("m2"))
	body := strings.Replace(good, `]}`, `,{"id":"m3","status":"500"},`+strings.TrimPrefix(strings.TrimSuffix(batch(evt("m4")), `]}`), `{"events":[`)+`]}`, 1)
	if r := e.ingest(srv, body); r.status != 400 || r.code() != "invalid_request" {
		t.Fatalf("malformed batch: %d %s", r.status, r.raw)
	}
	if evs := e.allEvents("/v2/events?limit=10", a.secret); len(evs) != 0 {
		t.Fatalf("a refused batch wrote %d events", len(evs))
	}
	counts(t, e.ingest(srv, good), 2, 0, 0)
}

func TestIngestPerEventValidation(t *testing.T) {
	e := newEnv(t, httpapi.Config{})
	a := e.createApp("a", "")
	srv := e.serverToken(a)
	mod := func(id string, f func(*callsign.EventJSON)) callsign.EventJSON { x := evt(id); f(&x); return x }
	meta := func(n, klen, vlen int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("%0*d", klen, i)] = strings.Repeat("v", vlen)
		}
		return m
	}
	cases := []struct {
		ev   callsign.EventJSON
		code string // "" for accepted
	}{
		{evt("ok-1"), ""},
		{mod("ok-all-fields", func(x *callsign.EventJSON) {
			x.AppID, x.URI, x.UserID, x.APIUserID, x.ClientUserID, x.CompanyID = a.id, "/notes/7?q=[redacted]", "alice", "alice@api", "c-1", "acme"
			x.Scheme, x.KeyID, x.AuthError, x.RequestID, x.RemoteIP, x.UserAgent = "hmac", "key_1", "expired", "req-1", "2001:db8::1", "curl/8"
			x.Weight, x.Metadata, x.RequestBody, x.ResponseBody, x.RequestBytes, x.ResponseBytes = 10, meta(32, 256, 256), "{}", "[]", 2, 3
			x.Status, x.LatencyMS = 401, 0
		}), ""},
		{mod("ok-edge", func(x *callsign.EventJSON) {
			x.ID, x.Status, x.Method, x.Route = strings.Repeat("Z", 64), 599, "PROPFIND", strings.Repeat("r", 256)
			x.Time, x.LatencyMS = time.Now().Add(4*time.Minute), float64(7*24*time.Hour/time.Millisecond)
		}), ""},
		{mod("", func(*callsign.EventJSON) {}), "invalid_id"},
		{mod(strings.Repeat("i", 65), func(*callsign.EventJSON) {}), "invalid_id"},
		{mod("has space", func(*callsign.EventJSON) {}), "invalid_id"},
		{mod("ünï", func(*callsign.EventJSON) {}), "invalid_id"},
		{mod("id.dot", func(*callsign.EventJSON) {}), "invalid_id"},
		{mod("no-time", func(x *callsign.EventJSON) { x.Time = time.Time{} }), "invalid_time"},
		{mod("future", func(x *callsign.EventJSON) { x.Time = time.Now().Add(6 * time.Minute) }), "time_out_of_range"},
		{mod("too-old", func(x *callsign.EventJSON) { x.Time = time.Now().Add(-31 * 24 * time.Hour) }), "time_out_of_range"},
		{mod("no-method", func(x *callsign.EventJSON) { x.Method = "" }), "invalid_event"},
		{mod("bad-method", func(x *callsign.EventJSON) { x.Method = "GET /" }), "invalid_event"},
		{mod("status-99", func(x *callsign.EventJSON) { x.Status = 99 }), "invalid_event"},
		{mod("status-600", func(x *callsign.EventJSON) { x.Status = 600 }), "invalid_event"},
		{mod("neg-latency", func(x *callsign.EventJSON) { x.LatencyMS = -1 }), "invalid_event"},
		{mod("huge-latency", func(x *callsign.EventJSON) { x.LatencyMS = 1e12 }), "invalid_event"},
		{mod("neg-bytes", func(x *callsign.EventJSON) { x.RequestBytes = -1 }), "invalid_event"},
		{mod("neg-resp-bytes", func(x *callsign.EventJSON) { x.ResponseBytes = -5 }), "invalid_event"},
		{mod("long-route", func(x *callsign.EventJSON) { x.Route = strings.Repeat("r", 257) }), "invalid_event"},
		{mod("route-newline", func(x *callsign.EventJSON) { x.Route = "GET /a\nlevel=ERROR" }), "invalid_event"},
		{mod("long-uri", func(x *callsign.EventJSON) { x.URI = "/" + strings.Repeat("u", 2048) }), "invalid_event"},
		{mod("long-ua", func(x *callsign.EventJSON) { x.UserAgent = strings.Repeat("a", 513) }), "invalid_event"},
		{mod("meta-33", func(x *callsign.EventJSON) { x.Metadata = meta(33, 2, 1) }), "invalid_event"},
		{mod("meta-long-key", func(x *callsign.EventJSON) { x.Metadata = meta(1, 257, 1) }), "invalid_event"},
		{mod("meta-long-value", func(x *callsign.EventJSON) { x.Metadata = meta(1, 1, 257) }), "invalid_event"},
		{mod("meta-empty-key", func(x *callsign.EventJSON) { x.Metadata = map[string]string{"": "v"} }), "invalid_event"},
		{mod("bad-ip", func(x *callsign.EventJSON) { x.RemoteIP = "nope" }), "invalid_event"},
		{mod("neg-weight", func(x *callsign.EventJSON) { x.Weight = -1 }), "invalid_event"},
		{mod("bad-scheme", func(x *callsign.EventJSON) { x.Scheme = "HMAC" }), "invalid_event"},
		{mod("bad-auth-error", func(x *callsign.EventJSON) { x.AuthError = "bad sig" }), "invalid_event"},
		{mod("long-body", func(x *callsign.EventJSON) { x.RequestBody = strings.Repeat("b", callsign.MaxBodyLogBytes+1) }), "invalid_event"},
		{mod("key-id-control", func(x *callsign.EventJSON) { x.KeyID = "k\x00" }), "invalid_event"},
		{mod("client-user-control", func(x *callsign.EventJSON) { x.ClientUserID = "c\u0085" }), "invalid_user_id"},
		{mod("long-user", func(x *callsign.EventJSON) { x.UserID = strings.Repeat("u", 257) }), "invalid_user_id"},
		{mod("other-app", func(x *callsign.EventJSON) { x.AppID = "app_other" }), "app_mismatch"},
	}
	var evs []callsign.EventJSON
	for _, c := range cases {
		evs = append(evs, c.ev)
	}
	body := batch(evs...)
	// A time that is not RFC 3339 is this event's fault, not the batch's.
	body = strings.Replace(body, `]}`, `,{"id":"bad-time","time":"yesterday","method":"GET","route":"/","status":200}]}`, 1)
	cases = append(cases, struct {
		ev   callsign.EventJSON
		code string
	}{callsign.EventJSON{ID: "bad-time"}, "invalid_time"})

	r := e.ingest(srv, body)
	want := map[int]string{}
	accepted := 0
	for i, c := range cases {
		if c.code == "" {
			accepted++
		} else {
			want[i] = c.code
		}
	}
	counts(t, r, accepted, 0, len(want))
	for _, rj := range rejected(t, r) {
		i := int(rj["index"].(float64))
		if rj["code"] != want[i] || rj["id"] != truncated(cases[i].ev.ID) || rj["message"] == "" {
			t.Errorf("events[%d] (%s) rejected with %v, want %s", i, truncated(cases[i].ev.ID), rj, want[i])
		}
		delete(want, i)
	}
	if len(want) != 0 {
		t.Errorf("not rejected: %v", want)
	}
	stored := e.allEvents("/v2/events?limit=1000", a.secret)
	if len(stored) != accepted {
		t.Fatalf("%d events stored, want %d", len(stored), accepted)
	}
	for _, m := range stored {
		if m["id"] == "ok-all-fields" {
			md, _ := m["metadata"].(map[string]any)
			if m["user_id"] != "alice" || m["api_user_id"] != "alice@api" || m["client_user_id"] != "c-1" || m["auth_error"] != "expired" || len(md) != 32 || m["app_id"] != a.id {
				t.Errorf("stored event %v", m)
			}
		}
	}
}

func truncated(id string) string {
	if len(id) > callsign.MaxEventIDLen {
		return id[:callsign.MaxEventIDLen] + "..."
	}
	return id
}

// TestProvenance is the matrix of the core rule: who may attribute which
// user ids.
func TestProvenance(t *testing.T) {
	e := newEnv(t, httpapi.Config{})
	a := e.createApp("a", "")
	tokens := map[string]string{"server": e.serverToken(a), "anonymous": e.clientToken(a), "bound": e.clientToken(a, "alice")}
	type ids struct{ user, api, client string }
	fields := map[string]ids{
		"user_id=alice":  {user: "alice"},
		"user_id=bob":    {user: "bob"},
		"api_user_id":    {api: "alice@api"},
		"client_user_id": {client: "c-9"},
		"none":           {},
	}
	// want is the stored user_id, or "!" for provenance_not_allowed.
	want := map[string]map[string]string{
		"server":    {"user_id=alice": "alice", "user_id=bob": "bob", "api_user_id": "", "client_user_id": "", "none": ""},
		"anonymous": {"user_id=alice": "!", "user_id=bob": "!", "api_user_id": "!", "client_user_id": "", "none": ""},
		"bound":     {"user_id=alice": "alice", "user_id=bob": "!", "api_user_id": "!", "client_user_id": "alice", "none": "alice"},
	}
	n := 0
	for tokName, tok := range tokens {
		for fieldName, f := range fields {
			t.Run(tokName+"/"+fieldName, func(t *testing.T) {
				e.t = t
				n++
				id := fmt.Sprintf("p%d", n)
				ev := evt(id)
				ev.UserID, ev.APIUserID, ev.ClientUserID = f.user, f.api, f.client
				r := e.ingest(tok, batch(ev))
				w := want[tokName][fieldName]
				if w == "!" {
					counts(t, r, 0, 0, 1)
					if rj := rejected(t, r)[0]; rj["code"] != "provenance_not_allowed" || rj["id"] != id {
						t.Fatalf("rejection %v", rj)
					}
					return
				}
				counts(t, r, 1, 0, 0)
				var got map[string]any
				for _, m := range e.allEvents("/v2/events?limit=1000", a.secret) {
					if m["id"] == id {
						got = m
					}
				}
				if got == nil || got["user_id"] != w || got["client_user_id"] != f.client || (got["api_user_id"] != nil && got["api_user_id"] != f.api) {
					t.Fatalf("stored %v, want user_id %q client_user_id %q", got, w, f.client)
				}
			})
		}
	}
}

// A retried batch is not counted twice, in listings or in metrics.
func TestDuplicateBatch(t *testing.T) {
	e := newEnv(t, httpapi.Config{})
	a := e.createApp("a", "")
	srv := e.serverToken(a)
	evs := []callsign.EventJSON{evt("d1"), evt("d2"), evt("d3")}
	evs[2].Status = 500
	counts(t, e.ingest(srv, batch(evs...)), 3, 0, 0)
	counts(t, e.ingest(srv, gz(batch(evs...)), "Content-Encoding", "gzip"), 0, 3, 0)
	// Overlapping batch and a repeat inside one batch.
	counts(t, e.ingest(srv, batch(evs[0], evt("d4"), evt("d4"))), 1, 2, 0)
	// The same ids from another token of the same app are still duplicates.
	counts(t, e.ingest(e.clientToken(a), batch(evs[1])), 0, 1, 0)

	if got := len(e.allEvents("/v2/events?limit=2", a.secret)); got != 4 {
		t.Fatalf("%d events listed, want 4", got)
	}
	r := e.do("GET", "/v2/metrics?group_by=route", "", "Authorization", "Bearer "+a.secret)
	g := r.body["groups"].([]any)
	if r.status != 200 || len(g) != 1 || g[0].(map[string]any)["count"] != float64(4) || g[0].(map[string]any)["errors"] != float64(1) {
		t.Fatalf("metrics after duplicates: %d %s", r.status, r.raw)
	}
	// Another app may use the same ids.
	b := e.createApp("b", "")
	counts(t, e.ingest(e.serverToken(b), batch(evs...)), 3, 0, 0)
}

func TestIngestRateLimit(t *testing.T) {
	now := time.Now()
	e := newEnv(t, httpapi.Config{IngestRatePerApp: 500, Now: func() time.Time { return now }})
	a := e.createApp("a", "")
	b := e.createApp("b", "")
	srv := e.serverToken(a)
	mk := func(prefix string, n int) string {
		var evs []callsign.EventJSON
		for i := range n {
			evs = append(evs, evt(prefix+strconv.Itoa(i)))
		}
		return batch(evs...)
	}
	counts(t, e.ingest(srv, mk("x", 1000)), 1000, 0, 0) // the burst is one full batch
	r := e.ingest(srv, mk("y", 10))
	if r.status != 429 || r.code() != "rate_limited" || r.header.Get("Retry-After") == "" {
		t.Fatalf("over the rate: %d %s Retry-After %q", r.status, r.raw, r.header.Get("Retry-After"))
	}
	counts(t, e.ingest(e.serverToken(b), mk("z", 10)), 10, 0, 0) // per app
	now = now.Add(time.Second)
	counts(t, e.ingest(srv, mk("y", 10)), 10, 0, 0)
}

// Without an event store the analytics routes say so, and the rest works.
func TestNoEventStore(t *testing.T) {
	e := newEnv(t, httpapi.Config{})
	a := e.createApp("a", "")
	tok := e.serverToken(a)
	api, err := httpapi.New(httpapi.Config{Store: e.store, Keys: e.ring, Issuer: e.api.Issuer(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	e.run(t, []scenario{
		{name: "ingest", method: "POST", path: "/v2/events", body: batch(evt("x")), headers: []string{"Content-Type", ctJSON, "Authorization", "Bearer " + tok}, status: 503, code: "unavailable"},
		{name: "events", method: "GET", path: "/v2/events", headers: []string{"Authorization", "Bearer " + a.secret}, status: 503, code: "unavailable"},
		{name: "metrics", method: "GET", path: "/v2/metrics?group_by=route", headers: []string{"Authorization", "Bearer " + a.secret}, status: 503, code: "unavailable"},
		{name: "upgrade still works", method: "POST", path: "/v2/tokens/upgrade", body: upgradeBody(a.public), headers: []string{"Content-Type", ctJSON}, status: 200},
	})
}

// The limits on the body as sent and on the batch decompressed, for each
// encoding: a batch within the limit is taken even when snappy or gzip
// make it larger than the limit (high-entropy logged bodies do not
// compress); a body larger than MaxIngestBody as sent is refused before
// it is decompressed.
func TestIngestSizeLimits(t *testing.T) {
	e := newEnv(t, httpapi.Config{})
	a := e.createApp("a", "")
	srv := e.serverToken(a)

	// Events with random base64 bodies, filling the batch to within 16
	// bytes of callsign.MaxBatchBytes; ids "big<n>".
	body := func(n int) string {
		b := make([]byte, n)
		rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b)[:n]
	}
	var events []callsign.EventJSON
	for size := len(batch()); ; {
		ev := evt("big" + strconv.Itoa(len(events)))
		ev.RequestBody = body(callsign.MaxBodyLogBytes)
		n := len(batch(ev)) - len(batch()) + 1 // with its comma
		if size+n > callsign.MaxBatchBytes {
			ev.RequestBody = body(callsign.MaxBodyLogBytes - (size + n - callsign.MaxBatchBytes) - 16)
			events = append(events, ev)
			break
		}
		events = append(events, ev)
		size += n
	}
	full := batch(events...)
	if len(full) > callsign.MaxBatchBytes || len(full) < callsign.MaxBatchBytes-64 {
		t.Fatalf("the batch is %d bytes, not just under %d", len(full), callsign.MaxBatchBytes)
	}
	for _, tt := range []struct {
		enc, id  string // id: 3 bytes, as "big", so that the size stays
		compress func(string) string
	}{{"", "pln", func(s string) string { return s }}, {"snappy", "snp", sn}, {"snappy", "sli", literalSnappy}, {"gzip", "gzp", gz}} {
		t.Run("within the limit/"+tt.id, func(t *testing.T) {
			// Other ids for each encoding, so that none is a duplicate.
			b := tt.compress(strings.ReplaceAll(full, `"id":"big`, `"id":"`+tt.id))
			if tt.id == "sli" && len(b) <= callsign.MaxBatchBytes {
				t.Fatalf("the literal snappy body is %d bytes: not over %d, so the test shows nothing", len(b), callsign.MaxBatchBytes)
			}
			counts(t, e.ingest(srv, b, "Content-Encoding", tt.enc), len(events), 0, 0)
		})
	}

	// The Shipper's batches are at most MaxBatchBytes: compressed, at
	// worst, they still fit.
	if n := s2.MaxEncodedLen(callsign.MaxBatchBytes); n > httpapi.MaxIngestBody {
		t.Errorf("a batch of MaxBatchBytes can be %d bytes as snappy, over MaxIngestBody (%d)", n, httpapi.MaxIngestBody)
	}

	random := make([]byte, httpapi.MaxIngestBody+1024)
	rand.Read(random)
	// Refused: a snappy body is read whole before it is decoded, so it is
	// the limit as sent that refuses it; gzip and plain ones pass the
	// limit on the batch first.
	for _, tt := range []struct{ enc, body, says string }{
		{"snappy", sn(string(random)), "The request body is larger"},
		{"gzip", gz(string(random)), "once decompressed"},
		{"", string(random), "once decompressed"},
	} {
		t.Run("over the limit as sent/"+tt.enc, func(t *testing.T) {
			if len(tt.body) <= httpapi.MaxIngestBody {
				t.Fatalf("the body is %d bytes, not over %d", len(tt.body), httpapi.MaxIngestBody)
			}
			r := e.ingest(srv, tt.body, "Content-Encoding", tt.enc)
			if r.status != 413 || !strings.Contains(string(r.raw), `"code":"body_too_large"`) || !strings.Contains(string(r.raw), tt.says) {
				t.Fatalf("answer %d %s; want 413 body_too_large saying %q", r.status, r.raw, tt.says)
			}
		})
	}
}

// cutReader gives data, then fails as a connection cut short does.
type cutReader struct{ data []byte }

func (c *cutReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	return n, nil
}

// A body cut short by the connection is a 400 invalid_request, whatever
// its encoding: not a bad encoding (invalid_encoding) the client would
// look for in its compressor.
func TestIngestBodyCutShort(t *testing.T) {
	e := newEnv(t, httpapi.Config{})
	a := e.createApp("a", "")
	tok := e.serverToken(a)
	one := batch(evt("cut"))
	for enc, body := range map[string]string{"gzip": gz(one), "snappy": sn(one), "": one} {
		t.Run(enc, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/v2/events", &cutReader{data: []byte(body[:len(body)/2])})
			req.Header.Set("Content-Type", ctJSON)
			req.Header.Set("Authorization", "Bearer "+tok)
			if enc != "" {
				req.Header.Set("Content-Encoding", enc)
			}
			w := httptest.NewRecorder()
			e.api.ServeHTTP(w, req)
			if w.Code != 400 || !strings.Contains(w.Body.String(), `"code":"invalid_request"`) {
				t.Fatalf("answer %d %s; want 400 invalid_request", w.Code, w.Body)
			}
		})
	}
}

// TestBombAllocation serves a gzip bomb and a snappy one straight through
// the handler and checks the bytes allocated: the decompression stops at
// callsign.MaxBatchBytes (gzip), or is refused from the length the body
// announces (snappy).
func TestBombAllocation(t *testing.T) {
	e := newEnv(t, httpapi.Config{})
	a := e.createApp("a", "")
	tok := e.serverToken(a)
	huge := `{"events":[` + strings.Repeat(" ", 64<<20) + `]}` // 64 MiB
	for enc, bomb := range map[string]string{"gzip": gz(huge), "snappy": sn(huge)} {
		t.Run(enc, func(t *testing.T) {
			if len(bomb) > httpapi.MaxIngestBody {
				t.Fatalf("the %s bomb is %d bytes, over the limit as sent: not a bomb", enc, len(bomb))
			}
			serve := func() int {
				req := httptest.NewRequest("POST", "/v2/events", strings.NewReader(bomb))
				req.Header.Set("Content-Type", ctJSON)
				req.Header.Set("Content-Encoding", enc)
				req.Header.Set("Authorization", "Bearer "+tok)
				w := httptest.NewRecorder()
				e.api.ServeHTTP(w, req)
				return w.Code
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			code := serve()
			runtime.ReadMemStats(&after)
			if code != 413 {
				t.Fatalf("status %d, want 413", code)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 2*(httpapi.MaxIngestBody+1)+2<<20 {
				t.Fatalf("a %s bomb allocated %d bytes; the limit is %d (two buffers for snappy)", enc, got, callsign.MaxBatchBytes)
			}
		})
	}
}
