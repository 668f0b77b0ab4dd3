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
// random bits). Ids sort by time (to the millisecond) as strings, and are
// unique with overwhelming probability without any coordination. The
// Shipper gives one to events enqueued without an id.
func NewEventID(t time.Time) string {
	var rec recorder
	return string(rec.appendEventID(nil, t))
}

const idTimeLen = 9 // base62 digits of the milliseconds: 62^9 > 2^53

// appendEventID appends a new event id; rec caches the time digits.
func (rec *recorder) appendEventID(b []byte, t time.Time) []byte {
	ms := max(t.UnixMilli(), 0)
	if ms != rec.idMS || rec.idPrefix[0] == 0 {
		rec.idMS = ms
		for i, m := idTimeLen-1, uint64(ms); i >= 0; i-- {
			rec.idPrefix[i] = base62[m%62]
			m /= 62
		}
	}
	b = append(b, rec.idPrefix[:]...)
	// 6 random bits a character, folded onto 62 symbols (the last two
	// symbols twice as likely): 5.95 bits each, 77 in all. math/rand/v2's
	// global generator is per-thread ChaCha8 seeded by the runtime:
	// unpredictable, lock-free, no system call.
	r1, r2 := rand.Uint64(), rand.Uint64()
	for range 10 {
		b = append(b, base62[(r1&63)%62])
		r1 >>= 6
	}
	for range idLen - idTimeLen - 10 {
		b = append(b, base62[(r2&63)%62])
		r2 >>= 6
	}
	return b
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
	if strings.IndexByte(name, '%') >= 0 || strings.IndexByte(name, '+') >= 0 {
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
	if c.o.RemoteIP == IPTruncate {
		if ip, ok := parseIPv4Port(s); ok { // the common case, without netip
			b = appendUint8(b, ip[0])
			b = append(b, '.')
			b = appendUint8(b, ip[1])
			b = append(b, '.')
			b = appendUint8(b, ip[2])
			return append(b, ".0"...)
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

// parseIPv4Port parses "a.b.c.d:port" (decimal, no leading zeros, as
// net/http writes RemoteAddr); ok is false for anything else.
func parseIPv4Port(s string) (ip [4]byte, ok bool) {
	i := 0
	for f := range 4 {
		start, v := i, 0
		for i < len(s) && '0' <= s[i] && s[i] <= '9' && i-start < 3 {
			v = v*10 + int(s[i]-'0')
			i++
		}
		if i == start || v > 255 || (s[start] == '0' && i-start > 1) {
			return ip, false
		}
		ip[f] = byte(v)
		sep := byte('.')
		if f == 3 {
			sep = ':'
		}
		if i >= len(s) || s[i] != sep {
			return ip, false
		}
		i++
	}
	port := 0
	for j := i; j < len(s); j++ {
		if s[j] < '0' || s[j] > '9' || j-i >= 5 {
			return ip, false
		}
		port = port*10 + int(s[j]-'0')
	}
	return ip, i < len(s) && port <= 65535
}

func appendUint8(b []byte, v byte) []byte {
	if v >= 100 {
		b = append(b, '0'+v/100)
	}
	if v >= 10 {
		b = append(b, '0'+v/10%10)
	}
	return append(b, '0'+v%10)
}
