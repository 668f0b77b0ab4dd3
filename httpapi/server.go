// Package httpapi is the callsign server's HTTP API: the token upgrade and
// server tokens, the JWKS, event ingest (POST /v2/events), the event and
// metrics queries, the admin API for apps, secrets, admin tokens and
// signing keys, and health. It is the only place where an error code
// becomes an HTTP status.
//
// Every error answer has one shape:
//
//	{"error": {"code": "<stable_snake_case>", "message": "<human sentence>"}}
//
// Every response carries X-Request-Id (the caller's, when it is sane, else a
// new one) and every log line of the request carries it as request_id.
// Tokens and secrets are never logged.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/internal/strictjson"
	"github.com/callsignhq/callsign/keyring"
	"github.com/callsignhq/callsign/ratelimit"
)

// Limits on request bodies.
const (
	MaxUpgradeBody = 16 << 10
	MaxAdminBody   = 64 << 10
)

// Config configures a Server. Store and Keys are required.
type Config struct {
	Store callsign.Store
	Keys  *keyring.Ring
	// Events stores ingested events and answers the event and metrics
	// queries; the embedded store implements it beside Store. When nil,
	// those routes answer 503 unavailable.
	Events callsign.EventStore
	// Issuer is the iss of minted access tokens, normally the server's
	// public base URL. Default "callsign".
	Issuer string
	// Logger receives structured logs; slog.Default() if nil.
	Logger *slog.Logger
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// UpgradeRatePerApp and UpgradeRatePerIP are the upgrades allowed per
	// second per app and per client IP, with bursts of 2 seconds' worth.
	// Zero selects the defaults (50 per app, 10 per IP); negative disables.
	UpgradeRatePerApp float64
	UpgradeRatePerIP  float64
	// IngestRatePerApp is the events per second each app may ingest, with
	// bursts of 2 seconds' worth (at least one full batch). Zero selects
	// DefaultIngestRatePerApp; negative disables the limit.
	IngestRatePerApp float64
}

// DefaultIngestRatePerApp is the ingest limit of an app when
// Config.IngestRatePerApp is zero, in events per second.
const DefaultIngestRatePerApp = 50000

