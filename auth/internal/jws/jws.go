// Package jws checks compact JWS serializations (RFC 7515 §7.1) strictly
// before a JWT library sees them, and closes the gaps such libraries leave:
//
//   - exactly three segments of the base64url alphabet, without padding,
//     line breaks or non-zero trailing bits (the only canonical encoding, so
//     that one token has one spelling: a cache keyed by the token string
//     cannot be dodged by re-encoding it);
//   - a header and a payload that are JSON objects of valid UTF-8 with no
//     member name twice at any depth (encoding/json keeps the last of two
//     "alg" members while another parser may keep the first);
//   - a size limit, checked before anything is decoded.
//
// It also extracts the header members a verifier must look at before it
// picks a key: alg, kid, typ, and whether crit is present.
package jws

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// Errors returned by Parse, wrapped with details; test with errors.Is.
// The returned error's message is the detail alone, for the caller to
// prefix with its own sentinel.
var (
	ErrTooLarge  = errors.New("token over the size limit")
	ErrMalformed = errors.New("malformed token")
)

type parseError struct {
	kind   error
	detail string
}

func (e *parseError) Error() string { return e.detail }
func (e *parseError) Unwrap() error { return e.kind }

func fail(kind error, format string, args ...any) error {
	return &parseError{kind: kind, detail: fmt.Sprintf(format, args...)}
}

// MaxDepth is the deepest nesting of JSON objects and arrays accepted in a
// header or payload.
const MaxDepth = 16

// Header holds the members of a JOSE header that select the key and the
// algorithm. The other members (jwk, jku, x5u, x5c, ...) are never used.
type Header struct {
	Alg, Kid, Typ string
	// HasAlg, HasKid and HasTyp say whether the member was present (its value
	// may be the empty string).
	HasAlg, HasKid, HasTyp bool
	// HasCrit says whether the crit member is present. No extension is
	// understood, so a verifier refuses any token that carries it.
	HasCrit bool
}

// Token is a compact JWS split and checked by Parse.
type Token struct {
	Header    Header
	Payload   []byte // decoded JSON object
	Signature []byte // decoded
}

// Options says how strict Parse is beyond the fixed rules.
type Options struct {
	// MaxLen is the longest token accepted, in bytes; required.
	MaxLen int
	// FoldPayloadNames makes payload member names that differ only in case
	// duplicates too, for payloads decoded into Go structs (encoding/json
	// matches struct fields case-insensitively, so "app_id" and "APP_ID"
	// would both set AppID).
	FoldPayloadNames bool
}

// Parse splits token and checks it as the package documentation says. Its
// errors wrap ErrTooLarge or ErrMalformed.
func Parse(token string, opts Options) (*Token, error) {
	if len(token) > opts.MaxLen {
		return nil, fail(ErrTooLarge, "%d bytes, the limit is %d", len(token), opts.MaxLen)
	}
	h, rest, ok1 := strings.Cut(token, ".")
	p, s, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.IndexByte(s, '.') >= 0 {
		return nil, fail(ErrMalformed, "a compact JWS has exactly three segments")
	}
	if h == "" || p == "" {
		return nil, fail(ErrMalformed, "empty header or payload segment")
	}
	// One buffer for the three decoded segments.
	buf := make([]byte, base64.RawURLEncoding.DecodedLen(len(h))+base64.RawURLEncoding.DecodedLen(len(p))+base64.RawURLEncoding.DecodedLen(len(s)))
	hb, n, err := decodeSegment(buf, h, "header")
	if err != nil {
		return nil, err
	}
	pb, m, err := decodeSegment(buf[n:], p, "payload")
	if err != nil {
		return nil, err
	}
	sb, _, err := decodeSegment(buf[n+m:], s, "signature")
	if err != nil {
		return nil, err
	}
	t := &Token{Payload: pb, Signature: sb}
	if err := checkJSON(hb, "header", false, &t.Header); err != nil {
		return nil, err
	}
	if err := checkJSON(pb, "payload", opts.FoldPayloadNames, nil); err != nil {
		return nil, err
	}
	return t, nil
}

