package replay

import (
	"context"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMax is the capacity of a Memory created with max <= 0.
const DefaultMax = 1 << 20

// memoryShards is the number of independently locked parts of a Memory,
// so that verifications on different cores do not queue on one mutex. On
// the 2-vCPU CI machine the gain is small (BenchmarkUse/parallel, growing
// to ~2M entries: ~700 ns/op with 1 shard, ~640 with 32; a store at its
// bound, BenchmarkUse/churn: ~130 ns/op).
const memoryShards = 32

// presize is how many entries a Memory has room for from the start.
const presize = 1 << 16

var _ Store = (*Memory)(nil)

// Memory is a bounded in-memory Store for one process. It holds at most
// max live entries; an entry is kept until its expiry and never evicted
// before, so when max live entries are held Use fails closed with ErrFull.
// Expired entries are dropped as Use goes (each costs O(log n) once), and
// all shards are swept before refusing with ErrFull.
//
// Memory is safe for concurrent use. Each entry costs its key plus about
// 80 bytes. It is only correct behind a single process: replicas that
// share traffic need a shared Store.
type Memory struct {
	max    int64
	now    func() time.Time
	seed   maphash.Seed
	mask   uint64
	n      atomic.Int64 // entries held, all shards; always >= the sum of the maps' sizes
	shards []shard
}

type shard struct {
	mu sync.Mutex
	m  map[string]int64 // key -> expiry, Unix ns
	h  []entry          // min-heap on exp; exactly one entry per key of m
	_  [128 - 8 - 8 - 24]byte
}

type entry struct {
	exp int64
	key string
}

// NewMemory returns a Memory holding at most max entries (DefaultMax if
// max <= 0) and reading the time from now (time.Now if nil). Give it the
// clock of the verifier that calls it: an entry is forgotten once now
// reaches its expiry.
func NewMemory(max int, now func() time.Time) *Memory {
	return newMemory(max, now, memoryShards)
}

func newMemory(max int, now func() time.Time, shards int) *Memory {
	if max <= 0 {
		max = DefaultMax
	}
	if now == nil {
		now = time.Now
	}
	n := 1
	for n < shards {
		n <<= 1
	}
	m := &Memory{max: int64(max), now: now, seed: maphash.MakeSeed(), mask: uint64(n - 1), shards: make([]shard, n)}
	// Room for the first entries up front (at most presize in all, ~3 MiB),
	// so that a young store does not grow its maps on the request path.
	per := min(max, presize) / n
	for i := range m.shards {
		m.shards[i].m = make(map[string]int64, per)
		m.shards[i].h = make([]entry, 0, per)
	}
	return m
}

// Use records key as used until expires. It returns ErrReplayed if key is
// held and not expired, and ErrFull if max live entries are held; a key
// refused with ErrFull is not recorded. An expires that is not after the
// current time records nothing (the credential has already expired, and
// the caller refuses expired credentials itself).
func (m *Memory) Use(_ context.Context, key string, expires time.Time) error {
	now := unixNano(m.now())
	exp := unixNano(expires)
	s := &m.shards[maphash.String(m.seed, key)&m.mask]
	s.mu.Lock()
	s.purge(now, &m.n)
	if _, ok := s.m[key]; ok {
		s.mu.Unlock()
		return ErrReplayed
	}
	if exp <= now {
		s.mu.Unlock()
		return nil
	}
	if !m.reserve() {
		// Full: sweep every shard, then try once more. Our lock is
		// released first so that shards are only ever locked one at a
		// time (no lock order to get wrong).
		s.mu.Unlock()
		m.purgeAll(now)
		s.mu.Lock()
		if _, ok := s.m[key]; ok {
			s.mu.Unlock()
			return ErrReplayed
		}
		if !m.reserve() {
			s.mu.Unlock()
			return ErrFull
		}
	}
	s.m[key] = exp
	s.push(entry{exp: exp, key: key})
	s.mu.Unlock()
	return nil
}

// Len returns the number of entries held, expired ones not yet dropped
// included. It is never more than the Memory's max.
func (m *Memory) Len() int { return int(m.n.Load()) }

// reserve counts one more entry unless max are held. A compare-and-swap
// rather than Add-then-undo, so that the count never exceeds max, even for
// an instant.
func (m *Memory) reserve() bool {
	for {
		n := m.n.Load()
		if n >= m.max {
			return false
		}
		if m.n.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (m *Memory) purgeAll(now int64) {
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		s.purge(now, &m.n)
		s.mu.Unlock()
	}
}

// purge drops the entries whose expiry is not after now. s.mu is held.
func (s *shard) purge(now int64, n *atomic.Int64) {
	for len(s.h) > 0 && s.h[0].exp <= now {
		delete(s.m, s.h[0].key)
		s.pop()
		n.Add(-1)
	}
}

func (s *shard) push(e entry) {
	s.h = append(s.h, e)
	h := s.h
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if h[p].exp <= h[i].exp {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func (s *shard) pop() {
	h := s.h
	last := len(h) - 1
	h[0] = h[last]
	h[last] = entry{} // let the key be collected
	h = h[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		c := l
		if r := l + 1; r < len(h) && h[r].exp < h[l].exp {
			c = r
		}
		if h[i].exp <= h[c].exp {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	s.h = h
	// Give memory back after a burst: a heap at a quarter of its
	// capacity is copied into a smaller one.
	if cap(s.h) > 1024 && len(s.h) < cap(s.h)/4 {
		s.h = append(make([]entry, 0, cap(s.h)/2), s.h...)
	}
}

// unixNano is t in Unix nanoseconds, clamped to the int64 range (years
// 1678 to 2262) so that far expiries do not wrap around.
func unixNano(t time.Time) int64 {
	switch s := t.Unix(); {
	case s >= math.MaxInt64/int64(time.Second):
		return math.MaxInt64
	case s <= math.MinInt64/int64(time.Second):
		return math.MinInt64
	}
	return t.UnixNano()
}
