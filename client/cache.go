package client

import (
	"sync"
	"time"
)

// tokenCache holds one access token until shortly before it expires; the
// token sources share it. Concurrent callers wait for one fetch.
type tokenCache struct {
	mu      sync.Mutex
	token   string
	expires time.Time
}

// get returns the cached token unless it expires within before (one minute
// if zero), else fetches, caches and returns a new one.
func (c *tokenCache) get(now func() time.Time, before time.Duration, fetch func() (string, time.Time, error)) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now == nil {
		now = time.Now
	}
	if before == 0 {
		before = time.Minute
	}
	if c.token != "" && now().Add(before).Before(c.expires) {
		return c.token, nil
	}
	tok, exp, err := fetch()
	if err != nil {
		return "", err
	}
	c.token, c.expires = tok, exp
	return tok, nil
}

// invalidate drops the cached token.
func (c *tokenCache) invalidate() {
	c.mu.Lock()
	c.token = ""
	c.mu.Unlock()
}
