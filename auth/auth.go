// Package auth is the contract between callsign's authentication schemes
// and the middleware that runs them in front of a customer's handlers.
//
// Each scheme (auth/hmacsig, auth/reqtoken, auth/jwtbearer, auth/apptoken)
// provides an Authenticator. The Middleware tries the schemes a route allows,
// chosen by what the request carries, puts the resulting callsign.Principal in
// the request context (callsign.PrincipalFrom) and answers failures itself:
// 401 for missing or bad credentials (with WWW-Authenticate naming the
// accepted schemes), 403 for valid credentials that may not do this, in the
// error shape of the callsign API:
//
//	{"error": {"code": "bad_signature", "message": "..."}}
//
// The code is stable (see the Code* constants). An unknown key answers
// exactly as a bad signature (PublicCode); the precise cause goes to the log
// and to Options.OnFailure, where analytics can record it.
//
// This package and the scheme packages import no database driver.
package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"github.com/callsignhq/callsign"
)

// Authenticator verifies the credentials of one scheme. Implementations
// must be safe for concurrent use.
type Authenticator interface {
	// Scheme names the scheme.
	Scheme() callsign.Scheme
	// Detect reports, cheaply and without verifying anything, whether r
	// carries credentials of this scheme.
	Detect(r *http.Request) bool
	// Authenticate verifies r's credentials. On success it returns the
	// Principal; the middleware fills RequestID and ClientUserID. On failure
	// it returns an error whose Code says why, and may return a partial
	// Principal (Scheme, KeyID of the presented credentials) for logs and
	// analytics. It may read r.Body, and then restores it for the handler.
	Authenticate(r *http.Request) (*callsign.Principal, error)
}

// Mode says what a route does without valid credentials.
type Mode int

const (
	// Required refuses requests without valid credentials (the default).
	Required Mode = iota
	// Optional serves requests without credentials as anonymous (Principal
	// with SchemeNone). Invalid credentials are still refused unless
	// Options.AnonymousOnInvalid is set. This is seed 000's behaviour: the
	// user is identified when a valid token is there.
	Optional
)

// DefaultClientUserIDHeader carries the client-asserted user id.
const DefaultClientUserIDHeader = "X-Client-User-Id"

// Options configure a Middleware. Authenticators is required; the zero
// value of every other field is a safe default.
type Options struct {
	// Authenticators are the schemes accepted, in order of precedence
	// when several detect a request (put apptoken before reqtoken before
	// jwtbearer: they all read Bearer JWTs).
	Authenticators []Authenticator
	// Mode is Required unless set to Optional.
	Mode Mode
	// AnonymousOnInvalid, in Optional mode, serves requests with invalid
	// credentials as anonymous instead of refusing them.
	AnonymousOnInvalid bool
	// Schemes, when not empty, restricts the route to these schemes.
	Schemes []callsign.Scheme
	// RequireScopes are scopes the credentials must grant ("FULL" grants
	// all). Credentials without scopes (HMAC) do not satisfy a requirement.
	RequireScopes []string
	// AppID is put in Principals whose scheme does not carry one.
	AppID string
	// ClientUserIDHeader is the header of the client-asserted user id;
	// DefaultClientUserIDHeader if empty, none if "-".
	ClientUserIDHeader string
	// Logger receives one line per refusal with the precise cause;
	// slog.Default() if nil.
	Logger *slog.Logger
	// OnFailure, if set, is called for every refused (or downgraded to
	// anonymous) request with the partial Principal and the error.
	OnFailure func(r *http.Request, p *callsign.Principal, err error)
	// OmitRequestID turns off the request id: none is generated and no
	// X-Request-Id is echoed in the response; the Principal's RequestID is
	// the client's X-Request-Id when it is sane (callsign.ValidRequestID),
	// empty otherwise. By default (false) every response carries the
	// client's sane X-Request-Id or a new one, and so does the Principal.
	// Turning it off saves an allocation and a response header per request
	// (about 2% of the throughput of a trivial handler on loopback).
	OmitRequestID bool
}

// Option changes Options, for a route's variant of a Middleware.
type Option func(*Options)

// WithOptional makes the route Optional.
func WithOptional() Option { return func(o *Options) { o.Mode = Optional } }

// WithAnonymousOnInvalid makes the route Optional and serves invalid
// credentials as anonymous.
func WithAnonymousOnInvalid() Option {
	return func(o *Options) { o.Mode, o.AnonymousOnInvalid = Optional, true }
}

// WithScopes requires scopes on the route.
func WithScopes(scopes ...string) Option {
	return func(o *Options) { o.RequireScopes = slices.Clone(scopes) }
}

// WithSchemes restricts the route to schemes.
func WithSchemes(schemes ...callsign.Scheme) Option {
	return func(o *Options) { o.Schemes = slices.Clone(schemes) }
}

