// Package hmacsig signs and verifies HMAC-SHA256 request signatures that are
// byte-compatible with github.com/apiguy/go-hmacauth, so that its existing
// clients keep working, with that library's weaknesses fixed.
//
// # What go-hmacauth really signs
//
// Established by running the library (commit feb77ac, its own stringToSign
// and middleware) rather than by reading its README:
//
//	Method + "\n" +
//	Host + "\n" +                  // r.Host: the Host header as sent, port and case kept
//	URL.RequestURI() + "\n" +      // escaped path and raw query, as sent; "?" kept when empty
//	Timestamp + "\n" +             // the exact string of the Authorization header, RFC 3339
//	for each name in sort.Strings(SignedHeaders):   // byte-wise, case-sensitive, on the configured names
//	    Header.Get(name) + "\n"    // values only; every line ends in LF, the last one too
//
// signed with HMAC-SHA256 under the secret and encoded with padded standard
// base64, sent as
//
//	Authorization: APIKey=<key>,Signature=<base64>,Timestamp=<RFC 3339>
//
// (parameters in any order, spaces around commas allowed, no scheme word).
// The README's worked example signature (Ii/RLNl...) does not match its own
// string to sign: it is the signature of the string with only the
// User-Agent value, from the README's first version, never updated when
// Content-Type was added to the example. The library itself signs the
// displayed string and produces UZL4U64DgJCktIdpd+KqVvudx8BdegJnc4PZe5ylMUc=;
// testdata/hmacauth_vectors.json holds that and 16 more vectors produced by
// the library.
//
// # Weaknesses fixed, compatibly
//
//   - Signatures are compared in constant time (go-hmacauth uses !=).
//   - A malformed Authorization header is an error, never a panic
//     (go-hmacauth panics on a parameter without "=").
//   - SignatureExpiresIn 0 means DefaultExpiresIn, not "never expires"
//     (in go-hmacauth a zero expiry accepts a signature forever).
//   - Timestamps more than MaxFutureSkew ahead are refused (10 s, as
//     go-hmacauth does).
//   - A signed header sent twice is refused (go-hmacauth signs the first
//     value and ignores the others); CR or LF in any signed value is refused.
//   - AllowedHosts limits the Host a signature may name.
//   - Opt-in RequireContentDigest: the body is bound to the signature by a
//     signed Content-Digest header (RFC 9530, sha-256 or sha-512) that is
//     recomputed over the received body (go-hmacauth signs no body).
//   - Opt-in Replay: a signature is accepted once within its window.
//   - An unknown API key costs an HMAC like a known one, so that timing
//     does not tell which keys exist, and it answers as a bad signature.
package hmacsig

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/replay"
)

// Defaults.
const (
	DefaultExpiresIn     = 5 * time.Minute
	DefaultMaxFutureSkew = 10 * time.Second
	DefaultMaxBodyBytes  = 1 << 20
	// MaxAuthorizationLen bounds the Authorization header looked at.
	MaxAuthorizationLen = 1024
	// MinSecretLen is the shortest secret accepted without AllowWeakSecrets.
	MinSecretLen = 32
)

// Errors. Test them with errors.Is; auth.Code gives their failure code.
var (
	ErrMalformed      = auth.NewError(auth.CodeMalformed, "hmacsig: malformed Authorization header")
	ErrTooLarge       = auth.NewError(auth.CodeTooLarge, "hmacsig: Authorization header over the size limit")
	ErrBadTimestamp   = auth.NewError(auth.CodeMalformed, "hmacsig: timestamp is not RFC 3339")
	ErrExpired        = auth.NewError(auth.CodeExpired, "hmacsig: signature expired")
	ErrFuture         = auth.NewError(auth.CodeNotYetValid, "hmacsig: timestamp too far in the future")
	ErrHostNotAllowed = auth.NewError(auth.CodeHostNotAllowed, "hmacsig: host not allowed")
	ErrHeaderMissing  = auth.NewError(auth.CodeHeaderMissing, "hmacsig: signed header missing or empty")
	ErrHeaderRepeated = auth.NewError(auth.CodeHeaderInvalid, "hmacsig: signed header repeated")
	ErrLineBreak      = auth.NewError(auth.CodeHeaderInvalid, "hmacsig: signed value contains CR or LF")
	ErrUnknownKey     = auth.NewError(auth.CodeUnknownKey, "hmacsig: unknown API key")
	ErrBadSignature   = auth.NewError(auth.CodeBadSignature, "hmacsig: signature does not match")
	ErrDigestMissing  = auth.NewError(auth.CodeHeaderMissing, "hmacsig: Content-Digest with sha-256 or sha-512 required")
	ErrDigestMismatch = auth.NewError(auth.CodeBodyMismatch, "hmacsig: Content-Digest does not match the body")
	ErrWeakSecret     = auth.NewError(auth.CodeInternal, "hmacsig: secret shorter than 32 bytes (set AllowWeakSecrets for legacy keys)")
)

