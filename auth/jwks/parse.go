package jwks

import (
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// DefaultMaxKeys bounds the keys of a JWK Set.
const DefaultMaxKeys = 100

// ParseOptions say how ParseSet treats a JWK Set's keys. The zero value
// is strict: keys must name their alg, oct keys are refused, at most
// DefaultMaxKeys keys.
type ParseOptions struct {
	// DefaultAlg is the algorithm of keys that do not name one (no "alg"
	// member). Keys whose type does not suit it are skipped. Empty: such
	// keys are skipped. It is configuration, never taken from a token.
	DefaultAlg string
	// MaxKeys is the most keys the set may hold (members of "keys", skipped
	// ones included); DefaultMaxKeys if zero.
	MaxKeys int
	// AllowSymmetric accepts oct (HMAC) keys, which must be at least
	// MinSecretLen long. A JWK Set fetched over a network should not
	// carry secrets: anyone who can read it can mint tokens.
	AllowSymmetric bool
	// OnSkip, if set, is told about every key that is skipped and why.
	OnSkip func(kid string, err error)
}

// rawJWK is what ParseSet looks at before go-jose parses a key.
type rawJWK struct {
	Kty    string          `json:"kty"`
	Kid    string          `json:"kid"`
	Use    string          `json:"use"`
	KeyOps []string        `json:"key_ops"`
	D      json.RawMessage `json:"d"`
	P      json.RawMessage `json:"p"`
	Q      json.RawMessage `json:"q"`
	DP     json.RawMessage `json:"dp"`
	DQ     json.RawMessage `json:"dq"`
	QI     json.RawMessage `json:"qi"`
	Priv   json.RawMessage `json:"priv"`
}

// ParseSet parses a JWK Set (RFC 7517 §5) with go-jose and keeps its
// signature verification keys. As §5 recommends, a key that cannot be used
// is skipped rather than failing the whole set: an unknown kty, a use other
// than "sig", key_ops without "verify", private key members (a published
// private key is a leak, not a verification key), no alg and no
// DefaultAlg, an alg that does not suit the key, a key too weak for its
// alg, an oct key without AllowSymmetric. A kid that appears more than once
// is ambiguous: all its keys are skipped. The set itself must be a JSON
// object with a "keys" array of at most MaxKeys members.
func ParseSet(data []byte, opts ParseOptions) (*Set, error) {
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = DefaultMaxKeys
	}
	var doc struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("jwks: not a JWK Set: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`jwks: not a JWK Set: no "keys" array`)
	}
	if len(*doc.Keys) > opts.MaxKeys {
		return nil, fmt.Errorf("jwks: the JWK Set has %d keys, the limit is %d", len(*doc.Keys), opts.MaxKeys)
	}
	skip := func(kid string, err error) {
		if opts.OnSkip != nil {
			opts.OnSkip(kid, err)
		}
	}
	var parsed []*Key
	count := map[string]int{}
	for _, raw := range *doc.Keys {
		k, err := parseKey(raw, opts)
		if err != nil {
			var r rawJWK
			json.Unmarshal(raw, &r)
			skip(r.Kid, err)
			continue
		}
		parsed = append(parsed, k)
		count[k.id]++
	}
	s := &Set{keys: make(map[string]*Key, len(parsed))}
	for _, k := range parsed {
		if count[k.id] > 1 {
			skip(k.id, errors.New("jwks: kid used by more than one key"))
			continue
		}
		s.keys[k.id] = k
		s.list = append(s.list, k)
	}
	return s, nil
}

func parseKey(raw json.RawMessage, opts ParseOptions) (*Key, error) {
	var r rawJWK
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("jwks: not a JWK: %w", err)
	}
	if r.D != nil || r.P != nil || r.Q != nil || r.DP != nil || r.DQ != nil || r.QI != nil || r.Priv != nil {
		return nil, errors.New("jwks: the JWK holds private key members")
	}
	if r.Kty == "oct" && !opts.AllowSymmetric {
		return nil, errors.New("jwks: oct (symmetric) keys are not accepted from this set")
	}
	if r.Use != "" && r.Use != "sig" {
		return nil, fmt.Errorf("jwks: the JWK's use is %q, not sig", r.Use)
	}
	if r.KeyOps != nil && !contains(r.KeyOps, "verify") {
		return nil, errors.New(`jwks: the JWK's key_ops lack "verify"`)
	}
	var jk jose.JSONWebKey
	// Safe on this input: the private members that make go-jose's parsing
	// expensive or unsafe were refused above.
	if err := jk.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	alg := jk.Algorithm
	if alg == "" {
		alg = opts.DefaultAlg
	}
	if alg == "" {
		return nil, errors.New("jwks: the JWK names no alg and no default is configured")
	}
	k, err := NewKey(jk.KeyID, alg, jk.Key)
	if err != nil {
		return nil, err
	}
	if n := MinSecretLen(alg); n > 0 && len(k.key.([]byte)) < n {
		return nil, fmt.Errorf("jwks: key %q: %s secret of %d bytes, at least %d required", jk.KeyID, alg, len(k.key.([]byte)), n)
	}
	return k, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
