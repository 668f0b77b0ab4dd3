package callsign

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"
)

// Scheme names how a request was authenticated.
type Scheme string

// Schemes. SchemeNone is an anonymous request (optional authentication
// with no credentials).
const (
	SchemeNone         Scheme = ""
	SchemeHMAC         Scheme = "hmac"     // go-hmacauth compatible request signature
	SchemeRequestToken Scheme = "reqtoken" // Ed25519 per-request token (Mixin style)
	SchemeJWT          Scheme = "jwt"      // JWT bearer token from the API's own issuer
	SchemeAppToken     Scheme = "apptoken" // callsign app access token
)

// Principal is who made a request, whatever the scheme. It is put in the
// request's context by the auth middleware; handlers get it with
// PrincipalFrom.
//
// UserID and ClientUserID are never mixed: UserID is verified (it comes
// from a token callsign minted or a signature or token that was checked);
// ClientUserID is whatever the client asserted (the X-Client-User-Id
// header) and is never promoted to UserID.
type Principal struct {
	// AppID is the callsign app of an app access token, or the app the
	// middleware is configured for; empty when not known.
	AppID  string
	Scheme Scheme
	// KeyID identifies the credential: the HMAC API key, the request
	// token's session id, the JWT's kid, the access token's kid.
	KeyID string
	// UserID is the verified user id; empty when none was verified.
	UserID string
	// ClientUserID is the unverified, client-asserted user id.
	ClientUserID string
	// RequestID is the request's X-Request-Id (the client's if sane, else
	// generated).
	RequestID string
	// Scopes are the scopes the credential grants (a request token's scp),
	// nil when the scheme has none.
	Scopes []string
	// ExpiresAt is when the credential stops being valid; zero if unknown.
	ExpiresAt time.Time
	// Claims holds the claims or metadata that matter beyond the fields
	// above (a JWT's iss, a token's jti); nil when there are none.
	Claims map[string]any
}

// Anonymous reports whether the request carried no verified credential.
func (p *Principal) Anonymous() bool { return p == nil || p.Scheme == SchemeNone }

// LogValue implements slog.LogValuer. It logs the verified and the
// client-asserted user ids under different keys (user_id, client_user_id)
// so that no log reader can confuse them, and never logs claims.
func (p *Principal) LogValue() slog.Value {
	if p == nil {
		return slog.GroupValue()
	}
	attrs := []slog.Attr{slog.String("scheme", string(p.Scheme))}
	if p.AppID != "" {
		attrs = append(attrs, slog.String("app_id", p.AppID))
	}
	if p.KeyID != "" {
		attrs = append(attrs, slog.String("key_id", p.KeyID))
	}
	if p.UserID != "" {
		attrs = append(attrs, slog.String("user_id", p.UserID))
	}
	if p.ClientUserID != "" {
		attrs = append(attrs, slog.String("client_user_id", p.ClientUserID))
	}
	return slog.GroupValue(attrs...)
}

type principalKey struct{}

// WithPrincipal returns a copy of ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the Principal the auth middleware put in ctx, and
// false when there is none (the middleware did not run).
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}

// ValidRequestID reports whether s is acceptable as a request id: 1 to 128
// bytes of [A-Za-z0-9._:-], enough for UUIDs, ULIDs and trace ids and
// nothing that could forge a log line.
func ValidRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// requestIDs makes request ids: a random per-process prefix and a counter.
// Request ids must be unique, not secret, and this costs no system call.
var requestIDs = struct {
	prefix string
	n      atomic.Uint64
}{prefix: RandomID("", 12)}

// NewRequestID returns a new request id, unique across processes with
// overwhelming probability: 12 random base62 characters fixed at start, a
// dash, and a base-36 counter.
func NewRequestID() string {
	var buf [MaxNewRequestIDLen]byte
	return string(AppendRequestID(buf[:0]))
}

// MaxNewRequestIDLen is the longest id NewRequestID and AppendRequestID
// make.
const MaxNewRequestIDLen = 12 + 1 + 13

// AppendRequestID appends a new request id, as NewRequestID returns it, to
// b: for a caller that keeps the id in memory it allocates anyway.
func AppendRequestID(b []byte) []byte {
	b = append(b, requestIDs.prefix...)
	b = append(b, '-')
	return strconv.AppendUint(b, requestIDs.n.Add(1), 36)
}

// AuthRecorder is implemented by a ResponseWriter wrapper that wants to
// know how a request was authenticated: the capture middleware, which runs
// outside the auth middleware so that refused requests are recorded too. The
// auth middleware calls RecordAuth once per request on the first writer of
// the Unwrap chain that implements it: with the Principal on success, or
// with the partial Principal (scheme, key id) and the precise failure code
// on refusal.
type AuthRecorder interface {
	RecordAuth(p *Principal, authError string)
}
