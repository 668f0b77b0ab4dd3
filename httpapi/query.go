package httpapi

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/callsignhq/callsign"
)

// Limits of the query routes.
const (
	// MaxSeriesBuckets bounds the buckets of one metrics series:
	// (to - from) / interval.
	MaxSeriesBuckets = 1440
	// DefaultMetricsWindow is the range of a metrics query without from.
	DefaultMetricsWindow = 24 * time.Hour
	// maxParamLen bounds a query parameter's value.
	maxParamLen = 1024
)

// eventsPage is the answer of GET /v2/events.
type eventsPage struct {
	Events     []callsign.EventJSON `json:"events"`
	NextCursor string               `json:"next_cursor,omitempty"`
}

// metricsJSON are the figures of a group or a bucket; latencies in
// milliseconds, counts as sums of sampling weights.
type metricsJSON struct {
	Count         float64 `json:"count"`
	Errors        float64 `json:"errors"`
	ErrorRate     float64 `json:"error_rate"`
	P50MS         float64 `json:"p50_ms"`
	P95MS         float64 `json:"p95_ms"`
	P99MS         float64 `json:"p99_ms"`
	RequestBytes  float64 `json:"request_bytes"`
	ResponseBytes float64 `json:"response_bytes"`
}

type groupJSON struct {
	Key string `json:"key"`
	metricsJSON
	Series []bucketJSON `json:"series,omitempty"`
}

type bucketJSON struct {
	Start time.Time `json:"start"`
	metricsJSON
}

type metricsAnswer struct {
	Groups []groupJSON `json:"groups"`
}

func toMetricsJSON(m callsign.Metrics) metricsJSON {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	out := metricsJSON{Count: m.Count, Errors: m.Errors, P50MS: ms(m.P50), P95MS: ms(m.P95), P99MS: ms(m.P99),
		RequestBytes: m.RequestBytes, ResponseBytes: m.ResponseBytes}
	if m.Count > 0 {
		out.ErrorRate = m.Errors / m.Count
	}
	return out
}

// listEvents is GET /v2/events: the app's events, newest first, filtered,
// one page at a time.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	if s.events == nil {
		writeError(w, r, errNoEvents())
		return
	}
	app, err := s.queryAuth(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	f, err := parseEventFilter(r.URL.RawQuery)
	if err != nil {
		writeError(w, r, err)
		return
	}
	f.AppID = app.ID
	page, err := s.events.Events(r.Context(), f)
	if err != nil {
		switch {
		case f.Cursor != "" && callsign.ErrorCode(err) == callsign.EInvalid:
			err = callsign.Errorf(EInvalidParameter, "The parameter \"cursor\" is not a cursor of this listing: pass next_cursor as it was returned.")
		case callsign.ErrorCode(err) == callsign.EInvalid:
			err = callsign.Errorf(EInvalidParameter, "%s", callsign.ErrorMessage(err))
		}
		writeError(w, r, err)
		return
	}
	out := eventsPage{Events: make([]callsign.EventJSON, len(page.Events)), NextCursor: page.NextCursor}
	for i, e := range page.Events {
		out.Events[i] = e.JSON()
	}
	writeJSON(w, http.StatusOK, out)
}

