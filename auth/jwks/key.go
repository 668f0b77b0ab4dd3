// Package jwks holds the keys that JWT verifiers check signatures with:
// keys given in code (NewKey, NewSet) and JSON Web Key Sets (RFC 7517)
// parsed from a document (ParseSet) or fetched from an issuer's URL and
// kept fresh (Remote).
//
// Every Key has an explicit algorithm. A verifier accepts a token only when
// the token's alg equals its key's algorithm: the algorithm is never taken
// from the token (RFC 8725 §2.1, §3.1). A JWK that does not name its alg is
// given one by configuration (ParseOptions.DefaultAlg) or skipped.
//
// Keys are found by kid (Source). The empty kid is a kid like any other:
// the key with ID "" is the one used for tokens without a kid, and a token
// without a kid matches no other key.
//
// Supported algorithms: HS256, HS384, HS512 (oct keys of at least the
// hash's size, RFC 7518 §3.2), RS256 (RSA keys of 2048 bits or more), ES256
// (P-256 keys) and EdDSA (Ed25519 keys, RFC 8037).
package jwks

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"

	"github.com/callsignhq/callsign/auth"
)

// Algorithms (JWS "alg" values, RFC 7518 §3.1, RFC 8037 §3.1).
const (
	HS256 = "HS256"
	HS384 = "HS384"
	HS512 = "HS512"
	RS256 = "RS256"
	ES256 = "ES256"
	EdDSA = "EdDSA"
)

// Algorithms lists the supported algorithms.
func Algorithms() []string { return []string{HS256, HS384, HS512, RS256, ES256, EdDSA} }

// Supported reports whether alg is a supported algorithm (exact, case-sensitive).
func Supported(alg string) bool { return slices.Contains(Algorithms(), alg) }

// MinRSABits is the smallest RSA modulus accepted for RS256 (RFC 7518 §3.3).
const MinRSABits = 2048

// MinSecretLen returns the shortest HMAC secret RFC 7518 §3.2 allows for
// alg (the hash's size: 32, 48 or 64 bytes), and 0 for other algorithms.
func MinSecretLen(alg string) int {
	switch alg {
	case HS256:
		return 32
	case HS384:
		return 48
	case HS512:
		return 64
	}
	return 0
}

// ErrUnknownKey is returned by a Source that has no key for a kid.
var ErrUnknownKey = auth.NewError(auth.CodeUnknownKey, "jwks: unknown key")

// Source finds the key of a kid. Implementations are safe for concurrent
// use. Key returns an error wrapping ErrUnknownKey when there is no such
// key, and any other error when it cannot tell (a remote set that could not
// be fetched).
type Source interface {
	Key(ctx context.Context, kid string) (*Key, error)
}

// Key is a verification key with its kid and its algorithm. It is
// immutable.
type Key struct {
	id, alg string
	key     any // []byte, *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	fp      [sha256.Size]byte
}

// NewKey returns the key kid for alg. key must suit alg: a []byte secret
// for HS*, an *rsa.PublicKey of at least MinRSABits for RS256, a P-256
// *ecdsa.PublicKey for ES256, an ed25519.PublicKey for EdDSA. A private key
// (*rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey) is replaced by its
// public half. NewKey does not enforce MinSecretLen: the verifiers decide
// how to treat short secrets. A secret is copied.
func NewKey(kid, alg string, key any) (*Key, error) {
	if s, ok := key.(crypto.Signer); ok {
		key = s.Public()
	}
	var material []byte
	switch alg {
	case HS256, HS384, HS512:
		b, ok := key.([]byte)
		if !ok || len(b) == 0 {
			return nil, fmt.Errorf("jwks: key %q: %s needs a non-empty []byte secret, not %T", kid, alg, key)
		}
		b = slices.Clone(b)
		key, material = b, b
	case RS256:
		k, ok := key.(*rsa.PublicKey)
		if !ok || k == nil || k.N == nil {
			return nil, fmt.Errorf("jwks: key %q: RS256 needs an *rsa.PublicKey, not %T", kid, key)
		}
		if k.N.BitLen() < MinRSABits {
			return nil, fmt.Errorf("jwks: key %q: RSA modulus of %d bits, at least %d required", kid, k.N.BitLen(), MinRSABits)
		}
		if k.E < 3 || k.E%2 == 0 {
			return nil, fmt.Errorf("jwks: key %q: bad RSA public exponent", kid)
		}
	case ES256:
		k, ok := key.(*ecdsa.PublicKey)
		if !ok || k == nil || k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("jwks: key %q: ES256 needs a P-256 *ecdsa.PublicKey, not %T", kid, key)
		}
	case EdDSA:
		k, ok := key.(ed25519.PublicKey)
		if !ok || len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("jwks: key %q: EdDSA needs an Ed25519 public key, not %T", kid, key)
		}
		key = slices.Clone(k)
	default:
		return nil, fmt.Errorf("jwks: key %q: unsupported algorithm %q", kid, alg)
	}
	if material == nil {
		der, err := x509.MarshalPKIXPublicKey(key)
		if err != nil {
			return nil, fmt.Errorf("jwks: key %q: %w", kid, err)
		}
		material = der
	}
	k := &Key{id: kid, alg: alg, key: key}
	h := sha256.New()
	h.Write([]byte("callsign jwks key v1\x00" + kid + "\x00" + alg + "\x00"))
	h.Write(material)
	h.Sum(k.fp[:0])
	return k, nil
}

// ID returns the key's kid.
func (k *Key) ID() string { return k.id }

// Alg returns the key's algorithm, the only one tokens verified with it may use.
func (k *Key) Alg() string { return k.alg }

// Public returns the key material for a signature check: a []byte secret
// for HS*, else the public key. It must not be modified.
func (k *Key) Public() any { return k.key }

// Fingerprint identifies the key's kid, algorithm and material: two Keys
// have equal fingerprints exactly when they verify the same tokens. For an
// HMAC key it is derived from the secret; do not publish it.
func (k *Key) Fingerprint() [sha256.Size]byte { return k.fp }

// Set is an immutable set of keys with distinct kids. It implements Source.
type Set struct {
	keys map[string]*Key
	list []*Key
}

// NewSet returns the set of keys; two keys with the same kid are an error.
func NewSet(keys ...*Key) (*Set, error) {
	s := &Set{keys: make(map[string]*Key, len(keys))}
	for _, k := range keys {
		if k == nil {
			return nil, errors.New("jwks: nil key")
		}
		if _, dup := s.keys[k.id]; dup {
			return nil, fmt.Errorf("jwks: kid %q given twice", k.id)
		}
		s.keys[k.id] = k
		s.list = append(s.list, k)
	}
	return s, nil
}

// Key implements Source.
func (s *Set) Key(_ context.Context, kid string) (*Key, error) {
	if k := s.Lookup(kid); k != nil {
		return k, nil
	}
	return nil, ErrUnknownKey
}

// Lookup returns the key of kid, nil if there is none.
func (s *Set) Lookup(kid string) *Key {
	if s == nil {
		return nil
	}
	return s.keys[kid]
}

// Keys returns the keys in the order they were given or published.
func (s *Set) Keys() []*Key {
	if s == nil {
		return nil
	}
	return slices.Clone(s.list)
}

// Len returns the number of keys.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.list)
}
