// Package jwtbearer authenticates requests that carry a JWT from the API's
// own issuer as "Authorization: Bearer <jwt>" (callsign.SchemeJWT): seed
// 000's identifyUser, done right.
//
// Seed 000 parsed the token with a key function that returned the HMAC
// secret whatever the token's alg said, and read the user from the "id"
// claim. Here:
//
//   - every key has an explicit algorithm (jwks.Key), and a token is
//     verified only when its alg equals its key's: an RS256 key never
//     checks an HS256 token (the key-confusion attack), "none" in any case
//     is refused, and the parser is told the one valid method
//     (jwt.WithValidMethods);
//   - keys are found by kid, in keys given with WithKey or in a key source
//     such as a remote JWK Set (jwks.Remote). A token without kid uses the
//     key configured with kid "" and no other: a single-key setup (seed 000's
//     tokens have no kid) configures its key with kid "", and a token naming
//     a kid never falls back to it. The jwk, jku, x5u and x5c header members
//     are never used: keys come only from configuration;
//   - HMAC secrets shorter than the hash (32 bytes for HS256, RFC 7518 §3.2)
//     are refused by New unless AllowWeakSecrets is given, and then logged;
//   - exp is required; nbf and iat are checked; iss and aud are required to
//     match when configured; all with a leeway for clock skew;
//   - the user id comes from one configured claim ("sub" by default) and
//     must be a non-empty string of at most callsign.MaxUserIDLen bytes
//     without control characters;
//   - around github.com/golang-jwt/jwt/v5, which does the signature and
//     claims checks: a size limit, canonical base64url only, no duplicate
//     JSON members in the header or the claims (two parsers could disagree
//     on which one counts), no crit (no extension is understood), and an
//     allow-list of typ values that never includes callsign's own app
//     access tokens ("callsign-at+jwt"), so they are never taken for a
//     bearer JWT.
//
// Verified tokens are remembered (auth/tokencache) until they expire or
// their key changes, so a token seen again costs a hash and a lookup.
//
// Failures carry the codes of package auth: malformed, too_large,
// alg_not_allowed, unsupported, unknown_key, bad_signature, expired,
// not_yet_valid, invalid_claims (and internal when a key source fails).
package jwtbearer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/auth/internal/jws"
	"github.com/callsignhq/callsign/auth/jwks"
	"github.com/callsignhq/callsign/auth/tokencache"
	"github.com/golang-jwt/jwt/v5"
)

// Errors, each with its auth code; the returned errors wrap them with
// details. Test with errors.Is, or read the code with auth.Code.
var (
	ErrMalformed     = auth.NewError(auth.CodeMalformed, "jwtbearer: malformed token")
	ErrTooLarge      = auth.NewError(auth.CodeTooLarge, "jwtbearer: token over the size limit")
	ErrAlgNotAllowed = auth.NewError(auth.CodeAlgNotAllowed, "jwtbearer: algorithm not allowed")
	ErrUnsupported   = auth.NewError(auth.CodeUnsupported, "jwtbearer: unsupported token")
	ErrUnknownKey    = auth.NewError(auth.CodeUnknownKey, "jwtbearer: unknown key")
	ErrBadSignature  = auth.NewError(auth.CodeBadSignature, "jwtbearer: bad signature")
	ErrExpired       = auth.NewError(auth.CodeExpired, "jwtbearer: token expired")
	ErrNotYetValid   = auth.NewError(auth.CodeNotYetValid, "jwtbearer: token not valid yet")
	ErrInvalidClaims = auth.NewError(auth.CodeInvalidClaims, "jwtbearer: invalid claims")
)

// Defaults.
const (
	DefaultLeeway      = 30 * time.Second
	DefaultUserClaim   = "sub"
	DefaultMaxTokenLen = auth.MaxBearerLen
)

// AppTokenType is the typ of callsign's app access tokens, which this
// package always refuses.
const AppTokenType = "callsign-at+jwt"

// Option configures an Authenticator.
type Option func(*config)

type config struct {
	keys       []*jwks.Key
	errs       []error
	source     jwks.Source
	issuer     string
	audience   []string
	leeway     time.Duration
	userClaim  string
	types      []string
	maxLen     int
	allowWeak  bool
	log        *slog.Logger
	now        func() time.Time
	cacheSize  int
	leewaySet  bool
	typesSet   bool
	cacheSizeS bool
}

// WithKey adds the key kid, for alg (jwks.HS256, ...): a []byte secret for
// HS*, else a public key (see jwks.NewKey). kid "" is the key of tokens
// without kid.
func WithKey(kid, alg string, key any) Option {
	return func(c *config) {
		k, err := jwks.NewKey(kid, alg, key)
		if err != nil {
			c.errs = append(c.errs, err)
			return
		}
		c.keys = append(c.keys, k)
	}
}

