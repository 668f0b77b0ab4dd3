package replay_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/replay"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// clock is a manual clock safe for concurrent use.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}
func (c *clock) Now() time.Time               { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration)      { c.ns.Add(int64(d)) }
func (c *clock) At(d time.Duration) time.Time { return c.Now().Add(d) }

func use(t *testing.T, m *replay.Memory, key string, exp time.Time, want error) {
	t.Helper()
	if err := m.Use(context.Background(), key, exp); !errors.Is(err, want) || (want == nil && err != nil) {
		t.Fatalf("Use(%q) = %v, want %v", key, err, want)
	}
}

func TestMemory(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, m *replay.Memory, c *clock)
	}{
		{"replay within expiry refused", func(t *testing.T, m *replay.Memory, c *clock) {
			use(t, m, "a", c.At(time.Minute), nil)
			use(t, m, "a", c.At(time.Minute), replay.ErrReplayed)
			c.Advance(59 * time.Second)
			use(t, m, "a", c.At(time.Minute), replay.ErrReplayed)
			use(t, m, "b", c.At(time.Minute), nil)
		}},
		{"accepted again after expiry", func(t *testing.T, m *replay.Memory, c *clock) {
			use(t, m, "a", c.At(time.Minute), nil)
			c.Advance(time.Minute) // now == expiry: expired
			use(t, m, "a", c.At(time.Minute), nil)
			use(t, m, "a", c.At(time.Minute), replay.ErrReplayed)
		}},
		{"already expired is not recorded", func(t *testing.T, m *replay.Memory, c *clock) {
			use(t, m, "a", c.At(-time.Second), nil)
			use(t, m, "a", c.At(0), nil)
			if m.Len() != 0 {
				t.Fatalf("Len = %d, want 0", m.Len())
			}
		}},
		{"full of live entries fails closed", func(t *testing.T, m *replay.Memory, c *clock) {
			for i := range 4 {
				use(t, m, "k"+strconv.Itoa(i), c.At(time.Hour), nil)
			}
			err := m.Use(context.Background(), "new", c.At(time.Hour))
			if !errors.Is(err, replay.ErrFull) || auth.Code(err) != auth.CodeReplayStoreFull {
				t.Fatalf("Use on a full store = %v (code %q), want ErrFull", err, auth.Code(err))
			}
			// The live entries are all still there, and a replay is still a replay.
			for i := range 4 {
				use(t, m, "k"+strconv.Itoa(i), c.At(time.Hour), replay.ErrReplayed)
			}
			// The refused key was not recorded.
			c.Advance(time.Hour)
			use(t, m, "new", c.At(time.Hour), nil)
		}},
		{"expired entries are purged to make room", func(t *testing.T, m *replay.Memory, c *clock) {
			// Keys land in different shards: the sweep must cover them all.
			for i := range 3 {
				use(t, m, "short"+strconv.Itoa(i), c.At(time.Second), nil)
			}
			use(t, m, "long", c.At(time.Hour), nil)
			use(t, m, "x", c.At(time.Hour), replay.ErrFull)
			c.Advance(time.Second)
			for i := range 3 {
				use(t, m, "x"+strconv.Itoa(i), c.At(time.Hour), nil)
			}
			use(t, m, "y", c.At(time.Hour), replay.ErrFull)
			use(t, m, "long", c.At(time.Hour), replay.ErrReplayed)
			if got := replay.MapLen(m); got != 4 {
				t.Fatalf("MapLen = %d, want 4", got)
			}
		}},
		{"far expiry does not wrap", func(t *testing.T, m *replay.Memory, c *clock) {
			use(t, m, "a", time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), nil)
			c.Advance(100 * 365 * 24 * time.Hour)
			use(t, m, "a", c.At(time.Hour), replay.ErrReplayed)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock(t0)
			tt.run(t, replay.NewMemory(4, c.Now), c)
		})
	}
}

