package capture

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/callsignhq/callsign"
)

// Sink receives the events of a Capture. *Shipper is the Sink that sends
// them to the callsign server.
type Sink interface {
	// Enqueue hands e over without blocking and reports whether the sink
	// kept it (false: dropped, for instance because a queue is full). The
	// sink owns e from then on, whatever the result: the caller must not
	// read or modify it again.
	Enqueue(e *callsign.Event) bool
}

// Response is what Options.IdentifyUser, IdentifyCompany and Metadata see
// of the response.
type Response struct {
	// Status is the status code sent (500 after a panic).
	Status int
	// Header is the response header map; do not modify it.
	Header http.Header
}

// QueryPolicy says what of a query string goes into Event.URI.
type QueryPolicy int

// Query policies. The zero value, QueryRedactValues, is the default.
const (
	// QueryRedactValues keeps the parameter names and replaces every value
	// by "REDACTED", except the values of the names in Options.QueryAllow.
	// A parameter without "=" is a value: it is replaced unless allowed.
	// Nothing passes that was not allowed, whatever an API puts in its
	// query strings.
	QueryRedactValues QueryPolicy = iota
	// QueryRedactDenied keeps the values except those of parameters whose
	// name contains (case-insensitively) one of Options.QueryDeny or of
	// "token", "key", "secret", "pass", "pwd", "sig", "auth", "session",
	// "code", "cred", "cookie", "jwt", "otp", "email". An API with a secret
	// in a parameter nobody thought of leaks it: prefer QueryRedactValues.
	QueryRedactDenied
	// QueryDrop removes the query string.
	QueryDrop
	// QueryKeep keeps the query string as received. Only for APIs whose
	// query strings never carry anything secret or personal.
	QueryKeep
)

// Redacted replaces what the redaction policies hide.
const Redacted = "REDACTED"

// defaultQueryDeny are the name fragments QueryRedactDenied always redacts.
var defaultQueryDeny = []string{"token", "key", "secret", "pass", "pwd", "sig", "auth", "session", "code", "cred", "cookie", "jwt", "otp", "email"}

// IPPolicy says what of the client's IP address goes into Event.RemoteIP.
type IPPolicy int

// IP policies. The zero value, IPTruncate, is the default.
const (
	// IPTruncate keeps the network: the first 24 bits of an IPv4 address,
	// 48 of an IPv6 address (1.2.3.4 is recorded as 1.2.3.0). Enough for a
	// country or an ISP, not enough to single out a subscriber.
	IPTruncate IPPolicy = iota
	// IPOff records no address.
	IPOff
	// IPFull records the whole address: personal data in most
	// jurisdictions.
	IPFull
)

// defaultBodyContentTypes are the media types whose bodies are captured
// when Options.LogBodies is set and BodyContentTypes is empty.
var defaultBodyContentTypes = []string{"application/json", "application/problem+json", "text/plain"}

// DefaultMaxBodyBytes is how much of each body is captured by default.
const DefaultMaxBodyBytes = 4 << 10

