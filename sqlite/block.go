package sqlite

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/callsignhq/callsign"
)

// Raw events are stored in blocks: one row of event_blocks holds up to
// blockMaxEvents events of one app, sorted by time, within blockMaxSpan of
// each other, in the compact encoding below. A row per event, 24 columns
// bound one by one through database/sql and the pure-Go SQLite, cost
// ~6 µs per event before any index; a block costs one blob, and an event
// in it ~0.3 µs to encode. What needs an index per event gets its own
// narrow table: event_key_chunks (idempotency, many keys a row); and listings by user, route or
// auth error read event_index, one row per value and aggregation run, not
// per event.
//
// Encoding (version 1), all integers varints:
//
//	version byte (1)
//	uvarint n (events), uvarint d (dictionary strings)
//	d × (uvarint length, bytes)                       the dictionary
//	n × event:
//	  uvarint time − previous time (µs; the first: − tmin)
//	  uvarint id length, id bytes
//	  uvarint dictionary index × 11: method, route, user_id, api_user_id,
//	    client_user_id, company_id, scheme, key_id, auth_error, remote_ip,
//	    user_agent
//	  uvarint length + bytes × 4: uri, request_id, request_body, response_body
//	  varint status, varint latency (µs), varint request and response bytes
//	  byte 0 (weight 0) or 1 followed by 8 bytes (float64 bits, little endian)
//	  uvarint metadata entries, each a (key, value) pair of dictionary indexes
//
// Strings that repeat across events (routes, users, user agents) are
// stored once per block, in the dictionary.
const blockVersion = 1

const (
	// blockMaxEvents bounds the events of one block: a listing decodes a
	// whole block to return one of its events.
	blockMaxEvents = 2048
	// blockMaxSpan bounds the time between the first and last event of a
	// block (µs), so that a listing over a time range decodes few blocks
	// outside it, even for a batch that mixes old and new events.
	blockMaxSpan = int64(10 * time.Minute / time.Microsecond)
)

// Dictionary fields of an encoded event, in encoding order.
const (
	fMethod = iota
	fRoute
	fUser
	fAPIUser
	fClientUser
	fCompany
	fScheme
	fKeyID
	fAuthError
	fRemoteIP
	fUserAgent
	nDictFields
)

// Raw (not dictionary) string fields, in encoding order after the id.
const (
	rURI = iota
	rRequestID
	rRequestBody
	rResponseBody
	nRawFields
)

// blockEncoder encodes blocks; it is reused from one block to the next.
type blockEncoder struct {
	dict  map[string]uint64
	order []string
	body  []byte
}

func newBlockEncoder() *blockEncoder { return &blockEncoder{dict: make(map[string]uint64, 256)} }

// encoders keeps block encoders, with their dictionary and buffer, for the
// appends to reuse: a new one per batch made most of an append's garbage.
var encoders = sync.Pool{New: func() any { return newBlockEncoder() }}

// maxPooledBody bounds the buffer of a pooled encoder.
const maxPooledBody = 4 << 20