// Middleware authenticates requests. Build one with New; derive route
// variants with With.
type Middleware struct {
	opts      Options
	challenge string // WWW-Authenticate value
}

// New validates opts and returns a Middleware.
func New(opts Options) (*Middleware, error) {
	if len(opts.Authenticators) == 0 {
		return nil, errors.New("auth: no Authenticators configured")
	}
	seen := map[callsign.Scheme]bool{}
	for _, a := range opts.Authenticators {
		if a == nil {
			return nil, errors.New("auth: nil Authenticator")
		}
		if seen[a.Scheme()] {
			return nil, fmt.Errorf("auth: scheme %q configured twice", a.Scheme())
		}
		seen[a.Scheme()] = true
	}
	for _, s := range opts.Schemes {
		if !seen[s] {
			return nil, fmt.Errorf("auth: route allows scheme %q but no Authenticator provides it", s)
		}
	}
	if opts.ClientUserIDHeader == "" {
		opts.ClientUserIDHeader = DefaultClientUserIDHeader
	}
	if opts.ClientUserIDHeader != "-" {
		opts.ClientUserIDHeader = http.CanonicalHeaderKey(opts.ClientUserIDHeader)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := &Middleware{opts: opts}
	var ch []string
	bearer := false
	for _, a := range opts.Authenticators {
		if !m.allowed(a.Scheme()) {
			continue
		}
		switch a.Scheme() {
		case callsign.SchemeHMAC:
			ch = append(ch, `APIKey realm="api"`)
		default:
			if !bearer {
				ch = append(ch, `Bearer realm="api"`)
				bearer = true
			}
		}
	}
	m.challenge = strings.Join(ch, ", ")
	return m, nil
}

// With returns a Middleware with the same configuration changed by opts:
// the per-route variant (m.With(auth.WithOptional()).Handler(h)).
func (m *Middleware) With(opts ...Option) *Middleware {
	o := m.opts
	o.Schemes = slices.Clone(o.Schemes)
	for _, f := range opts {
		f(&o)
	}
	n, err := New(o)
	if err != nil {
		panic(err) // only a WithSchemes naming an unconfigured scheme: a programming error
	}
	return n
}

func (m *Middleware) allowed(s callsign.Scheme) bool {
	return len(m.opts.Schemes) == 0 || slices.Contains(m.opts.Schemes, s)
}

// Handler returns next behind authentication.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Header keys below are already canonical: indexing the map
		// directly skips canonicalisation on every request.
		var reqID string
		if ids := r.Header["X-Request-Id"]; len(ids) == 1 && callsign.ValidRequestID(ids[0]) {
			reqID = ids[0]
			if !m.opts.OmitRequestID {
				// A copy: the handler may change its response header.
				w.Header()["X-Request-Id"] = []string{reqID}
			}
		} else if !m.opts.OmitRequestID {
			reqID = newRequestID(w.Header())
		}

		p, err := m.authenticate(r)
		if err == nil && len(m.opts.RequireScopes) > 0 && !p.Anonymous() && !grants(p.Scopes, m.opts.RequireScopes) {
			err = errInsufficientScope
		}
		if err != nil {
			if p == nil {
				p = &callsign.Principal{}
			}
			p.RequestID = reqID
			m.opts.Logger.Info("authentication failed", "request_id", reqID, "code", Code(err), "scheme", string(p.Scheme),
				"key_id", p.KeyID, "cause", err.Error())
			if m.opts.OnFailure != nil {
				m.opts.OnFailure(r, p, err)
			}
			c := Code(err)
			recordAuth(w, p, c)
			if m.opts.Mode == Optional && m.opts.AnonymousOnInvalid && c != CodeInternal && c != CodeInsufficientScope {
				p, err = &callsign.Principal{}, nil
			} else {
				m.refuse(w, c)
				return
			}
		}
		if m.opts.ClientUserIDHeader != "-" {
			if cu := r.Header[m.opts.ClientUserIDHeader]; len(cu) > 0 {
				if len(cu) > 1 || !validUserID(cu[0]) {
					writeError(w, http.StatusBadRequest, "invalid_client_user_id",
						"The "+m.opts.ClientUserIDHeader+" header must be one value of 1 to 256 bytes of UTF-8 without control characters.")
					return
				}
				p.ClientUserID = cu[0]
			}
		}
		p.RequestID = reqID
		if p.AppID == "" {
			p.AppID = m.opts.AppID
		}
		if !p.Anonymous() || p.ClientUserID != "" {
			recordAuth(w, p, "")
		}
		next.ServeHTTP(w, r.WithContext(callsign.WithPrincipal(r.Context(), p)))
	})
}

// requestIDHeader holds a generated request id and the header value that
// echoes it, so that both cost one allocation instead of two.
type requestIDHeader struct {
	v [1]string
	b [callsign.MaxNewRequestIDLen]byte
}

