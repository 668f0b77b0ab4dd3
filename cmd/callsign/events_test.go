package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// appWithSecret creates an app through the admin API and returns its id and
// secret token.
func appWithSecret(t *testing.T, s *server, adm string) (id, secret string) {
	t.Helper()
	r := s.do("POST", "/v2/apps", adm, map[string]any{"name": "Credit Score"})
	r.want(t, http.StatusCreated)
	app := r.object(t)
	return str(t, app, "id"), str(t, app, "secret_token")
}

// serverToken gets an ingest:server access token with the secret.
func serverToken(t *testing.T, s *server, secret string) string {
	t.Helper()
	r := s.do("POST", "/v2/tokens/server", secret, map[string]any{})
	r.want(t, http.StatusOK)
	return str(t, r.object(t), "appAccessToken")
}

type wireEvent struct {
	ID           string    `json:"id"`
	Time         time.Time `json:"time"`
	Method       string    `json:"method"`
	Route        string    `json:"route"`
	Status       int       `json:"status"`
	LatencyMS    float64   `json:"latency_ms"`
	UserID       string    `json:"user_id,omitempty"`
	ClientUserID string    `json:"client_user_id,omitempty"`
	Scheme       string    `json:"scheme,omitempty"`
	AuthError    string    `json:"auth_error,omitempty"`
}

// listAll follows next_cursor through GET /v2/events and returns the ids.
func listAll(t *testing.T, s *server, secret string) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	cursor := ""
	for {
		path := "/v2/events?limit=1000"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		r := s.do("GET", path, secret, nil)
		r.want(t, http.StatusOK)
		var page struct {
			Events []struct {
				ID string `json:"id"`
			} `json:"events"`
			NextCursor *string `json:"next_cursor"`
		}
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			if ids[e.ID] {
				t.Fatalf("event %s listed twice", e.ID)
			}
			ids[e.ID] = true
		}
		if page.NextCursor == nil {
			return ids
		}
		cursor = *page.NextCursor
	}
}

