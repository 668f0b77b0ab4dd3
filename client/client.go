// Package client is callsign's Go SDK for API clients: an UpgradeSource
// that obtains app access tokens from the callsign server (upgrading the
// app's public token, optionally bound to a verified user with the secret
// token) and refreshes them before they expire, and a BearerTransport that
// puts the current token on every request.
//
// The HMAC and Ed25519 request signers are in their scheme packages
// (hmacsig.Transport, reqtoken.Transport); all of them are
// http.RoundTrippers usable as http.Client{Transport: ...}.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// TokenSource returns a bearer token to send.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// StaticToken is a TokenSource of one fixed token.
type StaticToken string

// Token implements TokenSource.
func (s StaticToken) Token(context.Context) (string, error) { return string(s), nil }

// APIError is an error answer of the callsign server.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("callsign: %s (%d %s)", e.Message, e.Status, e.Code)
}

// UpgradeSource obtains app access tokens from the callsign server's
// POST /v2/tokens/upgrade and caches each until RefreshBefore its expiry.
// Without SecretToken the tokens are anonymous (what a browser or mobile
// SDK does); with SecretToken and UserID they are bound to that verified
// user (what a backend does after authenticating its own user). It is safe
// for concurrent use; concurrent callers share one upgrade.
type UpgradeSource struct {
	// Server is the callsign server's base URL.
	Server      string
	PublicToken string
	SecretToken string
	UserID      string
	// HTTPClient sends the upgrades; a client with a 10 s timeout if nil.
	HTTPClient *http.Client
	// RefreshBefore is how long before expiry a token is replaced; one
	// minute if zero.
	RefreshBefore time.Duration
	// Now is the clock; time.Now if nil.
	Now func() time.Time

	cache tokenCache
}

// Token implements TokenSource.
func (s *UpgradeSource) Token(ctx context.Context) (string, error) {
	return s.cache.get(s.Now, s.RefreshBefore, func() (string, time.Time, error) { return s.upgrade(ctx) })
}

// Invalidate drops the cached token, so that the next Token upgrades again
// (after the server refused it, for instance).
func (s *UpgradeSource) Invalidate() { s.cache.invalidate() }

func (s *UpgradeSource) upgrade(ctx context.Context) (string, time.Time, error) {
	if s.Server == "" || s.PublicToken == "" {
		return "", time.Time{}, errors.New("client: UpgradeSource needs Server and PublicToken")
	}
	if (s.SecretToken == "") != (s.UserID == "") {
		return "", time.Time{}, errors.New("client: UpgradeSource needs both SecretToken and UserID to bind a user, or neither")
	}
	body := map[string]string{"public_token": s.PublicToken}
	if s.UserID != "" {
		body["user_id"] = s.UserID
	}
	b, _ := json.Marshal(body)
	tok, exp, err := requestToken(ctx, s.HTTPClient, strings.TrimSuffix(s.Server, "/")+"/v2/tokens/upgrade", s.SecretToken, b)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("client: token upgrade: %w", err)
	}
	return tok, exp, nil
}

func decodeError(status int, data []byte) error {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error.Code != "" {
		return &APIError{Status: status, Code: e.Error.Code, Message: e.Error.Message}
	}
	return &APIError{Status: status, Code: "unknown", Message: http.StatusText(status)}
}

// BearerTransport is an http.RoundTripper that sends Source's token as
// "Authorization: Bearer" with every request through Base
// (http.DefaultTransport if nil). If the server answers 401 and Source has
// an Invalidate method (*UpgradeSource, *ServerTokenSource), it invalidates
// the cached token, gets a new one and retries the request once (when its
// body can be replayed). It does not modify the caller's request.
type BearerTransport struct {
	Base   http.RoundTripper
	Source TokenSource
}

// RoundTrip implements http.RoundTripper.
func (t *BearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	send := func() (*http.Response, error) {
		tok, err := t.Source.Token(req.Context())
		if err != nil {
			return nil, err
		}
		r := req.Clone(req.Context())
		r.Header.Set("Authorization", "Bearer "+tok)
		return base.RoundTrip(r)
	}
	resp, err := send()
	up, refreshable := t.Source.(interface{ Invalidate() })
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !refreshable || (req.Body != nil && req.Body != http.NoBody && req.GetBody == nil) {
		return resp, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	up.Invalidate()
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = body
	}
	return send()
}