// KeyLocator returns the secret of an API key, or an error wrapping
// ErrUnknownKey when there is none. Other errors are internal failures.
type KeyLocator func(ctx context.Context, apiKey string) (secret []byte, err error)

// StaticKeys returns a KeyLocator over a fixed map of API key to secret. It
// refuses secrets shorter than MinSecretLen unless allowWeak is set.
func StaticKeys(keys map[string]string, allowWeak bool) (KeyLocator, error) {
	m := make(map[string][]byte, len(keys))
	for k, s := range keys {
		if k == "" || strings.ContainsAny(k, ",= \t\r\n") {
			return nil, fmt.Errorf("hmacsig: API key %q cannot be sent in an Authorization header", k)
		}
		if s == "" {
			return nil, fmt.Errorf("hmacsig: API key %q has an empty secret", k)
		}
		if len(s) < MinSecretLen && !allowWeak {
			return nil, fmt.Errorf("hmacsig: the secret of API key %q is %d bytes; at least %d are required (or allow weak secrets for a legacy deployment)", k, len(s), MinSecretLen)
		}
		m[k] = []byte(s)
	}
	return func(_ context.Context, apiKey string) ([]byte, error) {
		if s, ok := m[apiKey]; ok {
			return s, nil
		}
		return nil, ErrUnknownKey
	}, nil
}

