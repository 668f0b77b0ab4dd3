package reqtoken

import (
	"bytes"
	"unicode/utf8"
)

// A small strict reader for the two flat JSON objects of a token (header
// and claims). encoding/json would cost more than the whole budget of a
// request beyond the signature check, and it accepts what we refuse:
// duplicate members (the last wins, so two parsers of one token can read
// different claims), invalid UTF-8 (silently replaced) and lone surrogates.
// This reader follows RFC 8259 exactly, refuses those, and treats member
// names that are equal ignoring case as duplicates (encoding/json matches
// struct fields that way; bytes.EqualFold is its rule).

// maxMembers bounds the members of an object; maxDepth the nesting of the
// values skipped (unknown claims, a jwk header).
const (
	maxMembers = 64
	maxDepth   = 16
)

// plain marks the bytes that stand for themselves inside a string:
// printable ASCII but the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

type lexer struct {
	d   []byte
	i   int
	buf []byte // decoded strings that had escapes
}

func (l *lexer) ws() {
	for l.i < len(l.d) {
		switch l.d[l.i] {
		case ' ', '\t', '\n', '\r':
			l.i++
		default:
			return
		}
	}
}

func (l *lexer) peek() byte {
	if l.i < len(l.d) {
		return l.d[l.i]
	}
	return 0
}

// str reads the string at l.i and returns its decoded value: a subslice of
// the input when it has no escape, else a slice of l.buf.
func (l *lexer) str() ([]byte, bool) {
	d := l.d
	if l.i >= len(d) || d[l.i] != '"' {
		return nil, false
	}
	start := l.i + 1
	for i := start; i < len(d); {
		for i < len(d) && plain[d[i]] {
			i++
		}
		if i == len(d) {
			break
		}
		c := d[i]
		switch {
		case c == '"':
			l.i = i + 1
			return d[start:i], true
		case c == '\\':
			return l.strEscaped(start, i)
		case c < 0x20:
			return nil, false
		case c < utf8.RuneSelf:
			i++
		default:
			r, n := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && n == 1 {
				return nil, false
			}
			i += n
		}
	}
	return nil, false
}

func (l *lexer) strEscaped(start, i int) ([]byte, bool) {
	d := l.d
	from := len(l.buf)
	l.buf = append(l.buf, d[start:i]...)
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			l.i = i + 1
			return l.buf[from:len(l.buf):len(l.buf)], true
		case c < 0x20:
			return nil, false
		case c == '\\':
			if i+1 >= len(d) {
				return nil, false
			}
			e := d[i+1]
			i += 2
			switch e {
			case '"', '\\', '/':
				l.buf = append(l.buf, e)
			case 'b':
				l.buf = append(l.buf, '\b')
			case 'f':
				l.buf = append(l.buf, '\f')
			case 'n':
				l.buf = append(l.buf, '\n')
			case 'r':
				l.buf = append(l.buf, '\r')
			case 't':
				l.buf = append(l.buf, '\t')
			case 'u':
				r, ok := hex4(d, i)
				if !ok {
					return nil, false
				}
				i += 4
				if 0xdc00 <= r && r < 0xe000 {
					return nil, false // lone low surrogate
				}
				if 0xd800 <= r && r < 0xdc00 {
					if i+6 > len(d) || d[i] != '\\' || d[i+1] != 'u' {
						return nil, false // lone high surrogate
					}
					r2, ok := hex4(d, i+2)
					if !ok || r2 < 0xdc00 || r2 >= 0xe000 {
						return nil, false
					}
					i += 6
					r = 0x10000 + (r-0xd800)<<10 + (r2 - 0xdc00)
				}
				l.buf = utf8.AppendRune(l.buf, r)
			default:
				return nil, false
			}
		case c < utf8.RuneSelf:
			l.buf = append(l.buf, c)
			i++
		default:
			r, n := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && n == 1 {
				return nil, false
			}
			l.buf = append(l.buf, d[i:i+n]...)
			i += n
		}
	}
	return nil, false
}

func hex4(d []byte, i int) (rune, bool) {
	if i+4 > len(d) {
		return 0, false
	}
	var r rune
	for _, c := range d[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// num reads a number; uint reports whether it is a plain non-negative
// integer (no sign, fraction or exponent) and val its value when it has at
// most 15 digits.
func (l *lexer) num() (val int64, uint, ok bool) {
	d, i := l.d, l.i
	uint = true
	if i < len(d) && d[i] == '-' {
		uint = false
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	default:
		return 0, false, false
	}
	if uint {
		if i-l.i > 15 {
			uint = false
		} else {
			for _, c := range d[l.i:i] {
				val = val*10 + int64(c-'0')
			}
		}
	}
	if i < len(d) && d[i] == '.' {
		uint = false
		i++
		if !digits(d, &i) {
			return 0, false, false
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		uint = false
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if !digits(d, &i) {
			return 0, false, false
		}
	}
	l.i = i
	return val, uint, true
}

func digits(d []byte, i *int) bool {
	j := *i
	for j < len(d) && '0' <= d[j] && d[j] <= '9' {
		j++
	}
	ok := j > *i
	*i = j
	return ok
}

func (l *lexer) lit(s string) bool {
	if len(l.d)-l.i >= len(s) && string(l.d[l.i:l.i+len(s)]) == s {
		l.i += len(s)
		return true
	}
	return false
}

// skip reads any value.
func (l *lexer) skip(depth int) bool {
	switch c := l.peek(); {
	case c == '"':
		_, ok := l.str()
		return ok
	case c == '-' || '0' <= c && c <= '9':
		_, _, ok := l.num()
		return ok
	case c == 't':
		return l.lit("true")
	case c == 'f':
		return l.lit("false")
	case c == 'n':
		return l.lit("null")
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return false
		}
		l.i++
		l.ws()
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		if l.peek() == end {
			l.i++
			return true
		}
		for {
			if c == '{' {
				if _, ok := l.str(); !ok {
					return false
				}
				l.ws()
				if l.peek() != ':' {
					return false
				}
				l.i++
				l.ws()
			}
			if !l.skip(depth + 1) {
				return false
			}
			l.ws()
			switch l.peek() {
			case ',':
				l.i++
				l.ws()
			case end:
				l.i++
				return true
			default:
				return false
			}
		}
	}
	return false
}

// object walks the members of the object that is the whole input: for
// each it reads the name, refuses a duplicate, and calls member, which
// must read the value. It returns false on any syntax error or duplicate.
func (l *lexer) object(member func(l *lexer, name []byte) bool) bool {
	var seen [maxMembers][]byte
	n := 0
	l.ws()
	if l.peek() != '{' {
		return false
	}
	l.i++
	l.ws()
	if l.peek() == '}' {
		l.i++
	} else {
		for {
			name, ok := l.str()
			if !ok || n == maxMembers {
				return false
			}
			for _, s := range seen[:n] {
				if bytes.EqualFold(s, name) {
					return false
				}
			}
			seen[n] = name
			n++
			l.ws()
			if l.peek() != ':' {
				return false
			}
			l.i++
			l.ws()
			if !member(l, name) {
				return false
			}
			l.ws()
			if l.peek() == ',' {
				l.i++
				l.ws()
				continue
			}
			if l.peek() != '}' {
				return false
			}
			l.i++
			break
		}
	}
	l.ws()
	return l.i == len(l.d)
}