func TestEventsAndMetricsCLI(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dir := t.TempDir()
	s := h.start(dir, "")
	adm := h.adminToken(dir)
	appID, secret := appWithSecret(t, s, adm)
	tok := serverToken(t, s, secret)

	now := time.Now().UTC().Truncate(time.Millisecond)
	var evs []wireEvent
	for i := range 5 {
		e := wireEvent{ID: fmt.Sprintf("cli-%d", i), Time: now.Add(-time.Duration(i) * time.Minute), Method: "GET", Route: "GET /v1/score/{id}",
			Status: 200, LatencyMS: float64(10 * (i + 1)), UserID: "alice", Scheme: "jwt"}
		if i == 3 {
			e.Route, e.Status, e.AuthError, e.UserID = "POST /v1/score", 401, "expired", ""
		}
		evs = append(evs, e)
	}
	r := s.do("POST", "/v2/events", tok, map[string]any{"events": evs})
	r.want(t, http.StatusOK)
	if !bytes.Contains(r.body, []byte(`"accepted":5,`)) {
		t.Fatalf("ingest answered %s", r.body)
	}

	withSecret := func(args ...string) result {
		t.Helper()
		return h.run([]string{"CALLSIGN_SECRET_TOKEN=" + secret}, append([]string{"--server", s.url}, args...)...)
	}
	out := withSecret("events").ok(t).stdout
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 6 || !strings.HasPrefix(lines[0], "TIME ") ||
		!strings.Contains(lines[1], "cli-0") || !strings.Contains(out, "expired") || !strings.Contains(out, "GET /v1/score/{id}") {
		t.Errorf("events (table) printed:\n%s", out)
	}
	page := withSecret("events", "--json", "--status", "4xx").ok(t).json(t)
	if list, _ := page["events"].([]any); len(list) != 1 || list[0].(map[string]any)["auth_error"] != "expired" {
		t.Errorf("events --json --status 4xx printed %v", page)
	}
	if page := withSecret("events", "--json", "--user", "alice", "--from", "150s").ok(t).json(t); len(page["events"].([]any)) != 3 {
		t.Errorf("events --user alice --from 150s printed %v", page)
	}
	r2 := withSecret("events", "--limit", "2").ok(t)
	if !strings.Contains(r2.stderr, "--cursor") || strings.Count(r2.stdout, "\n") != 3 {
		t.Errorf("events --limit 2: stdout %q stderr %q", r2.stdout, r2.stderr)
	}
	all := withSecret("events", "--limit", "2", "--all", "--json").ok(t).json(t)
	if list, _ := all["events"].([]any); len(list) != 5 || all["next_cursor"] != nil {
		t.Errorf("events --all printed %v", all)
	}
	// An admin token names the app.
	if page := h.run(nil, "--server", s.url, "--token", adm, "events", "--app", appID, "--json").ok(t).json(t); len(page["events"].([]any)) != 5 {
		t.Errorf("events with an admin token printed %v", page)
	}

	m := withSecret("metrics", "--group-by", "route").ok(t).stdout
	if !strings.HasPrefix(m, "KEY ") || !strings.Contains(m, "GET /v1/score/{id}") || !strings.Contains(m, "P95_MS") {
		t.Errorf("metrics (table) printed:\n%s", m)
	}
	mj := withSecret("metrics", "--group-by", "route", "--order-by", "errors", "--limit", "1", "--json").ok(t).json(t)
	if g, _ := mj["groups"].([]any); len(g) != 1 || g[0].(map[string]any)["key"] != "POST /v1/score" || g[0].(map[string]any)["errors"] != float64(1) {
		t.Errorf("metrics --order-by errors --limit 1 printed %v", mj)
	}
	series := withSecret("metrics", "--group-by", "status", "--interval", "1h", "--from", "2h").ok(t).stdout
	if !strings.Contains(series, "START") || !strings.Contains(series, "2xx") {
		t.Errorf("metrics --interval printed:\n%s", series)
	}

	upd := h.run(nil, "--server", s.url, "--token", adm, "apps", "update", appID, "--event-retention-days", "7", "--rollup-retention-days", "90", "--json").ok(t).json(t)
	if upd["event_retention_days"] != float64(7) || upd["rollup_retention_days"] != float64(90) {
		t.Errorf("apps update --event-retention-days printed %v", upd)
	}

	for _, c := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no credentials", nil, []string{"--server", s.url, "events"}, "no credentials"},
		{"admin without --app", nil, []string{"--server", s.url, "--token", adm, "events"}, "--app"},
		{"bad --status", []string{"CALLSIGN_SECRET_TOKEN=" + secret}, []string{"--server", s.url, "events", "--status", "4x"}, "invalid_parameter"},
		{"bad --from", []string{"CALLSIGN_SECRET_TOKEN=" + secret}, []string{"--server", s.url, "events", "--from", "yesterday"}, "--from"},
		{"no --group-by", []string{"CALLSIGN_SECRET_TOKEN=" + secret}, []string{"--server", s.url, "metrics"}, "--group-by"},
		{"bad --interval", []string{"CALLSIGN_SECRET_TOKEN=" + secret}, []string{"--server", s.url, "metrics", "--group-by", "route", "--interval", "7s"}, "interval"},
	} {
		t.Run(c.name, func(t *testing.T) {
			line := h.run(c.env, c.args...).failed(t)
			if !strings.Contains(line, c.want) || strings.Contains(line, secret) {
				t.Errorf("error line %q does not mention %q (or shows the secret)", line, c.want)
			}
		})
	}
}

