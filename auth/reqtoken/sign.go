package reqtoken

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// SignOption changes how Sign makes a token.
type SignOption func(*signOptions)

type signOptions struct {
	lifetime time.Duration
	jti      string
	scope    string
	now      func() time.Time
}

// WithLifetime sets exp - iat (DefaultLifetime by default). It is rounded
// up to whole seconds and must be at most MaxLifetime.
func WithLifetime(d time.Duration) SignOption { return func(o *signOptions) { o.lifetime = d } }

// WithID sets the jti (a fresh random UUIDv4 by default). A Verifier
// accepts a jti once; it must be 1 to 128 bytes of [A-Za-z0-9._-].
func WithID(jti string) SignOption { return func(o *signOptions) { o.jti = jti } }

// WithScope sets scp (DefaultScope, "FULL", by default).
func WithScope(scope string) SignOption { return func(o *signOptions) { o.scope = scope } }

// WithClock sets the clock that stamps iat (time.Now by default).
func WithClock(now func() time.Time) SignOption { return func(o *signOptions) { o.now = now } }

// Sign returns a request token by user uid with session sid for the request
// method uri body, where uri is the request-target exactly as it will be
// sent (for a URL u, u.RequestURI(): escaped path, and "?" and the raw
// query when there is one). The token is the JWT that Mixin's
// SignAuthenticationToken makes, byte for byte for the same claims, with a
// short lifetime (DefaultLifetime) instead of Mixin's 90 days.
func Sign(uid, sid string, key ed25519.PrivateKey, method, uri string, body []byte, opts ...SignOption) (string, error) {
	o := signOptions{lifetime: DefaultLifetime, scope: DefaultScope, now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	switch {
	case len(key) != ed25519.PrivateKeySize:
		return "", errors.New("reqtoken: sign: the private key is not a 64-byte Ed25519 key")
	case uid == "" || sid == "" || len(uid) > MaxIDLen || len(sid) > MaxIDLen:
		return "", errors.New("reqtoken: sign: uid and sid must be 1 to 256 bytes")
	case method == "":
		return "", errors.New("reqtoken: sign: no method")
	case o.lifetime <= 0 || o.lifetime > MaxLifetime:
		return "", fmt.Errorf("reqtoken: sign: lifetime %v not in (0, %v]", o.lifetime, MaxLifetime)
	case o.scope == "" || !validScope([]byte(o.scope)):
		return "", errors.New("reqtoken: sign: scope must be space-separated printable ASCII words")
	}
	if o.jti == "" {
		o.jti = newUUID()
	} else if !validJTI([]byte(o.jti)) {
		return "", errors.New("reqtoken: sign: jti must be 1 to 128 bytes of [A-Za-z0-9._-]")
	}
	iat := o.now().Unix()
	life := int64((o.lifetime + time.Second - 1) / time.Second)
	sum := Digest(method, uri, body)
	// MapClaims, as both Mixin SDKs use: encoding/json sorts the keys, so
	// the token is byte-identical to theirs for the same claims.
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
		"uid": uid,
		"sid": sid,
		"iat": iat,
		"exp": iat + life,
		"jti": o.jti,
		"sig": hex.EncodeToString(sum[:]),
		"scp": o.scope,
	})
	s, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("reqtoken: sign: %w", err)
	}
	return s, nil
}

// Digest returns sha256(method + uri + body), whose lowercase hex is a
// token's sig.
func Digest(method, uri string, body []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(method))
	h.Write([]byte(uri))
	h.Write(body)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// newUUID returns a random RFC 9562 version 4 UUID, lowercase, as the Mixin
// SDKs put in jti.
func newUUID() string {
	var u [16]byte
	rand.Read(u[:]) // never fails (crypto/rand, Go 1.24+)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}
