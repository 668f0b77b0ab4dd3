package jwks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Defaults of Options.
const (
	DefaultTimeout            = 10 * time.Second
	DefaultMaxBytes           = 1 << 20
	DefaultRefreshEvery       = 5 * time.Minute
	DefaultMaxRefreshEvery    = time.Hour
	DefaultMinRefreshInterval = 10 * time.Second
)

// Options configure a Remote. The zero value of every field selects a
// safe default.
type Options struct {
	// Client fetches the set. Default: an http.Client with Timeout that
	// does not follow redirects. A Client given here is used as it is,
	// with Timeout applied to each fetch's context.
	Client *http.Client
	// Timeout bounds one fetch; DefaultTimeout if zero.
	Timeout time.Duration
	// MaxBytes bounds the response body; DefaultMaxBytes (1 MiB) if zero.
	MaxBytes int64
	// RefreshEvery is how long a fetched set is used before it is fetched
	// again when the response has no Cache-Control max-age;
	// DefaultRefreshEvery (5 min) if zero.
	RefreshEvery time.Duration
	// MaxRefreshEvery caps a Cache-Control max-age: a key the issuer
	// removes is dropped at most this long after; DefaultMaxRefreshEvery
	// (1 h) if zero.
	MaxRefreshEvery time.Duration
	// MinRefreshInterval is the least time between two fetches, whatever
	// asks for them (unknown kids, a max-age of 0, failures);
	// DefaultMinRefreshInterval (10 s) if zero, none if negative (tests).
	MinRefreshInterval time.Duration
	// Parse says which keys of the set are kept (DefaultAlg, MaxKeys,
	// AllowSymmetric). Parse.OnSkip is replaced by a log line.
	Parse ParseOptions
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// Logger receives a line per failed fetch and per skipped key;
	// slog.Default() if nil.
	Logger *slog.Logger
}

// Remote is a JWK Set fetched from an issuer's URL and cached. It
// implements Source and is safe for concurrent use.
//
// The first Key fetches the set. It is fetched again when it is older than
// its lifetime (the response's Cache-Control max-age, bounded by
// MinRefreshInterval and MaxRefreshEvery, else RefreshEvery), and when a
// token names a kid the set does not hold, so that a key the issuer
// rotated in is picked up at once. Concurrent callers share one fetch
// (singleflight), and no two fetches start less than MinRefreshInterval
// apart, so a flood of tokens with made-up kids costs the issuer at most
// one request per interval. A failed fetch keeps the last good set in use
// and is logged; it is retried after MinRefreshInterval.
//
// Refreshes happen inside Key calls, on the caller's goroutine: a Remote
// starts no goroutine and needs no Close.
type Remote struct {
	url    string
	opts   Options
	client *http.Client
	log    *slog.Logger
	sf     singleflight.Group
	state  atomic.Pointer[remoteState]
	// fetches counts the fetches started, for tests and metrics.
	fetches atomic.Int64
}

// remoteState is replaced whole after every fetch attempt (only one runs at
// a time: singleflight), and read without locks.
type remoteState struct {
	set         *Set      // last good set; nil if no fetch succeeded yet
	refreshAt   time.Time // when the set is due for a scheduled fetch
	lastAttempt time.Time // start of the last fetch
	err         error     // error of the last fetch, nil if it succeeded
}

