package main

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// queryFlags are the credentials of the query commands.
type queryFlags struct {
	app, secret string
}

func (q *queryFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&q.app, "app", "", "app id (required with an admin --token; with --secret it must be the secret's app)")
	cmd.Flags().StringVar(&q.secret, "secret", os.Getenv("CALLSIGN_SECRET_TOKEN"), "the app's secret token (env CALLSIGN_SECRET_TOKEN; prefer it to the flag)")
}

// bearer picks the credential: the admin token when --app names an app
// and an admin token is set, else the secret token, else the admin token
// (which then needs --app).
func (q *queryFlags) bearer(g *globals) (string, error) {
	switch {
	case q.app != "" && g.token != "":
		return g.token, nil
	case q.secret != "":
		return q.secret, nil
	case g.token != "":
		return "", fmt.Errorf("--app is required with an admin token")
	}
	return "", fmt.Errorf("no credentials: pass --secret (or set CALLSIGN_SECRET_TOKEN) for the app's own data, or an admin --token with --app")
}

// parseWhen parses a --from or --to value: an RFC 3339 time, or a
// duration ("90m", "24h", "7d") meaning that long before now.
func parseWhen(flag, v string, now time.Time) (string, error) {
	if v == "" {
		return "", nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC().Format(time.RFC3339Nano), nil
	}
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(v, "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		d = time.Duration(n) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(v)
	}
	if err != nil || d < 0 {
		return "", fmt.Errorf("%s %q is neither an RFC 3339 time nor a duration such as 24h or 7d", flag, v)
	}
	return now.Add(-d).UTC().Format(time.RFC3339Nano), nil
}

var eventCols = []string{"time", "method", "route", "status", "latency_ms", "user_id", "client_user_id", "scheme", "auth_error", "id"}