// WithKeySource takes keys from src, such as a *jwks.Remote for the
// issuer's JWK Set, instead of WithKey keys.
func WithKeySource(src jwks.Source) Option { return func(c *config) { c.source = src } }

// WithIssuer requires the iss claim to be iss.
func WithIssuer(iss string) Option { return func(c *config) { c.issuer = iss } }

// WithAudience requires the aud claim to hold one of aud.
func WithAudience(aud ...string) Option {
	return func(c *config) { c.audience = append([]string(nil), aud...) }
}

// WithLeeway sets the clock skew tolerated on exp, nbf and iat;
// DefaultLeeway otherwise.
func WithLeeway(d time.Duration) Option { return func(c *config) { c.leeway, c.leewaySet = d, true } }

// WithUserClaim names the claim that holds the user id; DefaultUserClaim
// ("sub") otherwise. Seed 000's tokens use "id".
func WithUserClaim(name string) Option { return func(c *config) { c.userClaim = name } }

// WithTypes sets the typ header values accepted, compared as RFC 7515
// §4.1.9 says (case-insensitively, "application/" omitted); "" stands for
// no typ. Default: "" and "JWT". AppTokenType is refused whatever is
// listed.
func WithTypes(types ...string) Option {
	return func(c *config) { c.types, c.typesSet = append([]string(nil), types...), true }
}

// WithMaxTokenLen sets the longest token accepted; DefaultMaxTokenLen otherwise.
func WithMaxTokenLen(n int) Option { return func(c *config) { c.maxLen = n } }

// AllowWeakSecrets accepts HMAC secrets shorter than RFC 7518 requires
// (seed 000's "mytokensecret" is 13 bytes), with a warning logged by New.
// Such a secret can be found by brute force from any token it signed:
// rotate it.
func AllowWeakSecrets() Option { return func(c *config) { c.allowWeak = true } }

