// Package apptoken mints and verifies callsign app access tokens.
//
// An app access token is a JWS (compact JWT) signed with Ed25519 ("EdDSA",
// RFC 8037) by one of the server's keys, published as a JWK Set at
// /.well-known/jwks.json. Its header carries typ "callsign-at+jwt" (so it is
// never mistaken for another kind of JWT, RFC 8725 §3.11) and the key's kid;
// its claims are iss, aud ("callsign:ingest"), iat, exp, jti, app_id, scope
// ("ingest") and, when the token is bound to a verified user, user_id.
//
// Verification is offline: it needs only the published keys. It accepts
// EdDSA and nothing else whatever the token's header says, requires the
// type, a known kid, the issuer, the audience and exp, and uses strict
// base64 decoding.
package apptoken

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/golang-jwt/jwt/v5"
)

// Fixed values of every app access token.
const (
	Type     = "callsign-at+jwt"
	Audience = "callsign:ingest"
	Scope    = "ingest"
)

// DefaultLeeway is the clock skew tolerated on exp and iat.
const DefaultLeeway = 30 * time.Second

// Claims are the claims of an app access token.
type Claims struct {
	AppID string `json:"app_id"`
	// UserID is the verified user the token is bound to; empty for an
	// anonymous token.
	UserID string `json:"user_id,omitempty"`
	Scope  string `json:"scope"`
	jwt.RegisteredClaims
}

// Mint signs an access token for app, bound to userID unless it is empty,
// issued by issuer at now and valid for ttl. It returns the token and its
// expiry.
func Mint(key *callsign.SigningKey, issuer, appID, userID string, now time.Time, ttl time.Duration) (string, time.Time, error) {
	if key == nil || len(key.Private) != ed25519.PrivateKeySize {
		return "", time.Time{}, errors.New("apptoken: no private signing key")
	}
	now = now.Truncate(time.Second)
	exp := now.Add(ttl)
	c := Claims{
		AppID:  appID,
		UserID: userID,
		Scope:  Scope,
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

// Errors returned by Verify, wrapped with details; test with errors.Is.
var (
	ErrMalformed  = errors.New("apptoken: malformed token")
	ErrType       = errors.New("apptoken: not an app access token (wrong typ)")
	ErrUnknownKey = errors.New("apptoken: unknown signing key")
	ErrInvalid    = errors.New("apptoken: invalid token")
)

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
	return &Verifier{
		keys: keys,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
			jwt.WithIssuer(issuer),
			jwt.WithAudience(Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(DefaultLeeway),
			jwt.WithTimeFunc(now),
			jwt.WithStrictDecoding(),
		),
	}
}

// MaxTokenLen bounds the size of a token Verify looks at.
const MaxTokenLen = 4096

// Verify checks token and returns its claims.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if len(token) > MaxTokenLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxTokenLen)
	}
	var c Claims
	_, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != Type {
			return nil, ErrType
		}
		kid, _ := t.Header["kid"].(string)
		k, ok := v.keys.PublicKey(kid)
		if !ok {
			return nil, ErrUnknownKey
		}
		return k, nil
	})
	switch {
	case errors.Is(err, ErrType), errors.Is(err, ErrUnknownKey):
		return nil, err
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c.AppID == "" || c.Scope != Scope || c.ID == "" {
		return nil, fmt.Errorf("%w: missing app_id, scope or jti", ErrInvalid)
	}
	return &c, nil
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