func newEventsCmd(g *globals) *cobra.Command {
	var q queryFlags
	var user, clientUser, apiUser, route, method, status, authError, from, to, cursor string
	var limit int
	var all bool
	cmd := &cobra.Command{
		Use:   "events",
		Short: "List an app's API calls, newest first (GET /v2/events)",
		Long: `List an app's events, newest first, with filters.

Authenticate with the app's secret token (--secret or $CALLSIGN_SECRET_TOKEN),
or with an admin --token and --app. --from and --to take an RFC 3339 time
or a duration before now (24h, 7d). One page is printed, with the cursor of
the next on stderr; --all follows the cursors to the end.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bearer, err := q.bearer(g)
			if err != nil {
				return err
			}
			now := time.Now()
			v := url.Values{}
			for _, p := range []struct{ k, v string }{
				{"app_id", q.app}, {"user_id", user}, {"client_user_id", clientUser}, {"api_user_id", apiUser},
				{"route", route}, {"method", method}, {"status", status}, {"auth_error", authError}, {"cursor", cursor},
			} {
				if p.v != "" {
					v.Set(p.k, p.v)
				}
			}
			for _, p := range []struct{ flag, k, v string }{{"--from", "from", from}, {"--to", "to", to}} {
				t, err := parseWhen(p.flag, p.v, now)
				if err != nil {
					return err
				}
				if t != "" {
					v.Set(p.k, t)
				}
			}
			if limit != 0 {
				v.Set("limit", strconv.Itoa(limit))
			}
			var events []any
			var next string
			for {
				out, err := apiCall(cmd.Context(), g, "GET", "/v2/events?"+v.Encode(), bearer, nil)
				if err != nil {
					return err
				}
				m, _ := out.(map[string]any)
				page, _ := m["events"].([]any)
				events = append(events, page...)
				next, _ = m["next_cursor"].(string)
				if !all || next == "" {
					break
				}
				v.Set("cursor", next)
			}
			res := map[string]any{"events": events}
			if events == nil {
				res["events"] = []any{}
			}
			if next != "" {
				res["next_cursor"] = next
				if !g.json {
					fmt.Fprintf(cmd.ErrOrStderr(), "more: --cursor %s (or --all)\n", next)
				}
			}
			return printOut(cmd, g, res, "events", eventCols)
		},
	}
	q.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&user, "user", "", "verified user id")
	fl.StringVar(&clientUser, "client-user", "", "client-asserted user id")
	fl.StringVar(&apiUser, "api-user", "", "user id asserted by the API")
	fl.StringVar(&route, "route", "", `route, as recorded ("GET /notes/{id}")`)
	fl.StringVar(&method, "method", "", "HTTP method")
	fl.StringVar(&status, "status", "", "status code (401) or class (4xx)")
	fl.StringVar(&authError, "auth-error", "", "failure code of refused authentications (expired, bad_signature, ...)")
	fl.StringVar(&from, "from", "", "oldest time (RFC 3339, or a duration before now: 24h, 7d)")
	fl.StringVar(&to, "to", "", "time to stop before (RFC 3339, or a duration before now)")
	fl.IntVar(&limit, "limit", 0, "events per page (server default 100, at most 1000)")
	fl.StringVar(&cursor, "cursor", "", "continue after a previous page (its next_cursor)")
	fl.BoolVar(&all, "all", false, "follow the cursors and print every matching event")
	return cmd
}

var metricsCols = []string{"key", "count", "errors", "error_rate", "p50_ms", "p95_ms", "p99_ms", "request_bytes", "response_bytes"}

func newMetricsCmd(g *globals) *cobra.Command {
	var q queryFlags
	var groupBy, from, to, interval, orderBy string
	var limit int
	cmd := &cobra.Command{
		Use:   "metrics",
		Short: "Print an app's metrics grouped by route, user, company, status or failure code (GET /v2/metrics)",
		Long: `Print an app's call counts, error rates, latency percentiles and bytes,
grouped by --group-by (route, user_id, company_id, status, auth_error), over
--from..--to (default: the last 24 hours), optionally as a series of
--interval buckets (one row per group and bucket). --limit and --order-by
(count or errors) give the top N, e.g. the 10 users with the most errors.

Authenticate as for callsign events.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if groupBy == "" {
				return fmt.Errorf("--group-by is required: route, user_id, company_id, status or auth_error")
			}
			bearer, err := q.bearer(g)
			if err != nil {
				return err
			}
			now := time.Now()
			v := url.Values{"group_by": {groupBy}}
			for _, p := range []struct{ k, v string }{{"app_id", q.app}, {"interval", interval}, {"order_by", orderBy}} {
				if p.v != "" {
					v.Set(p.k, p.v)
				}
			}
			for _, p := range []struct{ flag, k, v string }{{"--from", "from", from}, {"--to", "to", to}} {
				t, err := parseWhen(p.flag, p.v, now)
				if err != nil {
					return err
				}
				if t != "" {
					v.Set(p.k, t)
				}
			}
			if limit != 0 {
				v.Set("limit", strconv.Itoa(limit))
			}
			out, err := apiCall(cmd.Context(), g, "GET", "/v2/metrics?"+v.Encode(), bearer, nil)
			if err != nil {
				return err
			}
			if g.json || interval == "" {
				return printOut(cmd, g, out, "groups", metricsCols)
			}
			// A series: one row per group and bucket.
			m, _ := out.(map[string]any)
			groups, _ := m["groups"].([]any)
			var rows []any
			for _, gr := range groups {
				gm, _ := gr.(map[string]any)
				series, _ := gm["series"].([]any)
				for _, b := range series {
					bm, _ := b.(map[string]any)
					row := map[string]any{"key": gm["key"]}
					for k, v := range bm {
						row[k] = v
					}
					rows = append(rows, row)
				}
			}
			return printOut(cmd, g, map[string]any{"rows": rows}, "rows", append([]string{"key", "start"}, metricsCols[1:]...))
		},
	}
	q.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&groupBy, "group-by", "", "route, user_id, company_id, status or auth_error (required)")
	fl.StringVar(&from, "from", "", "start (RFC 3339, or a duration before now: 24h, 7d; default 24h before --to)")
	fl.StringVar(&to, "to", "", "end (RFC 3339, or a duration before now; default now)")
	fl.StringVar(&interval, "interval", "", "bucket size of a time series (5m, 1h, 1d)")
	fl.IntVar(&limit, "limit", 0, "keep the N largest groups")
	fl.StringVar(&orderBy, "order-by", "", "count (default) or errors")
	return cmd
}
