package httpapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/httpapi"
)

// dataset is 60 events of app a, ten seconds apart, ending an hour ago:
// two routes, three users (and none), two client ids, statuses 200, 404,
// 500, 503 and refused authentications (401 expired).
func dataset(end time.Time) []callsign.EventJSON {
	var out []callsign.EventJSON
	for i := range 60 {
		e := callsign.EventJSON{ID: fmt.Sprintf("q%02d", i), Time: end.Add(-time.Duration(i) * 10 * time.Second), Status: 200,
			LatencyMS: float64(i + 1), RequestBytes: 10, ResponseBytes: 100, ClientUserID: fmt.Sprintf("c%d", i%2), Scheme: "hmac"}
		if i%2 == 0 {
			e.Method, e.Route, e.CompanyID = "GET", "GET /notes/{id}", "acme"
		} else {
			e.Method, e.Route = "POST", "POST /notes"
		}
		if i%5 != 0 {
			e.UserID = fmt.Sprintf("u%d", i%3)
		}
		switch i % 10 {
		case 0:
			e.Status = 500
		case 1:
			e.Status, e.AuthError, e.Scheme, e.UserID = 401, "expired", "jwt", ""
		case 2:
			e.Status = 404
		case 3:
			e.Status = 503
		}
		out = append(out, e)
	}
	return out
}

type queryEnv struct {
	*env
	a, b appFixture
	data []callsign.EventJSON
	end  time.Time
}

func newQueryEnv(t *testing.T) *queryEnv {
	e := newEnv(t, httpapi.Config{})
	q := &queryEnv{env: e, a: e.createApp("a", ""), b: e.createApp("b", ""), end: time.Now().Add(-time.Hour).UTC().Truncate(time.Second)}
	q.data = dataset(q.end)
	e.ingestOK(e.serverToken(q.a), q.data...)
	e.ingestOK(e.serverToken(q.b), evt("other-app"))
	return q
}

// ids returns the ids of the dataset's events for which keep is true,
// newest first.
func (q *queryEnv) ids(keep func(e callsign.EventJSON) bool) []string {
	var out []string
	for _, e := range q.data {
		if keep(e) {
			out = append(out, e.ID)
		}
	}
	return out
}

// listed checks that the answer is one page holding exactly want, in order.
func listed(want []string) func(t *testing.T, r *response) {
	return func(t *testing.T, r *response) {
		t.Helper()
		evs, ok := r.body["events"].([]any)
		if !ok {
			t.Fatalf("no events array: %s", r.raw)
		}
		got := []string{}
		for _, x := range evs {
			got = append(got, x.(map[string]any)["id"].(string))
		}
		if want == nil {
			want = []string{}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("listed %v\nwant   %v", got, want)
		}
		if _, has := r.body["next_cursor"]; has {
			t.Fatalf("next_cursor on the last page: %s", r.raw)
		}
	}
}

