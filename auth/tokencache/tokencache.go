// Package tokencache remembers bearer tokens that passed a full
// verification, so that the next request with the same token costs a hash
// and a map lookup instead of a JSON parse and a signature check. It is
// shared by auth/jwtbearer and auth/apptoken.
//
// A cache hit never accepts what the full check would refuse:
//
//   - entries are keyed by the SHA-256 of the whole token string, and the
//     verifiers accept only the canonical encoding of a token, so a token is
//     found only if it is byte for byte one that verified;
//   - an entry holds the validity window the full check computed, with its
//     leeway (from max(nbf, iat) - leeway to exp + leeway), and is not used
//     outside it, so it expires exactly when the token does, and a clock set
//     back is handled too;
//   - an entry records the kid and the fingerprint of the key that verified
//     the token, and is used only while the key source still holds that
//     very key under that kid (a rotated, removed or replaced key sends the
//     token back to the full check);
//   - everything else the full check looks at is fixed configuration of the
//     verifier that owns the cache.
//
// Failures are not cached.
package tokencache

import (
	"context"
	"crypto/sha256"
	"maps"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth/jwks"
	lru "github.com/hashicorp/golang-lru/v2"
)

// DefaultSize is a reasonable number of entries (about 1 KiB each).
const DefaultSize = 4096

// Entry is what the full check established about a token.
type Entry struct {
	// Principal is returned, copied, on every hit.
	Principal callsign.Principal
	// KeyID and Fingerprint name the key that verified the token
	// (jwks.Key.Fingerprint).
	KeyID       string
	Fingerprint [sha256.Size]byte
	// The token is valid at t when !t.Before(ValidFrom) && t.Before(ValidUntil).
	ValidFrom, ValidUntil time.Time
}

// Cache is a bounded LRU of verified tokens, safe for concurrent use. A nil
// *Cache is a disabled cache: Get misses and Add does nothing.
type Cache struct {
	lru          *lru.Cache[[sha256.Size]byte, *Entry]
	hits, misses atomic.Uint64
}

// New returns a cache of at most size entries, nil (disabled) if size <= 0.
func New(size int) *Cache {
	if size <= 0 {
		return nil
	}
	c, err := lru.New[[sha256.Size]byte, *Entry](size)
	if err != nil {
		panic(err) // only for size <= 0
	}
	return &Cache{lru: c}
}

// Get returns a copy of the Principal of token when the cache holds it, now
// is inside its validity window and keys still holds the key that verified
// it. An entry that expired or whose key changed is dropped.
func (c *Cache) Get(ctx context.Context, token string, now time.Time, keys jwks.Source) (*callsign.Principal, bool) {
	if c == nil {
		return nil, false
	}
	h := sum(token)
	e, ok := c.lru.Get(h)
	if !ok {
		c.misses.Add(1)
		return nil, false
	}
	if now.Before(e.ValidFrom) {
		c.misses.Add(1)
		return nil, false // the clock went back; the full check decides
	}
	if !now.Before(e.ValidUntil) {
		c.lru.Remove(h)
		c.misses.Add(1)
		return nil, false
	}
	k, err := keys.Key(ctx, e.KeyID)
	if err != nil || k.Fingerprint() != e.Fingerprint {
		c.lru.Remove(h)
		c.misses.Add(1)
		return nil, false
	}
	c.hits.Add(1)
	return e.principal(), true
}

// hit is a Principal handed out on a hit, with room for its scopes, so
// that both cost one allocation.
type hit struct {
	p      callsign.Principal
	scopes [2]string
}

// principal returns a copy of e.Principal that shares nothing with e: the
// handler that gets it may change it.
func (e *Entry) principal() *callsign.Principal {
	h := new(hit)
	h.p = e.Principal
	if n := len(e.Principal.Scopes); n <= len(h.scopes) && e.Principal.Scopes != nil {
		h.p.Scopes = h.scopes[:n:n]
		copy(h.p.Scopes, e.Principal.Scopes)
	} else {
		h.p.Scopes = slices.Clone(e.Principal.Scopes)
	}
	h.p.Claims = maps.Clone(e.Principal.Claims)
	return &h.p
}

// Add remembers that token verified as e says. It keeps a copy of e, so
// the caller may hand e.Principal's slices and maps on.
func (c *Cache) Add(token string, e *Entry) {
	if c == nil {
		return
	}
	cp := *e
	cp.Principal.Scopes = slices.Clone(e.Principal.Scopes)
	cp.Principal.Claims = maps.Clone(e.Principal.Claims)
	c.lru.Add(sum(token), &cp)
}

// sum hashes token without copying it: a request's token is hundreds of
// bytes, and []byte(token) would allocate on every hit. Sum256 only reads.
func sum(token string) [sha256.Size]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

// Stats returns the number of hits and misses so far.
func (c *Cache) Stats() (hits, misses uint64) {
	if c == nil {
		return 0, 0
	}
	return c.hits.Load(), c.misses.Load()
}

// Len returns the number of entries.
func (c *Cache) Len() int {
	if c == nil {
		return 0
	}
	return c.lru.Len()
}