// Options configure a Capture. The zero value is a safe default: every
// call captured, query values and credentials redacted, IPs truncated, no
// bodies, no headers.
type Options struct {
	// Route returns the route template of r ("GET /notes/{id}"); "" to
	// fall back to the next source. It runs after the handler. See the
	// package documentation for the order of route sources.
	Route func(r *http.Request) string
	// Mux, when set, gives the route of requests for which SetRoute
	// (ReportPattern) and Route did not: the pattern of Mux.Handler(r).
	// It routes such requests a second time, which costs about as much
	// as the first routing. With ReportPattern(Mux) inside the auth
	// middleware, only refused calls (which never reach the mux) pay it.
	Mux *http.ServeMux

	// IdentifyUser, when set, returns the user the API itself
	// authenticated (seed 000's Identify_User). It is recorded as
	// Event.APIUserID, asserted by the API, never as the verified UserID.
	// It runs after the handler; r is the request as the capture received
	// it (inner middleware's context values are not in it). Ids that are
	// empty, longer than 256 bytes, not UTF-8 or with control characters
	// are not recorded.
	IdentifyUser func(r *http.Request, resp Response) string
	// IdentifyCompany returns the company (account, tenant) of the call.
	IdentifyCompany func(r *http.Request, resp Response) string
	// Metadata returns a small map recorded with the event: at most
	// callsign.MaxMetadataEntries entries (the first in key order are
	// kept), keys and values cut to callsign.MaxMetadataLen bytes. The map
	// must not be modified after it is returned.
	Metadata func(r *http.Request, resp Response) map[string]string
	// ClientUserIDHeader is read for Event.ClientUserID when the auth
	// middleware did not report one (it reads the same header);
	// "X-Client-User-Id" if empty, none if "-".
	ClientUserIDHeader string

	// Skip, when it returns true, passes r through without an event (for
	// health checks, say). It runs before the handler.
	Skip func(r *http.Request) bool
	// Mask edits an event before it leaves: remove a personal value, a
	// secret in a path, a body field. It runs last, after sampling.
	Mask func(e *callsign.Event)

	// Query is the query-string policy; QueryRedactValues by default.
	Query QueryPolicy
	// QueryAllow are the parameter names (case-insensitive) whose values
	// QueryRedactValues keeps: "page", "limit", "sort", ...
	QueryAllow []string
	// QueryDeny are name fragments QueryRedactDenied redacts, besides
	// its built-in ones.
	QueryDeny []string

	// RemoteIP is the IP policy; IPTruncate by default.
	RemoteIP IPPolicy
	// RemoteIPHeader, when set, names a header set by a trusted reverse
	// proxy ("X-Forwarded-For", "X-Real-Ip") whose last address is the
	// client's; r.RemoteAddr otherwise. Only set it behind such a proxy:
	// clients can send the header too.
	RemoteIPHeader string

	// Headers are request headers recorded in the metadata, as
	// "req.<name>" (lower case); ResponseHeaders are response headers,
	// as "resp.<name>". The values of credential headers (Authorization,
	// Cookie, Set-Cookie, X-Api-Key, signatures, and any name containing
	// "auth", "token", "key", "secret", "signature", "cookie", "session",
	// "password") are always replaced by Redacted.
	Headers, ResponseHeaders []string

	// LogBodies captures request and response bodies, at most
	// MaxBodyBytes of each, when their media type is in
	// BodyContentTypes. Off by default: bodies carry personal data and
	// secrets; use Mask to remove them.
	LogBodies bool
	// MaxBodyBytes is DefaultMaxBodyBytes if zero, at most
	// callsign.MaxBodyLogBytes.
	MaxBodyBytes int
	// BodyContentTypes are media types ("application/json") or type
	// wildcards ("text/*"); application/json, application/problem+json
	// and text/plain if empty.
	BodyContentTypes []string

	// SampleRate, in [MinSampleRate, 1], is the fraction of calls
	// recorded; 0 means 1. Each event's Weight is 1/SampleRate. The decision hashes the
	// request id when there is one, so that services sharing request ids
	// keep the same calls; it is random otherwise.
	SampleRate float64

	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Capture is the capture middleware. It is safe for concurrent use.
type Capture struct {
	o          Options
	sink       Sink
	now        func() time.Time
	queryAllow []string
	queryDeny  []string
	cuHeader   string
	ipHeader   string
	reqHeaders []headerRule
	resHeaders []headerRule
	bodyTypes  []string
	maxBody    int
	sampling   bool
	threshold  uint64
	weight     float64
}

type headerRule struct {
	name, key string // canonical header name, metadata key
	redact    bool
}

// MinSampleRate is the smallest SampleRate: the server takes weights up to
// 1/MinSampleRate.
const MinSampleRate = 1e-6

// New returns a Capture handing its events to sink. It panics if sink is
// nil or SampleRate is neither 0 nor in [MinSampleRate, 1]: both are
// programming errors.
func New(opts Options, sink Sink) *Capture {
	if sink == nil {
		panic("capture: nil Sink")
	}
	if math.IsNaN(opts.SampleRate) || opts.SampleRate < 0 || opts.SampleRate > 1 || opts.SampleRate > 0 && opts.SampleRate < MinSampleRate {
		panic(fmt.Sprintf("capture: SampleRate %v is not 0 or in [%v, 1]", opts.SampleRate, MinSampleRate))
	}
	c := &Capture{o: opts, sink: sink, now: opts.Now}
	if c.now == nil {
		c.now = time.Now
	}
	for _, n := range opts.QueryAllow {
		c.queryAllow = append(c.queryAllow, strings.ToLower(n))
	}
	for _, n := range append(append([]string(nil), defaultQueryDeny...), opts.QueryDeny...) {
		if n != "" {
			c.queryDeny = append(c.queryDeny, strings.ToLower(n))
		}
	}
	switch opts.ClientUserIDHeader {
	case "":
		c.cuHeader = "X-Client-User-Id"
	case "-":
	default:
		c.cuHeader = http.CanonicalHeaderKey(opts.ClientUserIDHeader)
	}
	if opts.RemoteIPHeader != "" {
		c.ipHeader = http.CanonicalHeaderKey(opts.RemoteIPHeader)
	}
	c.reqHeaders = headerRules(opts.Headers, "req.")
	c.resHeaders = headerRules(opts.ResponseHeaders, "resp.")
	c.bodyTypes = opts.BodyContentTypes
	if len(c.bodyTypes) == 0 {
		c.bodyTypes = defaultBodyContentTypes
	}
	c.maxBody = opts.MaxBodyBytes
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxBodyBytes
	}
	c.maxBody = min(c.maxBody, callsign.MaxBodyLogBytes)
	if opts.SampleRate > 0 && opts.SampleRate < 1 {
		c.sampling = true
		c.threshold = uint64(opts.SampleRate * (1 << 64))
		c.weight = 1 / opts.SampleRate
	}
	return c
}

