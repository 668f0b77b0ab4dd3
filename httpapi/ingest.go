package httpapi

import (
	"compress/flate"
	"compress/gzip"
	"crypto/ed25519"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth/apptoken"
	"github.com/klauspost/compress/s2"
)

// Limits of ingest beyond those of package callsign.
const (
	// MaxIngestBody bounds an ingest body as sent: callsign.MaxBatchBytes
	// plus what snappy adds, at worst, to a batch that does not compress
	// (32 + n/6 bytes; gzip adds less). callsign.MaxBatchBytes bounds the
	// batch decompressed.
	MaxIngestBody = callsign.MaxBatchBytes + callsign.MaxBatchBytes/6 + 32
	// MaxEventFutureSkew is how far ahead of the server's clock an event's
	// time may be (client clocks drift; a time further ahead is a bug that
	// would sit on top of every "latest" listing).
	MaxEventFutureSkew = 5 * time.Minute
	// MaxEventLatency bounds latency_ms: longer than a week is a broken
	// clock, not a slow call (and would overflow the rollups' sketches).
	MaxEventLatency = 7 * 24 * time.Hour
	// MaxEventWeight bounds weight, the inverse of a sampling rate.
	MaxEventWeight = 1e6
)

// ingestResponse is the answer to an ingest batch, sent only once the
// accepted events are durable.
type ingestResponse struct {
	Accepted   int         `json:"accepted"`
	Duplicates int         `json:"duplicates"`
	Rejected   []rejection `json:"rejected"`
}