// PeekHeader decodes and checks the header segment of token, cheaply
// (a stack buffer, no payload), for an Authenticator's Detect. ok is false
// if the header is not a well-formed JSON object.
func PeekHeader(token string) (h Header, ok bool) {
	seg, _, found := strings.Cut(token, ".")
	if !found || seg == "" || len(seg) > 1024 || !base64URL(seg) {
		return h, false
	}
	var arr [768]byte
	buf := arr[:base64.RawURLEncoding.DecodedLen(len(seg))]
	n, err := base64.RawURLEncoding.Strict().Decode(buf, bytesOf(seg))
	if err != nil {
		return h, false
	}
	return h, checkJSON(buf[:n], "header", false, &h) == nil
}

// LooksLikeJWS reports cheaply, without decoding the whole token, whether
// token has the shape of a compact JWS whose header is a JSON object: two
// dots, and a first segment that starts with '{' once decoded. Padding is
// tolerated here so that a padded token reaches the verifier and is refused
// there with a precise reason.
func LooksLikeJWS(token string) bool {
	seg, _, ok := strings.Cut(token, ".")
	if !ok || len(seg) < 2 || strings.Count(token, ".") != 2 {
		return false
	}
	var in [8]byte
	n := copy(in[:], seg)
	for n > 0 && in[n-1] == '=' {
		n--
	}
	n -= n % 4
	if n == 0 {
		n = min(len(seg), 3) // a header shorter than 4 characters is not JSON anyway
	}
	var out [6]byte
	m, _ := base64.RawURLEncoding.Decode(out[:], in[:n])
	for _, c := range out[:m] {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return true
		}
		return false
	}
	return false
}

// bytesOf returns the bytes of s without copying them (a header segment
// is longer than the 32 bytes a conversion may copy on the stack), for
// functions that only read them.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func base64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// decodeSegment decodes seg into dst, refusing anything but the canonical
// unpadded base64url encoding.
func decodeSegment(dst []byte, seg, what string) ([]byte, int, error) {
	if !base64URL(seg) {
		return nil, 0, fail(ErrMalformed, "the %s segment has a character outside the unpadded base64url alphabet", what)
	}
	n, err := base64.RawURLEncoding.Strict().Decode(dst, []byte(seg))
	if err != nil {
		return nil, 0, fail(ErrMalformed, "the %s segment is not canonical base64url", what)
	}
	return dst[:n:n], n, nil
}

// checkJSON checks that b is a JSON object of valid UTF-8 without duplicate
// member names, and fills h (when not nil) from its top-level members.
func checkJSON(b []byte, what string, fold bool, h *Header) error {
	if !utf8.Valid(b) {
		return fail(ErrMalformed, "the %s is not valid UTF-8", what)
	}
	if !json.Valid(b) {
		return fail(ErrMalformed, "the %s is not valid JSON", what)
	}
	i := skipWS(b, 0)
	if b[i] != '{' {
		return fail(ErrMalformed, "the %s is not a JSON object", what)
	}
	s := scanner{b: b, fold: fold, header: h}
	if _, err := s.object(i, 1); err != nil {
		return fail(ErrMalformed, "the %s %v", what, err)
	}
	return nil
}

// scanner walks JSON already known to be valid (json.Valid), so it only
// has to find where values end and compare member names.
type scanner struct {
	b      []byte
	fold   bool
	header *Header // filled from the top-level object when not nil
}

var (
	errDuplicate = errors.New("has a member name more than once")
	errDepth     = fmt.Errorf("nests deeper than %d levels", MaxDepth)
	errType      = errors.New("has a non-string alg, kid or typ")
)

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// str returns the end (after the closing quote) of the string at b[i] and
// whether it has escapes.
func (s *scanner) str(i int) (end int, escaped bool) {
	for j := i + 1; ; j++ {
		switch s.b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j + 1, escaped
		}
	}
}

