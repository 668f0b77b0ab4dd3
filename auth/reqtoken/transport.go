package reqtoken

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"net/http"
	"time"
)

// Transport is an http.RoundTripper that signs each request with a fresh
// request token: it reads the body (buffering it, so a streamed body is
// held in memory), signs method + URL.RequestURI() + body, and sends a
// clone of the request with "Authorization: Bearer <token>" and, when the
// request has none, an X-Request-Id equal to the token's jti. The caller's
// request is not modified.
//
// The request-target signed is the one net/http sends to a server
// directly. Through a plain-HTTP forward proxy the target is sent in
// absolute form and no longer matches; use HTTPS (a CONNECT tunnel) there.
type Transport struct {
	// Base sends the signed requests (http.DefaultTransport if nil).
	Base http.RoundTripper
	// UserID and SessionID are the uid and sid claims.
	UserID, SessionID string
	// Key is the session's private key (see ParsePrivateKey).
	Key ed25519.PrivateKey
	// Lifetime of each token (DefaultLifetime if zero).
	Lifetime time.Duration
	// Scope is the scp claim (DefaultScope if empty).
	Scope string
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, errors.Join(errors.New("reqtoken: read request body"), err)
		}
		body = b
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	opts := []SignOption{}
	if t.Lifetime != 0 {
		opts = append(opts, WithLifetime(t.Lifetime))
	}
	if t.Scope != "" {
		opts = append(opts, WithScope(t.Scope))
	}
	if t.Now != nil {
		opts = append(opts, WithClock(t.Now))
	}
	jti := newUUID()
	opts = append(opts, WithID(jti))
	tok, err := Sign(t.UserID, t.SessionID, t.Key, method, req.URL.RequestURI(), body, opts...)
	if err != nil {
		return nil, err
	}
	r := req.Clone(req.Context())
	if body != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		r.ContentLength = int64(len(body))
	}
	r.Header.Set("Authorization", "Bearer "+tok)
	if r.Header.Get("X-Request-Id") == "" {
		r.Header.Set("X-Request-Id", jti)
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}
