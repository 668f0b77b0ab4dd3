package reqtoken

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/replay"
)

// Session is what a Verifier knows of a session id: who owns it, its
// public key, and the scopes its tokens may claim.
type Session struct {
	// UserID must equal the token's uid.
	UserID string
	// PublicKey verifies the session's tokens (32 bytes).
	PublicKey ed25519.PublicKey
	// Scopes are the scopes the session may grant; "FULL" grants any. A
	// token's scp must be among them (scp "FULL" needs a FULL session). A
	// session without Scopes can sign no token.
	Scopes []string
}

// Options configure a Verifier. Sessions and Replay are required; the zero
// value of every other field is the default named.
type Options struct {
	// Sessions returns the session of a sid, or an error wrapping
	// ErrUnknownSession when there is none (code unknown_key). Its other
	// errors are returned wrapped (code internal unless they carry one).
	Sessions func(ctx context.Context, sid string) (Session, error)
	// Replay records each accepted token's sid and jti, so that a token is
	// accepted once. Give it the same clock as Now.
	Replay replay.Store
	// MaxAge is how long after its iat a token is accepted, whatever its
	// exp says (DefaultMaxAge). Mixin's SDKs sign for up to 90 days; the
	// server decides how long a token may be used.
	MaxAge time.Duration
	// Leeway is the clock skew tolerated on iat and on expiry
	// (DefaultLeeway).
	Leeway time.Duration
	// MaxBodyBytes bounds the body read and hashed (DefaultMaxBodyBytes);
	// over it, verification fails with auth.ErrBodyTooLarge (413).
	MaxBodyBytes int64
	// MaxTokenBytes bounds the token (DefaultMaxTokenBytes); over it,
	// verification fails with ErrTooLarge. The auth middleware only
	// detects tokens up to auth.MaxBearerLen.
	MaxTokenBytes int
	// Now is the clock (time.Now).
	Now func() time.Time
}

// Claims are a verified token's claims.
type Claims struct {
	UserID    string // uid
	SessionID string // sid
	ID        string // jti
	Scope     string // scp
	IssuedAt  time.Time
	ExpiresAt time.Time // exp as the token says
	// ValidUntil is when the Verifier stops accepting the token:
	// min(exp, iat + MaxAge), before leeway.
	ValidUntil time.Time
}

// Verifier verifies request tokens. It is safe for concurrent use.
type Verifier struct {
	o    Options
	pool sync.Pool // *work
}

// work is the scratch space of one verification, pooled: the hot path
// allocates only the strings it returns and the replay key.
type work struct {
	b   []byte // token copy, then the decoded header, claims and signature
	esc []byte // decoded JSON strings that had escapes
	pre []byte // method + uri, for the digest
	h   hash.Hash
	sum [sha256.Size]byte
	hex [2 * sha256.Size]byte
}

