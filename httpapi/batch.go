package httpapi

import (
	"math/bits"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/callsignhq/callsign"
)

// wireEvent is an event of an ingest batch as decoded: the wire form and
// what the decoder could not put in it but the validator must know.
type wireEvent struct {
	callsign.EventJSON
	// badTime is set when "time" was a string that is not RFC 3339; the
	// event is rejected alone (invalid_time), not the batch.
	badTime bool
}

// decodeBatch decodes an ingest body, {"events": [...]}, strictly and in
// one pass: member names match exactly (no case folding, unlike
// encoding/json), a name given twice, an unknown name, a value of the wrong
// type, anything but one JSON object and invalid UTF-8 refuse the whole
// batch. null stands for an absent member, as in encoding/json. Errors are
// *callsign.Error with the codes of package internal/strictjson
// (invalid_json, unknown_field, duplicate_field, trailing_data, invalid
// request for a wrong type, missing_field). It exists because the generic
// strict decoder walks the body twice through encoding/json's token API,
// which is the largest cost of an ingest request.
func decodeBatch(data []byte) ([]wireEvent, error) {
	if !utf8.Valid(data) {
		return nil, callsign.Errorf(callsign.EInvalidJSON, "The request body is not valid UTF-8.")
	}
	d := &batchDecoder{data: data}
	d.ws()
	if d.i == len(data) {
		return nil, callsign.Errorf(callsign.EInvalidJSON, "The request body is empty; a JSON object is required.")
	}
	if data[d.i] != '{' {
		return nil, callsign.Errorf(callsign.EInvalidJSON, "The request body must be a JSON object.")
	}
	d.i++
	var events []wireEvent
	seen := false
	err := d.object(func(key []byte) error {
		if string(key) != "events" {
			return callsign.Errorf(callsign.EUnknownField, "The request body has the unknown field %q (field names are case-sensitive).", key)
		}
		if seen {
			return callsign.Errorf(callsign.EDuplicateField, "The request body has the field \"events\" more than once.")
		}
		seen = true
		if d.null() {
			return nil
		}
		var err error
		events, err = d.events()
		return err
	})
	if err != nil {
		return nil, err
	}
	d.ws()
	if d.i != len(data) {
		return nil, callsign.Errorf(callsign.ETrailingData, "The request body has data after its JSON value.")
	}
	if events == nil {
		return nil, callsign.Errorf(callsign.EMissingField, "The field \"events\" (an array of events) is required.")
	}
	return events, nil
}

type batchDecoder struct {
	data    []byte
	i       int
	scratch []byte // unescaped member names
	idx     int    // index of the event being decoded, for messages
}

func (d *batchDecoder) ws() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *batchDecoder) syntax() error {
	if d.i >= len(d.data) {
		return callsign.Errorf(callsign.EInvalidJSON, "The request body ends in the middle of its JSON value.")
	}
	return callsign.Errorf(callsign.EInvalidJSON, "The request body is not valid JSON (at byte %d).", d.i)
}

// object reads the members of an object whose '{' was consumed, calling
// member with each name (valid until the next call) with the decoder on
// the value, which member must consume.
func (d *batchDecoder) object(member func(key []byte) error) error {
	d.ws()
	if d.i < len(d.data) && d.data[d.i] == '}' {
		d.i++
		return nil
	}
	for {
		d.ws()
		if d.i >= len(d.data) || d.data[d.i] != '"' {
			return d.syntax()
		}
		key, err := d.rawString(true)
		if err != nil {
			return err
		}
		d.ws()
		if d.i >= len(d.data) || d.data[d.i] != ':' {
			return d.syntax()
		}
		d.i++
		d.ws()
		if err := member(key); err != nil {
			return err
		}
		d.ws()
		if d.i >= len(d.data) {
			return d.syntax()
		}
		switch d.data[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		default:
			return d.syntax()
		}
	}
}

// null consumes a null literal if one is next.
func (d *batchDecoder) null() bool {
	if len(d.data)-d.i >= 4 && string(d.data[d.i:d.i+4]) == "null" {
		d.i += 4
		return true
	}
	return false
}

// typeError is the error of a well-formed value of the wrong type: the
// value is skipped first so that a syntax error later in the body still
// wins (the batch is refused either way; the code should say the most
// basic fault).
func (d *batchDecoder) typeError(field, want string) error {
	if err := d.skip(0); err != nil {
		return err
	}
	if field == "events" {
		return callsign.Errorf(callsign.EInvalid, "The field \"events\" must be an array of objects.")
	}
	return callsign.Errorf(callsign.EInvalid, "events[%d]: the field %q must be %s.", d.idx, field, want)
}