// metrics is GET /v2/metrics: the app's metrics from rollups, grouped by
// one dimension, optionally as a time series.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.events == nil {
		writeError(w, r, errNoEvents())
		return
	}
	app, err := s.queryAuth(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	q, err := parseMetricsQuery(r.URL.RawQuery, s.now())
	if err != nil {
		writeError(w, r, err)
		return
	}
	q.AppID = app.ID
	rep, err := s.events.Metrics(r.Context(), q)
	if err != nil {
		if callsign.ErrorCode(err) == callsign.EInvalid { // a combination of parameters the store refuses
			err = callsign.Errorf(EInvalidParameter, "%s", callsign.ErrorMessage(err))
		}
		writeError(w, r, err)
		return
	}
	out := metricsAnswer{Groups: make([]groupJSON, len(rep.Groups))}
	for i, g := range rep.Groups {
		out.Groups[i] = groupJSON{Key: g.Key, metricsJSON: toMetricsJSON(g.Metrics)}
		if q.Interval > 0 {
			out.Groups[i].Series = make([]bucketJSON, len(g.Series))
			for j, b := range g.Series {
				out.Groups[i].Series[j] = bucketJSON{Start: b.Start.UTC(), metricsJSON: toMetricsJSON(b.Metrics)}
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// queryAuth returns the app a query is about: the app of the Bearer
// secret token (app_id, if given, must name it), or with an admin token
// the app named by app_id, which is then required.
func (s *Server) queryAuth(r *http.Request) (*callsign.App, error) {
	tok, present, err := bearer(r)
	if err != nil {
		return nil, err
	}
	if !present {
		return nil, callsign.Errorf(callsign.EUnauthorized, "Queries need the app's secret token (Authorization: Bearer cs_sec_...) or an admin token with app_id.")
	}
	kind, err := callsign.ParseToken(tok)
	if err != nil {
		return nil, err
	}
	// app_id is read here, before the parameters are parsed, because it
	// decides who may ask; parseParams checks it again with the others.
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, callsign.Errorf(EInvalidParameter, "The query string does not parse (bad percent-encoding or a ';').")
	}
	appID := q.Get("app_id")
	switch kind {
	case callsign.TokenSecret:
		sec, err := s.checkSecret(r, tok)
		if err != nil {
			return nil, err
		}
		if appID != "" && appID != sec.AppID {
			return nil, callsign.Errorf(callsign.EAppMismatch, "The secret token is not a secret of the app named by app_id.")
		}
		app, err := s.store.App(r.Context(), sec.AppID)
		if err != nil {
			return nil, err
		}
		if app.RevokedAt != nil {
			return nil, callsign.Errorf(callsign.ERevoked, "The app has been revoked.")
		}
		return app, nil
	case callsign.TokenAdmin:
		if err := s.checkAdmin(r, tok); err != nil {
			return nil, err
		}
		if appID == "" {
			return nil, callsign.Errorf(EMissingParameter, "The parameter \"app_id\" is required with an admin token.")
		}
		app, err := s.store.App(r.Context(), appID)
		if callsign.ErrorCode(err) == callsign.ENotFound {
			return nil, callsign.Errorf(callsign.ENotFound, "There is no app with the id given as app_id.")
		}
		return app, err
	}
	return nil, callsign.Errorf(callsign.EWrongTokenKind, "A %s token was given; queries need the app's secret token or an admin token.", kind)
}

// parseParams parses a query string, allowing the parameters named in
// allowed, each at most once. Empty values count as absent, so that a
// template such as "?user_id=&route=" asks for everything.
func parseParams(raw string, allowed ...string) (map[string]string, error) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, callsign.Errorf(EInvalidParameter, "The query string does not parse (bad percent-encoding or a ';').")
	}
	out := make(map[string]string, len(vals))
	for k, vs := range vals {
		known := false
		for _, a := range allowed {
			known = known || a == k
		}
		if !known {
			return nil, callsign.Errorf(EUnknownParameter, "The parameter %q is not known here; the parameters are %s.", truncate(k, 40), strings.Join(allowed, ", "))
		}
		if len(vs) > 1 {
			return nil, callsign.Errorf(EInvalidParameter, "The parameter %q is given more than once.", k)
		}
		v := vs[0]
		if len(v) > maxParamLen || !utf8.ValidString(v) || hasControl(v) {
			return nil, callsign.Errorf(EInvalidParameter, "The parameter %q must be at most %d bytes of UTF-8 without control characters.", k, maxParamLen)
		}
		if v != "" {
			out[k] = v
		}
	}
	return out, nil
}

func badParam(name, want string) error {
	return callsign.Errorf(EInvalidParameter, "The parameter %q must be %s.", name, want)
}

// parseEventFilter parses the parameters of GET /v2/events (AppID is left
// for the caller).
func parseEventFilter(raw string) (callsign.EventFilter, error) {
	var f callsign.EventFilter
	p, err := parseParams(raw, "app_id", "user_id", "client_user_id", "api_user_id", "route", "method", "status",
		"auth_error", "from", "to", "limit", "cursor")
	if err != nil {
		return f, err
	}
	for _, u := range [...]struct {
		name string
		dst  *string
	}{{"user_id", &f.UserID}, {"client_user_id", &f.ClientUserID}, {"api_user_id", &f.APIUserID}} {
		if v, ok := p[u.name]; ok {
			if len(v) > callsign.MaxUserIDLen {
				return f, badParam(u.name, "a user id of at most "+itoa(callsign.MaxUserIDLen)+" bytes")
			}
			*u.dst = v
		}
	}
	if v, ok := p["route"]; ok {
		if len(v) > callsign.MaxRouteLen {
			return f, badParam("route", "at most "+itoa(callsign.MaxRouteLen)+" bytes")
		}
		f.Route = v
	}
	if v, ok := p["method"]; ok {
		if !validMethod(v) {
			return f, badParam("method", "an HTTP method such as GET")
		}
		f.Method = v
	}
	if v, ok := p["status"]; ok {
		code, class, err := parseStatus(v)
		if err != nil {
			return f, err
		}
		f.Status, f.StatusClass = code, class
	}
	if v, ok := p["auth_error"]; ok {
		if !validCode(v, 64, false) {
			return f, badParam("auth_error", "a failure code such as expired or bad_signature")
		}
		f.AuthError = v
	}
	if f.From, f.To, err = parseRange(p); err != nil {
		return f, err
	}
	if v, ok := p["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > callsign.MaxEventPage {
			return f, badParam("limit", "an integer from 1 to "+itoa(callsign.MaxEventPage))
		}
		f.Limit = n
	}
	if v, ok := p["cursor"]; ok {
		for i := 0; i < len(v); i++ {
			if v[i] <= ' ' || v[i] >= 0x7f {
				return f, badParam("cursor", "the next_cursor of a previous page, as it was returned")
			}
		}
		f.Cursor = v
	}
	return f, nil
}

