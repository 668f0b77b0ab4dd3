package httpapi_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

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