func (d *batchDecoder) events() ([]wireEvent, error) {
	if d.i >= len(d.data) {
		return nil, d.syntax()
	}
	if d.data[d.i] != '[' {
		return nil, d.typeError("events", "")
	}
	d.i++
	// A rough count of the events, to size the slice once: every event
	// has an "id".
	events := make([]wireEvent, 0, min(callsign.MaxEventsPerBatch, 1+len(d.data)/256))
	d.ws()
	if d.i < len(d.data) && d.data[d.i] == ']' {
		d.i++
		return events, nil
	}
	for {
		d.ws()
		if d.i >= len(d.data) {
			return nil, d.syntax()
		}
		d.idx = len(events)
		if d.data[d.i] != '{' {
			if err := d.skip(0); err != nil {
				return nil, err
			}
			return nil, callsign.Errorf(callsign.EInvalid, "events[%d] must be an object.", d.idx)
		}
		d.i++
		events = append(events, wireEvent{})
		if err := d.event(&events[len(events)-1]); err != nil {
			return nil, err
		}
		d.ws()
		if d.i >= len(d.data) {
			return nil, d.syntax()
		}
		switch d.data[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			return events, nil
		default:
			return nil, d.syntax()
		}
	}
}

// Bits of the members of an event, to refuse duplicates.
const (
	fID = 1 << iota
	fAppID
	fTime
	fMethod
	fRoute
	fURI
	fStatus
	fLatency
	fRequestBytes
	fResponseBytes
	fUserID
	fAPIUserID
	fClientUserID
	fCompanyID
	fScheme
	fKeyID
	fAuthError
	fRequestID
	fRemoteIP
	fUserAgent
	fWeight
	fMetadata
	fRequestBody
	fResponseBody
)

// eventFieldNames are the member names by bit number, for messages.
var eventFieldNames = [...]string{"id", "app_id", "time", "method", "route", "uri", "status", "latency_ms", "request_bytes",
	"response_bytes", "user_id", "api_user_id", "client_user_id", "company_id", "scheme", "key_id", "auth_error", "request_id",
	"remote_ip", "user_agent", "weight", "metadata", "request_body", "response_body"}

func (d *batchDecoder) event(e *wireEvent) error {
	var seen uint32
	return d.object(func(key []byte) error {
		var bit uint32
		var str *string
		switch string(key) {
		case "id":
			bit, str = fID, &e.ID
		case "app_id":
			bit, str = fAppID, &e.AppID
		case "method":
			bit, str = fMethod, &e.Method
		case "route":
			bit, str = fRoute, &e.Route
		case "uri":
			bit, str = fURI, &e.URI
		case "user_id":
			bit, str = fUserID, &e.UserID
		case "api_user_id":
			bit, str = fAPIUserID, &e.APIUserID
		case "client_user_id":
			bit, str = fClientUserID, &e.ClientUserID
		case "company_id":
			bit, str = fCompanyID, &e.CompanyID
		case "scheme":
			bit, str = fScheme, &e.Scheme
		case "key_id":
			bit, str = fKeyID, &e.KeyID
		case "auth_error":
			bit, str = fAuthError, &e.AuthError
		case "request_id":
			bit, str = fRequestID, &e.RequestID
		case "remote_ip":
			bit, str = fRemoteIP, &e.RemoteIP
		case "user_agent":
			bit, str = fUserAgent, &e.UserAgent
		case "request_body":
			bit, str = fRequestBody, &e.RequestBody
		case "response_body":
			bit, str = fResponseBody, &e.ResponseBody
		case "time":
			bit = fTime
		case "status":
			bit = fStatus
		case "latency_ms":
			bit = fLatency
		case "request_bytes":
			bit = fRequestBytes
		case "response_bytes":
			bit = fResponseBytes
		case "weight":
			bit = fWeight
		case "metadata":
			bit = fMetadata
		default:
			return callsign.Errorf(callsign.EUnknownField, "events[%d] has the unknown field %q (field names are case-sensitive).", d.idx, key)
		}
		if seen&bit != 0 {
			return callsign.Errorf(callsign.EDuplicateField, "events[%d] has the field %q more than once.", d.idx, key)
		}
		seen |= bit
		if d.null() {
			return nil
		}
		name := eventFieldNames[bits.TrailingZeros32(bit)]
		if str != nil {
			return d.stringValue(name, str)
		}
		switch bit {
		case fTime:
			var s string
			if err := d.stringValue(name, &s); err != nil {
				return err
			}
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				e.badTime = true
			}
			e.Time = t
			return nil
		case fStatus:
			n, err := d.intValue(name, "an integer")
			e.Status = int(max(min(n, 1<<31-1), -1<<31))
			return err
		case fRequestBytes:
			n, err := d.intValue(name, "an integer")
			e.RequestBytes = n
			return err
		case fResponseBytes:
			n, err := d.intValue(name, "an integer")
			e.ResponseBytes = n
			return err
		case fLatency:
			f, err := d.floatValue(name)
			e.LatencyMS = f
			return err
		case fWeight:
			f, err := d.floatValue(name)
			e.Weight = f
			return err
		case fMetadata:
			return d.metadata(e)
		}
		return nil
	})
}