// Server serves the callsign API.
type Server struct {
	store  callsign.Store
	events callsign.EventStore
	keys   *keyring.Ring
	issuer string
	log    *slog.Logger
	now    func() time.Time
	perApp *ratelimit.Limiter
	perIP  *ratelimit.Limiter
	ingest *eventLimiter
	mux    *http.ServeMux
	// bufs (*[]byte of MaxIngestBody+1: batches, and snappy bodies
	// as sent) and gzips (*gzip.Reader)
	// are reused across ingest requests.
	bufs, gzips sync.Pool
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Keys == nil {
		return nil, errors.New("httpapi: Config.Store and Config.Keys are required")
	}
	s := &Server{store: cfg.Store, events: cfg.Events, keys: cfg.Keys, issuer: cfg.Issuer, log: cfg.Logger, now: cfg.Now}
	if s.issuer == "" {
		s.issuer = "callsign"
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.perApp = newLimiter(cfg.UpgradeRatePerApp, 50)
	s.perIP = newLimiter(cfg.UpgradeRatePerIP, 10)
	s.ingest = newEventLimiter(cfg.IngestRatePerApp, DefaultIngestRatePerApp)
	s.routes()
	return s, nil
}

func newLimiter(rate, def float64) *ratelimit.Limiter {
	if rate == 0 {
		rate = def
	}
	return ratelimit.New(rate, int(max(1, 2*rate)), 0)
}

// Issuer returns the iss the server puts in access tokens.
func (s *Server) Issuer() string { return s.issuer }

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /.well-known/jwks.json", s.jwks)
	m.HandleFunc("POST /v2/tokens/upgrade", s.upgrade)
	m.HandleFunc("OPTIONS /v2/tokens/upgrade", s.preflight)
	m.HandleFunc("POST /v2/tokens/server", s.serverToken)
	m.HandleFunc("POST /v2/events", s.ingestEvents)
	m.HandleFunc("OPTIONS /v2/events", s.preflight)
	m.HandleFunc("GET /v2/events", s.listEvents)
	m.HandleFunc("GET /v2/metrics", s.metrics)

	m.Handle("POST /v2/apps", s.admin(s.createApp))
	m.Handle("GET /v2/apps", s.admin(s.listApps))
	m.Handle("GET /v2/apps/{id}", s.admin(s.getApp))
	m.Handle("PATCH /v2/apps/{id}", s.admin(s.updateApp))
	m.Handle("DELETE /v2/apps/{id}", s.admin(s.revokeApp))
	m.Handle("POST /v2/apps/{id}/secrets", s.admin(s.createSecret))
	m.Handle("GET /v2/apps/{id}/secrets", s.admin(s.listSecrets))
	m.Handle("DELETE /v2/apps/{id}/secrets/{secret_id}", s.admin(s.revokeSecret))
	m.Handle("POST /v2/admin/tokens", s.admin(s.createAdminToken))
	m.Handle("GET /v2/admin/tokens", s.admin(s.listAdminTokens))
	m.Handle("DELETE /v2/admin/tokens/{id}", s.admin(s.revokeAdminToken))
	m.Handle("GET /v2/keys", s.admin(s.listKeys))
	m.Handle("POST /v2/keys/rotate", s.admin(s.rotateKeys))
	s.mux = m
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	id := r.Header.Get("X-Request-Id")
	if !callsign.ValidRequestID(id) || len(r.Header.Values("X-Request-Id")) > 1 {
		id = callsign.NewRequestID()
	}
	w.Header().Set("X-Request-Id", id)
	log := s.log.With("request_id", id)
	r = r.WithContext(context.WithValue(r.Context(), logKey{}, log))
	rw := &statusWriter{ResponseWriter: w}

	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			log.Error("panic serving request", "panic", fmt.Sprint(p))
			if rw.status == 0 {
				writeError(rw, r, callsign.Errorf(callsign.EInternal, "internal"))
			}
		}
		log.Info("request", "method", r.Method, "path", redactPath(r.URL.Path), "status", rw.status,
			"bytes", rw.bytes, "duration_ms", float64(s.now().Sub(start).Microseconds())/1000, "remote", clientIP(r))
	}()

	h, pattern := s.mux.Handler(r)
	if pattern == "" {
		// The mux's own 404 and 405 are plain text; answer in our shape.
		probe := &statusWriter{ResponseWriter: discardWriter{h: http.Header{}}}
		h.ServeHTTP(probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			rw.Header().Set("Allow", probe.Header().Get("Allow"))
			writeError(rw, r, callsign.Errorf(callsign.EMethodNotAllowed, "The method %s is not allowed on %s.", r.Method, r.URL.Path))
			return
		}
		writeError(rw, r, callsign.Errorf(callsign.ENotFound, "There is nothing at %s.", r.URL.Path))
		return
	}
	// Handler does not set path values; ServeHTTP matches again and does.
	s.mux.ServeHTTP(rw, r)
}

// redactPath hides every path segment that could be a credential put there
// by mistake: a callsign token (cs_...), a JWT (eyJ...) or anything long.
// Resource ids (app_..., sec_...) are short and stay readable.
func redactPath(p string) string {
	if !strings.Contains(p, "cs_") && !strings.Contains(p, "eyJ") && len(p) <= 64 {
		return p // the common case: nothing to scan
	}
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		if strings.HasPrefix(seg, "cs_") || strings.HasPrefix(seg, "eyJ") || len(seg) > 48 {
			segs[i] = "[redacted]"
		}
	}
	return strings.Join(segs, "/")
}

type logKey struct{}

// logger returns the request's logger (with its request_id).
func (s *Server) logger(r *http.Request) *slog.Logger {
	if l, ok := r.Context().Value(logKey{}).(*slog.Logger); ok {
		return l
	}
	return s.log
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}