// Options configure a Verifier. Keys is required.
type Options struct {
	// SignedHeaders are the headers whose values every signature covers,
	// as in go-hmacauth (sorted byte-wise before use; the slice is not
	// modified).
	SignedHeaders []string
	// Keys finds secrets.
	Keys KeyLocator
	// SignatureExpiresIn is how old a timestamp may be; DefaultExpiresIn
	// if zero. It never means "forever".
	SignatureExpiresIn time.Duration
	// MaxFutureSkew is how far ahead a timestamp may be;
	// DefaultMaxFutureSkew if zero.
	MaxFutureSkew time.Duration
	// AllowedHosts, when not empty, are the only Host values accepted
	// (compared case-insensitively, port included).
	AllowedHosts []string
	// RequireContentDigest requires a signed Content-Digest header (RFC
	// 9530) matching the body. SignedHeaders must then contain
	// "Content-Digest".
	RequireContentDigest bool
	// MaxBodyBytes bounds the body hashed for Content-Digest;
	// DefaultMaxBodyBytes if zero.
	MaxBodyBytes int64
	// Replay, when set, accepts each signature once within its window.
	Replay replay.Store
	// AllowWeakSecrets accepts secrets shorter than MinSecretLen from Keys
	// (for existing deployments); New logs a warning when it is set.
	AllowWeakSecrets bool
	// UserIDFor maps a verified API key to the Principal's UserID; the API
	// key itself if nil.
	UserIDFor func(apiKey string) string
	// Logger receives the weak-secret warning; slog.Default() if nil.
	Logger *slog.Logger
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Verifier verifies go-hmacauth signatures. It implements
// auth.Authenticator.
type Verifier struct {
	o      Options
	sorted []string // SignedHeaders, sorted as go-hmacauth sorts them
	dummy  []byte
	macs   macs
}

// New validates opts and returns a Verifier.
func New(opts Options) (*Verifier, error) {
	if opts.Keys == nil {
		return nil, errors.New("hmacsig: Options.Keys is required")
	}
	if opts.SignatureExpiresIn < 0 || opts.MaxFutureSkew < 0 {
		return nil, errors.New("hmacsig: negative SignatureExpiresIn or MaxFutureSkew")
	}
	if opts.SignatureExpiresIn == 0 {
		opts.SignatureExpiresIn = DefaultExpiresIn
	}
	if opts.MaxFutureSkew == 0 {
		opts.MaxFutureSkew = DefaultMaxFutureSkew
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	sorted, err := sortHeaders(opts.SignedHeaders)
	if err != nil {
		return nil, err
	}
	if opts.RequireContentDigest && !slices.ContainsFunc(sorted, func(h string) bool { return strings.EqualFold(h, "Content-Digest") }) {
		return nil, errors.New("hmacsig: RequireContentDigest needs \"Content-Digest\" in SignedHeaders")
	}
	if opts.AllowWeakSecrets {
		opts.Logger.Warn("hmacsig: weak secrets allowed: HMAC secrets shorter than 32 bytes are accepted; rotate them")
	}
	return &Verifier{o: opts, sorted: sorted, dummy: make([]byte, MinSecretLen)}, nil
}

// sortHeaders copies and sorts header names as go-hmacauth does
// (sort.Strings: byte-wise, case-sensitive) and refuses a name given twice.
func sortHeaders(names []string) ([]string, error) {
	s := slices.Clone(names)
	sort.Strings(s)
	for i, h := range s {
		if h == "" || strings.ContainsAny(h, " \t\r\n:") {
			return nil, fmt.Errorf("hmacsig: %q is not a header name", h)
		}
		if i > 0 && http.CanonicalHeaderKey(h) == http.CanonicalHeaderKey(s[i-1]) {
			return nil, fmt.Errorf("hmacsig: header %q is in SignedHeaders twice", h)
		}
	}
	return s, nil
}

// Params are the parameters of an Authorization header.
type Params struct {
	APIKey, Signature, Timestamp string
}

// ParseAuthorization parses "APIKey=..,Signature=..,Timestamp=.." with the
// parameters in any order, as go-hmacauth does, without its panic: every
// part must be NAME=VALUE, each name once, none empty.
func ParseAuthorization(h string) (Params, error) {
	var p Params
	if len(h) > MaxAuthorizationLen {
		return p, ErrTooLarge
	}
	for part := range strings.SplitSeq(h, ",") {
		name, value, ok := strings.Cut(strings.Trim(part, " "), "=")
		if !ok || value == "" {
			return Params{}, ErrMalformed
		}
		var dst *string
		switch name {
		case "APIKey":
			dst = &p.APIKey
		case "Signature":
			dst = &p.Signature
		case "Timestamp":
			dst = &p.Timestamp
		default:
			return Params{}, ErrMalformed
		}
		if *dst != "" {
			return Params{}, ErrMalformed
		}
		*dst = value
	}
	if p.APIKey == "" || p.Signature == "" || p.Timestamp == "" {
		return Params{}, ErrMalformed
	}
	return p, nil
}

// String returns the Authorization header value of p.
func (p Params) String() string {
	return "APIKey=" + p.APIKey + ",Signature=" + p.Signature + ",Timestamp=" + p.Timestamp
}

// StringToSign returns what go-hmacauth signs for r with the given
// timestamp and (already sorted) signed headers. It refuses a signed header
// that is missing, empty or repeated, and any value with CR or LF, since
// either would make two different requests sign the same string.
func StringToSign(r *http.Request, timestamp string, sortedHeaders []string) (string, error) {
	b, err := appendStringToSign(nil, r, timestamp, sortedHeaders)
	return string(b), err
}

func appendStringToSign(b []byte, r *http.Request, timestamp string, sortedHeaders []string) ([]byte, error) {
	host := r.Host
	if host == "" && r.URL != nil {
		host = r.URL.Host
	}
	for _, s := range [...]string{r.Method, host} {
		if strings.ContainsAny(s, "\r\n") {
			return nil, ErrLineBreak
		}
		b = append(b, s...)
		b = append(b, '\n')
	}
	start := len(b)
	b = appendRequestURI(b, r.URL)
	if bytes.ContainsAny(b[start:], "\r\n") || strings.ContainsAny(timestamp, "\r\n") {
		return nil, ErrLineBreak
	}
	b = append(b, '\n')
	b = append(b, timestamp...)
	b = append(b, '\n')
	for _, h := range sortedHeaders {
		vals := r.Header.Values(h)
		if len(vals) > 1 {
			return nil, fmt.Errorf("%w: %s", ErrHeaderRepeated, http.CanonicalHeaderKey(h))
		}
		if len(vals) == 0 || vals[0] == "" {
			return nil, fmt.Errorf("%w: %s", ErrHeaderMissing, http.CanonicalHeaderKey(h))
		}
		if strings.ContainsAny(vals[0], "\r\n") {
			return nil, ErrLineBreak
		}
		b = append(b, vals[0]...)
		b = append(b, '\n')
	}
	return b, nil
}

// appendRequestURI appends u.RequestURI() to b, without the string
// concatenation RequestURI does for a query.
func appendRequestURI(b []byte, u *url.URL) []byte {
	if u.Opaque != "" {
		return append(b, u.RequestURI()...) // rare: keep the library's rules
	}
	if p := u.EscapedPath(); p != "" {
		b = append(b, p...)
	} else {
		b = append(b, '/')
	}
	if u.ForceQuery || u.RawQuery != "" {
		b = append(b, '?')
		b = append(b, u.RawQuery...)
	}
	return b
}

// Signature returns the signature of a string to sign: the padded standard
// base64 of HMAC-SHA256(secret, stringToSign).
func Signature(secret []byte, stringToSign string) string { return sign(secret, stringToSign) }

// sign returns the padded standard base64 of HMAC-SHA256(secret, s).
func sign(secret []byte, s string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(s))
	var sum [sha256.Size]byte
	return base64.StdEncoding.EncodeToString(m.Sum(sum[:0]))
}

// macs keeps keyed HMAC states per secret for reuse: Reset returns an HMAC
// to its keyed state, which saves the key schedule and the allocations of
// hmac.New on every request. At most maxMACPools secrets are pooled; others
// get a fresh HMAC each time.
type macs struct {
	pools sync.Map // string(secret) -> *sync.Pool of *mac
	n     atomic.Int32
}

// mac is a keyed HMAC-SHA256 and room for its sum: a sum written through
// the hash.Hash interface would escape, and cost an allocation, from the
// caller's stack.
type mac struct {
	h    hash.Hash
	sum  [sha256.Size]byte
	pool *sync.Pool // nil when not pooled
}

const maxMACPools = 4096

// get returns a keyed HMAC for secret; the caller calls put when done.
func (m *macs) get(secret []byte) *mac {
	if p, ok := m.pools.Load(string(secret)); ok {
		return p.(*sync.Pool).Get().(*mac)
	}
	if m.n.Load() >= maxMACPools {
		return &mac{h: hmac.New(sha256.New, secret)}
	}
	key := string(secret)
	p := new(sync.Pool)
	p.New = func() any { return &mac{h: hmac.New(sha256.New, []byte(key)), pool: p} }
	if _, loaded := m.pools.LoadOrStore(key, p); !loaded {
		m.n.Add(1)
	}
	return m.get(secret)
}

// put returns c to its pool, keyed again.
func (c *mac) put() {
	if c.pool != nil {
		c.h.Reset()
		c.pool.Put(c)
	}
}

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Verify checks r's signature and returns the verified API key. Cheap
// checks (size, syntax, time window, host, headers) run before the key
// lookup and the HMAC; the body digest and the replay store come last.
func (v *Verifier) Verify(r *http.Request) (apiKey string, err error) {
	h := r.Header["Authorization"]
	if len(h) != 1 {
		return "", ErrMalformed
	}
	p, err := ParseAuthorization(h[0])
	if err != nil {
		return "", err
	}
	ts, err := time.Parse(time.RFC3339, p.Timestamp)
	if err != nil {
		return p.APIKey, ErrBadTimestamp
	}
	now := v.o.Now()
	age := now.Sub(ts)
	if age < -v.o.MaxFutureSkew {
		return p.APIKey, ErrFuture
	}
	if age > v.o.SignatureExpiresIn {
		return p.APIKey, ErrExpired
	}
	if len(v.o.AllowedHosts) > 0 && !slices.ContainsFunc(v.o.AllowedHosts, func(a string) bool { return strings.EqualFold(a, r.Host) }) {
		return p.APIKey, ErrHostNotAllowed
	}
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	sts, err := appendStringToSign((*bp)[:0], r, p.Timestamp, v.sorted)
	*bp = sts
	if err != nil {
		return p.APIKey, err
	}
	secret, err := v.o.Keys(r.Context(), p.APIKey)
	unknown := errors.Is(err, ErrUnknownKey)
	if err != nil && !unknown {
		return p.APIKey, fmt.Errorf("hmacsig: key lookup: %w", err)
	}
	if unknown {
		secret = v.dummy // same work as a known key, so timing tells nothing
	}
	m := v.macs.get(secret)
	m.h.Write(sts)
	want := [sha256.Size]byte(m.h.Sum(m.sum[:0]))
	m.put()
	// Only the canonical encoding (44 characters, padded, zero trailing
	// bits) decodes to 32 bytes, so this equals go-hmacauth's string
	// comparison. The buffer is sized for any 44 characters: unpadded
	// input decodes to 33 bytes, and Decode must never write past it.
	var got [45 / 4 * 3]byte
	match := false
	if len(p.Signature) == 44 {
		n, derr := base64.StdEncoding.Strict().Decode(got[:], []byte(p.Signature))
		match = derr == nil && n == sha256.Size && hmac.Equal(want[:], got[:n])
	}
	switch {
	case unknown:
		return p.APIKey, ErrUnknownKey
	case !match:
		return p.APIKey, ErrBadSignature
	case len(secret) < MinSecretLen && !v.o.AllowWeakSecrets:
		return p.APIKey, ErrWeakSecret
	}
	if v.o.RequireContentDigest {
		if err := v.checkDigest(r); err != nil {
			return p.APIKey, err
		}
	}
	if v.o.Replay != nil {
		if err := v.o.Replay.Use(r.Context(), "hmac:"+p.APIKey+":"+p.Signature, ts.Add(v.o.SignatureExpiresIn)); err != nil {
			return p.APIKey, err
		}
	}
	return p.APIKey, nil
}

func (v *Verifier) checkDigest(r *http.Request) error {
	digests, err := ParseContentDigest(r.Header.Get("Content-Digest"))
	if err != nil {
		return err
	}
	body, err := auth.ReadBody(r, v.o.MaxBodyBytes)
	if err != nil {
		return err
	}
	for alg, want := range digests {
		if subtle.ConstantTimeCompare(digest(alg, body), want) != 1 {
			return ErrDigestMismatch
		}
	}
	return nil
}

// ParseContentDigest parses an RFC 9530 Content-Digest dictionary and
// returns the sha-256 and sha-512 digests it holds (other algorithms are
// ignored, as the RFC allows). It requires at least one of the two.
func ParseContentDigest(h string) (map[string][]byte, error) {
	out := map[string][]byte{}
	if h == "" || len(h) > 1024 {
		return nil, ErrDigestMissing
	}
	for member := range strings.SplitSeq(h, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(member), "=")
		if !ok || len(value) < 2 || value[0] != ':' || value[len(value)-1] != ':' {
			return nil, fmt.Errorf("%w: Content-Digest is not an RFC 9530 dictionary of byte sequences", ErrMalformed)
		}
		name = strings.ToLower(name)
		if name != "sha-256" && name != "sha-512" {
			continue
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%w: Content-Digest repeats %s", ErrMalformed, name)
		}
		b, err := base64.StdEncoding.Strict().DecodeString(value[1 : len(value)-1])
		if err != nil || len(b) != newHash(name).Size() {
			return nil, fmt.Errorf("%w: Content-Digest %s is not a base64 digest", ErrMalformed, name)
		}
		out[name] = b
	}
	if len(out) == 0 {
		return nil, ErrDigestMissing
	}
	return out, nil
}

