package ratelimit_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsignhq/callsign/ratelimit"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// allow calls l.Allow and fails the test unless the answer is want.
func allow(t *testing.T, l *ratelimit.Limiter, key string, now time.Time, want bool) time.Duration {
	t.Helper()
	ok, retry := l.Allow(key, now)
	if ok != want {
		t.Fatalf("Allow(%q, t0+%v) = %v (retry after %v), want %v", key, now.Sub(t0), ok, retry, want)
	}
	if ok && retry != 0 {
		t.Errorf("Allow(%q) allowed with retryAfter %v, want 0", key, retry)
	}
	return retry
}

func TestBurstThenRefusal(t *testing.T) {
	tests := []struct {
		name      string
		perSecond float64
		burst     int
		wantBurst int           // events allowed at once
		minRetry  time.Duration // retryAfter of the first refusal, at least
		maxRetry  time.Duration // and at most
	}{
		{"one per second", 1, 3, 3, time.Second, time.Second},
		{"fast rate rounds retry up to a second", 100, 5, 5, time.Second, time.Second},
		{"slow rate", 0.25, 2, 2, 4 * time.Second, 4 * time.Second},
		{"burst below one means one", 1, 0, 1, time.Second, time.Second},
		{"negative burst means one", 1, -5, 1, time.Second, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := ratelimit.New(tt.perSecond, tt.burst, 0)
			for range tt.wantBurst {
				allow(t, l, "k", t0, true)
			}
			retry := allow(t, l, "k", t0, false)
			if retry < tt.minRetry || retry > tt.maxRetry {
				t.Errorf("retryAfter = %v, want in [%v, %v]", retry, tt.minRetry, tt.maxRetry)
			}
			// Waiting retryAfter is enough.
			allow(t, l, "k", t0.Add(retry), true)
		})
	}
}

func TestRefill(t *testing.T) {
	l := ratelimit.New(2, 4, 0) // a token every 500ms, up to 4
	steps := []struct {
		name string
		at   time.Duration
		n    int  // calls
		want bool // answer for each call
	}{
		{"burst", 0, 4, true},
		{"empty", 0, 1, false},
		{"too early for a token", 499 * time.Millisecond, 1, false},
		{"one token after 500ms", 500 * time.Millisecond, 1, true},
		{"and only one", 500 * time.Millisecond, 1, false},
		{"two tokens a second later", 1500 * time.Millisecond, 2, true},
		{"then empty again", 1500 * time.Millisecond, 1, false},
		{"refills to the burst, not beyond", time.Hour, 4, true},
		{"burst used up", time.Hour, 1, false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			for range st.n {
				allow(t, l, "k", t0.Add(st.at), st.want)
			}
		})
	}
}

// TestRefusalsDoNotConsume checks that a refused event does not take a
// token: a client that keeps retrying early is not locked out forever.
func TestRefusalsDoNotConsume(t *testing.T) {
	l := ratelimit.New(1, 1, 0)
	allow(t, l, "k", t0, true)
	for i := range 50 {
		allow(t, l, "k", t0.Add(time.Duration(i)*time.Millisecond), false)
	}
	allow(t, l, "k", t0.Add(time.Second), true)
}

func TestRetryAfterShrinks(t *testing.T) {
	// A token every 8s: a rate that is exact in binary floating point, so
	// that the durations below are exact too.
	l := ratelimit.New(0.125, 1, 0)
	allow(t, l, "k", t0, true)
	tests := []struct {
		at   time.Duration
		want time.Duration
	}{
		{0, 8 * time.Second},
		{3 * time.Second, 5 * time.Second},
		{7500 * time.Millisecond, time.Second}, // 500ms, reported as a second
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("at ", tt.at), func(t *testing.T) {
			retry := allow(t, l, "k", t0.Add(tt.at), false)
			if retry != tt.want {
				t.Errorf("retryAfter = %v, want %v", retry, tt.want)
			}
		})
	}
}

func TestKeysIndependent(t *testing.T) {
	l := ratelimit.New(1, 2, 0)
	allow(t, l, "app_a", t0, true)
	allow(t, l, "app_a", t0, true)
	allow(t, l, "app_a", t0, false)
	for _, k := range []string{"app_b", "", "APP_A", "app_a "} {
		t.Run(fmt.Sprintf("%q", k), func(t *testing.T) {
			allow(t, l, k, t0, true)
			allow(t, l, k, t0, true)
			allow(t, l, k, t0, false)
		})
	}
	allow(t, l, "app_a", t0, false)
}

func TestNilLimiter(t *testing.T) {
	tests := []struct {
		name string
		l    *ratelimit.Limiter
	}{
		{"nil", nil},
		{"zero rate", ratelimit.New(0, 10, 10)},
		{"negative rate", ratelimit.New(-1, 10, 10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.l != nil {
				t.Fatalf("New with a non-positive rate = %p, want nil", tt.l)
			}
			for range 1000 {
				allow(t, tt.l, "k", t0, true)
			}
		})
	}
}

func TestMaxKeys(t *testing.T) {
	// exhaust uses up key's only token.
	exhaust := func(t *testing.T, l *ratelimit.Limiter, key string) {
		t.Helper()
		allow(t, l, key, t0, true)
		allow(t, l, key, t0, false)
	}
	t.Run("least recently used key is forgotten", func(t *testing.T) {
		l := ratelimit.New(0.001, 1, 2)
		exhaust(t, l, "a")
		exhaust(t, l, "b")
		allow(t, l, "a", t0, false) // a is now more recent than b
		exhaust(t, l, "c")          // evicts b, the least recently used
		allow(t, l, "a", t0, false) // a kept its empty bucket
		allow(t, l, "c", t0, false)
		allow(t, l, "b", t0, true) // b was forgotten: a full bucket again
	})
	t.Run("within the bound nothing is forgotten", func(t *testing.T) {
		const n = 100
		l := ratelimit.New(0.001, 1, n)
		for i := range n {
			exhaust(t, l, fmt.Sprint("k", i))
		}
		for i := range n {
			allow(t, l, fmt.Sprint("k", i), t0, false)
		}
	})
	t.Run("beyond the bound old keys are forgotten", func(t *testing.T) {
		const n = 100
		l := ratelimit.New(0.001, 1, n)
		for i := range 2 * n {
			exhaust(t, l, fmt.Sprint("k", i))
		}
		// Only the last n keys are tracked; the first n start afresh.
		for i := range n {
			allow(t, l, fmt.Sprint("k", n+i), t0, false)
		}
		allow(t, l, "k0", t0, true)
	})
	t.Run("zero means the default", func(t *testing.T) {
		l := ratelimit.New(0.001, 1, 0)
		const n = 1000 // well under DefaultMaxKeys
		for i := range n {
			exhaust(t, l, fmt.Sprint("k", i))
		}
		allow(t, l, "k0", t0, false)
	})
}

// TestConcurrent checks, under -race, that concurrent callers share one
// bucket per key, also when they all see a key for the first time at once:
// with the clock stopped, exactly burst events per key pass.
func TestConcurrent(t *testing.T) {
	const (
		burst      = 2
		keys       = 500
		goroutines = 8
	)
	l := ratelimit.New(1, burst, keys)
	for k := range keys {
		key := fmt.Sprint("key", k)
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			allowed atomic.Int64
		)
		for range goroutines {
			wg.Go(func() {
				<-start // all goroutines meet the new key together
				if ok, _ := l.Allow(key, t0); ok {
					allowed.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if got := allowed.Load(); got != burst {
			t.Fatalf("%s: %d of %d concurrent events allowed, want %d", key, got, goroutines, burst)
		}
	}
}
