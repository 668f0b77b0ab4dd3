package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// apiCall sends a request to the callsign server and decodes the JSON
// answer into a generic value. An error answer becomes a one-line error
// with the server's code and message.
func apiCall(ctx context.Context, g *globals, method, path, bearer string, body any) (any, error) {
	base, err := url.Parse(g.server)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("--server %q is not an http(s) URL", g.server)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(g.server, "/")+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the callsign server at %s: %v", g.server, unwrapURLError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error.Code != "" {
			return nil, fmt.Errorf("%s (%d %s)", e.Error.Message, resp.StatusCode, e.Error.Code)
		}
		return nil, fmt.Errorf("the server answered %s", resp.Status)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("the server's answer is not JSON: %v", err)
	}
	return v, nil
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// adminCall is apiCall with the admin token, which it requires.
func adminCall(cmd *cobra.Command, g *globals, method, path string, body any) (any, error) {
	if g.token == "" {
		return nil, fmt.Errorf("no admin token: pass --token or set CALLSIGN_ADMIN_TOKEN (create one with `callsign admin token --data DIR`)")
	}
	return apiCall(cmd.Context(), g, method, path, g.token, body)
}

// printOut prints v as indented JSON with --json, else as a table of the
// objects under listKey (or of v itself when listKey is "") with columns cols.
func printOut(cmd *cobra.Command, g *globals, v any, listKey string, cols []string) error {
	out := cmd.OutOrStdout()
	if g.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	}
	var rows []any
	if listKey == "" {
		rows = []any{v}
	} else if m, ok := v.(map[string]any); ok {
		rows, _ = m[listKey].([]any)
		if rows == nil {
			if rs, ok := m[listKey].([]map[string]any); ok {
				for _, r := range rs {
					rows = append(rows, r)
				}
			}
		}
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(cols, "\t")))
	for _, r := range rows {
		m, _ := r.(map[string]any)
		cells := make([]string, len(cols))
		for i, c := range cols {
			cells[i] = cell(m[c])
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case *time.Time:
		if x == nil {
			return "-"
		}
		return x.Format(time.RFC3339)
	case time.Time:
		return x.Format(time.RFC3339)
	case []any:
		parts := make([]string, len(x))
		for i, p := range x {
			parts[i] = cell(p)
		}
		if len(parts) == 0 {
			return "-"
		}
		return strings.Join(parts, ",")
	case float64:
		return fmt.Sprint(x)
	}
	return fmt.Sprint(v)
}

var appCols = []string{"id", "name", "public_token", "access_token_ttl_seconds", "allowed_origins", "event_retention_days", "rollup_retention_days", "created_at", "revoked_at"}
var secretCols = []string{"id", "app_id", "name", "created_at", "last_used_at", "revoked_at"}

func newAppsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "apps", Short: "Create, list, show, update and revoke apps (admin API)"}
	var ttl time.Duration
	var origins []string
	var eventDays, rollupDays int
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an app; prints its public token and its first secret token (shown once)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{"name": args[0]}
			if ttl != 0 {
				body["access_token_ttl_seconds"] = int64(ttl / time.Second)
			}
			if origins != nil {
				body["allowed_origins"] = origins
			}
			if cmd.Flags().Changed("event-retention-days") {
				body["event_retention_days"] = eventDays
			}
			if cmd.Flags().Changed("rollup-retention-days") {
				body["rollup_retention_days"] = rollupDays
			}
			v, err := adminCall(cmd, g, "POST", "/v2/apps", body)
			if err != nil {
				return err
			}
			if !g.json {
				fmt.Fprintln(cmd.ErrOrStderr(), "The secret token is shown only now: store it safely.")
			}
			return printOut(cmd, g, v, "", []string{"id", "name", "public_token", "secret_token"})
		},
	}
	create.Flags().DurationVar(&ttl, "access-token-ttl", 0, "lifetime of the app's access tokens (default 24h)")
	create.Flags().StringSliceVar(&origins, "origin", nil, "browser origin allowed to upgrade tokens (repeatable)")
	create.Flags().IntVar(&eventDays, "event-retention-days", 0, "days raw events are kept (default 30)")
	create.Flags().IntVar(&rollupDays, "rollup-retention-days", 0, "days metric rollups are kept (default 400)")

	var uname string
	var uttl time.Duration
	var uorigins []string
	update := &cobra.Command{
		Use:   "update ID",
		Short: "Change an app's name, access token lifetime, allowed origins or retentions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{}
			if cmd.Flags().Changed("name") {
				body["name"] = uname
			}
			if cmd.Flags().Changed("access-token-ttl") {
				body["access_token_ttl_seconds"] = int64(uttl / time.Second)
			}
			if cmd.Flags().Changed("origin") {
				body["allowed_origins"] = uorigins
			}
			if cmd.Flags().Changed("event-retention-days") {
				body["event_retention_days"] = eventDays
			}
			if cmd.Flags().Changed("rollup-retention-days") {
				body["rollup_retention_days"] = rollupDays
			}
			v, err := adminCall(cmd, g, "PATCH", "/v2/apps/"+url.PathEscape(args[0]), body)
			if err != nil {
				return err
			}
			return printOut(cmd, g, v, "", appCols)
		},
	}
	update.Flags().StringVar(&uname, "name", "", "new name")
	update.Flags().DurationVar(&uttl, "access-token-ttl", 0, "new access token lifetime")
	update.Flags().StringSliceVar(&uorigins, "origin", nil, "allowed origins (replaces the list; repeatable)")
	update.Flags().IntVar(&eventDays, "event-retention-days", 0, "days raw events are kept (1 to 3650)")
	update.Flags().IntVar(&rollupDays, "rollup-retention-days", 0, "days metric rollups are kept (1 to 3650)")

	cmd.AddCommand(create, update, &cobra.Command{
		Use:   "list",
		Short: "List apps",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := adminCall(cmd, g, "GET", "/v2/apps", nil)
			if err != nil {
				return err
			}
			return printOut(cmd, g, v, "apps", appCols)
		},
	}, &cobra.Command{
		Use:   "show ID",
		Short: "Show an app with its public token",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := adminCall(cmd, g, "GET", "/v2/apps/"+url.PathEscape(args[0]), nil)
			if err != nil {
				return err
			}
			return printOut(cmd, g, v, "", appCols)
		},
	}, &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an app: every token of it is refused from the next request on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := adminCall(cmd, g, "DELETE", "/v2/apps/"+url.PathEscape(args[0]), nil)
			if err == nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "revoked %s\n", args[0])
			}
			return err
		},
	})
	return cmd
}

func newSecretsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "secrets", Short: "Create, list and revoke an app's secret tokens (admin API)"}
	cmd.AddCommand(&cobra.Command{
		Use:   "create APP NAME",
		Short: "Create a secret token for APP; it is printed this once",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := adminCall(cmd, g, "POST", "/v2/apps/"+url.PathEscape(args[0])+"/secrets", map[string]any{"name": args[1]})
			if err != nil {
				return err
			}
			return printOut(cmd, g, v, "", []string{"id", "name", "secret_token"})
		},
	}, &cobra.Command{
		Use:   "list APP",
		Short: "List APP's secrets (never the tokens)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := adminCall(cmd, g, "GET", "/v2/apps/"+url.PathEscape(args[0])+"/secrets", nil)
			if err != nil {
				return err
			}
			return printOut(cmd, g, v, "secrets", secretCols)
		},
	}, &cobra.Command{
		Use:   "revoke APP SECRET_ID",
		Short: "Revoke a secret; it is refused from the next request on",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := adminCall(cmd, g, "DELETE", "/v2/apps/"+url.PathEscape(args[0])+"/secrets/"+url.PathEscape(args[1]), nil)
			if err == nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "revoked %s\n", args[1])
			}
			return err
		},
	})
	return cmd
}

func newKeysCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "List and rotate access-token signing keys (admin API)"}
	cols := []string{"kid", "created_at", "retired_at"}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List published signing keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := adminCall(cmd, g, "GET", "/v2/keys", nil)
			if err != nil {
				return err
			}
			return printOut(cmd, g, v, "keys", cols)
		},
	}, &cobra.Command{
		Use:   "rotate",
		Short: "Make a new key sign access tokens; old keys keep verifying until their tokens expire",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := adminCall(cmd, g, "POST", "/v2/keys/rotate", nil)
			if err != nil {
				return err
			}
			return printOut(cmd, g, v, "", cols)
		},
	})
	return cmd
}
