// Package apptoken mints and verifies callsign app access tokens.
//
// An app access token is a JWS (compact JWT) signed with Ed25519 ("EdDSA",
// RFC 8037) by one of the server's keys, published as a JWK Set at
// /.well-known/jwks.json. Its header carries typ "callsign-at+jwt" (so it is
// never mistaken for another kind of JWT, RFC 8725 §3.11) and the key's kid;
// its claims are iss, aud ("callsign:ingest"), iat, exp, jti, app_id, scope
// and, when the token is bound to a verified user, user_id. The scope is
// Scope ("ingest") for the tokens the upgrade endpoint mints from a public
// token (anonymous or bound to a user), or ScopeServer ("ingest:server")
// for the user-less tokens minted from a secret token for a server-side
// shipper, which may attribute verified and API-asserted user ids.
//
// Verification is offline: it needs only the published keys. It accepts
// EdDSA and nothing else whatever the token's header says, requires the
// type, a known kid, the issuer, the audience and exp, and refuses what
// package auth/jwtbearer refuses around golang-jwt: non-canonical base64,
// duplicate JSON members (case-insensitively in the claims, which decode
// into a struct), crit, oversized tokens. Verifier checks against keys in
// hand; Authenticator is the auth.Authenticator of an API that takes app
// access tokens, with the server's JWK Set fetched and refreshed by
// auth/jwks and verified tokens remembered by auth/tokencache.
package apptoken

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/auth/internal/jws"
	"github.com/golang-jwt/jwt/v5"
)

// Fixed values of every app access token.
const (
	Type     = "callsign-at+jwt"
	Audience = "callsign:ingest"
)

// Scopes of app access tokens. Scope is the default: a token upgraded from
// the public token, anonymous or bound to a verified user. ScopeServer is
// a token minted with the app's secret token for a server-side shipper; it
// is never bound to a user.
const (
	Scope       = "ingest"
	ScopeServer = "ingest:server"
)

// validScope reports whether s is one of the scopes above.
func validScope(s string) bool { return s == Scope || s == ScopeServer }

// DefaultLeeway is the clock skew tolerated on exp and iat.
const DefaultLeeway = 30 * time.Second

// Claims are the claims of an app access token.
type Claims struct {
	AppID string `json:"app_id"`
	// UserID is the verified user the token is bound to; empty for an
	// anonymous token.
	UserID string `json:"user_id,omitempty"`
	// Scope is Scope or ScopeServer.
	Scope string `json:"scope"`
	jwt.RegisteredClaims
}

// MintOption configures Mint.
type MintOption func(*mintConfig)

type mintConfig struct{ scope string }

// WithScope sets the scope of the minted token: Scope (the default) or
// ScopeServer. A ScopeServer token cannot be bound to a user.
func WithScope(scope string) MintOption { return func(c *mintConfig) { c.scope = scope } }

// Mint signs an access token for app, bound to userID unless it is empty,
// issued by issuer at now and valid for ttl, with scope Scope unless
// WithScope says otherwise. It returns the token and its expiry.
func Mint(key *callsign.SigningKey, issuer, appID, userID string, now time.Time, ttl time.Duration, opts ...MintOption) (string, time.Time, error) {
	cfg := mintConfig{scope: Scope}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case key == nil || len(key.Private) != ed25519.PrivateKeySize:
		return "", time.Time{}, errors.New("apptoken: no private signing key")
	case !validScope(cfg.scope):
		return "", time.Time{}, fmt.Errorf("apptoken: unknown scope %q", cfg.scope)
	case cfg.scope == ScopeServer && userID != "":
		return "", time.Time{}, errors.New("apptoken: a server token cannot be bound to a user")
	}
	now = now.Truncate(time.Second)
	exp := now.Add(ttl)
	c := Claims{
		AppID:  appID,
		UserID: userID,
		Scope:  cfg.scope,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Audience:  jwt.ClaimStrings{Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        callsign.RandomID("", 22),
		},
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["typ"] = Type
	t.Header["kid"] = key.ID
	s, err := t.SignedString(key.Private)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("apptoken: sign: %w", err)
	}
	return s, exp, nil
}