// TestKilledServerLosesNoAcknowledgedEvent sends batches from several
// clients, kills the server with SIGKILL at a random moment, restarts it on
// the same data directory and checks that every event of every batch
// answered 200 is there, and that each batch was written whole or not at
// all.
func TestKilledServerLosesNoAcknowledgedEvent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dir := t.TempDir()
	adm := h.adminToken(dir)
	s := h.start(dir, "")
	_, secret := appWithSecret(t, s, adm)
	tok := serverToken(t, s, secret)

	const clients, perBatch = 4, 200
	type batch struct {
		ids   []string
		body  []byte
		acked bool
	}
	var (
		mu      sync.Mutex
		batches []*batch
	)
	firstAck := make(chan struct{})
	var once sync.Once
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	t.Cleanup(client.CloseIdleConnections)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for n := 0; ; n++ {
				b := &batch{}
				var evs []wireEvent
				for i := range perBatch {
					id := fmt.Sprintf("k%d-%d-%d", c, n, i)
					b.ids = append(b.ids, id)
					evs = append(evs, wireEvent{ID: id, Time: time.Now().UTC(), Method: "POST", Route: "POST /v1/score", Status: 200, LatencyMS: 3, UserID: "u" + id[len(id)-1:]})
				}
				b.body, _ = json.Marshal(map[string]any{"events": evs})
				mu.Lock()
				batches = append(batches, b)
				mu.Unlock()
				req, _ := http.NewRequest("POST", s.url+"/v2/events", bytes.NewReader(b.body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				answer, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return // e.g. a truncated answer; not acknowledged
				}
				var res struct{ Accepted, Duplicates int }
				if json.Unmarshal(answer, &res) != nil || res.Accepted+res.Duplicates != perBatch {
					t.Errorf("answer %s", answer)
					return
				}
				mu.Lock()
				b.acked = true
				mu.Unlock()
				once.Do(func() { close(firstAck) })
			}
		})
	}
	select {
	case <-firstAck:
	case <-time.After(30 * time.Second):
		t.Fatal("no batch acknowledged within 30s")
	}
	// A random moment: after the first acknowledgement, within the next
	// 600ms, mid-write or between writes.
	kill := time.NewTimer(time.Duration(rand.Int64N(int64(600 * time.Millisecond))))
	<-kill.C
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s.exited
	wg.Wait()

	s2 := h.start(dir, "")
	stored := listAll(t, s2, secret)
	acked, whole, none := 0, 0, 0
	for _, b := range batches {
		n := 0
		for _, id := range b.ids {
			if stored[id] {
				n++
			}
		}
		switch {
		case b.acked && n != len(b.ids):
			t.Errorf("an acknowledged batch lost %d of its %d events after SIGKILL", len(b.ids)-n, len(b.ids))
		case n != 0 && n != len(b.ids):
			t.Errorf("a batch was half written: %d of %d events", n, len(b.ids))
		}
		if b.acked {
			acked++
		}
		if n == len(b.ids) {
			whole++
		} else {
			none++
		}
	}
	total := 0
	for _, b := range batches {
		total += len(b.ids)
	}
	if len(stored) > total {
		t.Errorf("%d events stored, only %d sent", len(stored), total)
	}
	t.Logf("%d batches sent, %d acknowledged; after the restart %d are stored whole, %d not at all", len(batches), acked, whole, none)

	// Every batch retried against the restarted server is stored exactly
	// once: what survived the kill counts as duplicates.
	tok2 := serverToken(t, s2, secret)
	dups := 0
	for _, b := range batches {
		r := s2.do("POST", "/v2/events", tok2, string(b.body))
		r.want(t, http.StatusOK)
		var res struct{ Accepted, Duplicates int }
		json.Unmarshal(r.body, &res)
		dups += res.Duplicates
	}
	if dups != len(stored) {
		t.Errorf("the retry found %d duplicates, %d events were stored", dups, len(stored))
	}
	if after := listAll(t, s2, secret); len(after) != total {
		t.Errorf("after the retry %d events are stored, want %d", len(after), total)
	}
}