// New validates opts and returns a Verifier.
func New(opts Options) (*Verifier, error) {
	switch {
	case opts.Sessions == nil:
		return nil, errors.New("reqtoken: Options.Sessions is required")
	case opts.Replay == nil:
		return nil, errors.New("reqtoken: Options.Replay is required: without it a token could be replayed until it expires")
	case opts.MaxAge < 0 || opts.Leeway < 0 || opts.MaxBodyBytes < 0 || opts.MaxTokenBytes < 0:
		return nil, errors.New("reqtoken: negative limit in Options")
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.Leeway == 0 {
		opts.Leeway = DefaultLeeway
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxTokenBytes == 0 {
		opts.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	v := &Verifier{o: opts}
	v.pool.New = func() any { return &work{h: sha256.New()} }
	return v, nil
}

// Verify verifies the request token in r's "Authorization: Bearer" header
// against r: its method, its request-target exactly as received
// (r.RequestURI; r.URL.RequestURI() when that is empty, as on a client)
// and its body, which it reads (up to MaxBodyBytes) and puts back for the
// handler. The checks go from cheap to dear: size, format, header, claims,
// time, session, signature, the request's digest, scope, user; then the
// token's sid and jti are recorded in the replay store, so a refused
// request does not use up its token.
//
// It returns an error whose auth.Code says why: missing_credentials,
// too_large, malformed, alg_not_allowed, unsupported, invalid_claims,
// not_yet_valid, expired, unknown_key, bad_signature, body_too_large,
// body_mismatch, insufficient_scope, user_mismatch, replayed,
// replay_store_full, or internal. On error, Claims has at most SessionID,
// when it could be read.
func (v *Verifier) Verify(r *http.Request) (Claims, error) {
	tok, ok := auth.BearerToken(r)
	if !ok {
		return Claims{}, ErrMissing
	}
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	return v.verify(r.Context(), tok, r, r.Method, uri, nil)
}

// VerifyToken is Verify for a token and a request already taken apart:
// uri is the request-target as received and body the whole raw body.
func (v *Verifier) VerifyToken(ctx context.Context, token, method, uri string, body []byte) (Claims, error) {
	if int64(len(body)) > v.o.MaxBodyBytes {
		return Claims{}, auth.ErrBodyTooLarge
	}
	return v.verify(ctx, token, nil, method, uri, body)
}

// b64 is strict: the unused bits of the last character must be zero, so
// that each token has one encoding.
var b64 = base64.RawURLEncoding.Strict()

func malformed(why string) error { return fmt.Errorf("%w: %s", ErrMalformed, why) }
func invalid(why string) error   { return fmt.Errorf("%w: %s", ErrInvalidClaims, why) }

// claim flags
const (
	hasUID = 1 << iota
	hasSID
	hasJTI
	hasSig
	hasScp
	hasIat
	hasExp
	hasNbf
)

// maxUnix bounds iat, exp and nbf: the end of year 9999.
const maxUnix = 253402300799

type rawClaims struct {
	uid, sid, jti, sig, scp []byte
	iat, exp, nbf           int64
	has                     int
	bad                     string // the first claim of the wrong type
}

func (v *Verifier) verify(ctx context.Context, token string, r *http.Request, method, uri string, body []byte) (Claims, error) {
	var c Claims
	if len(token) > v.o.MaxTokenBytes {
		return c, ErrTooLarge
	}
	// Three segments. The base64 decoder refuses every character outside
	// the alphabet except CR and LF, which it skips: refused here.
	d1 := strings.IndexByte(token, '.')
	if d1 < 0 {
		return c, malformed("fewer than three segments")
	}
	d2 := strings.IndexByte(token[d1+1:], '.')
	if d2 < 0 {
		return c, malformed("fewer than three segments")
	}
	d2 += d1 + 1
	if strings.IndexByte(token[d2+1:], '.') >= 0 {
		return c, malformed("more than three segments")
	}
	if strings.IndexByte(token, '\n') >= 0 || strings.IndexByte(token, '\r') >= 0 {
		return c, malformed("a line break")
	}

	w := v.pool.Get().(*work)
	defer v.put(w)
	n := len(token)
	need := n + b64.DecodedLen(n)
	if cap(w.b) < need {
		w.b = make([]byte, 0, need)
	}
	d := segs{b: append(w.b[:0], token...)}

	// Header. The one every Mixin SDK and Sign write is known good.
	if token[:d1] != stdHeader {
		hdr, ok := d.decode(0, d1)
		if !ok || len(hdr) == 0 {
			return c, malformed("header is not canonical base64url")
		}
		if err := checkHeader(hdr, w); err != nil {
			return c, err
		}
	}

	// Claims.
	payload, ok := d.decode(d1+1, d2)
	if !ok || len(payload) == 0 {
		return c, malformed("claims are not canonical base64url")
	}
	l := lexer{d: payload, buf: w.esc[:0]}
	var rc rawClaims
	ok = l.object(func(l *lexer, name []byte) bool { return rc.member(l, name) })
	w.esc = l.buf
	if !ok {
		return c, malformed("claims are not a strict JSON object")
	}
	if rc.has&hasSID != 0 && validID(rc.sid) {
		c.SessionID = string(rc.sid)
	}
	if err := rc.check(); err != nil {
		return c, err
	}

	sig, ok := d.decode(d2+1, n)
	if !ok || len(sig) != ed25519.SignatureSize {
		return c, malformed("signature is not 64 bytes of canonical base64url")
	}

	// Time.
	now := v.o.Now()
	iat, exp := time.Unix(rc.iat, 0), time.Unix(rc.exp, 0)
	if iat.After(now.Add(v.o.Leeway)) || rc.has&hasNbf != 0 && time.Unix(rc.nbf, 0).After(now.Add(v.o.Leeway)) {
		return c, ErrNotYetValid
	}
	until := iat.Add(v.o.MaxAge)
	if exp.Before(until) {
		until = exp
	}
	if !now.Before(until.Add(v.o.Leeway)) {
		return c, ErrExpired
	}

	// Session and signature.
	sess, err := v.o.Sessions(ctx, c.SessionID)
	if err != nil {
		if errors.Is(err, ErrUnknownSession) {
			return c, err
		}
		return c, fmt.Errorf("reqtoken: session lookup: %w", err)
	}
	if len(sess.PublicKey) != ed25519.PublicKeySize {
		return c, errors.New("reqtoken: session lookup: the session's public key is not 32 bytes")
	}
	if !ed25519.Verify(sess.PublicKey, d.b[:d2], sig) {
		return c, ErrBadSignature
	}

	// The request.
	if r != nil {
		if body, err = auth.ReadBody(r, v.o.MaxBodyBytes); err != nil {
			return c, err
		}
	}
	w.pre = append(append(w.pre[:0], method...), uri...)
	w.h.Reset()
	w.h.Write(w.pre)
	w.h.Write(body)
	hex.Encode(w.hex[:], w.h.Sum(w.sum[:0]))
	if subtle.ConstantTimeCompare(w.hex[:], rc.sig) != 1 {
		return c, ErrBodyMismatch
	}

	if !grants(sess.Scopes, rc.scp) {
		return c, ErrInsufficientScope
	}
	if string(rc.uid) != sess.UserID {
		return c, ErrUserMismatch
	}

	c.ID = string(rc.jti)
	// jti has no ':', so the key splits one way only.
	if err := v.o.Replay.Use(ctx, c.SessionID+":"+c.ID, until.Add(v.o.Leeway)); err != nil {
		var ae *auth.Error
		if errors.As(err, &ae) {
			return Claims{SessionID: c.SessionID}, err
		}
		return Claims{SessionID: c.SessionID}, fmt.Errorf("reqtoken: replay store: %w", err)
	}
	c.UserID = sess.UserID
	if c.Scope = DefaultScope; string(rc.scp) != DefaultScope {
		c.Scope = string(rc.scp)
	}
	c.IssuedAt, c.ExpiresAt, c.ValidUntil = iat, exp, until
	return c, nil
}

// stdHeader is the base64url of {"alg":"EdDSA","typ":"JWT"}.
const stdHeader = "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9"

// segs holds a copy of the token, then each segment decoded after it.
type segs struct{ b []byte }

// decode decodes b[from:to] and appends it. The result's capacity ends
// with it, so that later appends cannot overwrite it.
func (s *segs) decode(from, to int) ([]byte, bool) {
	start := len(s.b)
	m, err := b64.Decode(s.b[start:start+b64.DecodedLen(to-from)], s.b[from:to])
	if err != nil {
		return nil, false
	}
	s.b = s.b[:start+m]
	return s.b[start : start+m : start+m], true
}

// checkHeader refuses a header that is not strict JSON, names another alg
// than EdDSA, has crit, or a typ other than JWT.
func checkHeader(hdr []byte, w *work) error {
	l := lexer{d: hdr, buf: w.esc[:0]}
	var alg, typ []byte
	algSet, algStr, typSet, typStr, crit := false, false, false, false, false
	ok := l.object(func(l *lexer, name []byte) bool {
		switch string(name) {
		case "alg":
			algSet = true
			if l.peek() == '"' {
				algStr = true
				s, good := l.str()
				alg = s
				return good
			}
		case "typ":
			typSet = true
			if l.peek() == '"' {
				typStr = true
				s, good := l.str()
				typ = s
				return good
			}
		case "crit":
			crit = true
		}
		// kid, jwk, jku, x5u, x5c... are read past and never used: the
		// key is the session's.
		return l.skip(1)
	})
	w.esc = l.buf
	switch {
	case !ok:
		return malformed("header is not a strict JSON object")
	case !algSet || !algStr:
		return malformed("header has no alg string")
	case string(alg) != "EdDSA":
		return ErrAlgNotAllowed
	case crit:
		return fmt.Errorf("%w: crit", ErrUnsupported)
	case typSet && (!typStr || !equalFoldASCII(typ, "JWT")):
		return fmt.Errorf("%w: typ is not JWT", ErrUnsupported)
	}
	return nil
}

func (v *Verifier) put(w *work) {
	// Keep the pool's buffers small whatever one request needed.
	if cap(w.b) > 64<<10 || cap(w.esc) > 64<<10 || cap(w.pre) > 64<<10 {
		return
	}
	v.pool.Put(w)
}

func (rc *rawClaims) member(l *lexer, name []byte) bool {
	var dst *[]byte
	var flag int
	var num *int64
	switch string(name) {
	case "uid":
		dst, flag = &rc.uid, hasUID
	case "sid":
		dst, flag = &rc.sid, hasSID
	case "jti":
		dst, flag = &rc.jti, hasJTI
	case "sig":
		dst, flag = &rc.sig, hasSig
	case "scp":
		dst, flag = &rc.scp, hasScp
	case "iat":
		num, flag = &rc.iat, hasIat
	case "exp":
		num, flag = &rc.exp, hasExp
	case "nbf":
		num, flag = &rc.nbf, hasNbf
	default:
		return l.skip(1)
	}
	if dst != nil && l.peek() == '"' {
		s, ok := l.str()
		*dst = s
		rc.has |= flag
		return ok
	}
	if num != nil {
		if c := l.peek(); c == '-' || '0' <= c && c <= '9' {
			val, uint, ok := l.num()
			if uint && val <= maxUnix {
				*num = val
				rc.has |= flag
			} else if rc.bad == "" {
				rc.bad = string(name) + " is not a whole number of seconds since 1970 before year 10000"
			}
			return ok
		}
	}
	if rc.bad == "" {
		rc.bad = string(name) + " has the wrong type"
	}
	return l.skip(1)
}

func (rc *rawClaims) check() error {
	if rc.bad != "" {
		return invalid(rc.bad)
	}
	const required = hasUID | hasSID | hasJTI | hasSig | hasScp | hasIat | hasExp
	if rc.has&required != required {
		for _, m := range []struct {
			flag int
			name string
		}{{hasUID, "uid"}, {hasSID, "sid"}, {hasJTI, "jti"}, {hasSig, "sig"}, {hasScp, "scp"}, {hasIat, "iat"}, {hasExp, "exp"}} {
			if rc.has&m.flag == 0 {
				return invalid("no " + m.name)
			}
		}
	}
	switch {
	case !validID(rc.uid):
		return invalid("uid is not 1 to 256 bytes without control characters")
	case !validID(rc.sid):
		return invalid("sid is not 1 to 256 bytes without control characters")
	case !validJTI(rc.jti):
		return invalid("jti is not 1 to 128 bytes of [A-Za-z0-9._-]")
	case !validSig(rc.sig):
		return invalid("sig is not 64 lowercase hex digits")
	case !validScope(rc.scp):
		return invalid("scp is not space-separated printable ASCII words")
	case rc.exp <= rc.iat:
		return invalid("exp is not after iat")
	case rc.exp-rc.iat > int64(MaxLifetime/time.Second):
		return invalid("exp - iat is over 90 days")
	}
	return nil
}

// grants reports whether a session with scopes may grant every word of scp.
func grants(scopes []string, scp []byte) bool {
	for _, s := range scopes {
		if s == "FULL" {
			return true
		}
	}
	for len(scp) > 0 {
		word := scp
		for i, c := range scp {
			if c == ' ' {
				word = scp[:i]
				break
			}
		}
		scp = scp[len(word):]
		if len(scp) > 0 {
			scp = scp[1:]
		}
		found := false
		for _, s := range scopes {
			if s == string(word) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func validID(b []byte) bool {
	if len(b) == 0 || len(b) > MaxIDLen {
		return false
	}
	for i := 0; i < len(b); {
		if c := b[i]; c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r < 0x20 || 0x7f <= r && r < 0xa0 || r == utf8.RuneError && n == 1 {
			return false
		}
		i += n
	}
	return true
}

func validJTI(b []byte) bool {
	if len(b) == 0 || len(b) > 128 {
		return false
	}
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func validSig(b []byte) bool {
	if len(b) != 2*sha256.Size {
		return false
	}
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// validScope reports whether b is 1 to 1024 bytes of words of printable
// ASCII separated by single spaces.
func validScope(b []byte) bool {
	if len(b) == 0 || len(b) > 1024 || b[0] == ' ' || b[len(b)-1] == ' ' {
		return false
	}
	for i, c := range b {
		if c == ' ' && b[i-1] == ' ' || c < ' ' || c > '~' {
			return false
		}
	}
	return true
}

func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