// WithLogger sets the logger of configuration warnings; slog.Default() otherwise.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithNow sets the clock; time.Now otherwise.
func WithNow(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithCacheSize sets how many verified tokens are remembered
// (tokencache.DefaultSize otherwise); 0 disables the cache.
func WithCacheSize(n int) Option { return func(c *config) { c.cacheSize, c.cacheSizeS = n, true } }

// Authenticator verifies JWT bearer tokens. It implements auth.Authenticator
// and is safe for concurrent use.
type Authenticator struct {
	keys      jwks.Source
	parsers   map[string]*jwt.Parser // one per algorithm, allowing only it
	cache     *tokencache.Cache
	userClaim string
	types     []string // normalized
	maxLen    int
	leeway    time.Duration
	now       func() time.Time
}

var _ auth.Authenticator = (*Authenticator)(nil)

// New returns an Authenticator. It needs keys (WithKey or WithKeySource,
// not both) and refuses weak HMAC secrets unless AllowWeakSecrets is given.
func New(opts ...Option) (*Authenticator, error) {
	c := config{leeway: DefaultLeeway, userClaim: DefaultUserClaim, maxLen: DefaultMaxTokenLen, cacheSize: tokencache.DefaultSize}
	for _, o := range opts {
		o(&c)
	}
	if err := errors.Join(c.errs...); err != nil {
		return nil, fmt.Errorf("jwtbearer: %w", err)
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	switch {
	case len(c.keys) > 0 && c.source != nil:
		return nil, errors.New("jwtbearer: WithKey and WithKeySource are exclusive")
	case len(c.keys) == 0 && c.source == nil:
		return nil, errors.New("jwtbearer: no keys: use WithKey or WithKeySource")
	case c.leeway < 0 || c.leeway > 10*time.Minute:
		return nil, errors.New("jwtbearer: leeway must be between 0 and 10 minutes")
	case c.userClaim == "":
		return nil, errors.New("jwtbearer: empty user claim name")
	case c.maxLen <= 0:
		return nil, errors.New("jwtbearer: the token size limit must be positive")
	}
	for _, k := range c.keys {
		n := jwks.MinSecretLen(k.Alg())
		if n == 0 || len(k.Public().([]byte)) >= n {
			continue
		}
		if !c.allowWeak {
			return nil, fmt.Errorf("jwtbearer: the %s secret of key %q is %d bytes; RFC 7518 requires at least %d (use a longer random secret, or AllowWeakSecrets to accept it)",
				k.Alg(), k.ID(), len(k.Public().([]byte)), n)
		}
		c.log.Warn("jwtbearer: accepting a weak HMAC secret (AllowWeakSecrets); anyone holding one token can brute-force it: rotate it",
			"kid", k.ID(), "alg", k.Alg(), "bytes", len(k.Public().([]byte)), "required", n)
	}
	if c.source == nil {
		set, err := jwks.NewSet(c.keys...)
		if err != nil {
			return nil, fmt.Errorf("jwtbearer: %w", err)
		}
		c.source = set
	}
	if !c.typesSet {
		c.types = []string{"", "JWT"}
	}
	a := &Authenticator{
		keys:      c.source,
		parsers:   map[string]*jwt.Parser{},
		userClaim: c.userClaim,
		maxLen:    c.maxLen,
		leeway:    c.leeway,
		now:       c.now,
		cache:     tokencache.New(c.cacheSize),
	}
	for _, t := range c.types {
		a.types = append(a.types, normalizeType(t))
	}
	for _, alg := range jwks.Algorithms() {
		po := []jwt.ParserOption{
			jwt.WithValidMethods([]string{alg}),
			jwt.WithStrictDecoding(),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(c.leeway),
			jwt.WithTimeFunc(c.now),
		}
		if c.issuer != "" {
			po = append(po, jwt.WithIssuer(c.issuer))
		}
		if len(c.audience) > 0 {
			po = append(po, jwt.WithAudience(c.audience...))
		}
		a.parsers[alg] = jwt.NewParser(po...)
	}
	return a, nil
}

// normalizeType applies RFC 7515 §4.1.9: media types are case-insensitive
// and "application/" may be omitted.
func normalizeType(t string) string {
	t = strings.ToLower(t)
	return strings.TrimPrefix(t, "application/")
}

// CacheStats returns the verified-token cache's hits and misses.
func (a *Authenticator) CacheStats() (hits, misses uint64) { return a.cache.Stats() }

// Scheme implements auth.Authenticator.
func (a *Authenticator) Scheme() callsign.Scheme { return callsign.SchemeJWT }

// Detect implements auth.Authenticator: r has a Bearer token shaped like a
// JWT (two dots, a first segment that decodes to a JSON object). Nothing
// is verified, and tokens over the size limit are detected too, so that
// Authenticate refuses them as too_large.
func (a *Authenticator) Detect(r *http.Request) bool {
	tok, ok := auth.BearerToken(r)
	return ok && jws.LooksLikeJWS(tok)
}

// Authenticate implements auth.Authenticator with Verify on r's Bearer token.
func (a *Authenticator) Authenticate(r *http.Request) (*callsign.Principal, error) {
	tok, ok := auth.BearerToken(r)
	if !ok {
		return &callsign.Principal{Scheme: callsign.SchemeJWT}, fmt.Errorf("%w: no Bearer token", ErrMalformed)
	}
	return a.Verify(r.Context(), tok)
}

// Verify checks token and returns its Principal: Scheme SchemeJWT, KeyID
// the kid, UserID the user claim, Scopes from "scope" (space-separated) or,
// without it, "scp" (a string or an array of strings), ExpiresAt from exp,
// and Claims holding iss, sub and jti when present. On failure the error
// wraps one of the package's errors, and the Principal, when not nil, is
// partial (Scheme, and KeyID once the header parsed).
func (a *Authenticator) Verify(ctx context.Context, token string) (*callsign.Principal, error) {
	if len(token) > a.maxLen {
		return &callsign.Principal{Scheme: callsign.SchemeJWT}, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(token), a.maxLen)
	}
	now := a.now()
	if p, ok := a.cache.Get(ctx, token, now, a.keys); ok {
		return p, nil
	}
	e, err := a.verify(ctx, token)
	if err != nil {
		// Partial: nothing of a refused token's claims, verified or not.
		return &callsign.Principal{Scheme: callsign.SchemeJWT, KeyID: e.Principal.KeyID}, err
	}
	a.cache.Add(token, e)
	p := e.Principal
	return &p, nil
}

// verify is the full check. On failure the entry's Principal.KeyID is the
// kid when the header parsed.
func (a *Authenticator) verify(ctx context.Context, token string) (*tokencache.Entry, error) {
	e := &tokencache.Entry{Principal: callsign.Principal{Scheme: callsign.SchemeJWT}}
	t, err := jws.Parse(token, jws.Options{MaxLen: a.maxLen})
	if errors.Is(err, jws.ErrTooLarge) {
		return e, fmt.Errorf("%w: %v", ErrTooLarge, err)
	}
	if err != nil {
		return e, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	h := t.Header
	e.Principal.KeyID = h.Kid
	switch {
	case !h.HasAlg:
		return e, fmt.Errorf("%w: no alg in the header", ErrMalformed)
	case strings.EqualFold(h.Alg, "none"):
		return e, fmt.Errorf("%w: alg %q: unsigned tokens are never accepted", ErrAlgNotAllowed, h.Alg)
	case h.HasCrit:
		return e, fmt.Errorf("%w: the header has crit; no extension is understood", ErrUnsupported)
	}
	if typ := normalizeType(h.Typ); typ == AppTokenType {
		return e, fmt.Errorf("%w: a callsign app access token is not a bearer JWT", ErrUnsupported)
	} else if !a.typeAllowed(typ) {
		return e, fmt.Errorf("%w: typ %q is not accepted", ErrUnsupported, h.Typ)
	}
	key, err := a.keys.Key(ctx, h.Kid)
	if errors.Is(err, jwks.ErrUnknownKey) {
		return e, fmt.Errorf("%w: kid %q", ErrUnknownKey, h.Kid)
	}
	if err != nil {
		return e, fmt.Errorf("jwtbearer: finding key %q: %w", h.Kid, err) // code internal
	}
	if h.Alg != key.Alg() {
		return e, fmt.Errorf("%w: the token says %q, key %q is for %s", ErrAlgNotAllowed, h.Alg, h.Kid, key.Alg())
	}
	claims := jwt.MapClaims{}
	_, err = a.parsers[key.Alg()].ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return key.Public(), nil })
	if err != nil {
		return e, mapError(err)
	}
	// golang-jwt has checked exp, nbf, iat, iss and aud; what it read is
	// what the cache entry's window is made of.
	exp, _ := claims.GetExpirationTime() // required: not nil
	nbf, _ := claims.GetNotBefore()
	iat, _ := claims.GetIssuedAt()
	e.KeyID, e.Fingerprint = key.ID(), key.Fingerprint()
	e.ValidUntil = exp.Add(a.leeway)
	for _, d := range []*jwt.NumericDate{nbf, iat} {
		if d != nil && d.Add(-a.leeway).After(e.ValidFrom) {
			e.ValidFrom = d.Add(-a.leeway)
		}
	}
	p := &e.Principal
	p.ExpiresAt = exp.Time
	if p.UserID, err = a.user(claims); err != nil {
		return e, err
	}
	if p.Scopes, err = scopes(claims); err != nil {
		return e, err
	}
	for _, name := range []string{"iss", "sub", "jti"} {
		if v, ok := claims[name].(string); ok {
			if p.Claims == nil {
				p.Claims = make(map[string]any, 3)
			}
			p.Claims[name] = v
		}
	}
	return e, nil
}

