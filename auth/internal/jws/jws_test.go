package jws_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/callsignhq/callsign/auth/internal/jws"
)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func tok(header, payload string) string { return b64(header) + "." + b64(payload) + "." + b64("sig") }

func TestParse(t *testing.T) {
	good := tok(`{"alg":"HS256","kid":"k1","typ":"JWT"}`, `{"sub":"alice","exp":1}`)
	tests := []struct {
		name    string
		token   string
		fold    bool
		want    error // nil: accepted
		wantHdr jws.Header
	}{
		{name: "good", token: good, wantHdr: jws.Header{Alg: "HS256", Kid: "k1", Typ: "JWT", HasAlg: true, HasKid: true, HasTyp: true}},
		{name: "whitespace and CRLF (RFC 7515 A.1 style)", token: tok("{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}", "{\"iss\":\"joe\",\r\n \"exp\":1}"),
			wantHdr: jws.Header{Alg: "HS256", Typ: "JWT", HasAlg: true, HasTyp: true}},
		{name: "escaped member names are decoded", token: tok(`{"\u0061lg":"HS256","k\u0069d":"a\/b"}`, `{}`),
			wantHdr: jws.Header{Alg: "HS256", Kid: "a/b", HasAlg: true, HasKid: true}},
		{name: "crit noticed", token: tok(`{"alg":"HS256","crit":["exp"],"exp":1}`, `{}`), wantHdr: jws.Header{Alg: "HS256", HasAlg: true, HasCrit: true}},
		{name: "empty signature is structurally fine", token: b64(`{"alg":"none"}`) + "." + b64(`{}`) + ".", wantHdr: jws.Header{Alg: "none", HasAlg: true}},
		{name: "nested members may repeat across objects", token: tok(`{"alg":"HS256","a":{"x":1},"b":{"x":1}}`, `{"a":[{"x":1},{"x":2}]}`),
			wantHdr: jws.Header{Alg: "HS256", HasAlg: true}},

		{name: "over the limit", token: good + strings.Repeat("A", 4096), want: jws.ErrTooLarge},
		{name: "two segments", token: b64(`{}`) + "." + b64(`{}`), want: jws.ErrMalformed},
		{name: "four segments", token: good + ".x", want: jws.ErrMalformed},
		{name: "empty header", token: "." + b64(`{}`) + ".x", want: jws.ErrMalformed},
		{name: "padding", token: b64(`{"alg":"HS256"}`) + "=." + b64(`{}`) + ".x", want: jws.ErrMalformed},
		{name: "standard alphabet", token: "eyJh+GciOiJIUzI1NiJ9." + b64(`{}`) + ".x", want: jws.ErrMalformed},
		{name: "line break", token: b64(`{"alg":"HS256"}`) + "\n." + b64(`{}`) + ".x", want: jws.ErrMalformed},
		{name: "non-zero trailing bits", token: nonCanonical(t, `{"alg":"HS256" }`) + "." + b64(`{}`) + ".x", want: jws.ErrMalformed},
		{name: "non-zero trailing bits in the signature", token: b64(`{"alg":"HS256"}`) + "." + b64(`{}`) + "." + nonCanonical(t, "si"), want: jws.ErrMalformed},
		{name: "header not JSON", token: tok(`alg=HS256`, `{}`), want: jws.ErrMalformed},
		{name: "header an array", token: tok(`["alg"]`, `{}`), want: jws.ErrMalformed},
		{name: "payload not an object", token: tok(`{"alg":"HS256"}`, `"Example"`), want: jws.ErrMalformed},
		{name: "trailing data", token: tok(`{"alg":"HS256"} {}`, `{}`), want: jws.ErrMalformed},
		{name: "invalid UTF-8", token: tok("{\"alg\":\"HS256\",\"x\":\"\xff\"}", `{}`), want: jws.ErrMalformed},
		{name: "duplicate alg", token: tok(`{"alg":"HS256","alg":"none"}`, `{}`), want: jws.ErrMalformed},
		{name: "duplicate alg, escaped", token: tok(`{"alg":"HS256","\u0061lg":"none"}`, `{}`), want: jws.ErrMalformed},
		{name: "duplicate nested", token: tok(`{"alg":"HS256","jwk":{"kty":"oct","kty":"RSA"}}`, `{}`), want: jws.ErrMalformed},
		{name: "duplicate claim", token: tok(`{"alg":"HS256"}`, `{"sub":"alice","sub":"mallory"}`), want: jws.ErrMalformed},
		{name: "duplicate claim after many", token: tok(`{"alg":"HS256"}`, manyMembers(40)+`,"m7":1}`), want: jws.ErrMalformed},
		{name: "claims differing in case are distinct", token: tok(`{"alg":"HS256"}`, `{"sub":"a","SUB":"b"}`), wantHdr: jws.Header{Alg: "HS256", HasAlg: true}},
		{name: "claims differing in case, folded", token: tok(`{"alg":"HS256"}`, `{"app_id":"a","APP_ID":"b"}`), fold: true, want: jws.ErrMalformed},
		{name: "claims differing in case, folded, many", token: tok(`{"alg":"HS256"}`, manyMembers(40)+`,"M7":1}`), fold: true, want: jws.ErrMalformed},
		{name: "alg not a string", token: tok(`{"alg":1}`, `{}`), want: jws.ErrMalformed},
		{name: "kid not a string", token: tok(`{"alg":"HS256","kid":["a"]}`, `{}`), want: jws.ErrMalformed},
		{name: "too deep", token: tok(`{"alg":"HS256","x":`+strings.Repeat("[", 20)+strings.Repeat("]", 20)+`}`, `{}`), want: jws.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := jws.Parse(tt.token, jws.Options{MaxLen: 4096, FoldPayloadNames: tt.fold})
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("Parse = %+v, %v; want %v", got, err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got.Header != tt.wantHdr {
				t.Fatalf("header = %+v, want %+v", got.Header, tt.wantHdr)
			}
		})
	}
}