func TestEventQueries(t *testing.T) {
	q := newQueryEnv(t)
	a, b := q.a, q.b
	sec := []string{"Authorization", "Bearer " + a.secret}
	adm := []string{"Authorization", "Bearer " + q.admin}
	all := q.ids(func(callsign.EventJSON) bool { return true })
	rfc := func(t time.Time) string { return url.QueryEscape(t.Format(time.RFC3339)) }
	mid := q.end.Add(-5 * time.Minute)

	q.run(t, []scenario{
		// Authentication.
		{name: "no credentials", method: "GET", path: "/v2/events", status: 401, code: "unauthorized"},
		{name: "secret", method: "GET", path: "/v2/events", headers: sec, status: 200, check: listed(all)},
		{name: "secret and its app_id", method: "GET", path: "/v2/events?app_id=" + a.id, headers: sec, status: 200, check: listed(all)},
		{name: "secret and another app_id", method: "GET", path: "/v2/events?app_id=" + b.id, headers: sec, status: 403, code: "app_mismatch"},
		{name: "other app's secret", method: "GET", path: "/v2/events", headers: []string{"Authorization", "Bearer " + b.secret}, status: 200, check: listed([]string{"other-app"})},
		{name: "admin with app_id", method: "GET", path: "/v2/events?app_id=" + a.id, headers: adm, status: 200, check: listed(all)},
		{name: "admin without app_id", method: "GET", path: "/v2/events", headers: adm, status: 400, code: "missing_parameter"},
		{name: "admin with unknown app_id", method: "GET", path: "/v2/events?app_id=app_nope", headers: adm, status: 404, code: "not_found"},
		{name: "public token", method: "GET", path: "/v2/events", headers: []string{"Authorization", "Bearer " + a.public}, status: 401, code: "wrong_token_kind"},
		{name: "access token", method: "GET", path: "/v2/events", headers: []string{"Authorization", "Bearer " + q.serverToken(a)}, status: 401, code: "malformed_token"},
		{name: "unknown secret", method: "GET", path: "/v2/events", headers: []string{"Authorization", "Bearer " + callsign.GenerateToken(callsign.TokenSecret)}, status: 401, code: "unauthorized"},

		// Filters.
		{name: "user_id", method: "GET", path: "/v2/events?user_id=u1", headers: sec, status: 200, check: listed(q.ids(func(e callsign.EventJSON) bool { return e.UserID == "u1" }))},
		{name: "client_user_id", method: "GET", path: "/v2/events?client_user_id=c0", headers: sec, status: 200, check: listed(q.ids(func(e callsign.EventJSON) bool { return e.ClientUserID == "c0" }))},
		{name: "api_user_id", method: "GET", path: "/v2/events?api_user_id=nobody", headers: sec, status: 200, check: listed(nil)},
		{name: "route", method: "GET", path: "/v2/events?route=" + url.QueryEscape("POST /notes"), headers: sec, status: 200, check: listed(q.ids(func(e callsign.EventJSON) bool { return e.Route == "POST /notes" }))},
		{name: "method", method: "GET", path: "/v2/events?method=GET", headers: sec, status: 200, check: listed(q.ids(func(e callsign.EventJSON) bool { return e.Method == "GET" }))},
		{name: "status code", method: "GET", path: "/v2/events?status=401", headers: sec, status: 200, check: listed(q.ids(func(e callsign.EventJSON) bool { return e.Status == 401 }))},
		{name: "status class", method: "GET", path: "/v2/events?status=5xx", headers: sec, status: 200, check: listed(q.ids(func(e callsign.EventJSON) bool { return e.Status >= 500 }))},
		{name: "status class upper case", method: "GET", path: "/v2/events?status=4XX", headers: sec, status: 200, check: listed(q.ids(func(e callsign.EventJSON) bool { return e.Status/100 == 4 }))},
		{name: "auth_error", method: "GET", path: "/v2/events?auth_error=expired", headers: sec, status: 200, check: listed(q.ids(func(e callsign.EventJSON) bool { return e.AuthError == "expired" }))},
		{name: "from and to", method: "GET", path: "/v2/events?from=" + rfc(mid) + "&to=" + rfc(q.end), headers: sec, status: 200,
			check: listed(q.ids(func(e callsign.EventJSON) bool { return !e.Time.Before(mid) && e.Time.Before(q.end) }))},
		{name: "from only", method: "GET", path: "/v2/events?from=" + rfc(mid), headers: sec, status: 200, check: listed(q.ids(func(e callsign.EventJSON) bool { return !e.Time.Before(mid) }))},
		{name: "to with an offset", method: "GET", path: "/v2/events?to=" + url.QueryEscape(mid.In(time.FixedZone("x", 2*3600)).Format(time.RFC3339)), headers: sec, status: 200,
			check: listed(q.ids(func(e callsign.EventJSON) bool { return e.Time.Before(mid) }))},
		{name: "offset with an unescaped plus", method: "GET", path: "/v2/events?to=" + mid.In(time.FixedZone("x", 2*3600)).Format(time.RFC3339), headers: sec, status: 200,
			check: listed(q.ids(func(e callsign.EventJSON) bool { return e.Time.Before(mid) }))},
		{name: "combined", method: "GET", path: "/v2/events?user_id=u2&status=2xx&route=" + url.QueryEscape("GET /notes/{id}"), headers: sec, status: 200,
			check: listed(q.ids(func(e callsign.EventJSON) bool {
				return e.UserID == "u2" && e.Status/100 == 2 && e.Route == "GET /notes/{id}"
			}))},
		{name: "nothing matches", method: "GET", path: "/v2/events?user_id=nobody", headers: sec, status: 200, check: func(t *testing.T, r *response) {
			if string(r.raw) != "{\"events\":[]}\n" {
				t.Fatalf("empty listing %q", r.raw)
			}
		}},
		{name: "empty values ask for everything", method: "GET", path: "/v2/events?user_id=&client_user_id=&route=&status=&from=&to=&limit=&cursor=", headers: sec, status: 200, check: listed(all)},
		{name: "another app's user", method: "GET", path: "/v2/events?user_id=u1", headers: []string{"Authorization", "Bearer " + b.secret}, status: 200, check: listed(nil)},

		// The wire form: the contract's fields.
		{name: "fields", method: "GET", path: "/v2/events?limit=2&status=4xx", headers: sec, status: 200, check: func(t *testing.T, r *response) {
			for _, x := range r.body["events"].([]any) {
				m := x.(map[string]any)
				for _, k := range []string{"id", "time", "method", "route", "status", "latency_ms", "user_id", "client_user_id", "scheme"} {
					if _, ok := m[k]; !ok {
						t.Errorf("event without %q: %v", k, m)
					}
				}
				if _, has := m["auth_error"]; has != (m["status"] == float64(401)) {
					t.Errorf("auth_error present=%v on %v", has, m)
				}
				if _, err := time.Parse(time.RFC3339, m["time"].(string)); err != nil {
					t.Errorf("time %v: %v", m["time"], err)
				}
			}
			if c, _ := r.body["next_cursor"].(string); c == "" {
				t.Errorf("no next_cursor on a first page of 2: %s", r.raw)
			}
		}},

		// Malformed parameters, each named.
		{name: "unknown parameter", method: "GET", path: "/v2/events?user=u1", headers: sec, status: 400, code: "unknown_parameter"},
		{name: "camelCase parameter", method: "GET", path: "/v2/events?userId=u1", headers: sec, status: 400, code: "unknown_parameter"},
		{name: "repeated parameter", method: "GET", path: "/v2/events?user_id=u1&user_id=u2", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "bad percent-encoding", method: "GET", path: "/v2/events?user_id=%zz", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "control character", method: "GET", path: "/v2/events?route=%0A", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "invalid UTF-8", method: "GET", path: "/v2/events?route=%ff", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "long user_id", method: "GET", path: "/v2/events?user_id=" + strings.Repeat("u", 257), headers: sec, status: 400, code: "invalid_parameter"},
		{name: "status word", method: "GET", path: "/v2/events?status=error", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "status 600", method: "GET", path: "/v2/events?status=600", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "status 99", method: "GET", path: "/v2/events?status=99", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "status 6xx", method: "GET", path: "/v2/events?status=6xx", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "status 4x", method: "GET", path: "/v2/events?status=4x", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "status +40", method: "GET", path: "/v2/events?status=%2B40", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "method with a space", method: "GET", path: "/v2/events?method=G%20T", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "auth_error with capitals", method: "GET", path: "/v2/events?auth_error=Expired", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "from not RFC 3339", method: "GET", path: "/v2/events?from=yesterday", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "from a date", method: "GET", path: "/v2/events?from=2026-01-02", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "to a unix time", method: "GET", path: "/v2/events?to=1700000000", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "from after to", method: "GET", path: "/v2/events?from=" + rfc(q.end) + "&to=" + rfc(mid), headers: sec, status: 400, code: "invalid_parameter"},
		{name: "from equals to", method: "GET", path: "/v2/events?from=" + rfc(q.end) + "&to=" + rfc(q.end), headers: sec, status: 400, code: "invalid_parameter"},
		{name: "limit 0", method: "GET", path: "/v2/events?limit=0", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "limit 1001", method: "GET", path: "/v2/events?limit=1001", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "limit word", method: "GET", path: "/v2/events?limit=ten", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "limit negative", method: "GET", path: "/v2/events?limit=-1", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "cursor with a space", method: "GET", path: "/v2/events?cursor=a%20b", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "cursor not ours", method: "GET", path: "/v2/events?cursor=bm90LWEtY3Vyc29y", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "POST is ingest, PUT is not allowed", method: "PUT", path: "/v2/events", headers: sec, status: 405, code: "method_not_allowed"},
	})

	t.Run("pagination", func(t *testing.T) {
		q.env.t = t
		for _, c := range []struct {
			path string
			want []string
		}{
			{"/v2/events?limit=7", all},
			{"/v2/events?limit=1", all},
			{"/v2/events?limit=60", all},
			{"/v2/events?limit=4&status=5xx", q.ids(func(e callsign.EventJSON) bool { return e.Status >= 500 })},
			{"/v2/events?limit=3&user_id=u0&from=" + rfc(mid), q.ids(func(e callsign.EventJSON) bool { return e.UserID == "u0" && !e.Time.Before(mid) })},
		} {
			var got []string
			for _, m := range q.allEvents(c.path, a.secret) {
				got = append(got, m["id"].(string))
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("%s followed to the end: %v\nwant %v", c.path, got, c.want)
			}
		}
	})
	t.Run("a cursor of another app", func(t *testing.T) {
		q.env.t = t
		r := q.do("GET", "/v2/events?limit=1", "", sec...)
		next := r.str("next_cursor")
		r = q.do("GET", "/v2/events?cursor="+url.QueryEscape(next), "", "Authorization", "Bearer "+b.secret)
		if r.status == 200 {
			for _, x := range r.body["events"].([]any) {
				if id := x.(map[string]any)["id"].(string); id != "other-app" {
					t.Fatalf("another app's cursor listed %s", id)
				}
			}
		} else if r.code() != "invalid_parameter" {
			t.Fatalf("another app's cursor: %d %s", r.status, r.raw)
		}
	})
}