func headerRules(names []string, prefix string) []headerRule {
	var rules []headerRule
	for _, n := range names {
		if n == "" {
			continue
		}
		rules = append(rules, headerRule{name: http.CanonicalHeaderKey(n), key: prefix + strings.ToLower(n), redact: SensitiveHeader(n)})
	}
	return rules
}

// sensitiveHeaders are credential headers by exact name; sensitiveParts
// catch the others by a fragment of their name.
var (
	sensitiveHeaders = []string{"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key", "x-csrf-token",
		"signature", "signature-input", "x-signature", "x-hub-signature", "x-hub-signature-256", "x-amz-security-token", "dpop"}
	sensitiveParts = []string{"auth", "token", "key", "secret", "signature", "cookie", "session", "password", "credential"}
)

// SensitiveHeader reports whether the header name carries credentials,
// whose values Options.Headers never records in clear.
func SensitiveHeader(name string) bool {
	n := strings.ToLower(name)
	for _, s := range sensitiveHeaders {
		if n == s {
			return true
		}
	}
	for _, s := range sensitiveParts {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// Handler returns next with every call captured. The ResponseWriter next
// sees implements http.Flusher, http.Hijacker, http.Pusher, io.ReaderFrom
// and io.StringWriter by passing each call to the server's writer (an
// operation it does not support returns http.ErrNotSupported, as
// http.ResponseController does), and Unwrap, so that ResponseController's
// deadlines and full duplex reach the server. A panic in next is recorded
// as a 500 and re-raised.
func (c *Capture) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.o.Skip != nil && c.o.Skip(r) {
			next.ServeHTTP(w, r)
			return
		}
		c.serve(w, r, next)
	})
}

func (c *Capture) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	rec := recorderPool.Get().(*recorder)
	rec.w, rec.c = w, c
	start := c.now()
	body := r.Body
	if body != nil && body != http.NoBody {
		rec.body.rc = body
		rec.body.log = c.o.LogBodies && c.bodyTypeAllowed(r.Header["Content-Type"])
		rec.body.max = c.maxBody
		r.Body = &rec.body
	}
	done := false
	defer func() {
		if done {
			return
		}
		// A panic (or runtime.Goexit): record the call, then let the panic
		// go on to the server, which logs it and closes the connection.
		v := recover()
		rec.panicked = v != nil
		c.finish(rec, r, start)
		r.Body = body
		rec.release()
		if v != nil {
			panic(v)
		}
	}()
	next.ServeHTTP(rec, r)
	done = true
	c.finish(rec, r, start)
	r.Body = body
	rec.release()
}