// statusOf is the one map from error codes to HTTP statuses.
func statusOf(code string) int {
	switch code {
	case callsign.ENotFound:
		return http.StatusNotFound
	case callsign.EInvalid, callsign.EInvalidUserID, callsign.EMissingField, callsign.EUnknownField,
		callsign.EDuplicateField, callsign.EInvalidJSON, callsign.ETrailingData,
		EInvalidParameter, EMissingParameter, EUnknownParameter, EInvalidEncoding,
		EInvalidEvent, EInvalidEventID, EInvalidTime, ETimeOutOfRange, EProvenanceNotAllowed:
		return http.StatusBadRequest
	case callsign.EUnauthorized, callsign.EMalformedToken, callsign.EBadChecksum, callsign.EWrongTokenKind, callsign.ERevoked:
		return http.StatusUnauthorized
	case callsign.EForbidden, callsign.EAppMismatch, callsign.EOriginNotAllowed:
		return http.StatusForbidden
	case callsign.EBodyTooLarge, ETooManyEvents:
		return http.StatusRequestEntityTooLarge
	case callsign.EUnsupportedMedia:
		return http.StatusUnsupportedMediaType
	case callsign.ERateLimited:
		return http.StatusTooManyRequests
	case callsign.EMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case callsign.EConflict:
		return http.StatusConflict
	case EUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeError answers err in the API's error shape. Internal errors are
// logged with their detail and answered with a generic message.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := callsign.ErrorCode(err)
	var b errorBody
	b.Error.Code = code
	b.Error.Message = callsign.ErrorMessage(err)
	status := statusOf(code)
	if l, ok := r.Context().Value(logKey{}).(*slog.Logger); ok {
		if status >= 500 {
			l.Error("request failed", "error", err.Error())
		} else {
			l.Info("request refused", "code", code)
		}
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="callsign"`)
	}
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	writeBody(w, v)
}

func writeBody(w http.ResponseWriter, v any) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// readJSON checks the content type, reads at most limit bytes of body and
// decodes it strictly into v.
func readJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return callsign.Errorf(callsign.EUnsupportedMedia, "The request body must be JSON, sent with Content-Type: application/json.")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return callsign.Errorf(callsign.EBodyTooLarge, "The request body is larger than %d bytes.", limit)
		}
		return callsign.Errorf(callsign.EInvalid, "The request body could not be read.")
	}
	return strictjson.Unmarshal(body, v)
}

// bearer returns the token of the request's single Authorization: Bearer
// header, "" with ok true when there is none.
func bearer(r *http.Request) (token string, present bool, err error) {
	vals := r.Header.Values("Authorization")
	switch len(vals) {
	case 0:
		return "", false, nil
	case 1:
	default:
		return "", true, callsign.Errorf(callsign.EMalformedToken, "The request has more than one Authorization header.")
	}
	scheme, tok, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || strings.ContainsAny(tok, " \t") {
		return "", true, callsign.Errorf(callsign.EMalformedToken, "The Authorization header must be \"Bearer <token>\".")
	}
	return tok, true, nil
}

// clientIP is the peer address of the connection. X-Forwarded-For is not
// trusted: behind a proxy, every client shares the proxy's limit.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func retryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
}

// BackgroundErrer is an event store with background work (aggregation,
// filters) that can fail while the store goes on serving, such as
// *sqlite.DB.
type BackgroundErrer interface {
	// BackgroundErr describes the background work failing now; nil when
	// all is well.
	BackgroundErr() error
}

// healthz answers 200 {"status":"ok"} when the server can sign tokens,
// and 200 {"status":"degraded", "problems": [...]} when it serves but
// background work of the event store fails (the details, which may name
// files, are in the server's log, not in this unauthenticated answer).
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if _, err := s.keys.Signer(r.Context()); err != nil {
		writeError(w, r, err)
		return
	}
	if bg, ok := s.events.(BackgroundErrer); ok && bg.BackgroundErr() != nil {
		writeJSON(w, http.StatusOK, map[string]any{"status": "degraded",
			"problems": []string{"background work of the event store is failing: the server log says what and since when"}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