// Errors returned by Verify and Authenticate, wrapped with details; test
// with errors.Is, read the auth code with auth.Code. Every refusal of a
// well-formed token with a known key also matches ErrInvalid; a token over
// the size limit matches ErrTooLarge and ErrMalformed.
var (
	ErrMalformed  error = auth.NewError(auth.CodeMalformed, "apptoken: malformed token")
	ErrType       error = auth.NewError(auth.CodeUnsupported, "apptoken: not an app access token (wrong typ)")
	ErrUnknownKey error = auth.NewError(auth.CodeUnknownKey, "apptoken: unknown signing key")
	ErrInvalid          = errors.New("apptoken: invalid token")

	ErrTooLarge      error = auth.NewError(auth.CodeTooLarge, "apptoken: token over the size limit")
	ErrAlgNotAllowed error = auth.NewError(auth.CodeAlgNotAllowed, "apptoken: algorithm not allowed (EdDSA only)")
	ErrUnsupported   error = auth.NewError(auth.CodeUnsupported, "apptoken: unsupported token")
	ErrBadSignature  error = auth.NewError(auth.CodeBadSignature, "apptoken: bad signature")
	ErrExpired       error = auth.NewError(auth.CodeExpired, "apptoken: token expired")
	ErrNotYetValid   error = auth.NewError(auth.CodeNotYetValid, "apptoken: token not valid yet")
	ErrInvalidClaims error = auth.NewError(auth.CodeInvalidClaims, "apptoken: invalid claims")
)

// failure is a precise error that also matches a broader one (ErrInvalid,
// ErrMalformed). The precise one comes first, so auth.Code reads its code.
type failure struct {
	precise, broad error
	detail         string
}

func (f *failure) Error() string   { return f.precise.Error() + ": " + f.detail }
func (f *failure) Unwrap() []error { return []error{f.precise, f.broad} }

func invalid(precise error, format string, args ...any) error {
	return &failure{precise: precise, broad: ErrInvalid, detail: fmt.Sprintf(format, args...)}
}

// Keys finds the public key of a kid.
type Keys interface {
	PublicKey(kid string) (ed25519.PublicKey, bool)
}

// Verifier verifies app access tokens offline.
type Verifier struct {
	keys   Keys
	parser *jwt.Parser
}

// NewVerifier returns a Verifier of tokens from issuer signed by keys. now
// is the clock (time.Now if nil).
func NewVerifier(keys Keys, issuer string, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{keys: keys, parser: newParser(issuer, now, DefaultLeeway)}
}

func newParser(issuer string, now func() time.Time, leeway time.Duration) *jwt.Parser {
	return jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
		jwt.WithStrictDecoding(),
	)
}

// MaxTokenLen bounds the size of a token Verify looks at.
const MaxTokenLen = 4096

// Verify checks token and returns its claims.
func (v *Verifier) Verify(token string) (*Claims, error) {
	c, _, err := check(v.parser, token, func(kid string) (ed25519.PublicKey, error) {
		k, ok := v.keys.PublicKey(kid)
		if !ok {
			return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, kid)
		}
		return k, nil
	})
	return c, err
}