func group(t *testing.T, r *response, key string) map[string]any {
	t.Helper()
	for _, g := range r.body["groups"].([]any) {
		m := g.(map[string]any)
		if m["key"] == key {
			return m
		}
	}
	t.Fatalf("no group %q in %s", key, r.raw)
	return nil
}

func keys(r *response) []string {
	var out []string
	for _, g := range r.body["groups"].([]any) {
		out = append(out, g.(map[string]any)["key"].(string))
	}
	return out
}

func TestMetricsQueries(t *testing.T) {
	q := newQueryEnv(t)
	a := q.a
	sec := []string{"Authorization", "Bearer " + a.secret}
	rfc := func(t time.Time) string { return url.QueryEscape(t.Format(time.RFC3339)) }
	from, to := q.end.Add(-2*time.Hour).Truncate(time.Hour), q.end.Add(time.Hour).Truncate(time.Hour)
	span := "&from=" + rfc(from) + "&to=" + rfc(to)
	exact := func(route string) (count, errors float64, latencies []float64) {
		for _, e := range q.data {
			if route == "" || e.Route == route {
				count++
				if e.Status >= 500 || e.AuthError != "" {
					errors++
				}
				latencies = append(latencies, e.LatencyMS)
			}
		}
		slices.Sort(latencies)
		return
	}
	shape := func(t *testing.T, m map[string]any, series bool) {
		t.Helper()
		for _, k := range []string{"key", "count", "errors", "error_rate", "p50_ms", "p95_ms", "p99_ms", "request_bytes", "response_bytes"} {
			if _, ok := m[k]; !ok {
				t.Errorf("group without %q: %v", k, m)
			}
		}
		if _, has := m["series"]; has != series {
			t.Errorf("series present=%v, want %v: %v", has, series, m)
		}
		if p50, p95, p99 := m["p50_ms"].(float64), m["p95_ms"].(float64), m["p99_ms"].(float64); !(0 < p50 && p50 <= p95 && p95 <= p99) {
			t.Errorf("percentiles %v %v %v", p50, p95, p99)
		}
	}
	routeFigures := func(t *testing.T, r *response) {
		if got := keys(r); !slices.Equal(got, []string{"GET /notes/{id}", "POST /notes"}) && !slices.Equal(got, []string{"POST /notes", "GET /notes/{id}"}) {
			t.Fatalf("route keys %v", got)
		}
		for _, route := range []string{"GET /notes/{id}", "POST /notes"} {
			g := group(t, r, route)
			shape(t, g, false)
			n, errs, lat := exact(route)
			if g["count"] != n || g["errors"] != errs || g["error_rate"] != errs/n || g["request_bytes"] != 10*n || g["response_bytes"] != 100*n {
				t.Errorf("%s: %v; want count %v errors %v", route, g, n, errs)
			}
			// The sketch's stated error is 1%; the rank convention may differ
			// by one event, hence the neighbours.
			rank := func(p float64) (lo, hi float64) {
				i := int(p*float64(len(lat))+0.5) - 1
				return lat[max(0, i-1)] * 0.99, lat[min(len(lat)-1, i+1)] * 1.01
			}
			for _, c := range []struct {
				k string
				p float64
			}{{"p50_ms", .5}, {"p95_ms", .95}, {"p99_ms", .99}} {
				lo, hi := rank(c.p)
				if v := g[c.k].(float64); v < lo || v > hi {
					t.Errorf("%s %s = %v, want in [%v, %v]", route, c.k, v, lo, hi)
				}
			}
		}
	}
	q.run(t, []scenario{
		{name: "by route", method: "GET", path: "/v2/metrics?group_by=route", headers: sec, status: 200, check: routeFigures},
		{name: "by route over a range", method: "GET", path: "/v2/metrics?group_by=route" + span, headers: sec, status: 200, check: routeFigures},
		{name: "by route, admin", method: "GET", path: "/v2/metrics?group_by=route&app_id=" + a.id, headers: []string{"Authorization", "Bearer " + q.admin}, status: 200, check: routeFigures},
		{name: "top route by errors", method: "GET", path: "/v2/metrics?group_by=route&order_by=errors&limit=1", headers: sec, status: 200, check: func(t *testing.T, r *response) {
			if got := keys(r); !slices.Equal(got, []string{"POST /notes"}) {
				t.Fatalf("top by errors %v", got)
			}
		}},
		{name: "top route by count", method: "GET", path: "/v2/metrics?group_by=route&order_by=count&limit=2", headers: sec, status: 200, check: func(t *testing.T, r *response) {
			if len(keys(r)) != 2 {
				t.Fatalf("keys %v", keys(r))
			}
		}},
		{name: "by user", method: "GET", path: "/v2/metrics?group_by=user_id" + span, headers: sec, status: 200, check: func(t *testing.T, r *response) {
			total := 0.0
			for _, k := range []string{"u0", "u1", "u2", ""} {
				g := group(t, r, k)
				shape(t, g, false)
				total += g["count"].(float64)
			}
			if total != 60 {
				t.Fatalf("user groups count %v events, want 60", total)
			}
		}},
		{name: "top 1 user by errors", method: "GET", path: "/v2/metrics?group_by=user_id&order_by=errors&limit=1" + span, headers: sec, status: 200, check: func(t *testing.T, r *response) {
			// Refused authentications carry no user: the empty key leads.
			if got := keys(r); !slices.Equal(got, []string{""}) {
				t.Fatalf("top user by errors %v", got)
			}
		}},
		{name: "by company", method: "GET", path: "/v2/metrics?group_by=company_id" + span, headers: sec, status: 200, check: func(t *testing.T, r *response) {
			if g := group(t, r, "acme"); g["count"] != float64(30) {
				t.Fatalf("acme %v", g)
			}
		}},
		{name: "by status", method: "GET", path: "/v2/metrics?group_by=status", headers: sec, status: 200, check: func(t *testing.T, r *response) {
			for k, n := range map[string]float64{"2xx": 36, "4xx": 12, "5xx": 12} {
				if g := group(t, r, k); g["count"] != n {
					t.Errorf("status %s: %v, want count %v", k, g, n)
				}
			}
		}},
		{name: "by auth_error", method: "GET", path: "/v2/metrics?group_by=auth_error", headers: sec, status: 200, check: func(t *testing.T, r *response) {
			if g := group(t, r, "expired"); g["count"] != float64(6) || g["errors"] != float64(6) || g["error_rate"] != float64(1) {
				t.Fatalf("expired %v", g)
			}
		}},
		{name: "series", method: "GET", path: "/v2/metrics?group_by=route&interval=1h" + span, headers: sec, status: 200, check: func(t *testing.T, r *response) {
			for _, route := range []string{"GET /notes/{id}", "POST /notes"} {
				g := group(t, r, route)
				shape(t, g, true)
				series := g["series"].([]any)
				if len(series) != 3 {
					t.Fatalf("%d buckets of 1h over 3h: %v", len(series), series)
				}
				sum := 0.0
				for i, x := range series {
					b := x.(map[string]any)
					start, err := time.Parse(time.RFC3339, b["start"].(string))
					if err != nil || !start.Equal(from.Add(time.Duration(i)*time.Hour)) {
						t.Fatalf("bucket %d start %v (%v)", i, b["start"], err)
					}
					for _, k := range []string{"count", "errors", "error_rate", "p50_ms", "p95_ms", "p99_ms"} {
						if _, ok := b[k]; !ok {
							t.Fatalf("bucket without %q: %v", k, b)
						}
					}
					sum += b["count"].(float64)
				}
				if sum != g["count"] {
					t.Fatalf("series sums to %v, group count %v", sum, g["count"])
				}
			}
		}},
		{name: "series by user per day", method: "GET", path: "/v2/metrics?group_by=user_id&interval=1d" + span, headers: sec, status: 200},
		{name: "nothing in range", method: "GET", path: "/v2/metrics?group_by=route&from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z", headers: sec, status: 200, check: func(t *testing.T, r *response) {
			if string(r.raw) != "{\"groups\":[]}\n" {
				t.Fatalf("empty metrics %q", r.raw)
			}
		}},

		{name: "no group_by", method: "GET", path: "/v2/metrics", headers: sec, status: 400, code: "missing_parameter"},
		{name: "bad group_by", method: "GET", path: "/v2/metrics?group_by=path", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "camelCase group_by", method: "GET", path: "/v2/metrics?group_by=userId", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "unknown parameter", method: "GET", path: "/v2/metrics?group_by=route&status=5xx", headers: sec, status: 400, code: "unknown_parameter"},
		{name: "interval in seconds", method: "GET", path: "/v2/metrics?group_by=route&interval=30s", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "interval 90s", method: "GET", path: "/v2/metrics?group_by=route&interval=90s", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "interval word", method: "GET", path: "/v2/metrics?group_by=route&interval=hourly", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "interval negative", method: "GET", path: "/v2/metrics?group_by=route&interval=-1h", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "interval 0d", method: "GET", path: "/v2/metrics?group_by=route&interval=0d", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "minute interval by user", method: "GET", path: "/v2/metrics?group_by=user_id&interval=5m", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "too many buckets", method: "GET", path: "/v2/metrics?group_by=route&interval=1m&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:01Z", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "1440 buckets", method: "GET", path: "/v2/metrics?group_by=route&interval=1m&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z", headers: sec, status: 200},
		{name: "bad order_by", method: "GET", path: "/v2/metrics?group_by=route&order_by=latency", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "limit 0", method: "GET", path: "/v2/metrics?group_by=route&limit=0", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "limit 1001", method: "GET", path: "/v2/metrics?group_by=route&limit=1001", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "bad from", method: "GET", path: "/v2/metrics?group_by=route&from=now-1h", headers: sec, status: 400, code: "invalid_parameter"},
		{name: "from after default to", method: "GET", path: "/v2/metrics?group_by=route&from=" + rfc(time.Now().Add(time.Hour)), headers: sec, status: 400, code: "invalid_parameter"},
		{name: "no credentials", method: "GET", path: "/v2/metrics?group_by=route", status: 401, code: "unauthorized"},
		{name: "admin without app_id", method: "GET", path: "/v2/metrics?group_by=route", headers: []string{"Authorization", "Bearer " + q.admin}, status: 400, code: "missing_parameter"},
	})
}

