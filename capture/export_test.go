package capture

import (
	"github.com/klauspost/compress/gzip"

	"github.com/callsignhq/callsign"
)

// Internals for the external tests.
var (
	AppendEventJSON   = appendEventJSON
	AppendRedactedURI = appendRedactedURI
	DecodeSegment     = decodeSegment
	EncodeSegment     = encodeSegment
	ParseRetryAfter   = parseRetryAfter
	GetEvent          = getEvent
	ReleaseEvent      = putEvent
	ParseIPv4Port     = parseIPv4Port
)

// BatchEncoder runs the Shipper's batching code (encode, batch, gzip)
// without a goroutine or a server.
type BatchEncoder struct{ s *Shipper }

func NewBatchEncoder() *BatchEncoder {
	s := &Shipper{o: ShipperOptions{BatchSize: callsign.MaxEventsPerBatch + 1, BatchBytes: callsign.MaxBatchBytes}}
	s.zw, _ = gzip.NewWriterLevel(&s.zbuf, gzipLevel)
	return &BatchEncoder{s}
}

// Add adds e (which goes back to the pool) to the batch.
func (b *BatchEncoder) Add(e *callsign.Event) { b.s.add(e) }

// Seal returns the compressed batch and starts a new one.
func (b *BatchEncoder) Seal() []byte { return b.s.seal() }
