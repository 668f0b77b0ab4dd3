// Package ratelimit limits the rate of requests per key (an app id, a client
// IP) with token buckets from golang.org/x/time/rate, keeping at most a fixed
// number of keys in a least-recently-used cache so that memory stays bounded
// whatever the number of clients.
package ratelimit

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// DefaultMaxKeys is the number of keys a Limiter tracks when New is given 0.
const DefaultMaxKeys = 65536

// Limiter allows up to Rate events per second per key with bursts of Burst.
// A nil *Limiter allows everything. It is safe for concurrent use.
//
// When more than MaxKeys keys are active, the least recently used one is
// forgotten, which resets its bucket: a client spraying many keys can at
// worst reset buckets, not exhaust memory.
type Limiter struct {
	limit rate.Limit
	burst int
	keys  *lru.Cache[string, *rate.Limiter]
}

// New returns a Limiter of perSecond events per second per key, bursts of
// burst, tracking at most maxKeys keys (DefaultMaxKeys if 0). It returns nil,
// which allows everything, when perSecond <= 0.
func New(perSecond float64, burst, maxKeys int) *Limiter {
	if perSecond <= 0 {
		return nil
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	if burst < 1 {
		burst = 1
	}
	c, err := lru.New[string, *rate.Limiter](maxKeys)
	if err != nil {
		panic(err) // only for a non-positive size, excluded above
	}
	return &Limiter{limit: rate.Limit(perSecond), burst: burst, keys: c}
}

// Allow reports whether an event for key may happen at now. When it may
// not, retryAfter is how long until it may (at least one second, as
// Retry-After counts in whole seconds).
func (l *Limiter) Allow(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	lim, found := l.keys.Get(key)
	if !found {
		lim = rate.NewLimiter(l.limit, l.burst)
		if prev, had, _ := l.keys.PeekOrAdd(key, lim); had {
			lim = prev
		}
	}
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	d := r.DelayFrom(now)
	if d <= 0 {
		return true, 0
	}
	r.CancelAt(now)
	return false, max(d, time.Second)
}
