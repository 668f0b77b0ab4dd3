package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/httpapi"
)

// BenchmarkUpgrade measures token upgrades through the real server on
// loopback: HTTP, JSON, store lookups and Ed25519 signing. Rate limits are
// off. It reports upgrades/s.
func BenchmarkUpgrade(b *testing.B) {
	e := newEnv(b, httpapi.Config{})
	a := e.createApp("bench", "")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	cases := []struct {
		name, body, auth string
	}{
		{"anonymous", upgradeBody(a.public), ""},
		{"bound", upgradeBody(a.public, "alice"), "Bearer " + a.secret},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("POST", e.url+"/v2/tokens/upgrade", strings.NewReader(c.body))
					req.Header.Set("Content-Type", ctJSON)
					if c.auth != "" {
						req.Header.Set("Authorization", c.auth)
					}
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "upgrades/s")
		})
	}
}

// BenchmarkIngest measures ingest through the real server on loopback
// into the embedded store: 1,000-event batches, plain, gzip and snappy,
// from several concurrent clients. An op is one batch; it reports
// events/s. Bodies are made before the timer starts (compressed then too),
// so the figure is the server's: HTTP, decompression, decoding,
// validation and the durable append. The rate limit is off.
func BenchmarkIngest(b *testing.B) {
	for _, c := range []struct {
		name    string
		enc     string // Content-Encoding: "", "gzip" or "snappy"
		clients int
		discard bool // the HTTP path alone: a store that keeps nothing
	}{
		{"sqlite/plain/clients=1", "", 1, false},
		{"sqlite/plain/clients=4", "", 4, false},
		{"sqlite/gzip/clients=4", "gzip", 4, false},
		{"sqlite/gzip/clients=8", "gzip", 8, false},
		{"sqlite/snappy/clients=4", "snappy", 4, false},
		{"discard/plain/clients=4", "", 4, true},
		{"discard/gzip/clients=4", "gzip", 4, true},
		{"discard/snappy/clients=4", "snappy", 4, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			cfg := httpapi.Config{IngestRatePerApp: -1}
			if c.discard {
				cfg.Events = discardStore{}
			}
			e := newEnv(b, cfg)
			a := e.createApp("bench", "")
			tok := e.serverToken(a)
			bodies := make(chan []byte, b.N)
			var raw int64
			for i := range b.N {
				body := benchBatch(i, time.Now())
				raw += int64(len(body))
				switch c.enc {
				case "gzip":
					body = []byte(gz(string(body)))
				case "snappy":
					body = []byte(sn(string(body)))
				}
				bodies <- body
			}
			close(bodies)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c.clients, DisableCompression: true}}
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for range c.clients {
				wg.Go(func() {
					for body := range bodies {
						req, _ := http.NewRequest("POST", e.url+"/v2/events", bytes.NewReader(body))
						req.Header.Set("Content-Type", ctJSON)
						req.Header.Set("Authorization", "Bearer "+tok)
						if c.enc != "" {
							req.Header.Set("Content-Encoding", c.enc)
						}
						resp, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						answer, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 || !bytes.Contains(answer, []byte(`"accepted":1000,`)) {
							b.Errorf("status %d: %s", resp.StatusCode, answer)
							return
						}
					}
				})
			}
			wg.Wait()
			if !c.discard {
				// Sustained, not just acknowledged: the events still
				// pending aggregation are rolled up within the timing
				// (a metrics query waits for them).
				_, err := e.store.Metrics(context.Background(), callsign.MetricsQuery{AppID: a.id, From: time.Now().Add(-time.Hour),
					To: time.Now().Add(time.Hour), GroupBy: callsign.GroupRoute})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)*callsign.MaxEventsPerBatch/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(raw)/float64(b.N)/callsign.MaxEventsPerBatch, "B/event")
		})
	}
}

// benchBatch is batch n of 1,000 events like the capture middleware's: a
// few routes and statuses, 100 users, client ids, metadata on some.
func benchBatch(n int, now time.Time) []byte {
	routes := [...]string{"GET /v1/score/{id}", "POST /v1/score", "GET /v1/reports", "DELETE /v1/reports/{id}"}
	statuses := [...]int{200, 200, 200, 201, 204, 401, 404, 500}
	var buf bytes.Buffer
	buf.WriteString(`{"events":[`)
	for i := range callsign.MaxEventsPerBatch {
		if i > 0 {
			buf.WriteByte(',')
		}
		k := n*callsign.MaxEventsPerBatch + i
		e := callsign.EventJSON{
			ID: fmt.Sprintf("ev-%d-%d", n, i), Time: now.Add(-time.Duration(i) * time.Millisecond), Method: "GET",
			Route: routes[k%len(routes)], URI: "/v1/score/" + strconv.Itoa(k%977), Status: statuses[k%len(statuses)],
			LatencyMS: float64(k%500) / 3, RequestBytes: int64(k % 300), ResponseBytes: int64(k % 4000),
			UserID: "user-" + strconv.Itoa(k%100), ClientUserID: "c-" + strconv.Itoa(k%7), Scheme: "jwt", KeyID: "kid-1",
			RequestID: fmt.Sprintf("req-%d", k), RemoteIP: "10.0.0.7", UserAgent: "creditscore-client/1.2 (go)",
		}
		if e.Status == 401 {
			e.AuthError = "expired"
		}
		if k%10 == 0 {
			e.Metadata = map[string]string{"plan": "pro", "region": "eu"}
		}
		j, _ := json.Marshal(e)
		buf.Write(j)
	}
	buf.WriteString(`]}`)
	return buf.Bytes()
}

// discardStore is an EventStore that accepts every event and keeps none.
type discardStore struct{ callsign.EventStore }

func (discardStore) AppendEvents(_ context.Context, evs []*callsign.Event) (callsign.IngestResult, error) {
	return callsign.IngestResult{Accepted: len(evs)}, nil
}