func (enc *blockEncoder) ref(s string) {
	i, ok := enc.dict[s]
	if !ok {
		i = uint64(len(enc.order))
		enc.dict[s] = i
		enc.order = append(enc.order, s)
	}
	enc.body = binary.AppendUvarint(enc.body, i)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encode returns the block of events, which are sorted by time, all at or
// after tmin, appended to dst; to a new slice of the right size when dst is
// nil.
func (enc *blockEncoder) encode(dst []byte, events []*callsign.Event, tmin int64) []byte {
	clear(enc.dict)
	enc.order = enc.order[:0]
	enc.body = enc.body[:0]
	prev := tmin
	for _, e := range events {
		t := e.Time.UnixMicro()
		enc.body = binary.AppendUvarint(enc.body, uint64(t-prev))
		prev = t
		enc.body = appendString(enc.body, e.ID)
		for _, s := range [nDictFields]string{fMethod: e.Method, fRoute: e.Route, fUser: e.UserID, fAPIUser: e.APIUserID,
			fClientUser: e.ClientUserID, fCompany: e.CompanyID, fScheme: string(e.Scheme), fKeyID: e.KeyID, fAuthError: e.AuthError,
			fRemoteIP: e.RemoteIP, fUserAgent: e.UserAgent} {
			enc.ref(s)
		}
		for _, s := range [nRawFields]string{rURI: e.URI, rRequestID: e.RequestID, rRequestBody: e.RequestBody, rResponseBody: e.ResponseBody} {
			enc.body = appendString(enc.body, s)
		}
		enc.body = binary.AppendVarint(enc.body, int64(e.Status))
		enc.body = binary.AppendVarint(enc.body, e.Latency.Microseconds())
		enc.body = binary.AppendVarint(enc.body, e.RequestBytes)
		enc.body = binary.AppendVarint(enc.body, e.ResponseBytes)
		if e.Weight == 0 {
			enc.body = append(enc.body, 0)
		} else {
			enc.body = binary.LittleEndian.AppendUint64(append(enc.body, 1), math.Float64bits(e.Weight))
		}
		enc.body = binary.AppendUvarint(enc.body, uint64(len(e.Metadata)))
		if len(e.Metadata) > 0 {
			for _, k := range slices.Sorted(mapKeys(e.Metadata)) {
				enc.ref(k)
				enc.ref(e.Metadata[k])
			}
		}
	}
	if dst == nil {
		size := 1 + 2*binary.MaxVarintLen64 + len(enc.body)
		for _, s := range enc.order {
			size += binary.MaxVarintLen64 + len(s)
		}
		dst = make([]byte, 0, size)
	}
	dst = append(dst, blockVersion)
	dst = binary.AppendUvarint(dst, uint64(len(events)))
	dst = binary.AppendUvarint(dst, uint64(len(enc.order)))
	for _, s := range enc.order {
		dst = appendString(dst, s)
	}
	return append(dst, enc.body...)
}

// errCorruptBlock is returned for a block that does not decode: a store
// damaged outside callsign, since callsign only writes what it encoded.
var errCorruptBlock = errors.New("corrupt event block")

// span is a part of a block: data[off:end]. Decoding keeps offsets, not
// slices, so that it writes no pointer (and pays no GC write barrier) per
// field.
type span struct{ off, end int }

func (s span) len() int { return s.end - s.off }

// blockEvent is an event of a decoded block, before it becomes a
// callsign.Event: dictionary strings are indexes into the block's
// dictionary (blockReader.str and raw), raw ones spans of the block.
type blockEvent struct {
	time                int64
	id                  span
	dict                [nDictFields]uint32
	raw                 [nRawFields]span
	status              int64
	latency             int64 // µs
	reqBytes, respBytes int64
	weight              float64
	metaEntries         int // metadata: that many dictionary index pairs in blockReader.meta
}

// blockReader decodes one block, an event at a time.
type blockReader struct {
	data []byte
	pos  int   // next byte to read
	n    int   // events left
	t    int64 // time of the previous event
	dict []span
	strs []string // dict entries made strings, when made[i]
	made []bool
	meta []uint32 // metadata pairs of the current event
	err  error
}

// reset starts decoding data, a block whose first event is at or after
// tmin. Nothing is copied out of data until asked for (str, event): data
// must stay as it is until then.
func (r *blockReader) reset(data []byte, tmin int64) error {
	*r = blockReader{data: data, t: tmin, dict: r.dict[:0], strs: r.strs[:0], made: r.made[:0], meta: r.meta[:0]}
	if len(data) == 0 || data[0] != blockVersion {
		return r.fail()
	}
	r.pos = 1
	n, d := r.uvarint(), r.uvarint()
	if r.err != nil || n > blockMaxEvents || d > uint64(len(data)-r.pos) {
		return r.fail()
	}
	r.n = int(n)
	for range d {
		s := r.bytes()
		if r.err != nil {
			return r.err
		}
		r.dict = append(r.dict, s)
	}
	r.strs = append(r.strs[:0], make([]string, d)...)
	r.made = append(r.made[:0], make([]bool, d)...)
	return nil
}

// bytesOf returns s of the block.
func (r *blockReader) bytesOf(s span) []byte { return r.data[s.off:s.end:s.end] }

// raw returns dictionary entry i, in the block.
func (r *blockReader) raw(i uint32) []byte { return r.bytesOf(r.dict[i]) }

// str returns dictionary entry i as a string, made once per block.
func (r *blockReader) str(i uint32) string {
	if !r.made[i] {
		r.strs[i], r.made[i] = string(r.raw(i)), true
	}
	return r.strs[i]
}

func (r *blockReader) fail() error {
	if r.err == nil {
		r.err = errCorruptBlock
	}
	r.pos, r.n = len(r.data), 0
	return r.err
}

func (r *blockReader) uvarint() uint64 {
	v, k := binary.Uvarint(r.data[r.pos:])
	if k <= 0 {
		r.fail()
		return 0
	}
	r.pos += k
	return v
}

func (r *blockReader) varint() int64 {
	v, k := binary.Varint(r.data[r.pos:])
	if k <= 0 {
		r.fail()
		return 0
	}
	r.pos += k
	return v
}

func (r *blockReader) bytes() span {
	l := r.uvarint()
	if r.err != nil || l > uint64(len(r.data)-r.pos) {
		r.fail()
		return span{}
	}
	s := span{r.pos, r.pos + int(l)}
	r.pos = s.end
	return s
}

func (r *blockReader) ref() uint32 {
	i := r.uvarint()
	if r.err != nil || i >= uint64(len(r.dict)) {
		r.fail()
		return 0
	}
	return uint32(i)
}

// next decodes the next event into e; it returns false at the end of the
// block or on an error, which r.err then holds.
func (r *blockReader) next(e *blockEvent) bool {
	if r.n == 0 {
		if r.pos != len(r.data) {
			r.fail()
		}
		return false
	}
	r.n--
	dt := r.uvarint()
	if dt > math.MaxInt64-uint64(max(r.t, 0)) {
		r.fail()
	}
	r.t += int64(dt)
	e.time = r.t
	e.id = r.bytes()
	for i := range e.dict {
		e.dict[i] = r.ref()
	}
	for i := range e.raw {
		e.raw[i] = r.bytes()
	}
	e.status = min(max(r.varint(), math.MinInt32), math.MaxInt32)
	e.latency = r.varint()
	e.reqBytes = r.varint()
	e.respBytes = r.varint()
	e.weight = 0
	if r.pos < len(r.data) {
		flag := r.data[r.pos]
		r.pos++
		switch {
		case flag == 1 && len(r.data)-r.pos >= 8:
			e.weight = math.Float64frombits(binary.LittleEndian.Uint64(r.data[r.pos:]))
			r.pos += 8
		case flag != 0:
			r.fail()
		}
	} else {
		r.fail()
	}
	m := r.uvarint()
	if m > uint64(len(r.data)-r.pos)/2 { // two bytes at least per entry
		r.fail()
	}
	r.meta = r.meta[:0]
	for range m {
		k, v := r.ref(), r.ref()
		if r.err != nil {
			break
		}
		r.meta = append(r.meta, k, v)
	}
	e.metaEntries = len(r.meta) / 2
	return r.err == nil
}

// event returns e, the event r decoded last, as a callsign.Event of app.
func (r *blockReader) event(app string, e *blockEvent) *callsign.Event {
	// One allocation for the raw strings of the event.
	n := e.id.len()
	for _, s := range e.raw {
		n += s.len()
	}
	buf := make([]byte, 0, n)
	buf = append(buf, r.bytesOf(e.id)...)
	for _, s := range e.raw {
		buf = append(buf, r.bytesOf(s)...)
	}
	all := string(buf)
	cut := func(s span) string { v := all[:s.len()]; all = all[s.len():]; return v }
	ev := &callsign.Event{
		AppID:         app,
		ID:            cut(e.id),
		Time:          fromMicros(e.time),
		Method:        r.str(e.dict[fMethod]),
		Route:         r.str(e.dict[fRoute]),
		URI:           cut(e.raw[rURI]),
		Status:        int(e.status),
		Latency:       time.Duration(e.latency) * time.Microsecond,
		RequestBytes:  e.reqBytes,
		ResponseBytes: e.respBytes,
		UserID:        r.str(e.dict[fUser]),
		APIUserID:     r.str(e.dict[fAPIUser]),
		ClientUserID:  r.str(e.dict[fClientUser]),
		CompanyID:     r.str(e.dict[fCompany]),
		Scheme:        callsign.Scheme(r.str(e.dict[fScheme])),
		KeyID:         r.str(e.dict[fKeyID]),
		AuthError:     r.str(e.dict[fAuthError]),
		RequestID:     cut(e.raw[rRequestID]),
		RemoteIP:      r.str(e.dict[fRemoteIP]),
		UserAgent:     r.str(e.dict[fUserAgent]),
		Weight:        e.weight,
		RequestBody:   cut(e.raw[rRequestBody]),
		ResponseBody:  cut(e.raw[rResponseBody]),
	}
	if e.metaEntries > 0 {
		ev.Metadata = make(map[string]string, e.metaEntries)
		for i := 0; i < 2*e.metaEntries; i += 2 {
			ev.Metadata[r.str(r.meta[i])] = r.str(r.meta[i+1])
		}
	}
	return ev
}