// NewRemote returns a Remote for the JWK Set at rawURL (http or https).
// Nothing is fetched until the first Key or Refresh.
func NewRemote(rawURL string, opts Options) (*Remote, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("jwks: %q is not an http(s) URL", rawURL)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.RefreshEvery <= 0 {
		opts.RefreshEvery = DefaultRefreshEvery
	}
	if opts.MaxRefreshEvery <= 0 {
		opts.MaxRefreshEvery = DefaultMaxRefreshEvery
	}
	switch {
	case opts.MinRefreshInterval == 0:
		opts.MinRefreshInterval = DefaultMinRefreshInterval
	case opts.MinRefreshInterval < 0:
		opts.MinRefreshInterval = 0
	}
	if opts.MaxRefreshEvery < opts.MinRefreshInterval {
		return nil, errors.New("jwks: MaxRefreshEvery is shorter than MinRefreshInterval")
	}
	if opts.Parse.DefaultAlg != "" && !Supported(opts.Parse.DefaultAlg) {
		return nil, fmt.Errorf("jwks: unsupported DefaultAlg %q", opts.Parse.DefaultAlg)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Remote{url: u.String(), opts: opts, client: opts.Client, log: opts.Logger}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.client == nil {
		r.client = &http.Client{
			Timeout:       opts.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	r.opts.Parse.OnSkip = func(kid string, err error) {
		r.log.Warn("jwks: key skipped", "url", r.url, "kid", kid, "reason", err.Error())
	}
	return r, nil
}

// URL returns the set's URL.
func (r *Remote) URL() string { return r.url }

// Fetches returns how many fetches were started.
func (r *Remote) Fetches() int64 { return r.fetches.Load() }

// Set returns the last good set, nil if none was fetched yet.
func (r *Remote) Set() *Set {
	if st := r.state.Load(); st != nil {
		return st.set
	}
	return nil
}

// fetch reasons.
type reason int

const (
	scheduled  reason = iota // the set is due (or there is none)
	unknownKid               // a token names a kid the set lacks
	forced                   // Refresh
)

// Key implements Source. It returns ErrUnknownKey (wrapped) when the set,
// refreshed if allowed, has no key kid, and another error when no set could
// ever be fetched.
func (r *Remote) Key(ctx context.Context, kid string) (*Key, error) {
	st := r.state.Load()
	if st == nil || !r.opts.Now().Before(st.refreshAt) {
		st = r.refresh(ctx, scheduled)
	}
	if k := st.set.Lookup(kid); k != nil {
		return k, nil
	}
	if st.set != nil && r.opts.Now().Sub(st.lastAttempt) >= r.opts.MinRefreshInterval {
		st = r.refresh(ctx, unknownKid)
		if k := st.set.Lookup(kid); k != nil {
			return k, nil
		}
	}
	if st.set == nil {
		return nil, fmt.Errorf("jwks: no key set from %s: %w", r.url, st.err)
	}
	return nil, fmt.Errorf("%w: kid %q is not in the set at %s", ErrUnknownKey, kid, r.url)
}

// Refresh fetches the set now, whatever its age and MinRefreshInterval
// (joining a fetch in flight), and returns the fetch's error. Call it at
// start-up to fail fast on a wrong URL.
func (r *Remote) Refresh(ctx context.Context) error {
	return r.refresh(ctx, forced).err
}

// refresh runs at most one fetch at a time; concurrent callers wait for
// it and share its result, unless their ctx ends first.
func (r *Remote) refresh(ctx context.Context, why reason) *remoteState {
	ch := r.sf.DoChan("fetch", func() (any, error) {
		// The fetch outlives a caller that gives up: others may be
		// waiting for it.
		return r.fetchIfDue(context.WithoutCancel(ctx), why), nil
	})
	select {
	case res := <-ch:
		return res.Val.(*remoteState)
	case <-ctx.Done():
		if st := r.state.Load(); st != nil {
			return st
		}
		return &remoteState{err: ctx.Err()}
	}
}

// fetchIfDue fetches unless another caller's fetch made it pointless, or
// the last one started less than MinRefreshInterval ago.
func (r *Remote) fetchIfDue(ctx context.Context, why reason) *remoteState {
	now := r.opts.Now()
	old := r.state.Load()
	if old != nil && why != forced {
		if why == scheduled && now.Before(old.refreshAt) {
			return old // refreshed by the caller before us
		}
		if now.Sub(old.lastAttempt) < r.opts.MinRefreshInterval {
			return old
		}
	}
	r.fetches.Add(1)
	set, ttl, err := r.fetch(ctx)
	st := &remoteState{lastAttempt: now}
	if err != nil {
		r.log.Warn("jwks: fetching the key set failed; keeping the last good set", "url", r.url, "error", err.Error(),
			"have_set", old != nil && old.set != nil)
		st.err = err
		st.refreshAt = now.Add(r.opts.MinRefreshInterval)
		if old != nil {
			st.set = old.set
		}
	} else {
		st.set = set
		st.refreshAt = now.Add(ttl)
	}
	r.state.Store(st)
	return st
}

// fetch gets and parses the set, and returns it with its lifetime.
func (r *Remote) fetch(ctx context.Context) (*Set, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, 0, fmt.Errorf("jwks: %s answered %s", r.url, resp.Status)
	}
	if resp.ContentLength > r.opts.MaxBytes {
		return nil, 0, fmt.Errorf("jwks: the set is %d bytes, the limit is %d", resp.ContentLength, r.opts.MaxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.opts.MaxBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("jwks: reading %s: %w", r.url, err)
	}
	if int64(len(body)) > r.opts.MaxBytes {
		return nil, 0, fmt.Errorf("jwks: the set is over the limit of %d bytes", r.opts.MaxBytes)
	}
	set, err := ParseSet(body, r.opts.Parse)
	if err != nil {
		return nil, 0, err
	}
	return set, r.lifetime(resp.Header.Values("Cache-Control")), nil
}

// lifetime is the Cache-Control max-age bounded by MinRefreshInterval and
// MaxRefreshEvery (no-cache and no-store count as 0), else RefreshEvery.
func (r *Remote) lifetime(cc []string) time.Duration {
	ttl := time.Duration(-1)
	for _, h := range cc {
		for d := range strings.SplitSeq(h, ",") {
			d = strings.ToLower(strings.TrimSpace(d))
			switch {
			case d == "no-cache" || d == "no-store":
				ttl = 0
			case strings.HasPrefix(d, "max-age="):
				if n, err := strconv.ParseInt(strings.Trim(d[len("max-age="):], `"`), 10, 64); err == nil && n >= 0 && ttl != 0 {
					ttl = time.Duration(min(n, int64(r.opts.MaxRefreshEvery/time.Second)+1)) * time.Second
				}
			}
		}
	}
	if ttl < 0 {
		return r.opts.RefreshEvery
	}
	return min(max(ttl, r.opts.MinRefreshInterval), r.opts.MaxRefreshEvery)
}