// name returns the decoded member name or string value of the string
// b[i:end].
func (s *scanner) name(i, end int, escaped bool) []byte {
	if !escaped {
		return s.b[i+1 : end-1]
	}
	var v string
	json.Unmarshal(s.b[i:end], &v) // valid JSON: cannot fail
	return []byte(v)
}

func (s *scanner) value(i, depth int) (int, error) {
	switch s.b[i] {
	case '{':
		return s.object(i, depth+1)
	case '[':
		return s.array(i, depth+1)
	case '"':
		end, _ := s.str(i)
		return end, nil
	}
	// A number or a literal: runs to the next delimiter.
	for i < len(s.b) {
		switch s.b[i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return i, nil
		}
		i++
	}
	return i, nil
}

func (s *scanner) array(i, depth int) (int, error) {
	if depth > MaxDepth {
		return 0, errDepth
	}
	i = skipWS(s.b, i+1)
	if s.b[i] == ']' {
		return i + 1, nil
	}
	for {
		end, err := s.value(i, depth)
		if err != nil {
			return 0, err
		}
		i = skipWS(s.b, end)
		if s.b[i] == ']' {
			return i + 1, nil
		}
		i = skipWS(s.b, i+1) // ','
	}
}

func (s *scanner) object(i, depth int) (int, error) {
	if depth > MaxDepth {
		return 0, errDepth
	}
	top := depth == 1
	var small [16][]byte
	names := small[:0]
	var many map[string]struct{}
	i = skipWS(s.b, i+1)
	if s.b[i] == '}' {
		return i + 1, nil
	}
	for {
		kend, kesc := s.str(i)
		k := s.name(i, kend, kesc)
		if many != nil {
			key := string(k)
			if s.fold {
				key = foldKey(k)
			}
			if _, dup := many[key]; dup {
				return 0, errDuplicate
			}
			many[key] = struct{}{}
		} else {
			for _, o := range names {
				if bytes.Equal(o, k) || s.fold && bytes.EqualFold(o, k) {
					return 0, errDuplicate
				}
			}
			names = append(names, k)
			if len(names) == len(small) {
				// Past a handful of members, a map keeps the check linear.
				many = make(map[string]struct{}, 2*len(names))
				for _, o := range names {
					key := string(o)
					if s.fold {
						key = foldKey(o)
					}
					if _, dup := many[key]; dup {
						return 0, errDuplicate
					}
					many[key] = struct{}{}
				}
			}
		}
		i = skipWS(s.b, kend)
		i = skipWS(s.b, i+1) // ':'
		vstart := i
		end, err := s.value(i, depth)
		if err != nil {
			return 0, err
		}
		if top && s.header != nil {
			if err := s.headerMember(k, vstart, end); err != nil {
				return 0, err
			}
		}
		i = skipWS(s.b, end)
		if s.b[i] == '}' {
			return i + 1, nil
		}
		i = skipWS(s.b, i+1) // ','
	}
}

func (s *scanner) headerMember(k []byte, vstart, vend int) error {
	var dst *string
	h := s.header
	switch string(k) {
	case "alg":
		dst, h.HasAlg = &h.Alg, true
	case "kid":
		dst, h.HasKid = &h.Kid, true
	case "typ":
		dst, h.HasTyp = &h.Typ, true
	case "crit":
		h.HasCrit = true
		return nil
	default:
		return nil
	}
	if s.b[vstart] != '"' {
		return errType
	}
	end, esc := s.str(vstart)
	*dst = string(s.name(vstart, end, esc))
	return nil
}

// foldKey maps a name to a key equal for all names bytes.EqualFold deems
// equal: the smallest rune of each rune's simple case-folding orbit.
func foldKey(b []byte) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, string(b))
}