// finish builds the event of a call and hands it to the sink.
func (c *Capture) finish(rec *recorder, r *http.Request, start time.Time) {
	var latency time.Duration
	if c.o.Now == nil {
		latency = time.Since(start) // monotonic clock only: cheaper than Now
	} else {
		latency = c.now().Sub(start)
	}
	status := rec.status
	switch {
	case rec.panicked:
		status = http.StatusInternalServerError
	case status == 0 && rec.hijacked && len(r.Header["Upgrade"]) > 0:
		status = http.StatusSwitchingProtocols
	case status == 0:
		status = http.StatusOK // what net/http sends for a handler that wrote nothing
	}

	reqID := rec.requestID
	if reqID == "" {
		if ids := rec.w.Header()["X-Request-Id"]; len(ids) == 1 && callsign.ValidRequestID(ids[0]) {
			reqID = ids[0] // set by the auth middleware
		} else if ids := r.Header["X-Request-Id"]; len(ids) == 1 && callsign.ValidRequestID(ids[0]) {
			reqID = ids[0]
		}
	}
	var weight float64
	if c.sampling {
		var h uint64
		if reqID != "" {
			h = hashString(reqID)
		} else {
			h = rand.Uint64()
		}
		if h >= c.threshold {
			return
		}
		weight = c.weight
	}

	e := getEvent()
	e.Time = start
	e.Latency = latency
	e.Method = r.Method
	e.Status = status
	e.RequestBytes = rec.body.n
	e.ResponseBytes = rec.bytes
	e.Weight = weight
	e.RequestID = reqID
	e.Scheme = rec.scheme
	e.KeyID = rec.keyID
	e.AppID = rec.appID
	e.UserID = rec.userID
	e.AuthError = rec.authError
	e.ClientUserID = rec.clientUserID
	if e.ClientUserID == "" && c.cuHeader != "" {
		if v := r.Header[c.cuHeader]; len(v) == 1 && validUserID(v[0]) {
			e.ClientUserID = v[0]
		}
	}

	route := rec.route
	if route == "" && c.o.Route != nil {
		route = c.o.Route(r)
	}
	if route == "" && c.o.Mux != nil {
		_, route = c.o.Mux.Handler(r)
	}
	if route == "" {
		route = r.Pattern
	}
	if route == "" {
		route = r.URL.Path
	}
	e.Route = clean(route, callsign.MaxRouteLen)
	if ua := r.Header["User-Agent"]; len(ua) > 0 {
		e.UserAgent = clean(ua[0], callsign.MaxUserAgentLen)
	}
	if e.KeyID != "" {
		e.KeyID = clean(e.KeyID, callsign.MaxUserIDLen) // as presented, on a refusal: anything
	}

	// The id, the URI and the IP are built in one buffer and made one
	// string: one allocation for the three.
	b := rec.appendEventID(rec.scratch[:0], start)
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	b = c.appendURI(b, uri)
	uriEnd := min(len(b), idLen+callsign.MaxURILen)
	b = b[:uriEnd]
	b = c.appendIP(b, r)
	s := string(b)
	rec.scratch = b
	e.ID, e.URI, e.RemoteIP = s[:idLen], s[idLen:uriEnd], s[uriEnd:]
	if !printable(e.URI) {
		e.URI = clean(e.URI, callsign.MaxURILen)
	}

	if c.o.IdentifyUser != nil || c.o.IdentifyCompany != nil || c.o.Metadata != nil {
		resp := Response{Status: status, Header: rec.w.Header()}
		if c.o.IdentifyUser != nil {
			if u := c.o.IdentifyUser(r, resp); validUserID(u) {
				e.APIUserID = u
			}
		}
		if c.o.IdentifyCompany != nil {
			if co := c.o.IdentifyCompany(r, resp); validUserID(co) {
				e.CompanyID = co
			}
		}
		if c.o.Metadata != nil {
			e.Metadata = limitMetadata(c.o.Metadata(r, resp))
		}
	}
	if len(c.reqHeaders) > 0 || len(c.resHeaders) > 0 {
		e.Metadata = c.addHeaders(e.Metadata, r.Header, rec.w.Header())
	}
	if rec.body.log && len(rec.body.buf) > 0 {
		e.RequestBody = validUTF8(string(rec.body.buf), c.maxBody)
	}
	if rec.respLog && len(rec.respBuf) > 0 {
		e.ResponseBody = validUTF8(string(rec.respBuf), c.maxBody)
	}
	if c.o.Mask != nil {
		c.o.Mask(e)
	}
	c.sink.Enqueue(e)
}

// addHeaders records the configured headers in md (a copy of it: the map
// Options.Metadata returned is not modified).
func (c *Capture) addHeaders(md map[string]string, req, res http.Header) map[string]string {
	out := make(map[string]string, len(md)+len(c.reqHeaders)+len(c.resHeaders))
	for k, v := range md {
		out[k] = v
	}
	add := func(rules []headerRule, h http.Header) {
		for _, hr := range rules {
			v := h[hr.name]
			if len(v) == 0 || len(out) >= callsign.MaxMetadataEntries {
				continue
			}
			val := Redacted
			if !hr.redact {
				val = clean(strings.Join(v, ", "), callsign.MaxMetadataLen)
			}
			out[hr.key] = val
		}
	}
	add(c.reqHeaders, req)
	add(c.resHeaders, res)
	return out
}

