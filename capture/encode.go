package capture

import (
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/callsignhq/callsign"
)

// appendEventJSON appends the wire form of e, byte for byte what
// json.Marshal(e.JSON()) encodes (same fields, names, omissions, escapes
// and metadata key order; TestEventJSONMatchesEncodingJSON and
// FuzzEventJSON hold it to that), without reflection or allocation. A
// Weight that is NaN or infinite is left out (json.Marshal would fail the
// whole batch). It runs once per event on the Shipper's goroutine, which
// shares the API's CPUs: keep it cheap.
func appendEventJSON(b []byte, e *callsign.Event) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, e.ID)
	if e.AppID != "" {
		b = append(b, `,"app_id":`...)
		b = appendString(b, e.AppID)
	}
	b = append(b, `,"time":"`...)
	b = appendTime(b, e.Time)
	b = append(b, `","method":`...)
	b = appendString(b, e.Method)
	b = append(b, `,"route":`...)
	b = appendString(b, e.Route)
	if e.URI != "" {
		b = append(b, `,"uri":`...)
		b = appendString(b, e.URI)
	}
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"latency_ms":`...)
	b = appendMillis(b, e.Latency.Microseconds())
	b = append(b, `,"request_bytes":`...)
	b = strconv.AppendInt(b, e.RequestBytes, 10)
	b = append(b, `,"response_bytes":`...)
	b = strconv.AppendInt(b, e.ResponseBytes, 10)
	b = append(b, `,"user_id":`...)
	b = appendString(b, e.UserID)
	b = appendOpt(b, `,"api_user_id":`, e.APIUserID)
	b = append(b, `,"client_user_id":`...)
	b = appendString(b, e.ClientUserID)
	b = appendOpt(b, `,"company_id":`, e.CompanyID)
	b = append(b, `,"scheme":`...)
	b = appendString(b, string(e.Scheme))
	b = appendOpt(b, `,"key_id":`, e.KeyID)
	b = appendOpt(b, `,"auth_error":`, e.AuthError)
	b = appendOpt(b, `,"request_id":`, e.RequestID)
	b = appendOpt(b, `,"remote_ip":`, e.RemoteIP)
	b = appendOpt(b, `,"user_agent":`, e.UserAgent)
	if e.Weight != 0 && !math.IsNaN(e.Weight) && !math.IsInf(e.Weight, 0) {
		b = append(b, `,"weight":`...)
		b = appendFloat(b, e.Weight)
	}
	if len(e.Metadata) > 0 {
		// In key order, as encoding/json writes maps.
		var arr [callsign.MaxMetadataEntries]string
		keys := arr[:0]
		for k := range e.Metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, `,"metadata":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, e.Metadata[k])
		}
		b = append(b, '}')
	}
	b = appendOpt(b, `,"request_body":`, e.RequestBody)
	b = appendOpt(b, `,"response_body":`, e.ResponseBody)
	return append(b, '}')
}

func appendOpt(b []byte, name, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, name...), s)
}

// appendTime appends t in UTC as time.RFC3339Nano formats it (what
// time.Time's MarshalJSON writes), without AppendFormat's layout parsing.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, time.RFC3339Nano)
	}
	hour, minute, sec := t.Clock()
	b = append(b, byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+month/10), byte('0'+month%10), '-', byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':', byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+sec/10), byte('0'+sec%10))
	if ns := t.Nanosecond(); ns != 0 {
		b = append(b, '.')
		digits := 9
		for ns%10 == 0 {
			ns /= 10
			digits--
		}
		n := len(b)
		b = append(b, "000000000"[:digits]...)
		for i := len(b) - 1; i >= n; i-- {
			b[i] = byte('0' + ns%10)
			ns /= 10
		}
	}
	return append(b, 'Z')
}

// appendMillis appends us microseconds as milliseconds, as encoding/json
// writes float64(us)/1000. Below 10^15 in magnitude, us/1000 has at most 15
// significant digits, so the shortest decimal that round-trips (what
// encoding/json writes) is us/1000 itself, digit for digit.
func appendMillis(b []byte, us int64) []byte {
	if us <= -1e15 || us >= 1e15 {
		return appendFloat(b, float64(us)/1000)
	}
	if us < 0 {
		b = append(b, '-')
		us = -us
	}
	b = strconv.AppendInt(b, us/1000, 10)
	if f := us % 1000; f != 0 {
		b = append(b, '.', byte('0'+f/100))
		if f%100 != 0 {
			b = append(b, byte('0'+f/10%10))
			if f%10 != 0 {
				b = append(b, byte('0'+f%10))
			}
		}
	}
	return b
}

// appendFloat formats f as encoding/json does.
func appendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 to e-9, as encoding/json does
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// jsonSafe tells the ASCII bytes a JSON string holds as they are (those
// encoding/json does not escape). It is never modified.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString appends s as a JSON string, as encoding/json does: invalid
// UTF-8 becomes U+FFFD; control characters, <, >, &, U+2028 and U+2029 are
// escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
