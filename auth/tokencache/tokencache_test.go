package tokencache_test

import (
	"context"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth/jwks"
	"github.com/callsignhq/callsign/auth/tokencache"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func key(t *testing.T, kid, secret string) *jwks.Key {
	t.Helper()
	k, err := jwks.NewKey(kid, jwks.HS256, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func set(t *testing.T, keys ...*jwks.Key) *jwks.Set {
	t.Helper()
	s, err := jwks.NewSet(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func entry(k *jwks.Key) *tokencache.Entry {
	return &tokencache.Entry{
		Principal:   callsign.Principal{Scheme: callsign.SchemeJWT, KeyID: k.ID(), UserID: "alice", Scopes: []string{"a"}, Claims: map[string]any{"jti": "1"}},
		KeyID:       k.ID(),
		Fingerprint: k.Fingerprint(),
		ValidFrom:   t0.Add(-time.Minute),
		ValidUntil:  t0.Add(time.Hour),
	}
}

func TestGet(t *testing.T) {
	k1 := key(t, "k1", "secret one")
	keys := set(t, k1)
	tests := []struct {
		name  string
		now   time.Time
		keys  *jwks.Set
		hit   bool
		stays bool // the entry is still there afterwards
	}{
		{"inside the window", t0, keys, true, true},
		{"at ValidFrom", t0.Add(-time.Minute), keys, true, true},
		{"before ValidFrom (clock set back): kept", t0.Add(-time.Minute - 1), keys, false, true},
		{"a nanosecond before ValidUntil", t0.Add(time.Hour - 1), keys, true, true},
		{"at ValidUntil: dropped", t0.Add(time.Hour), keys, false, false},
		{"key removed: dropped", t0, set(t), false, false},
		{"key replaced under the kid: dropped", t0, set(t, key(t, "k1", "secret two")), false, false},
		{"same material under another algorithm: dropped", t0, set(t, func() *jwks.Key { k, _ := jwks.NewKey("k1", jwks.HS384, []byte("secret one")); return k }()), false, false},
		{"key reloaded with the same material", t0, set(t, key(t, "k1", "secret one")), true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tokencache.New(10)
			c.Add("tok", entry(k1))
			p, hit := c.Get(context.Background(), "tok", tt.now, tt.keys)
			if hit != tt.hit {
				t.Fatalf("hit = %v (%+v), want %v", hit, p, tt.hit)
			}
			if hit && (p.UserID != "alice" || p.KeyID != "k1") {
				t.Fatalf("principal = %+v", p)
			}
			if stays := c.Len() == 1; stays != tt.stays {
				t.Fatalf("entry kept = %v, want %v", stays, tt.stays)
			}
		})
	}
}

// What Get returns, and what Add was given, can be changed without
// changing the cache.
func TestCopies(t *testing.T) {
	k1 := key(t, "k1", "secret one")
	keys := set(t, k1)
	c := tokencache.New(10)
	e := entry(k1)
	c.Add("tok", e)
	e.Principal.Scopes[0], e.Principal.Claims["jti"], e.Principal.UserID = "admin", "x", "mallory"
	p, _ := c.Get(context.Background(), "tok", t0, keys)
	p.Scopes[0], p.Claims["jti"], p.RequestID = "admin", "x", "req-1"
	q, _ := c.Get(context.Background(), "tok", t0, keys)
	if q.UserID != "alice" || q.Scopes[0] != "a" || q.Claims["jti"] != "1" || q.RequestID != "" {
		t.Fatalf("the cache was changed through a copy: %+v", q)
	}
	c.Get(context.Background(), "another token", t0, keys)
	if h, m := c.Stats(); h != 2 || m != 1 {
		t.Fatalf("stats = %d hits, %d misses", h, m)
	}
}

func TestBoundedAndDisabled(t *testing.T) {
	k1 := key(t, "k1", "secret one")
	c := tokencache.New(2)
	for _, tok := range []string{"a", "b", "c"} {
		c.Add(tok, entry(k1))
	}
	if c.Len() != 2 {
		t.Fatalf("Len = %d", c.Len())
	}
	if _, hit := c.Get(context.Background(), "a", t0, set(t, k1)); hit {
		t.Fatal("the least recently used entry was kept")
	}
	off := tokencache.New(0)
	off.Add("a", entry(k1))
	if _, hit := off.Get(context.Background(), "a", t0, set(t, k1)); hit || off.Len() != 0 {
		t.Fatal("a disabled cache remembers")
	}
}
