package capture

import (
	"github.com/callsignhq/callsign"
)

// Internals for the external tests.
var (
	AppendEventJSON   = appendEventJSON
	AppendRedactedURI = appendRedactedURI
	ParseRetryAfter   = parseRetryAfter
	GetEvent          = getEvent
	ReleaseEvent      = putEvent
	ParseIPv4Port     = parseIPv4Port
)

// EncodeSegment returns the spool segment of a batch.
func EncodeSegment(n int, enc Compression, body []byte) []byte {
	return encodeSegment(batch{body: body, n: n, enc: enc})
}

// DecodeSegment decodes a spool segment.
func DecodeSegment(data []byte) (n int, enc Compression, body []byte, err error) {
	b, err := decodeSegment(data)
	return b.n, b.enc, b.body, err
}

// BatchEncoder runs the Shipper's batching code (encode, batch, compress)
// without a goroutine or a server.
type BatchEncoder struct{ s *Shipper }

func NewBatchEncoder(enc Compression) *BatchEncoder {
	return &BatchEncoder{&Shipper{o: ShipperOptions{BatchSize: callsign.MaxEventsPerBatch + 1, BatchBytes: callsign.MaxBatchBytes, Compression: enc}}}
}

// Add adds e (which goes back to the pool) to the batch.
func (b *BatchEncoder) Add(e *callsign.Event) { b.s.add(e) }

// Seal returns the compressed batch and starts a new one.
func (b *BatchEncoder) Seal() []byte { return b.s.seal().body }
