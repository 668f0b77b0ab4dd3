package apptoken

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/auth/internal/jws"
	"github.com/callsignhq/callsign/auth/jwks"
	"github.com/callsignhq/callsign/auth/tokencache"
	"github.com/golang-jwt/jwt/v5"
)

// AuthOption configures an Authenticator.
type AuthOption func(*authConfig)

type authConfig struct {
	now       func() time.Time
	leeway    time.Duration
	cacheSize int
}

// WithNow sets the Authenticator's clock; time.Now otherwise.
func WithNow(now func() time.Time) AuthOption { return func(c *authConfig) { c.now = now } }

// WithLeeway sets the clock skew tolerated on exp and iat; DefaultLeeway
// otherwise.
func WithLeeway(d time.Duration) AuthOption { return func(c *authConfig) { c.leeway = d } }

// WithCacheSize sets how many verified tokens are remembered
// (tokencache.DefaultSize otherwise); 0 disables the cache.
func WithCacheSize(n int) AuthOption { return func(c *authConfig) { c.cacheSize = n } }

// Authenticator authenticates requests carrying an app access token as
// "Authorization: Bearer <token>" (callsign.SchemeAppToken), offline,
// against the server's published keys. It implements auth.Authenticator
// and is safe for concurrent use.
type Authenticator struct {
	keys   jwks.Source
	parser *jwt.Parser
	cache  *tokencache.Cache
	leeway time.Duration
	now    func() time.Time

	// detected holds header segments Detect accepted. Detect's answer
	// depends on the header segment alone, and an issuer's tokens share a
	// few of them (one per signing key), so a hit skips decoding and
	// checking the JSON header on every request: about half of what a
	// request with a cached token costs here.
	detected [4]atomic.Pointer[string]
	next     atomic.Uint32
}

var _ auth.Authenticator = (*Authenticator)(nil)

// NewAuthenticator returns an Authenticator of tokens minted by issuer
// (the server's Issuer) and signed by keys: normally a *jwks.Remote for the
// server's /.well-known/jwks.json, which is fetched on first use, refreshed
// on its schedule and whenever a token names a kid it does not hold (a
// rotation). Only keys whose algorithm is EdDSA verify.
func NewAuthenticator(keys jwks.Source, issuer string, opts ...AuthOption) (*Authenticator, error) {
	c := authConfig{now: time.Now, leeway: DefaultLeeway, cacheSize: tokencache.DefaultSize}
	for _, o := range opts {
		o(&c)
	}
	switch {
	case keys == nil:
		return nil, errors.New("apptoken: no key source")
	case issuer == "":
		return nil, errors.New("apptoken: no issuer")
	case c.leeway < 0 || c.leeway > 10*time.Minute:
		return nil, errors.New("apptoken: leeway must be between 0 and 10 minutes")
	}
	return &Authenticator{
		keys:   keys,
		parser: newParser(issuer, c.now, c.leeway),
		cache:  tokencache.New(c.cacheSize),
		leeway: c.leeway,
		now:    c.now,
	}, nil
}

// CacheStats returns the verified-token cache's hits and misses.
func (a *Authenticator) CacheStats() (hits, misses uint64) { return a.cache.Stats() }

// Scheme implements auth.Authenticator.
func (a *Authenticator) Scheme() callsign.Scheme { return callsign.SchemeAppToken }

// Detect implements auth.Authenticator: r has a Bearer token whose JOSE
// header (decoded on the stack, nothing verified) has typ Type. Put this
// Authenticator before auth/jwtbearer's, which detects any JWT.
func (a *Authenticator) Detect(r *http.Request) bool {
	tok, ok := auth.BearerToken(r)
	if !ok {
		return false
	}
	seg, _, ok := strings.Cut(tok, ".")
	if !ok {
		return false // PeekHeader's answer too
	}
	for i := range a.detected {
		if d := a.detected[i].Load(); d != nil && *d == seg {
			return true
		}
	}
	if h, ok := jws.PeekHeader(tok); !ok || h.Typ != Type {
		return false
	}
	d := strings.Clone(seg) // not the request's whole header
	a.detected[a.next.Add(1)%uint32(len(a.detected))].Store(&d)
	return true
}

// Authenticate implements auth.Authenticator with Verify on r's Bearer token.
func (a *Authenticator) Authenticate(r *http.Request) (*callsign.Principal, error) {
	tok, ok := auth.BearerToken(r)
	if !ok {
		return &callsign.Principal{Scheme: callsign.SchemeAppToken}, fmt.Errorf("%w: no Bearer token", ErrMalformed)
	}
	return a.Verify(r.Context(), tok)
}

// Verify checks token and returns its Principal: AppID from app_id, Scheme
// SchemeAppToken, KeyID the kid, UserID the verified user_id (empty for an
// anonymous token), Scopes the token's scope (["ingest"] or
// ["ingest:server"]), ExpiresAt from exp and Claims
// {"jti": ...}. On failure the Principal is partial (Scheme, KeyID) and the
// error wraps the package's errors; one the key source could not answer
// (no key set could be fetched) has code internal.
func (a *Authenticator) Verify(ctx context.Context, token string) (*callsign.Principal, error) {
	if len(token) > MaxTokenLen {
		return &callsign.Principal{Scheme: callsign.SchemeAppToken},
			&failure{precise: ErrTooLarge, broad: ErrMalformed, detail: fmt.Sprintf("%d bytes, the limit is %d", len(token), MaxTokenLen)}
	}
	if p, ok := a.cache.Get(ctx, token, a.now(), a.keys); ok {
		return p, nil
	}
	var key *jwks.Key
	c, h, err := check(a.parser, token, func(kid string) (ed25519.PublicKey, error) {
		k, err := a.keys.Key(ctx, kid)
		if errors.Is(err, jwks.ErrUnknownKey) {
			return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, kid)
		}
		if err != nil {
			return nil, fmt.Errorf("apptoken: finding key %q: %w", kid, err) // code internal
		}
		if k.Alg() != jwks.EdDSA {
			return nil, invalid(ErrAlgNotAllowed, "key %q is for %s", kid, k.Alg())
		}
		key = k
		return k.Public().(ed25519.PublicKey), nil
	})
	if err != nil {
		return &callsign.Principal{Scheme: callsign.SchemeAppToken, KeyID: h.Kid}, err
	}
	e := &tokencache.Entry{
		Principal: callsign.Principal{
			AppID:     c.AppID,
			Scheme:    callsign.SchemeAppToken,
			KeyID:     h.Kid,
			UserID:    c.UserID,
			Scopes:    []string{c.Scope},
			ExpiresAt: c.ExpiresAt.Time,
			Claims:    map[string]any{"jti": c.ID},
		},
		KeyID:       key.ID(),
		Fingerprint: key.Fingerprint(),
		ValidUntil:  c.ExpiresAt.Add(a.leeway),
	}
	// The window golang-jwt checked: iat (WithIssuedAt) and nbf when present.
	for _, d := range []*jwt.NumericDate{c.IssuedAt, c.NotBefore} {
		if d != nil && d.Add(-a.leeway).After(e.ValidFrom) {
			e.ValidFrom = d.Add(-a.leeway)
		}
	}
	a.cache.Add(token, e)
	p := e.Principal
	return &p, nil
}
