package reqtoken

import (
	"net/http"
	"strings"

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
	_, payload, ok := auth.PeekJWT(tok)
	if !ok {
		return false
	}
	var sid, sig bool
	l := lexer{d: payload}
	l.object(func(l *lexer, name []byte) bool {
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
