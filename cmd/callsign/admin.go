package main

import (
	"fmt"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/httpapi"
	"github.com/spf13/cobra"
)

// The admin commands work on the data directory directly, so that the first
// admin token can be made without any credential (whoever can read the data
// directory owns the server anyway) and whether or not a server runs on it.
func newAdminCmd(g *globals) *cobra.Command {
	var data, storeURL string
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Administer a data directory directly (admin tokens)",
	}
	cmd.PersistentFlags().StringVar(&data, "data", "./callsign-data", "data directory of the embedded store")
	cmd.PersistentFlags().StringVar(&storeURL, "store", "", "external store URL (reserved)")

	var name string
	token := &cobra.Command{
		Use:   "token",
		Short: "Create an admin API token and print it (only it) on stdout",
		Long: `Create an admin API token and print it on stdout, followed by a newline
and nothing else. The token is stored hashed: it is shown this once.
Works whether or not a server is running on the same data directory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := httpapi.ValidateName(name); err != nil {
				return err
			}
			st, err := openStore(cmd.Context(), storeURL, data)
			if err != nil {
				return err
			}
			defer st.Close()
			t, tok := callsign.NewAdminToken(name, time.Now())
			if err := st.CreateAdminToken(cmd.Context(), t); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	token.Flags().StringVar(&name, "name", "admin", "a name to recognise the token by")

	tokens := &cobra.Command{Use: "tokens", Short: "List and revoke admin tokens"}
	tokens.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List admin tokens (never the tokens themselves)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openStore(cmd.Context(), storeURL, data)
			if err != nil {
				return err
			}
			defer st.Close()
			ts, err := st.AdminTokens(cmd.Context())
			if err != nil {
				return err
			}
			rows := make([]map[string]any, 0, len(ts))
			for _, t := range ts {
				rows = append(rows, map[string]any{"id": t.ID, "name": t.Name, "created_at": t.CreatedAt, "last_used_at": t.LastUsedAt, "revoked_at": t.RevokedAt})
			}
			return printOut(cmd, g, map[string]any{"admin_tokens": rows}, "admin_tokens", []string{"id", "name", "created_at", "last_used_at", "revoked_at"})
		},
	}, &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an admin token; it is refused from the next request on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openStore(cmd.Context(), storeURL, data)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.RevokeAdminToken(cmd.Context(), args[0], time.Now()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "revoked %s\n", args[0])
			return nil
		},
	})
	cmd.AddCommand(token, tokens)
	return cmd
}
