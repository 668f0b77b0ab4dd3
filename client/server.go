package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// ServerTokenSource obtains server ingest tokens from the callsign
// server's POST /v2/tokens/server, authenticated with the app's secret
// token, and caches each until RefreshBefore its expiry. It is what a
// server-side shipper (capture.Shipper) uses: events sent with these tokens
// may attribute verified (user_id) and API-asserted (api_user_id) users,
// which events sent with an anonymous token from an UpgradeSource may not.
//
// The secret token never leaves for anywhere but Server; keep it out of
// clients. ServerTokenSource is safe for concurrent use; concurrent callers
// share one request. It works with BearerTransport, which invalidates the
// cached token after a 401.
type ServerTokenSource struct {
	// Server is the callsign server's base URL.
	Server string
	// SecretToken is one of the app's secret tokens (cs_sec_...).
	SecretToken string
	// HTTPClient sends the requests; a client with a 10 s timeout if nil.
	HTTPClient *http.Client
	// RefreshBefore is how long before expiry a token is replaced; one
	// minute if zero.
	RefreshBefore time.Duration
	// Now is the clock; time.Now if nil.
	Now func() time.Time

	cache tokenCache
}

// Token implements TokenSource. Errors from the server are *APIError.
func (s *ServerTokenSource) Token(ctx context.Context) (string, error) {
	return s.cache.get(s.Now, s.RefreshBefore, func() (string, time.Time, error) {
		if s.Server == "" || s.SecretToken == "" {
			return "", time.Time{}, errors.New("client: ServerTokenSource needs Server and SecretToken")
		}
		tok, exp, err := requestToken(ctx, s.HTTPClient, strings.TrimSuffix(s.Server, "/")+"/v2/tokens/server", s.SecretToken, []byte("{}"))
		if err != nil {
			return "", time.Time{}, fmt.Errorf("client: server token: %w", err)
		}
		return tok, exp, nil
	})
}

// Invalidate drops the cached token, so that the next Token asks the
// server again (after it refused the token, for instance).
func (s *ServerTokenSource) Invalidate() { s.cache.invalidate() }

// requestToken POSTs body to url with an optional bearer and decodes a
// {"appAccessToken", "expiresAt"} answer.
func requestToken(ctx context.Context, hc *http.Client, url, bearer string, body []byte) (string, time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return "", time.Time{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", time.Time{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", time.Time{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return "", time.Time{}, decodeError(resp.StatusCode, data)
	}
	var out struct {
		AppAccessToken string `json:"appAccessToken"`
		ExpiresAt      string `json:"expiresAt"`
	}
	if err := json.Unmarshal(data, &out); err != nil || out.AppAccessToken == "" {
		return "", time.Time{}, errors.New("the server's answer has no appAccessToken")
	}
	exp, err := time.Parse(time.RFC3339, out.ExpiresAt)
	if err != nil {
		return "", time.Time{}, errors.New("the server's expiresAt is not RFC 3339")
	}
	return out.AppAccessToken, exp, nil
}