func (d *batchDecoder) stringValue(field string, dst *string) error {
	if d.i >= len(d.data) {
		return d.syntax()
	}
	if d.data[d.i] != '"' {
		return d.typeError(field, "a string")
	}
	b, err := d.rawString(false)
	if err != nil {
		return err
	}
	*dst = string(b)
	return nil
}

func (d *batchDecoder) metadata(e *wireEvent) error {
	if d.i >= len(d.data) {
		return d.syntax()
	}
	if d.data[d.i] != '{' {
		return d.typeError("metadata", "an object of strings")
	}
	d.i++
	m := map[string]string{}
	err := d.object(func(key []byte) error {
		k := string(key)
		if _, dup := m[k]; dup {
			return callsign.Errorf(callsign.EDuplicateField, "events[%d]: metadata has the key %q more than once.", d.idx, k)
		}
		if d.i >= len(d.data) {
			return d.syntax()
		}
		if d.data[d.i] != '"' {
			return d.typeError("metadata", "an object of strings")
		}
		v, err := d.rawString(false)
		if err != nil {
			return err
		}
		m[k] = string(v)
		// The limit is checked by the validator; this only bounds memory
		// against a body of one huge map (the body limit bounds it too).
		return nil
	})
	e.Metadata = m
	return err
}

// number consumes a JSON number and returns its text.
func (d *batchDecoder) number() ([]byte, bool) {
	start := d.i
	if d.i < len(d.data) && d.data[d.i] == '-' {
		d.i++
	}
	if d.i >= len(d.data) {
		return nil, false
	}
	switch c := d.data[d.i]; {
	case c == '0':
		d.i++
	case '1' <= c && c <= '9':
		for d.i < len(d.data) && '0' <= d.data[d.i] && d.data[d.i] <= '9' {
			d.i++
		}
	default:
		return nil, false
	}
	if d.i < len(d.data) && d.data[d.i] == '.' {
		d.i++
		n := d.i
		for d.i < len(d.data) && '0' <= d.data[d.i] && d.data[d.i] <= '9' {
			d.i++
		}
		if d.i == n {
			return nil, false
		}
	}
	if d.i < len(d.data) && (d.data[d.i] == 'e' || d.data[d.i] == 'E') {
		d.i++
		if d.i < len(d.data) && (d.data[d.i] == '+' || d.data[d.i] == '-') {
			d.i++
		}
		n := d.i
		for d.i < len(d.data) && '0' <= d.data[d.i] && d.data[d.i] <= '9' {
			d.i++
		}
		if d.i == n {
			return nil, false
		}
	}
	return d.data[start:d.i], true
}

func isNumberStart(c byte) bool { return c == '-' || '0' <= c && c <= '9' }