func (a *Authenticator) typeAllowed(typ string) bool {
	for _, t := range a.types {
		if t == typ {
			return true
		}
	}
	return false
}

func (a *Authenticator) user(claims jwt.MapClaims) (string, error) {
	v, ok := claims[a.userClaim]
	if !ok {
		return "", fmt.Errorf("%w: no %q claim (the user id)", ErrInvalidClaims, a.userClaim)
	}
	s, ok := v.(string)
	switch {
	case !ok:
		return "", fmt.Errorf("%w: the %q claim is not a string", ErrInvalidClaims, a.userClaim)
	case s == "":
		return "", fmt.Errorf("%w: the %q claim is empty", ErrInvalidClaims, a.userClaim)
	case len(s) > callsign.MaxUserIDLen:
		return "", fmt.Errorf("%w: the %q claim is over %d bytes", ErrInvalidClaims, a.userClaim, callsign.MaxUserIDLen)
	case !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl):
		return "", fmt.Errorf("%w: the %q claim has control characters", ErrInvalidClaims, a.userClaim)
	}
	return s, nil
}

// scopes reads "scope" (RFC 8693 §4.2: space-separated) or, without it,
// "scp" (a string or an array of strings, as several issuers write it).
func scopes(claims jwt.MapClaims) ([]string, error) {
	if v, ok := claims["scope"]; ok {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%w: scope is not a string", ErrInvalidClaims)
		}
		return nilIfEmpty(strings.Fields(s)), nil
	}
	v, ok := claims["scp"]
	if !ok {
		return nil, nil
	}
	switch v := v.(type) {
	case string:
		return nilIfEmpty(strings.Fields(v)), nil
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			s, ok := x.(string)
			if !ok || s == "" || strings.ContainsFunc(s, unicode.IsSpace) {
				return nil, fmt.Errorf("%w: scp holds something other than scope names", ErrInvalidClaims)
			}
			out = append(out, s)
		}
		return nilIfEmpty(out), nil
	}
	return nil, fmt.Errorf("%w: scp is neither a string nor an array", ErrInvalidClaims)
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// mapError turns golang-jwt's errors into the package's. When several
// claims fail, the most fundamental one wins: claims that do not belong to
// this verifier (iss, aud, a missing or mistyped claim), then expiry, then
// not-yet-valid.
func mapError(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidAudience),
		errors.Is(err, jwt.ErrTokenRequiredClaimMissing), errors.Is(err, jwt.ErrInvalidType):
		return fmt.Errorf("%w: %v", ErrInvalidClaims, err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: %v", ErrExpired, err)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fmt.Errorf("%w: %v", ErrNotYetValid, err)
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return fmt.Errorf("%w: %v", ErrInvalidClaims, err)
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}
