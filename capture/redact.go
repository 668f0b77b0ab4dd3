package capture

import (
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// idLen is the length of event ids.
const idLen = 22

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// NewEventID returns a new event id for an event at t: 22 base62
// characters, 9 of the Unix time in milliseconds then 13 random ones (77
// bits). Ids sort by time (to the millisecond) as strings, and are unique
// with overwhelming probability without any coordination. The Shipper
// gives one to events enqueued without an id.
func NewEventID(t time.Time) string { return string(appendEventID(nil, t)) }

func appendEventID(b []byte, t time.Time) []byte {
	var id [idLen]byte
	ms := uint64(max(t.UnixMilli(), 0))
	for i := 8; i >= 0; i-- {
		id[i] = base62[ms%62]
		ms /= 62
	}
	// math/rand/v2's global generator is per-thread ChaCha8 seeded by the
	// runtime: unpredictable, lock-free, no system call.
	r := rand.Uint64()
	for i := 9; i < 19; i++ { // 62^10 < 2^64
		id[i] = base62[r%62]
		r /= 62
	}
	r = rand.Uint64()
	for i := 19; i < idLen; i++ {
		id[i] = base62[r%62]
		r /= 62
	}
	return append(b, id[:]...)
}

// appendURI appends uri with its query string under the Capture's policy.
func (c *Capture) appendURI(b []byte, uri string) []byte {
	return appendRedactedURI(b, uri, c.o.Query, c.queryAllow, c.queryDeny)
}

// appendRedactedURI appends uri to b with its query string under policy;
// allow and deny are lower case.
func appendRedactedURI(b []byte, uri string, policy QueryPolicy, allow, deny []string) []byte {
	path, query, hasQuery := strings.Cut(uri, "?")
	b = append(b, path...)
	if !hasQuery {
		return b
	}
	switch policy {
	case QueryDrop:
		return b
	case QueryKeep:
		return append(append(b, '?'), query...)
	}
	b = append(b, '?')
	first := true
	for query != "" {
		var param string
		param, query, _ = strings.Cut(query, "&")
		if param == "" {
			continue
		}
		if !first {
			b = append(b, '&')
		}
		first = false
		name, _, hasValue := strings.Cut(param, "=")
		var keep bool
		if policy == QueryRedactDenied {
			keep = !nameDenied(name, deny)
		} else {
			keep = nameAllowed(name, allow)
		}
		switch {
		case keep:
			b = append(b, param...)
		case hasValue:
			b = append(append(append(b, name...), '='), Redacted...)
		default:
			b = append(b, Redacted...) // a bare value: "?sk_live_..."
		}
	}
	return b
}

// unescapeName returns the decoded parameter name, so that an encoded
// name ("tok%65n") is judged by what the API will read.
func unescapeName(name string) string {
	if strings.ContainsAny(name, "%+") {
		if u, err := url.QueryUnescape(name); err == nil {
			return u
		}
	}
	return name
}

func nameAllowed(name string, allow []string) bool {
	if len(allow) == 0 {
		return false
	}
	name = unescapeName(name)
	for _, a := range allow {
		if strings.EqualFold(name, a) {
			return true
		}
	}
	return false
}

func nameDenied(name string, deny []string) bool {
	name = unescapeName(name)
	for _, d := range deny {
		if containsFold(name, d) {
			return true
		}
	}
	return false
}

// containsFold reports whether s contains sub, ASCII case-insensitively;
// sub is lower case.
func containsFold(s, sub string) bool {
	n := len(sub)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

// appendIP appends the client's address under the Capture's IP policy.
func (c *Capture) appendIP(b []byte, r *http.Request) []byte {
	if c.o.RemoteIP == IPOff {
		return b
	}
	s := r.RemoteAddr
	if c.ipHeader != "" {
		if v := r.Header[c.ipHeader]; len(v) > 0 {
			last := v[len(v)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			s = strings.TrimSpace(last)
		}
	}
	addr, ok := parseIP(s)
	if !ok {
		return b
	}
	if c.o.RemoteIP == IPTruncate {
		bits := 48
		if addr.Is4() {
			bits = 24
		}
		p, _ := addr.Prefix(bits)
		addr = p.Addr()
	}
	return addr.AppendTo(b)
}

// parseIP parses "ip:port", "[ip]:port" or a bare address.
func parseIP(s string) (netip.Addr, bool) {
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(s); err == nil {
		addr = ap.Addr()
	} else if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		addr = a
	} else {
		return netip.Addr{}, false
	}
	return addr.Unmap().WithZone(""), true
}