// TestRetentionThroughTheAPI ingests events of several ages, shortens the
// app's retentions, runs the job and checks what the queries still see.
func TestRetentionThroughTheAPI(t *testing.T) {
	var c clock
	e := newEnv(t, httpapi.Config{Now: c.cfg()})
	a := e.createApp("a", "")
	b := e.createApp("b", "")
	now := time.Now().UTC()
	at := func(id string, age time.Duration) callsign.EventJSON { x := evt(id); x.Time = now.Add(-age); return x }
	e.ingestOK(e.serverToken(a), at("d10", 10*24*time.Hour), at("d3", 3*24*time.Hour), at("h1", time.Hour))
	e.ingestOK(e.serverToken(b), at("b10", 10*24*time.Hour))

	r := e.adminDo("PATCH", "/v2/apps/"+a.id, `{"event_retention_days":2,"rollup_retention_days":5}`)
	if r.status != 200 || r.body["event_retention_days"] != float64(2) || r.body["rollup_retention_days"] != float64(5) {
		t.Fatalf("PATCH retention: %d %s", r.status, r.raw)
	}
	if r := e.adminDo("GET", "/v2/apps/"+b.id, ""); r.body["event_retention_days"] != float64(30) || r.body["rollup_retention_days"] != float64(400) {
		t.Fatalf("default retentions shown as %s", r.raw)
	}
	deleted, err := e.api.EnforceRetention(t.Context())
	if err != nil || deleted != 2 {
		t.Fatalf("EnforceRetention = %d, %v; want 2 raw events of app a", deleted, err)
	}
	ids := func(app appFixture) []string {
		var out []string
		for _, m := range e.allEvents("/v2/events?limit=10", app.secret) {
			out = append(out, m["id"].(string))
		}
		return out
	}
	if got := ids(a); !slices.Equal(got, []string{"h1"}) {
		t.Fatalf("app a after retention: %v", got)
	}
	if got := ids(b); !slices.Equal(got, []string{"b10"}) {
		t.Fatalf("app b (default retention) after the job: %v", got)
	}
	metricsCount := func(app appFixture) float64 {
		r := e.do("GET", "/v2/metrics?group_by=route&from="+url.QueryEscape(now.Add(-30*24*time.Hour).Format(time.RFC3339)), "", "Authorization", "Bearer "+app.secret)
		if r.status != 200 {
			t.Fatalf("metrics: %d %s", r.status, r.raw)
		}
		n := 0.0
		for _, g := range r.body["groups"].([]any) {
			n += g.(map[string]any)["count"].(float64)
		}
		return n
	}
	// Rollups are kept 5 days: the 3-day-old event still counts, the
	// 10-day-old one does not.
	if got := metricsCount(a); got != 2 {
		t.Fatalf("app a's metrics count %v events, want 2", got)
	}
	if got := metricsCount(b); got != 1 {
		t.Fatalf("app b's metrics count %v events, want 1", got)
	}
	// A week later everything of app a has aged out.
	c.advance(7 * 24 * time.Hour)
	if _, err := e.api.EnforceRetention(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := ids(a); len(got) != 0 {
		t.Fatalf("app a a week later: %v", got)
	}

	e.run(t, []scenario{
		{name: "retention 0", method: "PATCH", path: "/v2/apps/" + a.id, body: `{"event_retention_days":0}`, headers: []string{"Authorization", "Bearer " + e.admin, "Content-Type", ctJSON}, status: 400, code: "invalid_request"},
		{name: "retention too long", method: "PATCH", path: "/v2/apps/" + a.id, body: `{"rollup_retention_days":3651}`, headers: []string{"Authorization", "Bearer " + e.admin, "Content-Type", ctJSON}, status: 400, code: "invalid_request"},
		{name: "retention a string", method: "PATCH", path: "/v2/apps/" + a.id, body: `{"event_retention_days":"7"}`, headers: []string{"Authorization", "Bearer " + e.admin, "Content-Type", ctJSON}, status: 400, code: "invalid_request"},
		{name: "create with retention", method: "POST", path: "/v2/apps", body: `{"name":"r","event_retention_days":7,"rollup_retention_days":90}`, headers: []string{"Authorization", "Bearer " + e.admin, "Content-Type", ctJSON}, status: 201,
			check: func(t *testing.T, r *response) {
				if r.body["event_retention_days"] != float64(7) || r.body["rollup_retention_days"] != float64(90) {
					t.Fatalf("created %s", r.raw)
				}
			}},
	})
}

// RunRetention runs once shortly after it starts and stops with its
// context.
func TestRunRetention(t *testing.T) {
	e := newEnv(t, httpapi.Config{})
	a := e.createApp("a", "")
	x := evt("old")
	x.Time = time.Now().Add(-23 * time.Hour)
	e.ingestOK(e.serverToken(a), x)
	e.adminDo("PATCH", "/v2/apps/"+a.id, `{"event_retention_days":1}`)
	var c clock
	c.advance(2 * time.Hour)
	ran := make(chan string, 10)
	api, err := httpapi.New(httpapi.Config{Store: e.store, Events: e.store, Keys: e.ring, Now: c.cfg(), Logger: slog.New(msgHandler(ran))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { api.RunRetention(ctx, time.Millisecond, time.Hour); close(done) }()
	if msg := <-ran; msg != "retention deleted events" {
		t.Fatalf("log %q", msg)
	}
	cancel()
	<-done
	if evs := e.allEvents("/v2/events?limit=10", a.secret); len(evs) != 0 {
		t.Fatalf("after the run: %v", evs)
	}
}

// msgHandler is a slog.Handler that sends each record's message on c.
type msgHandler chan string

func (h msgHandler) Enabled(context.Context, slog.Level) bool      { return true }
func (h msgHandler) Handle(_ context.Context, r slog.Record) error { h <- r.Message; return nil }
func (h msgHandler) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h msgHandler) WithGroup(string) slog.Handler                 { return h }
