// Package reqtoken signs and verifies Ed25519 per-request tokens in the
// style of Mixin's SignAuthenticationToken: a compact JWT signed with EdDSA
// (RFC 8037) whose claims bind it to one request,
//
//	header  {"alg":"EdDSA","typ":"JWT"}
//	claims  uid  user id          sid  session id (names the public key)
//	        iat  issued at (s)    exp  expiry (s)
//	        jti  single-use id    scp  scopes ("FULL", or space-separated)
//	        sig  lowercase hex(sha256(method + uri + body))
//
// where uri is the request-target as sent (path and query) and body the raw
// body. Tokens made by MixinNetwork/bot-api-go-client and
// fox-one/mixin-sdk-go verify here (testdata/mixin_vectors.json), and ours
// verify there (testdata/callsign_vectors.json).
//
// Clients sign with Sign or a Transport. Servers verify with a Verifier, or
// plug an Authenticator into the auth middleware. Verification accepts
// EdDSA and nothing else whatever the header says, never takes a key from
// the token (jwk, jku, x5u and kid are ignored: the key is the session's),
// refuses duplicate JSON members, non-canonical base64 and crit headers,
// bounds the token's age by the server's MaxAge whatever its exp says, and
// records each jti in a replay.Store so that a token is accepted once.
package reqtoken

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/callsignhq/callsign/auth"
)

// Defaults and limits.
const (
	// DefaultLifetime is the lifetime Sign gives a token: long enough for a
	// request in flight, not Mixin's 90 days.
	DefaultLifetime = time.Minute
	// MaxLifetime is the longest exp - iat a token may claim: Mixin's
	// bot-api-go-client signs for exactly 90 days. A Verifier's MaxAge
	// still bounds how long such a token is accepted.
	MaxLifetime = 90 * 24 * time.Hour
	// DefaultScope is the scope Sign puts in scp.
	DefaultScope = "FULL"
	// DefaultMaxAge is how long after its iat a Verifier accepts a token.
	DefaultMaxAge = 5 * time.Minute
	// DefaultLeeway is the clock skew a Verifier tolerates.
	DefaultLeeway = 30 * time.Second
	// DefaultMaxBodyBytes bounds the body a Verifier reads and hashes.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultMaxTokenBytes bounds the token a Verifier looks at.
	DefaultMaxTokenBytes = 4 << 10
	// MaxIDLen bounds uid, sid and jti (bytes).
	MaxIDLen = 256
)

// Errors returned by verification, often wrapped with details; test them
// with errors.Is, or read the code with auth.Code. Besides these, Verify
// returns auth.ErrBodyTooLarge, replay.ErrReplayed and replay.ErrFull, and
// the session locator's errors (code internal unless they carry one).
var (
	ErrMissing   = auth.NewError(auth.CodeMissing, "reqtoken: no Bearer token")
	ErrMalformed = auth.NewError(auth.CodeMalformed, "reqtoken: malformed token")
	ErrTooLarge  = auth.NewError(auth.CodeTooLarge, "reqtoken: token over the size limit")
	// ErrAlgNotAllowed: the header's alg is not exactly "EdDSA". Accepting
	// what the token names would let "none", or HS256 keyed with the public
	// key, through.
	ErrAlgNotAllowed = auth.NewError(auth.CodeAlgNotAllowed, "reqtoken: alg is not EdDSA")
	// ErrUnsupported: a crit header (no extension is understood), or a typ
	// other than JWT (a token of another kind).
	ErrUnsupported = auth.NewError(auth.CodeUnsupported, "reqtoken: unsupported header")
	// ErrUnknownSession is what a session locator returns for a sid it
	// does not know.
	ErrUnknownSession = auth.NewError(auth.CodeUnknownKey, "reqtoken: unknown session")
	ErrBadSignature   = auth.NewError(auth.CodeBadSignature, "reqtoken: invalid signature")
	ErrExpired        = auth.NewError(auth.CodeExpired, "reqtoken: token expired")
	ErrNotYetValid    = auth.NewError(auth.CodeNotYetValid, "reqtoken: token issued in the future")
	ErrInvalidClaims  = auth.NewError(auth.CodeInvalidClaims, "reqtoken: invalid claims")
	ErrUserMismatch   = auth.NewError(auth.CodeUserMismatch, "reqtoken: uid does not own the session")
	// ErrBodyMismatch: sig is not the digest of this request's method,
	// request-target and body.
	ErrBodyMismatch      = auth.NewError(auth.CodeBodyMismatch, "reqtoken: sig does not match the request")
	ErrInsufficientScope = auth.NewError(auth.CodeInsufficientScope, "reqtoken: scp not granted to the session")
)

// errKey is returned for every key that does not parse; like every error
// of the key parsers, it never contains the key.
var errKey = errors.New("reqtoken: private key: want hex of the 32-byte Ed25519 seed (64 hex digits), " +
	"hex of the 64-byte key (128 digits), or base64 (URL or standard alphabet, padded or not) of the 64-byte key or the 32-byte seed")

// ParsePrivateKey parses an Ed25519 private key in the forms the Mixin SDKs
// use: hex of the 32-byte seed (bot-api-go-client's SessionPrivateKey, and
// fox-one's), base64url without padding of the 64-byte seed‖public key
// (fox-one's Keystore.PrivateKey); also hex of the 64-byte key and any
// base64 alphabet, padded or not, of the 64-byte key or 32-byte seed.
// Surrounding white space is ignored. A 64-byte key whose public half does
// not match its seed is refused. Errors never contain key material.
func ParsePrivateKey(s string) (ed25519.PrivateKey, error) {
	s = strings.TrimSpace(s)
	var raw []byte
	switch {
	case len(s) == 2*ed25519.SeedSize || len(s) == 2*ed25519.PrivateKeySize:
		b, err := hex.DecodeString(s)
		if err != nil {
			// 64 or 128 characters of base64 decode to 48 or 96 bytes:
			// neither a seed nor a key.
			return nil, errKey
		}
		raw = b
	default:
		b, ok := decodeAnyBase64(s)
		if !ok {
			return nil, errKey
		}
		raw = b
	}
	switch len(raw) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), nil
	case ed25519.PrivateKeySize:
		k := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
		if !ed25519.PublicKey(raw[ed25519.SeedSize:]).Equal(k.Public()) {
			return nil, errors.New("reqtoken: private key: its public half does not match its seed")
		}
		return k, nil
	}
	return nil, errKey
}

// ParsePublicKey parses an Ed25519 public key given as base64 (any
// alphabet, padded or not; Mixin's session_public_key is base64url) or hex.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*ed25519.PublicKeySize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	if b, ok := decodeAnyBase64(s); ok && len(b) == ed25519.PublicKeySize {
		return b, nil
	}
	return nil, errors.New("reqtoken: public key: want base64 or hex of 32 bytes")
}

func decodeAnyBase64(s string) ([]byte, bool) {
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.StdEncoding} {
		// Strict, and no line breaks: one way to write each key.
		if strings.ContainsAny(s, "\r\n") {
			return nil, false
		}
		if b, err := enc.Strict().DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}
