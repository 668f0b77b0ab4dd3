// Command callsign runs the callsign server (`callsign serve`) and talks to
// it: apps, secrets, admin tokens, signing keys, token upgrades, and the
// events and metrics of an app. Run
// `callsign --help` for the commands.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		// One line, as promised: the reason, without a stack or usage.
		fmt.Fprintln(os.Stderr, "callsign: "+strings.ReplaceAll(err.Error(), "\n", " "))
		os.Exit(1)
	}
}

// globals are the flags every API command shares.
type globals struct {
	server string
	token  string
	json   bool
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "callsign",
		Short:         "Self-hosted API identity and per-user API analytics",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", envOr("CALLSIGN_SERVER", "http://127.0.0.1:8080"), "callsign server base URL (env CALLSIGN_SERVER)")
	pf.StringVar(&g.token, "token", os.Getenv("CALLSIGN_ADMIN_TOKEN"), "admin token for the admin API (env CALLSIGN_ADMIN_TOKEN)")
	pf.BoolVar(&g.json, "json", false, "print JSON instead of tables")
	root.AddCommand(newServeCmd(), newAdminCmd(g), newAppsCmd(g), newSecretsCmd(g), newKeysCmd(g), newTokenCmd(g),
		newRequestCmd(g), newExplainCmd(), newEventsCmd(g), newMetricsCmd(g))
	return root
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
