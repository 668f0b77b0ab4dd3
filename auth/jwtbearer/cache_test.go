package jwtbearer_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/auth/jwks"
	"github.com/callsignhq/callsign/auth/jwtbearer"
	"github.com/golang-jwt/jwt/v5"
)

// mutableSource is a key source whose keys the test rotates.
type mutableSource struct {
	mu  sync.Mutex
	set *jwks.Set
}

func (m *mutableSource) Key(ctx context.Context, kid string) (*jwks.Key, error) {
	m.mu.Lock()
	s := m.set
	m.mu.Unlock()
	return s.Key(ctx, kid)
}

func (m *mutableSource) replace(keys []*jwks.Key) {
	s, err := jwks.NewSet(keys...)
	if err != nil {
		panic(err)
	}
	m.mu.Lock()
	m.set = s
	m.mu.Unlock()
}

// TestCacheNeverAcceptsWhatTheFullCheckRefuses is a differential property
// test: random sequences of clock moves (forward, and sometimes back), key
// rotations, removals and restorations, and verifications of tokens from a
// pool (valid, expired, not yet valid, of every key version, of unknown
// kids), run against two Authenticators that differ only in their cache.
// Every verification must end the same way: the same code, and the same
// Principal when accepted.
func TestCacheNeverAcceptsWhatTheFullCheckRefuses(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { cacheDifferential(t, seed, 4000) })
	}
}

func cacheDifferential(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, 0xcafe))

	// Three versions of the material of each kid; kid "" is the kid-less key.
	type version struct {
		alg string
		key any // signing key
		pub any // verification key
	}
	kids := []string{"k1", "k2", "ed", ""}
	versions := map[string][]version{}
	for _, kid := range kids {
		for v := range 3 {
			if kid == "ed" {
				priv := ed25519.NewKeyFromSeed(fmt.Appendf(make([]byte, 0, 32), "%-32s", fmt.Sprint(kid, v)))
				versions[kid] = append(versions[kid], version{jwks.EdDSA, priv, priv.Public()})
				continue
			}
			secret := fmt.Appendf(nil, "%-32s", fmt.Sprint("secret ", kid, v))
			alg := jwks.HS256
			if v == 2 {
				alg = jwks.HS384 // same kid, another algorithm
				secret = fmt.Appendf(nil, "%-48s", fmt.Sprint("secret ", kid, v))
			}
			versions[kid] = append(versions[kid], version{alg, secret, secret})
		}
	}
	current := map[string]int{} // kid -> version in the source, -1 removed
	src := &mutableSource{}
	publish := func() {
		var keys []*jwks.Key
		for _, kid := range kids {
			if v := current[kid]; v >= 0 {
				k, err := jwks.NewKey(kid, versions[kid][v].alg, versions[kid][v].pub)
				if err != nil {
					t.Fatal(err)
				}
				keys = append(keys, k)
			}
		}
		src.replace(keys)
	}
	publish()

	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	newA := func(cache int) *jwtbearer.Authenticator {
		a, err := jwtbearer.New(jwtbearer.WithKeySource(src), jwtbearer.WithNow(clock), jwtbearer.WithIssuer(iss), jwtbearer.WithCacheSize(cache))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	cached, full := newA(8), newA(0) // a small cache, so that entries are evicted too

	// The pool: every kid and version, with lifetimes around the clock's path.
	var pool, usual []string // usual: tokens of the usual (first) version of their key
	methods := map[string]jwt.SigningMethod{jwks.HS256: jwt.SigningMethodHS256, jwks.HS384: jwt.SigningMethodHS384, jwks.EdDSA: jwt.SigningMethodEdDSA}
	for _, kid := range append(kids, "unknown") {
		vs := versions[kid]
		if kid == "unknown" {
			vs = versions["k1"][:1]
		}
		for vi, v := range vs {
			for i, life := range []time.Duration{-2 * time.Minute, time.Minute, 5 * time.Minute, 20 * time.Minute, time.Hour, time.Hour, 2 * time.Hour} {
				c := jwt.MapClaims{"iss": iss, "sub": fmt.Sprint("user-", kid, i), "jti": fmt.Sprint(i), "scope": "a b",
					"exp": t0.Add(life).Unix(), "iat": t0.Add(-time.Minute).Unix()}
				switch i {
				case 2:
					c["nbf"] = t0.Add(3 * time.Minute).Unix()
				case 3:
					c["iat"] = t0.Add(5 * time.Minute).Unix()
				case 5:
					c["iss"] = "https://other.example"
				}
				tok := mint(t, methods[v.alg], kid, v.key, c)
				pool = append(pool, tok)
				if vi == 0 {
					usual = append(usual, tok)
				}
			}
		}
	}

	// The instants where a decision flips: exp + leeway, nbf - leeway, iat - leeway.
	var edges []time.Time
	for _, d := range []time.Duration{-2 * time.Minute, time.Minute, 5 * time.Minute, 20 * time.Minute, time.Hour, 2 * time.Hour} {
		edges = append(edges, t0.Add(d+jwtbearer.DefaultLeeway))
	}
	edges = append(edges, t0.Add(3*time.Minute-jwtbearer.DefaultLeeway), t0.Add(5*time.Minute-jwtbearer.DefaultLeeway))

	codes := map[string]int{}
	for step := range steps {
		switch r := rng.IntN(100); {
		case r < 20:
			// The clock wanders, mostly forward, within 2 hours of t0.
			mu.Lock()
			now = now.Add(time.Duration(rng.IntN(40)) * time.Second)
			if now.After(t0.Add(2 * time.Hour)) {
				now = t0.Add(-time.Minute)
			}
			mu.Unlock()
		case r < 23:
			mu.Lock()
			now = now.Add(-time.Duration(rng.IntN(90)) * time.Second)
			mu.Unlock()
		case r < 26:
			// To an edge, or a nanosecond either side of it.
			mu.Lock()
			now = edges[rng.IntN(len(edges))].Add(time.Duration(rng.IntN(3) - 1))
			mu.Unlock()
		case r < 29:
			// A rotation: usually back to the first version.
			kid := kids[rng.IntN(len(kids))]
			current[kid] = 0
			if rng.IntN(2) == 0 {
				current[kid] = rng.IntN(4) - 1 // any version, or removed
			}
			publish()
		default:
			tok := pool[rng.IntN(len(pool))]
			if rng.IntN(3) > 0 {
				tok = usual[rng.IntN(len(usual))]
			}
			// The same token may be verified twice in a row: the second
			// time is a cache hit when the first succeeded.
			for range 1 + rng.IntN(2) {
				pc, errc := cached.Verify(context.Background(), tok)
				pf, errf := full.Verify(context.Background(), tok)
				if auth.Code(errc) != auth.Code(errf) || !equalPrincipal(pc, pf) || (errc == nil) != (errf == nil) {
					t.Fatalf("step %d at %v: cached %+v, %v; full %+v, %v", step, clock(), pc, errc, pf, errf)
				}
				codes[auth.Code(errc)]++
			}
		}
	}
	hits, _ := cached.CacheStats()
	t.Logf("outcomes %v, cache hits %d", codes, hits)
	if hits < 100 || codes[""] < 100 || codes[auth.CodeExpired] == 0 || codes[auth.CodeUnknownKey] == 0 || codes[auth.CodeBadSignature] == 0 ||
		codes[auth.CodeAlgNotAllowed] == 0 || codes[auth.CodeNotYetValid] == 0 {
		t.Fatalf("the sequence did not exercise every path: %v, %d hits", codes, hits)
	}
}
