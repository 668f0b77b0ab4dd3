package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/callsignhq/callsign/auth/apptoken"
	"github.com/spf13/cobra"
)

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Upgrade a public token to an app access token, and verify access tokens"}

	var public, secret, user string
	upgrade := &cobra.Command{
		Use:   "upgrade",
		Short: "Get an app access token: anonymous, or bound to --user with the app's secret token",
		Long: `Call POST /v2/tokens/upgrade.

Without --secret the token is anonymous (what an SDK does). With --secret
(or $CALLSIGN_SECRET_TOKEN) and --user, it is bound to that verified user
id (what a backend does after authenticating its own user).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if public == "" {
				return fmt.Errorf("--public is required")
			}
			body := map[string]any{"public_token": public}
			if cmd.Flags().Changed("user") {
				body["user_id"] = user
			}
			v, err := apiCall(cmd.Context(), g, "POST", "/v2/tokens/upgrade", secret, body)
			if err != nil {
				return err
			}
			return printOut(cmd, g, v, "", []string{"appAccessToken", "expiresAt", "userId"})
		},
	}
	upgrade.Flags().StringVar(&public, "public", os.Getenv("CALLSIGN_PUBLIC_TOKEN"), "the app's public token (env CALLSIGN_PUBLIC_TOKEN)")
	upgrade.Flags().StringVar(&secret, "secret", os.Getenv("CALLSIGN_SECRET_TOKEN"), "the app's secret token (env CALLSIGN_SECRET_TOKEN; prefer it to the flag)")
	upgrade.Flags().StringVar(&user, "user", "", "verified user id to bind the token to (needs --secret)")

	var issuer, jwksURL string
	verify := &cobra.Command{
		Use:   "verify TOKEN",
		Short: "Verify an app access token offline against the server's JWKS and print its claims",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if jwksURL == "" {
				jwksURL = strings.TrimSuffix(g.server, "/") + "/.well-known/jwks.json"
			}
			if issuer == "" {
				issuer = strings.TrimSuffix(g.server, "/")
			}
			keys, err := fetchJWKS(cmd.Context(), jwksURL)
			if err != nil {
				return err
			}
			c, err := apptoken.NewVerifier(keys, issuer, nil).Verify(strings.TrimSpace(args[0]))
			if err != nil {
				return err
			}
			out := map[string]any{"app_id": c.AppID, "user_id": c.UserID, "scope": c.Scope, "iss": c.Issuer, "jti": c.ID,
				"iat": c.IssuedAt.UTC().Format(time.RFC3339), "exp": c.ExpiresAt.UTC().Format(time.RFC3339)}
			return printOut(cmd, g, out, "", []string{"app_id", "user_id", "scope", "iss", "iat", "exp", "jti"})
		},
	}
	verify.Flags().StringVar(&issuer, "issuer", "", "expected iss (default: --server)")
	verify.Flags().StringVar(&jwksURL, "jwks", "", "JWKS URL (default: --server + /.well-known/jwks.json)")

	cmd.AddCommand(upgrade, verify)
	return cmd
}

func fetchJWKS(ctx context.Context, u string) (*apptoken.JWKS, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %v", unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch JWKS: %s answered %s", u, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	return apptoken.ParseJWKS(data)
}