// parseStatus parses an exact status (401) or a class (4xx).
func parseStatus(v string) (code, class int, err error) {
	if len(v) == 3 && '1' <= v[0] && v[0] <= '5' {
		if v[1:] == "xx" || v[1:] == "XX" {
			return 0, int(v[0] - '0'), nil
		}
		if n, err := strconv.Atoi(v); err == nil && n >= 100 && n <= 599 {
			return n, 0, nil
		}
	}
	return 0, 0, badParam("status", "a status code from 100 to 599 (401) or a class (4xx)")
}

// parseRange parses from and to (RFC 3339); from must be before to.
func parseRange(p map[string]string) (from, to time.Time, err error) {
	for _, t := range [...]struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		if v, ok := p[t.name]; ok {
			tm, err := time.Parse(time.RFC3339, v)
			if err != nil && strings.Contains(v, " ") {
				// An offset's "+" sent unescaped arrives as a space; no
				// RFC 3339 time has one, so the intent is unambiguous.
				tm, err = time.Parse(time.RFC3339, strings.ReplaceAll(v, " ", "+"))
			}
			if err != nil {
				return from, to, badParam(t.name, "an RFC 3339 time such as 2026-01-02T15:04:05Z")
			}
			*t.dst = tm.UTC()
		}
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return from, to, badParam("from", "before to")
	}
	return from, to, nil
}

// parseMetricsQuery parses the parameters of GET /v2/metrics (AppID is
// left for the caller). to defaults to now, from to DefaultMetricsWindow
// before to.
func parseMetricsQuery(raw string, now time.Time) (callsign.MetricsQuery, error) {
	var q callsign.MetricsQuery
	p, err := parseParams(raw, "app_id", "group_by", "from", "to", "interval", "limit", "order_by")
	if err != nil {
		return q, err
	}
	switch v := p["group_by"]; v {
	case callsign.GroupRoute, callsign.GroupUserID, callsign.GroupCompany, callsign.GroupStatus, callsign.GroupAuthError:
		q.GroupBy = v
	case "":
		return q, callsign.Errorf(EMissingParameter, "The parameter \"group_by\" is required: route, user_id, company_id, status or auth_error.")
	default:
		return q, badParam("group_by", "route, user_id, company_id, status or auth_error")
	}
	if q.From, q.To, err = parseRange(p); err != nil {
		return q, err
	}
	if q.To.IsZero() {
		q.To = now.UTC()
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-DefaultMetricsWindow)
	}
	if !q.From.Before(q.To) {
		return q, badParam("from", "before to (to defaults to now)")
	}
	if v, ok := p["interval"]; ok {
		d, err := parseInterval(v)
		if err != nil {
			return q, err
		}
		// Users are rolled up by the hour, the rest by the minute; buckets
		// are aligned to multiples of the interval since the Unix epoch.
		grain := time.Minute
		if q.GroupBy == callsign.GroupUserID || q.GroupBy == callsign.GroupCompany {
			grain = time.Hour
		}
		if d%grain != 0 {
			return q, badParam("interval", "a whole number of hours for group_by "+q.GroupBy+" (users are rolled up by the hour)")
		}
		iv, g := int64(d/time.Second), int64(grain/time.Second)
		first := floorDiv(q.From.Unix(), iv) * iv
		last := (floorDiv(q.To.Unix()+g-1, g)) * g
		if n := floorDiv(last-first+iv-1, iv); n > MaxSeriesBuckets {
			return q, badParam("interval", "large enough for at most "+itoa(MaxSeriesBuckets)+" buckets between from and to")
		}
		q.Interval = d
	}
	if v, ok := p["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > callsign.MaxMetricGroups {
			return q, badParam("limit", "an integer from 1 to "+itoa(callsign.MaxMetricGroups))
		}
		q.Limit = n
	}
	switch v := p["order_by"]; v {
	case "count", "errors":
		q.OrderBy = v
	case "":
		q.OrderBy = "count"
	default:
		return q, badParam("order_by", "count or errors")
	}
	return q, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// parseInterval parses a series interval: a Go duration ("5m", "1h") or
// a number of days ("1d"), a whole number of minutes (the rollups' grain)
// of at most 366 days.
func parseInterval(v string) (time.Duration, error) {
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(v, "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		if n < 1 || n > 366 {
			err = strconv.ErrRange
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(v)
	}
	if err != nil || d < time.Minute || d > 366*24*time.Hour || d%time.Minute != 0 {
		return 0, badParam("interval", "a whole number of minutes such as 1m, 5m, 1h or 1d")
	}
	return d, nil
}