// newRequestID generates a request id, sets it as h's X-Request-Id and
// returns it.
func newRequestID(h http.Header) string {
	x := new(requestIDHeader)
	b := callsign.AppendRequestID(x.b[:0])
	// b is never written again, so the string may share its bytes.
	x.v[0] = unsafe.String(unsafe.SliceData(b), len(b))
	h["X-Request-Id"] = x.v[:]
	return x.v[0]
}

// recordAuth tells the first callsign.AuthRecorder in w's Unwrap chain how
// the request was authenticated.
func recordAuth(w http.ResponseWriter, p *callsign.Principal, code string) {
	for w != nil {
		if rec, ok := w.(callsign.AuthRecorder); ok {
			rec.RecordAuth(p, code)
			return
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}

var errInsufficientScope = NewError(CodeInsufficientScope, "auth: the credentials lack a scope the route requires")

// authenticate picks the scheme by what r carries and runs it.
func (m *Middleware) authenticate(r *http.Request) (*callsign.Principal, error) {
	if len(r.Header["Authorization"]) > 1 {
		return nil, NewError(CodeAmbiguous, "auth: more than one Authorization header")
	}
	for _, a := range m.opts.Authenticators {
		if !a.Detect(r) {
			continue
		}
		if !m.allowed(a.Scheme()) {
			return &callsign.Principal{Scheme: a.Scheme()}, NewError(CodeSchemeNotAllowed, "auth: scheme "+string(a.Scheme())+" is not allowed on this route")
		}
		p, err := a.Authenticate(r)
		if err != nil {
			if p == nil {
				p = &callsign.Principal{}
			}
			p.Scheme = a.Scheme()
			return p, err
		}
		return p, nil
	}
	if len(r.Header["Authorization"]) > 0 && r.Header["Authorization"][0] != "" {
		return nil, NewError(CodeMalformed, "auth: the Authorization header matches no accepted scheme")
	}
	if m.opts.Mode == Optional {
		return &callsign.Principal{}, nil
	}
	return nil, NewError(CodeMissing, "auth: no credentials")
}

// grants reports whether have covers every scope of want.
func grants(have, want []string) bool {
	if slices.Contains(have, "FULL") {
		return true
	}
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func (m *Middleware) refuse(w http.ResponseWriter, code string) {
	status := Status(code)
	if status == http.StatusUnauthorized && m.challenge != "" {
		w.Header().Set("WWW-Authenticate", m.challenge)
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeError(w, status, PublicCode(code), Message(code))
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, msg
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(b)
}

func validUserID(s string) bool {
	return s != "" && len(s) <= callsign.MaxUserIDLen && utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

// MaxBearerLen bounds the Bearer token the helpers below look at.
const MaxBearerLen = 8 << 10

// BearerToken returns the token of r's single "Authorization: Bearer"
// header. ok is false when there is none (or it is another scheme).
func BearerToken(r *http.Request) (token string, ok bool) {
	hs := r.Header["Authorization"]
	if len(hs) == 0 {
		return "", false
	}
	h := hs[0]
	if len(h) < 7 || !strings.EqualFold(h[:7], "Bearer ") {
		return "", false
	}
	return strings.TrimLeft(h[7:], " "), true
}

// PeekJWT splits a compact JWS and decodes its header and payload without
// verifying anything, for Detect. ok is false if token is not three
// base64url segments or is longer than MaxBearerLen.
func PeekJWT(token string) (header, payload []byte, ok bool) {
	if len(token) > MaxBearerLen {
		return nil, nil, false
	}
	h, rest, ok1 := strings.Cut(token, ".")
	p, _, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return nil, nil, false
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(h)
	pb, err2 := base64.RawURLEncoding.DecodeString(p)
	if err1 != nil || err2 != nil {
		return nil, nil, false
	}
	return hb, pb, true
}

// ErrBodyTooLarge is returned by ReadBody for a body over its limit.
var ErrBodyTooLarge = NewError(CodeBodyTooLarge, "auth: request body over the limit")

// ReadBody reads r's whole body, at most limit bytes, and puts an
// identical body back in r so that the handler reads it too.
func ReadBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > limit {
		return nil, ErrBodyTooLarge
	}
	var b []byte
	var err error
	if r.ContentLength >= 0 {
		// Known length: one exact allocation, and one byte more to detect a
		// body longer than announced.
		b = make([]byte, r.ContentLength)
		var n int
		n, err = io.ReadFull(r.Body, b)
		b = b[:n]
		if err == nil {
			var extra [1]byte
			if m, _ := r.Body.Read(extra[:]); m > 0 {
				err = fmt.Errorf("auth: body longer than its Content-Length")
			}
		}
	} else {
		b, err = io.ReadAll(io.LimitReader(r.Body, limit+1))
	}
	r.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("auth: read body: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, ErrBodyTooLarge
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	return b, nil
}