// manyMembers returns an unterminated object of n members m0..m(n-1), past
// the point where the duplicate check switches to a map.
func manyMembers(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"m` + strconv.Itoa(i) + `":1`)
	}
	return b.String()
}

// nonCanonical encodes data (whose length is not a multiple of 3) with a
// non-zero unused low bit in the last character: a lenient decoder reads
// the same bytes, a strict one refuses it.
func nonCanonical(t *testing.T, data string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	s := b64(data)
	last := strings.IndexByte(alphabet, s[len(s)-1])
	s = s[:len(s)-1] + string(alphabet[last|1])
	if got, err := base64.RawURLEncoding.DecodeString(s); err != nil || string(got) != data || s == b64(data) {
		t.Fatalf("nonCanonical(%q) = %q: not a second spelling (%q, %v)", data, s, got, err)
	}
	return s
}

func TestLooksLikeJWS(t *testing.T) {
	tests := []struct {
		name  string
		token string
		want  bool
	}{
		{"jwt", tok(`{"alg":"HS256"}`, `{}`), true},
		{"header with leading space", tok(` {"alg":"HS256"}`, `{}`), true},
		{"padded", b64(`{"alg":"HS256"}`) + "=." + b64(`{}`) + ".x", true},
		{"huge", tok(`{"alg":"HS256"}`, `{}`) + strings.Repeat("A", 100<<10), true},
		{"opaque token", "cs_sec_0123456789abcdefghijklmnopqrstuv", false},
		{"one dot", b64(`{"alg":"HS256"}`) + ".x", false},
		{"header not an object", tok(`"x"`, `{}`), false},
		{"empty", "", false},
		{"dots only", "..", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := jws.LooksLikeJWS(tt.token); got != tt.want {
				t.Fatalf("LooksLikeJWS = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPeekHeader(t *testing.T) {
	h, ok := jws.PeekHeader(tok(`{"alg":"EdDSA","typ":"callsign-at+jwt","kid":"k1"}`, `{}`))
	if !ok || h.Typ != "callsign-at+jwt" || h.Kid != "k1" {
		t.Fatalf("PeekHeader = %+v, %v", h, ok)
	}
	for _, bad := range []string{"", "x", b64(`{"typ":"a","typ":"b"}`) + ".x.y", b64(`{"typ":`) + ".x.y", strings.Repeat("A", 2000) + ".x.y"} {
		if h, ok := jws.PeekHeader(bad); ok {
			t.Errorf("PeekHeader(%.40q) = %+v, true", bad, h)
		}
	}
}

// reference is a slow, obviously correct version of the JSON checks Parse
// does: valid UTF-8, one JSON object, no member name twice in an object
// (folded when fold), nesting at most jws.MaxDepth.
func reference(data []byte, fold bool) bool {
	if !utf8.Valid(data) || !json.Valid(data) {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // a number past float64's range is still valid JSON
	type frame struct {
		obj     bool
		names   []string
		wantKey bool
	}
	var stack []*frame
	first := true
	for {
		tk, err := dec.Token()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
		if first {
			if d, ok := tk.(json.Delim); !ok || d != '{' {
				return false
			}
			first = false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tk.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if top != nil && top.obj {
					top.wantKey = true
				}
				if len(stack) >= jws.MaxDepth {
					return false
				}
				stack = append(stack, &frame{obj: v == '{', wantKey: v == '{'})
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if top != nil && top.obj && top.wantKey {
				for _, o := range top.names {
					if o == v || fold && strings.EqualFold(o, v) {
						return false
					}
				}
				top.names = append(top.names, v)
				top.wantKey = false
				continue
			}
			if top != nil && top.obj {
				top.wantKey = true
			}
		default:
			if top != nil && top.obj {
				top.wantKey = true
			}
		}
	}
}

// FuzzParse checks Parse against the reference on arbitrary payloads, and
// that the header it extracts is what encoding/json reads.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"a":1,"a":2}`, `{"a":{"b":[1,{"c":2,"c":3}]}}`, `{"A":1,"a":1}`, `[1]`, `{"a":"\u00e9","\u00e9":1}`,
		`{"K":1,"` + "\u212a" + `":2}`, "{\"a\":\"\xff\"}", `{"alg":"HS256","kid":"x","typ":"JWT","crit":["b64"]}`,
		`{"":2` + strings.Repeat("0", 320) + `}`, `{"a":-1e400,"b":[1e-400]}`} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, fold bool) {
		// The Detect helpers take anything without panicking.
		jws.LooksLikeJWS(string(data))
		jws.PeekHeader(string(data))
		token := base64.RawURLEncoding.EncodeToString(data) + "." + base64.RawURLEncoding.EncodeToString(data) + ".c2ln"
		got, err := jws.Parse(token, jws.Options{MaxLen: 1 << 20, FoldPayloadNames: fold})
		if err != nil && !errors.Is(err, jws.ErrMalformed) {
			t.Fatalf("unexpected error %v", err)
		}
		// The header is never folded; the payload is when fold.
		want := reference(data, false) && reference(data, fold)
		if want && err == nil {
			var m map[string]any
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.UseNumber()
			if dec.Decode(&m) != nil {
				t.Fatal("accepted something encoding/json cannot read")
			}
			for name, field := range map[string]string{"alg": got.Header.Alg, "kid": got.Header.Kid, "typ": got.Header.Typ} {
				if v, ok := m[name]; ok && v != field {
					t.Fatalf("header %s = %q, encoding/json reads %v", name, field, v)
				}
			}
			if _, ok := m["crit"]; ok != got.Header.HasCrit {
				t.Fatalf("HasCrit = %v", got.Header.HasCrit)
			}
			return
		}
		// A non-string alg, kid or typ is refused by Parse only.
		if !want && err == nil {
			t.Fatalf("accepted %q, which the reference refuses", data)
		}
		if want && err != nil && !strings.Contains(err.Error(), "non-string") {
			t.Fatalf("refused %q (%v), which the reference accepts", data, err)
		}
	})
}