// check is the verification of Verifier and Authenticator: the strict
// JWS checks of auth/internal/jws, then typ, alg and crit, then the key
// of the kid, then golang-jwt for the signature and the registered claims,
// then the claims of an app access token. It returns the header even on
// failure, for the kid.
func check(p *jwt.Parser, token string, key func(kid string) (ed25519.PublicKey, error)) (*Claims, jws.Header, error) {
	t, err := jws.Parse(token, jws.Options{MaxLen: MaxTokenLen, FoldPayloadNames: true})
	if errors.Is(err, jws.ErrTooLarge) {
		return nil, jws.Header{}, &failure{precise: ErrTooLarge, broad: ErrMalformed, detail: err.Error()}
	}
	if err != nil {
		return nil, jws.Header{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	h := t.Header
	switch {
	case h.Typ != Type:
		return nil, h, fmt.Errorf("%w: typ %q", ErrType, h.Typ)
	case !h.HasAlg:
		return nil, h, fmt.Errorf("%w: no alg in the header", ErrMalformed)
	case h.Alg != jwt.SigningMethodEdDSA.Alg():
		return nil, h, invalid(ErrAlgNotAllowed, "alg %q", h.Alg)
	case h.HasCrit:
		return nil, h, invalid(ErrUnsupported, "the header has crit; no extension is understood")
	}
	pub, err := key(h.Kid)
	if err != nil {
		return nil, h, err
	}
	var c Claims
	if _, err := p.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return pub, nil }); err != nil {
		return nil, h, mapError(err)
	}
	if c.AppID == "" || !validScope(c.Scope) || c.ID == "" {
		return nil, h, invalid(ErrInvalidClaims, "missing app_id or jti, or a scope other than %q and %q", Scope, ScopeServer)
	}
	if c.Scope == ScopeServer && c.UserID != "" {
		// Minted so by no callsign server: a server token attributes users
		// per event and is bound to none.
		return nil, h, invalid(ErrInvalidClaims, "a %q token bound to a user", ScopeServer)
	}
	if c.UserID != "" && !validUserID(c.UserID) {
		return nil, h, invalid(ErrInvalidClaims, "user_id is not a valid user id")
	}
	return &c, h, nil
}

func validUserID(s string) bool {
	return len(s) <= callsign.MaxUserIDLen && utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

// mapError turns golang-jwt's errors into the package's; see
// jwtbearer's for the order.
func mapError(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return invalid(ErrBadSignature, "%v", err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidAudience),
		errors.Is(err, jwt.ErrTokenRequiredClaimMissing), errors.Is(err, jwt.ErrInvalidType):
		return invalid(ErrInvalidClaims, "%v", err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return invalid(ErrExpired, "%v", err)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return invalid(ErrNotYetValid, "%v", err)
	}
	return invalid(ErrInvalidClaims, "%v", err)
}

// JWK is an Ed25519 public key as a JSON Web Key (RFC 8037 §2).
type JWK struct {
	Kty string `json:"kty"` // "OKP"
	Crv string `json:"crv"` // "Ed25519"
	X   string `json:"x"`   // base64url public key, no padding
	Kid string `json:"kid"`
	Alg string `json:"alg"` // "EdDSA"
	Use string `json:"use"` // "sig"
}

// JWKS is a JSON Web Key Set (RFC 7517 §5). It implements Keys.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// NewJWKS returns the JWK Set of the public halves of keys.
func NewJWKS(keys []*callsign.SigningKey) *JWKS {
	s := &JWKS{Keys: make([]JWK, 0, len(keys))}
	for _, k := range keys {
		s.Keys = append(s.Keys, JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.Public), Kid: k.ID, Alg: "EdDSA", Use: "sig"})
	}
	return s
}

// ParseJWKS parses a JWK Set, keeping its Ed25519 signing keys and
// refusing malformed ones.
func ParseJWKS(data []byte) (*JWKS, error) {
	var s JWKS
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("apptoken: JWKS: %w", err)
	}
	out := &JWKS{}
	for _, k := range s.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || (k.Alg != "" && k.Alg != "EdDSA") || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if x, err := base64.RawURLEncoding.Strict().DecodeString(k.X); err != nil || len(x) != ed25519.PublicKeySize || k.Kid == "" {
			return nil, fmt.Errorf("apptoken: JWKS: key %q is not a valid Ed25519 JWK", k.Kid)
		}
		out.Keys = append(out.Keys, k)
	}
	return out, nil
}

// PublicKey implements Keys.
func (s *JWKS) PublicKey(kid string) (ed25519.PublicKey, bool) {
	for _, k := range s.Keys {
		if k.Kid == kid {
			x, err := base64.RawURLEncoding.DecodeString(k.X)
			return ed25519.PublicKey(x), err == nil && len(x) == ed25519.PublicKeySize
		}
	}
	return nil, false
}