// rejection says why one event of a batch was not stored.
type rejection struct {
	Index   int    `json:"index"`
	ID      string `json:"id"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ingestEvents is POST /v2/events: a batch of events from a shipper,
// authenticated by an app access token verified offline against the
// server's own keys. A batch that is not well-formed is refused whole; an
// event that breaks a limit or the provenance rules is rejected alone and
// the others are stored, all in one AppendEvents.
func (s *Server) ingestEvents(w http.ResponseWriter, r *http.Request) {
	if s.events == nil {
		writeError(w, r, errNoEvents())
		return
	}
	now := s.now()
	claims, app, err := s.ingestAuth(r, now)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if !s.corsAllow(w, r, app) {
		return
	}
	body, release, err := s.readBatch(w, r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	batch, err := decodeBatch(body)
	release() // the decoded events copied what they keep
	if err != nil {
		writeError(w, r, err)
		return
	}
	if len(batch) > callsign.MaxEventsPerBatch {
		writeError(w, r, callsign.Errorf(ETooManyEvents, "The batch has %d events; at most %d are allowed per request.", len(batch), callsign.MaxEventsPerBatch))
		return
	}
	if ok, d := s.ingest.allow(app.ID, len(batch), now); !ok {
		retryAfter(w, d)
		writeError(w, r, callsign.Errorf(callsign.ERateLimited, "The app is over its ingest rate; retry the same batch later."))
		return
	}

	out := ingestResponse{Rejected: []rejection{}}
	events := make([]callsign.Event, 0, len(batch))
	ids := make(map[string]struct{}, len(batch))
	retention, _ := app.Retentions()
	for i := range batch {
		e := &batch[i]
		if err := checkEvent(e, claims, now, retention); err != nil {
			out.Rejected = append(out.Rejected, rejection{Index: i, ID: truncate(e.ID, callsign.MaxEventIDLen), Code: err.Code, Message: err.Message})
			continue
		}
		// A retried event inside one batch is a duplicate, as it would be
		// across batches.
		if _, dup := ids[e.ID]; dup {
			out.Duplicates++
			continue
		}
		ids[e.ID] = struct{}{}
		events = append(events, toEvent(&e.EventJSON, app.ID))
	}
	if len(events) > 0 {
		ptrs := make([]*callsign.Event, len(events))
		for i := range events {
			ptrs[i] = &events[i]
		}
		res, err := s.events.AppendEvents(r.Context(), ptrs)
		if err != nil {
			writeError(w, r, err)
			return
		}
		out.Accepted, out.Duplicates = res.Accepted, out.Duplicates+res.Duplicates
	}
	if len(out.Rejected) > 0 {
		s.logger(r).Info("events rejected", "app_id", app.ID, "rejected", len(out.Rejected), "first_code", out.Rejected[0].Code)
	}
	writeJSON(w, http.StatusOK, out)
}

func errNoEvents() error {
	return callsign.Errorf(EUnavailable, "This server has no event store: analytics are not available.")
}

// ingestAuth verifies the request's app access token offline, with the
// server's published keys (no call to its own JWKS), and returns its
// claims and live app.
func (s *Server) ingestAuth(r *http.Request, now time.Time) (*apptoken.Claims, *callsign.App, error) {
	tok, present, err := bearer(r)
	if err != nil {
		return nil, nil, err
	}
	if !present {
		return nil, nil, callsign.Errorf(callsign.EUnauthorized, "Ingest needs an app access token: Authorization: Bearer <token> from POST /v2/tokens/upgrade or /v2/tokens/server.")
	}
	if strings.HasPrefix(tok, "cs_") {
		return nil, nil, callsign.Errorf(callsign.EWrongTokenKind, "Ingest takes an app access token, not a cs_ token: exchange a secret token at POST /v2/tokens/server, a public token at POST /v2/tokens/upgrade.")
	}
	keys, err := s.keys.Published(r.Context())
	if err != nil {
		return nil, nil, err
	}
	claims, err := apptoken.NewVerifier(keySet(keys), s.issuer, func() time.Time { return now }).Verify(tok)
	if err != nil {
		return nil, nil, accessTokenError(err)
	}
	app, err := s.store.App(r.Context(), claims.AppID)
	if callsign.ErrorCode(err) == callsign.ENotFound {
		return nil, nil, callsign.Errorf(callsign.EUnauthorized, "The access token's app does not exist.")
	}
	if err != nil {
		return nil, nil, err
	}
	if app.RevokedAt != nil {
		return nil, nil, callsign.Errorf(callsign.ERevoked, "The app has been revoked.")
	}
	return claims, app, nil
}

// accessTokenError turns a verification failure into the API's codes. The
// message says which check failed; none of it is secret.
func accessTokenError(err error) error {
	switch {
	case errors.Is(err, apptoken.ErrMalformed):
		return callsign.Errorf(callsign.EMalformedToken, "The Bearer token is not an app access token (a compact JWS).")
	case errors.Is(err, apptoken.ErrType):
		return callsign.Errorf(callsign.EWrongTokenKind, "The Bearer token is a JWT but not a callsign app access token.")
	case errors.Is(err, apptoken.ErrExpired):
		return callsign.Errorf(callsign.EUnauthorized, "The access token has expired; get a new one.")
	case errors.Is(err, apptoken.ErrUnknownKey):
		return callsign.Errorf(callsign.EUnauthorized, "The access token was signed by a key this server does not publish.")
	case errors.Is(err, apptoken.ErrInvalid):
		return callsign.Errorf(callsign.EUnauthorized, "The access token is not valid for this server.")
	}
	return err
}

// keySet is the server's published keys as apptoken.Keys.
type keySet []*callsign.SigningKey

func (ks keySet) PublicKey(kid string) (ed25519.PublicKey, bool) {
	for _, k := range ks {
		if k.ID == kid {
			return k.Public, true
		}
	}
	return nil, false
}

// readBatch reads the body into a pooled buffer of at most
// callsign.MaxBatchBytes, decompressing gzip or snappy (the block format,
// as Prometheus remote write sends it; S2 blocks decode too): a gzip bomb
// stops at the limit, having allocated no more than the buffer, and a
// snappy body whose header claims more is refused before it is decoded.
// release returns the buffers.
func (s *Server) readBatch(w http.ResponseWriter, r *http.Request) (body []byte, release func(), err error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, nil, callsign.Errorf(callsign.EUnsupportedMedia, "The batch must be JSON, sent with Content-Type: application/json.")
	}
	enc := strings.ToLower(strings.TrimSpace(strings.Join(r.Header.Values("Content-Encoding"), ",")))
	switch enc {
	case "", "identity":
		enc = ""
	case "gzip", "x-gzip":
		enc = "gzip"
	case "snappy":
	default:
		return nil, nil, callsign.Errorf(callsign.EUnsupportedMedia, "The Content-Encoding %q is not supported: send gzip, snappy or nothing.", truncate(enc, 40))
	}
	sent := &sentReader{r: http.MaxBytesReader(w, r.Body, MaxIngestBody)}
	var src io.Reader = sent
	var zr *gzip.Reader
	// failed classifies err, from reading or decoding the body.
	failed := func(err error) error {
		if sent.err != nil { // the body did not arrive whole, or is too large as sent
			return bodyError(sent.err, "")
		}
		return bodyError(err, enc)
	}
	if enc == "gzip" {
		zr, _ = s.gzips.Get().(*gzip.Reader)
		if zr == nil {
			zr = new(gzip.Reader)
		}
		if err := zr.Reset(src); err != nil {
			s.gzips.Put(zr)
			return nil, nil, failed(err)
		}
		src = zr
	}
	buf := s.getBuf()
	var raw *[]byte // the snappy body as sent
	release = func() {
		s.putBuf(buf)
		if raw != nil {
			s.putBuf(raw)
		}
		if zr != nil {
			s.gzips.Put(zr)
		}
	}
	if enc == "snappy" {
		raw = s.getBuf()
		b, err := readAtMost(src, (*raw)[:0], MaxIngestBody)
		*raw = b
		if err != nil {
			release()
			if errors.Is(err, errTooLarge) {
				return nil, nil, bodyError(&http.MaxBytesError{Limit: MaxIngestBody}, "")
			}
			return nil, nil, failed(err)
		}
		n, err := s2.DecodedLen(b)
		switch {
		case err != nil:
			release()
			return nil, nil, failed(err)
		case n > callsign.MaxBatchBytes:
			release()
			return nil, nil, errBatchTooLarge()
		}
		out, err := s2.Decode((*buf)[:n], b)
		if err != nil {
			release()
			return nil, nil, failed(err)
		}
		*buf = out
		return out, release, nil
	}
	b, err := readAtMost(src, (*buf)[:0], callsign.MaxBatchBytes)
	*buf = b
	if err != nil {
		release()
		if errors.Is(err, errTooLarge) {
			return nil, nil, errBatchTooLarge()
		}
		return nil, nil, failed(err)
	}
	return b, release, nil
}

// errBatchTooLarge is the refusal of a batch over callsign.MaxBatchBytes
// once decompressed.
func errBatchTooLarge() error {
	return callsign.Errorf(callsign.EBodyTooLarge, "The batch is larger than %d bytes, once decompressed.", callsign.MaxBatchBytes)
}

// sentReader reads the body as sent and keeps the error that stopped it
// (not io.EOF): a body cut short is not a bad encoding.
type sentReader struct {
	r   io.Reader
	err error
}

func (s *sentReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// errTooLarge is readAtMost's error for a body over its limit.
var errTooLarge = errors.New("body too large")

// readAtMost appends src to b, which has room for max+1 bytes, and fails
// with errTooLarge past max bytes.
func readAtMost(src io.Reader, b []byte, max int) ([]byte, error) {
	for {
		n, err := src.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if len(b) > max {
			return b, errTooLarge
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// getBuf returns a pooled buffer with room for MaxIngestBody+1 bytes;
// putBuf returns it.
func (s *Server) getBuf() *[]byte {
	if buf, _ := s.bufs.Get().(*[]byte); buf != nil {
		return buf
	}
	b := make([]byte, 0, MaxIngestBody+1)
	return &b
}

func (s *Server) putBuf(buf *[]byte) {
	*buf = (*buf)[:0]
	s.bufs.Put(buf)
}

// bodyError classifies a failure to read or decompress a body sent with
// Content-Encoding enc ("gzip", "snappy" or "" for none).
func bodyError(err error, enc string) error {
	var mbe *http.MaxBytesError
	var corrupt flate.CorruptInputError
	switch {
	case errors.As(err, &mbe):
		return callsign.Errorf(callsign.EBodyTooLarge, "The request body is larger than %d bytes.", MaxIngestBody)
	case enc != "" && (errors.Is(err, gzip.ErrHeader) || errors.Is(err, gzip.ErrChecksum) || errors.As(err, &corrupt) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, s2.ErrCorrupt) || errors.Is(err, s2.ErrTooLarge) || errors.Is(err, s2.ErrUnsupported)):
		return callsign.Errorf(EInvalidEncoding, "The body is not valid %s (Content-Encoding: %s).", enc, enc)
	}
	return callsign.Errorf(callsign.EInvalid, "The request body could not be read.")
}

// checkEvent validates one event of a batch and applies the provenance
// rules of the token that sent it, setting user_id for a user-bound token.
// It returns nil or the event's rejection.
func checkEvent(e *wireEvent, c *apptoken.Claims, now time.Time, retention time.Duration) *callsign.Error {
	if !validEventID(e.ID) {
		return callsign.Errorf(EInvalidEventID, "The id must be 1 to %d characters of [A-Za-z0-9_-].", callsign.MaxEventIDLen)
	}
	if e.AppID != "" && e.AppID != c.AppID {
		return callsign.Errorf(callsign.EAppMismatch, "The event's app_id is not the app of the access token.")
	}
	if err := checkProvenance(&e.EventJSON, c); err != nil {
		return err
	}
	switch {
	case e.badTime:
		return callsign.Errorf(EInvalidTime, "The time must be an RFC 3339 timestamp such as 2026-01-02T15:04:05.123Z.")
	case e.Time.IsZero():
		return callsign.Errorf(EInvalidTime, "The time is required.")
	case e.Time.After(now.Add(MaxEventFutureSkew)):
		return callsign.Errorf(ETimeOutOfRange, "The time is more than %v ahead of the server's clock.", MaxEventFutureSkew)
	case e.Time.Before(now.Add(-retention)):
		return callsign.Errorf(ETimeOutOfRange, "The time is older than the app's event retention (%v).", retention)
	}
	for _, f := range [...]struct {
		name, v string
		max     int
	}{
		{"user_id", e.UserID, callsign.MaxUserIDLen},
		{"api_user_id", e.APIUserID, callsign.MaxUserIDLen},
		{"client_user_id", e.ClientUserID, callsign.MaxUserIDLen},
	} {
		if len(f.v) > f.max || hasControl(f.v) {
			return callsign.Errorf(callsign.EInvalidUserID, "The %s must be at most %d bytes without control characters.", f.name, f.max)
		}
	}
	if !validMethod(e.Method) {
		return invalidField("method", "1 to 32 characters of an HTTP method token")
	}
	if e.Status < 100 || e.Status > 599 {
		return invalidField("status", "an HTTP status from 100 to 599")
	}
	if e.LatencyMS < 0 || e.LatencyMS > float64(MaxEventLatency/time.Millisecond) {
		return invalidField("latency_ms", "a number of milliseconds from 0 to "+MaxEventLatency.String())
	}
	if e.RequestBytes < 0 {
		return invalidField("request_bytes", "zero or more")
	}
	if e.ResponseBytes < 0 {
		return invalidField("response_bytes", "zero or more")
	}
	if e.Weight < 0 || e.Weight > MaxEventWeight {
		return invalidField("weight", "from 0 (meaning 1) to 1000000")
	}
	for _, f := range [...]struct {
		name, v string
		max     int
	}{
		{"route", e.Route, callsign.MaxRouteLen},
		{"uri", e.URI, callsign.MaxURILen},
		{"company_id", e.CompanyID, callsign.MaxUserIDLen},
		{"key_id", e.KeyID, callsign.MaxUserIDLen},
		{"request_id", e.RequestID, 128},
		{"user_agent", e.UserAgent, callsign.MaxUserAgentLen},
	} {
		if len(f.v) > f.max || hasControl(f.v) {
			return invalidField(f.name, "at most "+itoa(f.max)+" bytes without control characters")
		}
	}
	if !validCode(e.Scheme, 32, true) {
		return invalidField("scheme", "at most 32 characters of [a-z0-9_-]")
	}
	if !validCode(e.AuthError, 64, false) {
		return invalidField("auth_error", "at most 64 characters of [a-z0-9_]")
	}
	if e.RemoteIP != "" {
		if _, err := netip.ParseAddr(e.RemoteIP); err != nil {
			return invalidField("remote_ip", "an IPv4 or IPv6 address")
		}
	}
	if len(e.Metadata) > callsign.MaxMetadataEntries {
		return invalidField("metadata", "at most "+itoa(callsign.MaxMetadataEntries)+" entries")
	}
	for k, v := range e.Metadata {
		if k == "" || len(k) > callsign.MaxMetadataLen || hasControl(k) || len(v) > callsign.MaxMetadataLen {
			return invalidField("metadata", "keys of 1 to "+itoa(callsign.MaxMetadataLen)+" bytes without control characters and values of at most "+itoa(callsign.MaxMetadataLen)+" bytes")
		}
	}
	if len(e.RequestBody) > callsign.MaxBodyLogBytes || len(e.ResponseBody) > callsign.MaxBodyLogBytes {
		return invalidField("request_body", "at most "+itoa(callsign.MaxBodyLogBytes)+" bytes (so must response_body)")
	}
	return nil
}

// checkProvenance is the core rule of ingest. A server token (scope
// ingest:server, minted with the secret token) may attribute every kind of
// user id. A client token may not vouch for a user: an anonymous one may
// only carry client_user_id; a user-bound one only sends events of its own
// user (an empty user_id becomes the token's), and never api_user_id.
func checkProvenance(e *callsign.EventJSON, c *apptoken.Claims) *callsign.Error {
	if c.Scope == apptoken.ScopeServer {
		return nil
	}
	if e.APIUserID != "" {
		return callsign.Errorf(EProvenanceNotAllowed, "api_user_id is asserted by the API's own server: it needs a server token (POST /v2/tokens/server), not a client's access token.")
	}
	switch {
	case c.UserID == "" && e.UserID != "":
		return callsign.Errorf(EProvenanceNotAllowed, "An anonymous access token cannot attribute a verified user_id; send the id as client_user_id, or ship from a server token.")
	case c.UserID != "" && e.UserID == "":
		e.UserID = c.UserID
	case c.UserID != "" && e.UserID != c.UserID:
		return callsign.Errorf(EProvenanceNotAllowed, "An access token bound to a user may only send that user's events.")
	}
	return nil
}

func invalidField(name, want string) *callsign.Error {
	return callsign.Errorf(EInvalidEvent, "The field %q must be %s.", name, want)
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		if n /= 10; n == 0 {
			return string(b[i:])
		}
	}
}

// toEvent converts an event of the wire (validated) to the domain type.
func toEvent(j *callsign.EventJSON, appID string) callsign.Event {
	return callsign.Event{ID: j.ID, AppID: appID, Time: j.Time.UTC(), Method: j.Method, Route: j.Route, URI: j.URI, Status: j.Status,
		Latency: time.Duration(j.LatencyMS * float64(time.Millisecond)), RequestBytes: j.RequestBytes, ResponseBytes: j.ResponseBytes,
		UserID: j.UserID, APIUserID: j.APIUserID, ClientUserID: j.ClientUserID, CompanyID: j.CompanyID, Scheme: callsign.Scheme(j.Scheme),
		KeyID: j.KeyID, AuthError: j.AuthError, RequestID: j.RequestID, RemoteIP: j.RemoteIP, UserAgent: j.UserAgent,
		Weight: j.Weight, Metadata: j.Metadata, RequestBody: j.RequestBody, ResponseBody: j.ResponseBody}
}

// validEventID reports whether id is 1 to callsign.MaxEventIDLen bytes of
// [A-Za-z0-9_-].
func validEventID(id string) bool {
	if len(id) == 0 || len(id) > callsign.MaxEventIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validMethod reports whether m is an HTTP method: 1 to 32 tchars (RFC
// 9110 §5.6.2).
func validMethod(m string) bool {
	if len(m) == 0 || len(m) > 32 {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validCode reports whether s is at most n characters of [a-z0-9_] (and
// '-' when dash): the shape of schemes and failure codes.
func validCode(s string, n int, dash bool) bool {
	if len(s) > n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || c == '_' || dash && c == '-') {
			return false
		}
	}
	return true
}

// hasControl reports whether s holds a control character (C0, DEL or C1),
// which could forge a log line or a table row.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return true
		}
		if c >= 0x80 {
			return strings.ContainsFunc(s[i:], unicode.IsControl) || !utf8.ValidString(s[i:])
		}
	}
	return false
}