func newHash(alg string) hash.Hash {
	if alg == "sha-512" {
		return sha512.New()
	}
	return sha256.New()
}

func digest(alg string, body []byte) []byte {
	h := newHash(alg)
	h.Write(body)
	return h.Sum(nil)
}

// ContentDigest returns the RFC 9530 Content-Digest header value of body
// with sha-256.
func ContentDigest(body []byte) string {
	return "sha-256=:" + base64.StdEncoding.EncodeToString(digest("sha-256", body)) + ":"
}

// Scheme implements auth.Authenticator.
func (v *Verifier) Scheme() callsign.Scheme { return callsign.SchemeHMAC }

// Detect implements auth.Authenticator: an Authorization header of
// go-hmacauth's shape.
func (v *Verifier) Detect(r *http.Request) bool {
	hs := r.Header["Authorization"]
	if len(hs) == 0 {
		return false
	}
	h := hs[0]
	return strings.Contains(h, "APIKey=") && strings.Contains(h, "Signature=") && !strings.HasPrefix(h, "Bearer ")
}

// Authenticate implements auth.Authenticator. The Principal's KeyID is the
// API key and its UserID the verified API key (or Options.UserIDFor of it).
func (v *Verifier) Authenticate(r *http.Request) (*callsign.Principal, error) {
	key, err := v.Verify(r)
	if err != nil {
		return &callsign.Principal{Scheme: callsign.SchemeHMAC, KeyID: key}, err
	}
	uid := key
	if v.o.UserIDFor != nil {
		uid = v.o.UserIDFor(key)
	}
	return &callsign.Principal{Scheme: callsign.SchemeHMAC, KeyID: key, UserID: uid}, nil
}