func (d *batchDecoder) intValue(field, want string) (int64, error) {
	if d.i >= len(d.data) {
		return 0, d.syntax()
	}
	if !isNumberStart(d.data[d.i]) {
		return 0, d.typeError(field, want)
	}
	b, ok := d.number()
	if !ok {
		return 0, d.syntax()
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil { // a fraction, an exponent or out of range
		return 0, callsign.Errorf(callsign.EInvalid, "events[%d]: the field %q must be %s, not %s.", d.idx, field, want, truncate(string(b), 40))
	}
	return n, nil
}

func (d *batchDecoder) floatValue(field string) (float64, error) {
	if d.i >= len(d.data) {
		return 0, d.syntax()
	}
	if !isNumberStart(d.data[d.i]) {
		return 0, d.typeError(field, "a number")
	}
	b, ok := d.number()
	if !ok {
		return 0, d.syntax()
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil { // out of range (±Inf)
		return 0, callsign.Errorf(callsign.EInvalid, "events[%d]: the field %q is out of range.", d.idx, field)
	}
	return f, nil
}

// rawString consumes a string whose opening quote is next and returns its
// unescaped bytes: a slice of the body when there is no escape (the common
// case), else of a buffer that the next call with scratch (names) or the
// next escaped string may reuse. Control characters must be escaped, as
// JSON requires; lone surrogates decode to U+FFFD, as in encoding/json.
func (d *batchDecoder) rawString(scratch bool) ([]byte, error) {
	d.i++ // the quote
	start := d.i
	for d.i < len(d.data) {
		c := d.data[d.i]
		switch {
		case c == '"':
			d.i++
			return d.data[start : d.i-1], nil
		case c == '\\':
			return d.escapedString(start, scratch)
		case c < 0x20:
			return nil, d.syntax()
		}
		d.i++
	}
	return nil, d.syntax()
}

func (d *batchDecoder) escapedString(start int, scratch bool) ([]byte, error) {
	var buf []byte
	if scratch {
		buf = d.scratch[:0]
	}
	buf = append(buf, d.data[start:d.i]...)
	for d.i < len(d.data) {
		c := d.data[d.i]
		switch {
		case c == '"':
			d.i++
			if scratch {
				d.scratch = buf
			}
			return buf, nil
		case c < 0x20:
			return nil, d.syntax()
		case c != '\\':
			buf = append(buf, c)
			d.i++
			continue
		}
		d.i++
		if d.i >= len(d.data) {
			return nil, d.syntax()
		}
		switch e := d.data[d.i]; e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := d.hex4(d.i + 1)
			if !ok {
				return nil, d.syntax()
			}
			d.i += 4
			if utf16.IsSurrogate(r) {
				// A high surrogate followed by \u and a low one is one
				// code point; anything else is U+FFFD.
				if r2, ok := d.hex4(d.i + 3); ok && d.i+2 < len(d.data) && d.data[d.i+1] == '\\' && d.data[d.i+2] == 'u' {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						d.i += 6
						r = dec
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return nil, d.syntax()
		}
		d.i++
	}
	return nil, d.syntax()
}

// hex4 reads the four hex digits at data[at:].
func (d *batchDecoder) hex4(at int) (rune, bool) {
	if at+4 > len(d.data) {
		return 0, false
	}
	var r rune
	for _, c := range d.data[at : at+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// skip consumes any JSON value (to report a type error only once the body
// is known to be well-formed up to there), nested at most maxDepth deep.
func (d *batchDecoder) skip(depth int) error {
	const maxDepth = 32
	if depth > maxDepth {
		return callsign.Errorf(callsign.EInvalidJSON, "The request body nests deeper than %d levels.", maxDepth)
	}
	d.ws()
	if d.i >= len(d.data) {
		return d.syntax()
	}
	switch c := d.data[d.i]; {
	case c == '"':
		_, err := d.rawString(false)
		return err
	case c == '{':
		d.i++
		keys := map[string]struct{}{}
		return d.object(func(key []byte) error {
			if _, dup := keys[string(key)]; dup {
				return callsign.Errorf(callsign.EDuplicateField, "The request body has the field %q more than once.", key)
			}
			keys[string(key)] = struct{}{}
			return d.skip(depth + 1)
		})
	case c == '[':
		d.i++
		d.ws()
		if d.i < len(d.data) && d.data[d.i] == ']' {
			d.i++
			return nil
		}
		for {
			if err := d.skip(depth + 1); err != nil {
				return err
			}
			d.ws()
			if d.i >= len(d.data) {
				return d.syntax()
			}
			switch d.data[d.i] {
			case ',':
				d.i++
			case ']':
				d.i++
				return nil
			default:
				return d.syntax()
			}
		}
	case isNumberStart(c):
		if _, ok := d.number(); !ok {
			return d.syntax()
		}
		return nil
	}
	for _, lit := range []string{"true", "false", "null"} {
		if len(d.data)-d.i >= len(lit) && string(d.data[d.i:d.i+len(lit)]) == lit {
			d.i += len(lit)
			return nil
		}
	}
	return d.syntax()
}
