package reqtoken

import (
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"unsafe"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth"
)

var _ auth.Authenticator = (*Authenticator)(nil)

// Authenticator is the auth middleware's view of a Verifier.
type Authenticator struct {
	v *Verifier
}

// NewAuthenticator returns an Authenticator verifying with v.
func NewAuthenticator(v *Verifier) *Authenticator { return &Authenticator{v: v} }

// Scheme returns callsign.SchemeRequestToken.
func (a *Authenticator) Scheme() callsign.Scheme { return callsign.SchemeRequestToken }

// Detect reports whether r carries a Bearer JWT whose claims have both sid
// and sig members: a request token, not another kind of JWT. It verifies
// nothing.
func (a *Authenticator) Detect(r *http.Request) bool {
	tok, ok := auth.BearerToken(r)
	if !ok {
		return false
	}
	b := detectBufs.Get().(*detectBuf)
	defer detectBufs.Put(b)
	payload, ok := peekPayload(tok, b.h[:], b.p[:])
	if !ok {
		return false
	}
	var sid, sig bool
	b.l = lexer{d: payload, buf: b.l.buf[:0]}
	b.l.object(func(l *lexer, name []byte) bool {
		switch string(name) {
		case "sid":
			sid = true
		case "sig":
			sig = true
		}
		return l.skip(1)
	})
	return sid && sig
}

// Authenticate verifies r (see Verifier.Verify). The Principal's KeyID is
// the sid, UserID the verified uid, Scopes the words of scp, ExpiresAt
// when the token stops being accepted, and Claims holds the jti. On
// failure the partial Principal has the sid as KeyID when it could be
// read.
func (a *Authenticator) Authenticate(r *http.Request) (*callsign.Principal, error) {
	c, err := a.v.Verify(r)
	p := &callsign.Principal{Scheme: callsign.SchemeRequestToken, KeyID: c.SessionID}
	if err != nil {
		return p, err
	}
	p.UserID = c.UserID
	p.Scopes = strings.Fields(c.Scope)
	p.ExpiresAt = c.ValidUntil
	p.Claims = map[string]any{"jti": c.ID}
	return p, nil
}

// detectBuf is Detect's memory, pooled: the lexer's callback would make
// it escape from the stack.
type detectBuf struct {
	l lexer
	h [256]byte
	p [1024]byte
}

var detectBufs = sync.Pool{New: func() any { return new(detectBuf) }}

// peekPayload is auth.PeekJWT's payload, decoded into pbuf (and the header
// into hbuf) when they are large enough: Detect runs for every Bearer
// request, request token or not, and PeekJWT allocates both.
func peekPayload(token string, hbuf, pbuf []byte) ([]byte, bool) {
	h, rest, ok1 := strings.Cut(token, ".")
	p, _, ok2 := strings.Cut(rest, ".")
	enc := base64.RawURLEncoding
	if len(token) > auth.MaxBearerLen || !ok1 || !ok2 || enc.DecodedLen(len(h)) > len(hbuf) || enc.DecodedLen(len(p)) > len(pbuf) {
		_, payload, ok := auth.PeekJWT(token)
		return payload, ok
	}
	// The same decoding as PeekJWT's DecodeString, which is Decode into a
	// new buffer.
	if _, err := enc.Decode(hbuf, unsafe.Slice(unsafe.StringData(h), len(h))); err != nil {
		return nil, false
	}
	n, err := enc.Decode(pbuf, unsafe.Slice(unsafe.StringData(p), len(p)))
	if err != nil {
		return nil, false
	}
	return pbuf[:n], true
}
