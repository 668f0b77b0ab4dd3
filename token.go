package callsign

import (
	"crypto/rand"
	"crypto/sha256"
	"hash/crc32"
	"strings"
)

// TokenKind is the kind of an opaque callsign token. The kind is visible in
// the token's prefix so that secret scanners can recognise a leaked token and
// so that a token pasted in the wrong place is refused before any lookup.
type TokenKind int

// Token kinds. App access tokens are not opaque (they are signed JWTs, see
// package auth/apptoken) and so have no TokenKind.
const (
	TokenUnknown TokenKind = iota
	TokenPublic            // cs_pub_: an app's public token; its only power is to be upgraded
	TokenSecret            // cs_sec_: an app's secret token; shown once, stored hashed
	TokenAdmin             // cs_adm_: an administrator's API token; stored hashed
)

var tokenPrefixes = [...]string{TokenPublic: "cs_pub_", TokenSecret: "cs_sec_", TokenAdmin: "cs_adm_"}

// String returns the kind's name ("public", "secret", "admin").
func (k TokenKind) String() string {
	switch k {
	case TokenPublic:
		return "public"
	case TokenSecret:
		return "secret"
	case TokenAdmin:
		return "admin"
	}
	return "unknown"
}

// Prefix returns the prefix tokens of kind k start with, "" for TokenUnknown.
func (k TokenKind) Prefix() string {
	if k <= TokenUnknown || int(k) >= len(tokenPrefixes) {
		return ""
	}
	return tokenPrefixes[k]
}

// Token format, after GitHub's: a 7-byte prefix, 32 random base62
// characters (190 bits of entropy, well over the 128 required) and a
// 6-character base62 CRC-32 of prefix and random part.
const (
	tokenRandomLen   = 32
	tokenChecksumLen = 6
	tokenPrefixLen   = 7
	// TokenLen is the length in bytes of every opaque callsign token.
	TokenLen = tokenPrefixLen + tokenRandomLen + tokenChecksumLen
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// GenerateToken returns a new random token of kind k.
func GenerateToken(k TokenKind) string {
	p := k.Prefix()
	if p == "" {
		panic("callsign: GenerateToken of unknown kind")
	}
	buf := make([]byte, 0, TokenLen)
	buf = append(buf, p...)
	buf = appendRandomBase62(buf, tokenRandomLen)
	return string(appendChecksum(buf, crc32.ChecksumIEEE(buf)))
}

// RandomID returns prefix followed by n random base62 characters. It is used
// for resource identifiers, which are not secret but must not collide.
func RandomID(prefix string, n int) string {
	return string(appendRandomBase62([]byte(prefix), n))
}

// appendRandomBase62 appends n uniformly random base62 characters, by
// rejection sampling so that no character is more likely than another.
func appendRandomBase62(buf []byte, n int) []byte {
	var r [64]byte
	for n > 0 {
		rand.Read(r[:]) // never returns an error (crypto/rand, Go 1.24+)
		for _, b := range r {
			if b >= 248 { // 248 = 4*62: keeps b%62 uniform
				continue
			}
			buf = append(buf, base62[b%62])
			if n--; n == 0 {
				break
			}
		}
	}
	return buf
}

func appendChecksum(buf []byte, sum uint32) []byte {
	var c [tokenChecksumLen]byte
	for i := tokenChecksumLen - 1; i >= 0; i-- {
		c[i] = base62[sum%62]
		sum /= 62
	}
	return append(buf, c[:]...)
}

// ParseToken reports the kind of the opaque token s after checking its
// shape and checksum. It does no lookup: a token that parses may still be
// unknown or revoked. Errors are *Error with code EMalformedToken (wrong
// length, prefix or alphabet) or EBadChecksum (a typo). The messages never
// contain the token.
func ParseToken(s string) (TokenKind, error) {
	if len(s) != TokenLen {
		return TokenUnknown, Errorf(EMalformedToken, "The token is not a callsign token: it must be %d characters long.", TokenLen)
	}
	kind := TokenUnknown
	for k := TokenPublic; int(k) < len(tokenPrefixes); k++ {
		if strings.HasPrefix(s, tokenPrefixes[k]) {
			kind = k
			break
		}
	}
	if kind == TokenUnknown {
		return TokenUnknown, Errorf(EMalformedToken, "The token is not a callsign token: it must start with cs_pub_, cs_sec_ or cs_adm_.")
	}
	for i := tokenPrefixLen; i < TokenLen; i++ {
		if !isBase62(s[i]) {
			return TokenUnknown, Errorf(EMalformedToken, "The token contains a character outside [0-9A-Za-z].")
		}
	}
	body := s[:tokenPrefixLen+tokenRandomLen]
	var want [tokenChecksumLen]byte
	appendChecksum(want[:0], crc32.ChecksumIEEE([]byte(body)))
	if s[tokenPrefixLen+tokenRandomLen:] != string(want[:]) {
		return TokenUnknown, Errorf(EBadChecksum, "The %s token's checksum does not match: it was probably mistyped or truncated.", kind)
	}
	return kind, nil
}

// ParseTokenOf is ParseToken that also requires the token to be of kind
// want; otherwise it returns an *Error with code EWrongTokenKind.
func ParseTokenOf(s string, want TokenKind) error {
	k, err := ParseToken(s)
	if err != nil {
		return err
	}
	if k != want {
		return Errorf(EWrongTokenKind, "A %s token was given where a %s token is required.", k, want)
	}
	return nil
}

func isBase62(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}

// TokenHash is the SHA-256 of a token. Secret and admin tokens are stored
// only as their hash and looked up by it; the full hash is then compared in
// constant time.
type TokenHash [sha256.Size]byte

// HashToken returns the SHA-256 of token s.
func HashToken(s string) TokenHash { return sha256.Sum256([]byte(s)) }