func TestMemoryDefaults(t *testing.T) {
	m := replay.NewMemory(0, nil)
	use(t, m, "a", time.Now().Add(time.Minute), nil)
	use(t, m, "a", time.Now().Add(time.Minute), replay.ErrReplayed)
}

// Each key is accepted exactly once however many goroutines race for it.
func TestMemoryConcurrentUse(t *testing.T) {
	c := newClock(t0)
	m := replay.NewMemory(10_000, c.Now)
	const keys, workers = 1000, 8
	var ok [keys]atomic.Int32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range keys {
				k := (i + w*127) % keys
				switch err := m.Use(context.Background(), "key"+strconv.Itoa(k), c.At(time.Minute)); err {
				case nil:
					ok[k].Add(1)
				case replay.ErrReplayed:
				default:
					t.Errorf("Use: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	for k := range ok {
		if n := ok[k].Load(); n != 1 {
			t.Errorf("key%d accepted %d times, want 1", k, n)
		}
	}
}

// However the inserts, expiries and sweeps interleave, the maps never hold
// more than max keys.
func TestMemoryBounded(t *testing.T) {
	c := newClock(t0)
	const max = 64
	m := replay.NewMemory(max, c.Now)
	var wg sync.WaitGroup
	var accepted, full atomic.Int64
	stop := make(chan struct{})
	checked := make(chan int)
	go func() { // samples the maps while the writers run
		most := 0
		for {
			select {
			case <-stop:
				checked <- most
				return
			default:
				if n := replay.MapLen(m); n > most {
					most = n
				}
			}
		}
	}()
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				err := m.Use(context.Background(), fmt.Sprintf("w%d-%d", w, i), c.At(time.Duration(1+i%7)*time.Millisecond))
				switch {
				case err == nil:
					accepted.Add(1)
				case errors.Is(err, replay.ErrFull):
					full.Add(1)
				default:
					t.Errorf("Use: %v", err)
				}
				if i%10 == 0 {
					c.Advance(time.Millisecond)
				}
				if n := m.Len(); n > max {
					t.Errorf("Len = %d > max %d", n, max)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if most := <-checked; most > max {
		t.Fatalf("maps held %d keys, max %d", most, max)
	}
	if n := replay.MapLen(m); n > max || n != m.Len() {
		t.Fatalf("MapLen = %d, Len = %d, max %d", n, m.Len(), max)
	}
	if accepted.Load() == 0 || full.Load() == 0 {
		t.Logf("accepted %d, full %d (both paths should normally be exercised)", accepted.Load(), full.Load())
	}
}

func BenchmarkUse(b *testing.B) {
	keys := func(n int) []string {
		ks := make([]string, n)
		for i := range ks {
			ks[i] = fmt.Sprintf("f1b3d1a8-2f5e-4a0c-9d8e-7c6b5a493827:%08x-0000-4000-8000-000000000000", i)
		}
		return ks
	}
	b.Run("serial", func(b *testing.B) {
		ks := keys(b.N)
		m := replay.NewMemory(b.N+1, func() time.Time { return t0 })
		exp := t0.Add(time.Minute)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if err := m.Use(context.Background(), ks[i], exp); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, shards := range []int{1, 32} {
		b.Run(fmt.Sprintf("parallel/shards=%d", shards), func(b *testing.B) {
			ks := keys(b.N)
			m := replay.NewMemoryShards(b.N+1, func() time.Time { return t0 }, shards)
			exp := t0.Add(time.Minute)
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := m.Use(context.Background(), ks[next.Add(1)-1], exp); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
	// Steady state of a store at its bound: every Use drops an expired
	// entry and records a new one.
	b.Run("churn", func(b *testing.B) {
		ks := keys(b.N)
		c := newClock(t0)
		m := replay.NewMemory(4096, c.Now)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			c.Advance(time.Microsecond)
			if err := m.Use(context.Background(), ks[i], c.At(time.Millisecond)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