// limitMetadata enforces the metadata limits, copying md only when it is
// over them.
func limitMetadata(md map[string]string) map[string]string {
	if len(md) == 0 {
		return nil
	}
	ok := len(md) <= callsign.MaxMetadataEntries
	for k, v := range md {
		if len(k) > callsign.MaxMetadataLen || len(v) > callsign.MaxMetadataLen || k == "" || !printable(k) || !utf8.ValidString(v) {
			ok = false
			break
		}
	}
	if ok {
		return md
	}
	keys := make([]string, 0, len(md))
	for k := range md {
		if k != "" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	out := make(map[string]string, min(len(keys), callsign.MaxMetadataEntries))
	for _, k := range keys {
		if len(out) == callsign.MaxMetadataEntries {
			break
		}
		out[clean(k, callsign.MaxMetadataLen)] = validUTF8(md[k], callsign.MaxMetadataLen)
	}
	return out
}

// bodyTypeAllowed reports whether a body of this Content-Type is logged.
func (c *Capture) bodyTypeAllowed(ct []string) bool {
	if len(ct) == 0 {
		return false
	}
	return mediaTypeIn(ct[0], c.bodyTypes)
}

func mediaTypeIn(ct string, types []string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	for _, t := range types {
		if strings.EqualFold(mt, t) {
			return true
		}
		if prefix, ok := strings.CutSuffix(t, "/*"); ok && len(mt) > len(prefix) && mt[len(prefix)] == '/' && strings.EqualFold(mt[:len(prefix)], prefix) {
			return true
		}
	}
	return false
}

// SetRoute records the route template of the call whose ResponseWriter is
// w (or wraps it), for handlers and routers inside the capture that know
// it: it takes precedence over every other source. It does nothing when
// no Capture is in w's Unwrap chain.
func SetRoute(w http.ResponseWriter, route string) {
	for w != nil {
		if rec, ok := w.(*recorder); ok {
			rec.route = route
			return
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}

// ReportPattern returns h (normally an *http.ServeMux) reporting, after
// each call, the pattern h set in r.Pattern to the Capture outside it. A
// ServeMux behind other middleware sets the pattern on a copy of the
// request the Capture cannot see; this makes it visible at no cost:
//
//	c.Handler(authMiddleware.Handler(capture.ReportPattern(mux)))
func ReportPattern(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if r.Pattern != "" {
			SetRoute(w, r.Pattern)
		}
	})
}

// truncate cuts s to at most n bytes, at a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && i > n-utf8.UTFMax && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// clean returns s cut to at most n bytes, as the server accepts it: valid
// UTF-8 without control characters (each one, and each invalid byte,
// becomes U+FFFD). A path, a User-Agent or a presented key id can hold
// anything, and an event the server refuses is an event lost: a failed
// authentication with a crafted key id must not vanish.
func clean(s string, n int) string {
	if printable(s) {
		return truncate(s, n)
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return utf8.RuneError
		}
		return r // invalid bytes arrive as RuneError, and stay so, valid
	}, s)
	return truncate(s, n)
}

// validUTF8 returns s cut to at most n bytes, each invalid byte replaced
// by U+FFFD first: the JSON encoding would replace them, and a value that
// grows past its limit on the wire is refused.
func validUTF8(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return truncate(s, n)
}

// printable reports whether s is printable ASCII (the common case, checked
// without decoding).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// validUserID is the server's rule for user ids: 1 to 256 bytes of UTF-8
// without control characters.
func validUserID(s string) bool {
	return s != "" && len(s) <= callsign.MaxUserIDLen && utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

// hashString is FNV-1a followed by a 64-bit finalizer, so that request ids
// differing in their last characters spread over the whole range.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

var eventPool = sync.Pool{New: func() any { return new(callsign.Event) }}

// getEvent returns a zeroed event from the pool; the Shipper puts events
// back once they are encoded.
func getEvent() *callsign.Event { return eventPool.Get().(*callsign.Event) }

func putEvent(e *callsign.Event) {
	*e = callsign.Event{}
	eventPool.Put(e)
}
