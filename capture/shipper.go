package capture

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/client"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
)

// Shipper defaults.
const (
	DefaultQueueSize     = 10000
	DefaultBatchSize     = 500
	DefaultBatchBytes    = 1 << 20
	DefaultFlushInterval = time.Second
	DefaultMinBackoff    = 200 * time.Millisecond
	DefaultMaxBackoff    = 30 * time.Second
	DefaultMaxRetryAfter = 5 * time.Minute
	DefaultSpoolMaxBytes = 64 << 20
	DefaultSpoolAfter    = 3
	DefaultWarnInterval  = 30 * time.Second
)

// Compression is how a Shipper compresses its batches: the
// Content-Encoding of its POST /v2/events.
type Compression string

// The encodings the callsign server takes.
const (
	// CompressionSnappy is the snappy block format, as Prometheus remote
	// write sends it (compressed with klauspost/compress/s2's
	// snappy-compatible encoder): about a fifth of gzip's CPU per event
	// (64 ns against 325), for batches about twice as large (49 bytes
	// per event against 26; BENCHMARKS.md). The default.
	CompressionSnappy Compression = "snappy"
	// CompressionGzip is gzip at klauspost/compress's fastest level: the
	// smallest batches, for a server far away or behind a proxy that
	// only knows gzip.
	CompressionGzip Compression = "gzip"
	// CompressionNone sends the JSON as it is.
	CompressionNone Compression = "identity"
)

// ShipperOptions configure a Shipper. Server and Tokens are required; the
// zero value of every other field is a sensible default.
type ShipperOptions struct {
	// Server is the callsign server's base URL; events go to
	// Server + "/v2/events".
	Server string
	// Tokens gives the bearer token of each request: a
	// *client.ServerTokenSource (the app's secret token; may send
	// verified and API-asserted user ids) on servers, a
	// *client.UpgradeSource (the public token; client-asserted ids only)
	// elsewhere. When it has an Invalidate method, a 401 invalidates the
	// token and the batch is sent again at once, once.
	Tokens client.TokenSource
	// ClientToken says Tokens are a client's anonymous access tokens
	// (from the public token): the server refuses events with a verified
	// user_id or an api_user_id from them, so the Shipper clears both
	// before sending and the events still count (client_user_id stays).
	// It is set when Tokens is a *client.UpgradeSource without a
	// SecretToken.
	ClientToken bool
	// HTTPClient sends the batches; a client with a 30 s timeout if nil.
	HTTPClient *http.Client

	// QueueSize bounds the events waiting to be batched
	// (DefaultQueueSize); beyond it Enqueue drops and counts them.
	QueueSize int
	// BatchSize is the most events in a batch (DefaultBatchSize, at most
	// callsign.MaxEventsPerBatch); BatchBytes the most bytes of a batch
	// before compression (DefaultBatchBytes, at most
	// callsign.MaxBatchBytes).
	BatchSize, BatchBytes int
	// Compression is the batches' encoding (CompressionSnappy if empty).
	// Batches spooled under another encoding are replayed in theirs.
	Compression Compression
	// FlushInterval is how long a batch may wait for more events
	// (DefaultFlushInterval): an event reaches the server at most about
	// this long after it was enqueued, when the server is up.
	FlushInterval time.Duration

	// MinBackoff and MaxBackoff bound the exponential backoff between
	// attempts (DefaultMinBackoff, DefaultMaxBackoff); each wait is drawn
	// uniformly from [0, min(MaxBackoff, MinBackoff·2^attempt)] ("full
	// jitter"). A 429 or 503 with Retry-After waits what it says, at most
	// MaxRetryAfter (DefaultMaxRetryAfter).
	MinBackoff, MaxBackoff, MaxRetryAfter time.Duration

	// SpoolDir, when set, is a directory where batches the server cannot
	// take are kept (see "Spool" in the package documentation) and from
	// where they are replayed, oldest first, when it is back, including by
	// a new Shipper after a restart. One Shipper at a time may use a
	// directory: on Unix it holds a lock (flock on SpoolDir/LOCK) from
	// NewShipper to Close, and NewShipper refuses a directory in use.
	SpoolDir string
	// SpoolMaxBytes bounds the spool (DefaultSpoolMaxBytes); the oldest
	// segments are deleted, and their events counted, beyond it.
	SpoolMaxBytes int64
	// SpoolAfter is how many attempts a batch gets before it goes to the
	// spool (DefaultSpoolAfter). Without a spool a batch is retried until
	// it is delivered or Close gives up, while new events wait in the
	// queue.
	SpoolAfter int

	// Logger receives warnings (events dropped, batches refused), each
	// kind at most once per WarnInterval (DefaultWarnInterval);
	// slog.Default() if nil.
	Logger       *slog.Logger
	WarnInterval time.Duration
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// Sleep waits between attempts; a timer if nil. It returns ctx's
	// error when ctx ends first. Tests inject it to run without waiting.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Stats are a Shipper's counters since it started. Every event Enqueue
// accepted (Enqueued) is eventually Sent, a duplicate, dropped under one of
// DroppedRejected, DroppedInvalid, DroppedSpoolFull, DroppedSpoolError or
// DroppedShutdown, or is still queued, batched or spooled. Events Enqueue
// refused (DroppedQueueFull, DroppedClosed) were never enqueued.
type Stats struct {
	Enqueued          uint64 `json:"enqueued"`             // accepted by Enqueue
	Sent              uint64 `json:"sent"`                 // accepted by the server
	Duplicates        uint64 `json:"duplicates"`           // already stored (a retried batch)
	DroppedQueueFull  uint64 `json:"dropped_queue_full"`   // refused by Enqueue: the queue was full
	DroppedRejected   uint64 `json:"dropped_rejected"`     // refused one by one by the server
	DroppedInvalid    uint64 `json:"dropped_invalid"`      // in batches the server refused whole (400, 413, ...), or unencodable
	DroppedSpoolFull  uint64 `json:"dropped_spool_full"`   // in the oldest segments, deleted to bound the spool
	DroppedSpoolError uint64 `json:"dropped_spool_error"`  // in batches the spool could not write (disk full, ...)
	DroppedShutdown   uint64 `json:"dropped_shutdown"`     // not delivered when Close gave up, without a spool
	DroppedClosed     uint64 `json:"dropped_closed"`       // refused by Enqueue after Close
	CorruptSegments   uint64 `json:"corrupt_segments"`     // spool segments that did not decode, deleted
	Retries           uint64 `json:"retries"`              // attempts after the first of a batch
	TokenRefreshes    uint64 `json:"token_refreshes"`      // tokens invalidated after a 401
	Batches           uint64 `json:"batches"`              // batches acknowledged by the server
	Spooled           uint64 `json:"spooled"`              // events written to the spool
	Replayed          uint64 `json:"replayed"`             // events of spooled batches the server then took
	Queued            int    `json:"queued"`               // waiting in the queue now
	SpoolSegments     int    `json:"spool_segments"`       // in the spool now
	SpoolBytes        int64  `json:"spool_bytes"`          // in the spool now
	LastError         string `json:"last_error,omitempty"` // of the last failed attempt
	LastErrorTime     string `json:"last_error_time,omitempty"`
}

// ErrClosed is returned by Flush after Close.
var ErrClosed = errors.New("capture: shipper closed")

// Shipper sends events to the callsign server's POST /v2/events in
// batches. It implements Sink: Enqueue never blocks. One goroutine batches,
// compresses, sends and retries; Close stops it. It is safe for concurrent
// use.
type Shipper struct {
	o    ShipperOptions
	url  string
	ctx  context.Context // canceled when Close gives up
	stop context.CancelFunc

	// The queue: Enqueue appends to pending; the goroutine takes it all at
	// once and batches it, counting down taken. Enqueue wakes the
	// goroutine only when pending reaches wakeAt events (the ticker
	// collects the rest), so that a busy API does not pay a goroutine
	// wake-up per call. pending and taken together stay within QueueSize.
	mu      sync.Mutex
	pending []*callsign.Event
	taken   atomic.Int64  // taken from pending, not batched yet
	wake    chan struct{} // buffered (1)
	wakeAt  int

	closed   atomic.Bool
	closing  chan struct{}
	done     chan struct{}
	flushReq chan chan error
	closeErr error

	c struct {
		enqueued, sent, duplicates, droppedQueueFull, droppedRejected, droppedInvalid,
		droppedSpoolFull, droppedSpoolError, droppedShutdown, droppedClosed, corrupt, retries, refreshes, batches, spooled, replayed atomic.Uint64
		spoolSegments, spoolBytes atomic.Int64
	}
	warned    [numWarnings]limiter
	errMu     sync.Mutex
	lastErr   string
	lastErrAt time.Time

	// Owned by the goroutine.
	spare      []*callsign.Event // the other buffer of pending
	raw        []byte            // the batch being built: {"events":[...
	n          int
	ev         []byte
	zbuf       bytes.Buffer // the sealed batch, gzip
	zw         *gzip.Writer // nil until the first gzip batch
	sealed     []byte       // the sealed batch, snappy or identity
	spool      *spool
	replayAt   time.Time
	replayFail int
	replaying  bool
}

// NewShipper validates opts, opens the spool if there is one and starts the
// Shipper's goroutine. Batches left in the spool by a previous Shipper are
// replayed first.
func NewShipper(opts ShipperOptions) (*Shipper, error) {
	if opts.Tokens == nil {
		return nil, errors.New("capture: ShipperOptions.Tokens is required")
	}
	u, err := url.Parse(opts.Server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("capture: ShipperOptions.Server %q is not an http(s) URL", opts.Server)
	}
	if up, ok := opts.Tokens.(*client.UpgradeSource); ok && up.SecretToken == "" {
		opts.ClientToken = true
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	opts.BatchSize = min(opts.BatchSize, callsign.MaxEventsPerBatch)
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = DefaultBatchBytes
	}
	opts.BatchBytes = min(opts.BatchBytes, callsign.MaxBatchBytes)
	switch opts.Compression {
	case "":
		opts.Compression = CompressionSnappy
	case CompressionSnappy, CompressionGzip, CompressionNone:
	default:
		return nil, fmt.Errorf("capture: ShipperOptions.Compression %q is not one of snappy, gzip or identity", opts.Compression)
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.MinBackoff)
	if opts.MaxRetryAfter <= 0 {
		opts.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if opts.SpoolMaxBytes <= 0 {
		opts.SpoolMaxBytes = DefaultSpoolMaxBytes
	}
	if opts.SpoolAfter <= 0 {
		opts.SpoolAfter = DefaultSpoolAfter
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.WarnInterval <= 0 {
		opts.WarnInterval = DefaultWarnInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	s := &Shipper{
		o:        opts,
		url:      strings.TrimSuffix(opts.Server, "/") + "/v2/events",
		wake:     make(chan struct{}, 1),
		wakeAt:   max(1, min(opts.BatchSize, opts.QueueSize/2)),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
		flushReq: make(chan chan error),
	}
	for i := range s.warned {
		s.warned[i].every = opts.WarnInterval
	}
	if opts.SpoolDir != "" {
		if s.spool, err = openSpool(opts.SpoolDir, opts.SpoolMaxBytes); err != nil {
			return nil, err
		}
		s.spoolGauges()
	}
	s.ctx, s.stop = context.WithCancel(context.Background())
	go s.run()
	return s, nil
}

// gzipLevel is the compression level of batches: klauspost/compress's
// fastest, about three times faster than compress/gzip's BestSpeed on
// event batches, with slightly smaller output.
const gzipLevel = gzip.BestSpeed

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Enqueue implements Sink. It never blocks: when the queue is full the
// event is dropped and counted (Stats.DroppedQueueFull) and a warning is
// logged at most once per WarnInterval. After Close it drops every event
// (Stats.DroppedClosed). An event enqueued while Close runs may be lost
// uncounted.
func (s *Shipper) Enqueue(e *callsign.Event) bool {
	if s.closed.Load() {
		s.c.droppedClosed.Add(1)
		putEvent(e)
		return false
	}
	s.mu.Lock()
	n := len(s.pending)
	if n+int(s.taken.Load()) < s.o.QueueSize {
		s.pending = append(s.pending, e)
		s.c.enqueued.Add(1) // before the goroutine can take it, so that Sent never exceeds Enqueued
		s.mu.Unlock()
		if n+1 == s.wakeAt {
			select {
			case s.wake <- struct{}{}:
			default: // already signaled
			}
		}
		return true
	}
	s.mu.Unlock()
	dropped := s.c.droppedQueueFull.Add(1)
	putEvent(e)
	s.warn(warnQueueFull, "capture: event queue full, dropping events", "dropped_queue_full", dropped, "queue_size", s.o.QueueSize)
	return false
}

// Stats returns the counters.
func (s *Shipper) Stats() Stats {
	st := Stats{
		Enqueued: s.c.enqueued.Load(), Sent: s.c.sent.Load(), Duplicates: s.c.duplicates.Load(),
		DroppedQueueFull: s.c.droppedQueueFull.Load(), DroppedRejected: s.c.droppedRejected.Load(),
		DroppedInvalid: s.c.droppedInvalid.Load(), DroppedSpoolFull: s.c.droppedSpoolFull.Load(),
		DroppedSpoolError: s.c.droppedSpoolError.Load(), DroppedShutdown: s.c.droppedShutdown.Load(),
		DroppedClosed: s.c.droppedClosed.Load(), CorruptSegments: s.c.corrupt.Load(), Retries: s.c.retries.Load(),
		TokenRefreshes: s.c.refreshes.Load(), Batches: s.c.batches.Load(), Spooled: s.c.spooled.Load(),
		Replayed: s.c.replayed.Load(), Queued: s.queued(), SpoolSegments: int(s.c.spoolSegments.Load()),
		SpoolBytes: s.c.spoolBytes.Load(),
	}
	s.errMu.Lock()
	st.LastError = s.lastErr
	if !s.lastErrAt.IsZero() {
		st.LastErrorTime = s.lastErrAt.UTC().Format(time.RFC3339)
	}
	s.errMu.Unlock()
	return st
}

// queued returns the number of events in the queue.
func (s *Shipper) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending) + int(s.taken.Load())
}

// Flush sends everything enqueued before it and replays the spool. It
// returns nil when all of it was delivered, ctx's error when ctx ended
// first (the Shipper goes on), or an error when the spool could not be
// emptied.
func (s *Shipper) Flush(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case s.flushReq <- reply:
	case <-s.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting events, sends what is queued and replays the spool,
// for as long as ctx allows. It returns nil when everything was delivered.
// When ctx ends first, what is left goes to the spool (when there is one,
// for the next Shipper on the directory) or is counted as
// DroppedShutdown, and Close returns ctx's error.
func (s *Shipper) Close(ctx context.Context) error {
	if s.closed.CompareAndSwap(false, true) {
		close(s.closing)
	}
	select {
	case <-s.done:
	case <-ctx.Done():
		s.stop()
		<-s.done
		return ctx.Err()
	}
	return s.closeErr
}

// run is the Shipper's goroutine.
func (s *Shipper) run() {
	defer close(s.done)
	defer s.stop()
	tick := time.NewTicker(s.o.FlushInterval)
	defer tick.Stop()
	s.replay(true) // what a previous Shipper left
	for {
		select {
		case <-s.wake:
			s.drain()
		case <-tick.C:
			s.drain()
			s.shipBatch()
			s.replay(false)
		case reply := <-s.flushReq:
			s.drain()
			s.shipBatch()
			s.replay(true)
			if s.spool != nil && s.spool.len() > 0 {
				reply <- fmt.Errorf("capture: %d batches left in the spool: %s", s.spool.len(), s.Stats().LastError)
			} else {
				reply <- nil
			}
		case <-s.closing:
			s.shutdown()
			return
		}
	}
}

// shutdown drains the queue and the spool, until done or s.ctx ends.
func (s *Shipper) shutdown() {
	s.drain()
	s.shipBatch()
	for s.spool != nil && s.spool.len() > 0 && s.ctx.Err() == nil {
		s.replay(true)
		if s.spool.len() > 0 {
			s.o.Sleep(s.ctx, s.backoff(s.replayFail))
		}
	}
	// Events enqueued while Close raced with Enqueue.
	s.drain()
	s.shipBatch()
	if s.spool != nil && s.spool.len() > 0 {
		s.closeErr = fmt.Errorf("capture: %d batches left in the spool", s.spool.len())
	}
	if s.spool != nil {
		s.spool.unlock()
	}
}

// drain adds what is in the queue now to batches. It may run again inside
// itself (add ships, ship replays, replay drains): the inner run takes
// the events queued since.
func (s *Shipper) drain() {
	s.mu.Lock()
	events := s.pending
	s.pending, s.spare = s.spare[:0], nil
	s.taken.Add(int64(len(events)))
	s.mu.Unlock()
	for i, e := range events {
		events[i] = nil
		s.taken.Add(-1)
		s.add(e)
	}
	s.spare = events[:0]
}

// add encodes e into the current batch and returns it to the pool. It
// ships the batch when it is full.
func (s *Shipper) add(e *callsign.Event) {
	if e.ID == "" {
		e.ID = NewEventID(e.Time)
	}
	if y := e.Time.UTC().Year(); y < 1 || y > 9999 {
		s.c.droppedInvalid.Add(1) // the server could not parse the batch
		putEvent(e)
		return
	}
	if s.o.ClientToken {
		e.UserID, e.APIUserID = "", "" // never sent as anything else
	}
	// Encoded in place; moved to the next batch when it does not fit.
	if s.n == 0 {
		s.raw = append(s.raw[:0], `{"events":[`...)
	} else {
		s.raw = append(s.raw, ',')
	}
	start := len(s.raw)
	s.raw = appendEventJSON(s.raw, e)
	putEvent(e)
	if s.n > 0 && len(s.raw)+2 > s.o.BatchBytes {
		s.ev = append(s.ev[:0], s.raw[start:]...)
		s.raw = s.raw[:start-1]
		s.shipBatch()
		if s.n == 0 { // (shipping may have batched newer events, when it replayed)
			s.raw = append(s.raw[:0], `{"events":[`...)
		} else {
			s.raw = append(s.raw, ',')
		}
		s.raw = append(s.raw, s.ev...)
		if cap(s.ev) > 256<<10 {
			s.ev = nil
		}
	}
	s.n++
	if s.n >= s.o.BatchSize {
		s.shipBatch()
	}
}

// batch is a sealed batch: n events, compressed as enc.
type batch struct {
	body []byte
	n    int
	enc  Compression
}

// shipBatch compresses and ships the current batch.
func (s *Shipper) shipBatch() {
	if s.n == 0 {
		return
	}
	s.ship(s.seal())
}

// seal ends the current batch and returns it compressed, in a buffer
// valid until the next seal.
func (s *Shipper) seal() batch {
	s.raw = append(s.raw, "]}"...)
	b := batch{n: s.n, enc: s.o.Compression}
	s.n = 0
	switch b.enc {
	case CompressionGzip:
		if s.zw == nil {
			s.zw, _ = gzip.NewWriterLevel(&s.zbuf, gzipLevel)
		}
		s.zbuf.Reset()
		s.zw.Reset(&s.zbuf)
		s.zw.Write(s.raw)
		s.zw.Close()
		b.body = s.zbuf.Bytes()
	case CompressionSnappy:
		s.sealed = s2.EncodeSnappy(s.sealed[:cap(s.sealed)], s.raw)
		b.body = s.sealed
	default:
		s.sealed = append(s.sealed[:0], s.raw...)
		b.body = s.sealed
	}
	s.raw = s.raw[:0]
	return b
}

// ship delivers a sealed batch, or spools it.
func (s *Shipper) ship(b batch) {
	if s.spool != nil && (s.spool.len() > 0 || s.replaying) {
		// Older batches are waiting: this one goes after them.
		s.toSpool(b)
		s.replay(false)
		return
	}
	attempts := 0 // until delivered or s.ctx ends
	if s.spool != nil {
		attempts = s.o.SpoolAfter
	}
	if s.deliver(b, attempts, false) {
		return
	}
	if s.spool != nil {
		s.toSpool(b)
		s.replayAt = s.o.Now().Add(s.backoff(0))
		return
	}
	s.c.droppedShutdown.Add(uint64(b.n))
}

func (s *Shipper) toSpool(b batch) {
	n := b.n
	dropped, err := s.spool.write(b)
	if err != nil {
		s.c.droppedSpoolError.Add(uint64(n))
		s.setErr(err)
		s.warn(warnSpool, "capture: cannot write to the spool, events dropped", "events", n, "error", err)
		return
	}
	s.c.spooled.Add(uint64(n))
	if dropped > 0 {
		s.c.droppedSpoolFull.Add(uint64(dropped))
		s.warn(warnSpool, "capture: spool full, oldest events dropped", "dropped_spool_full", s.c.droppedSpoolFull.Load(),
			"spool_max_bytes", s.o.SpoolMaxBytes)
	}
	s.spoolGauges()
}

func (s *Shipper) spoolGauges() {
	s.c.spoolSegments.Store(int64(s.spool.len()))
	s.c.spoolBytes.Store(s.spool.total)
}

// replay sends spooled batches, oldest first, until one fails; unless
// force, only when the backoff after the last failure has passed. Between
// batches it keeps draining the queue (new batches go to the spool behind
// the old ones), so that a long replay does not overflow the queue.
func (s *Shipper) replay(force bool) {
	if s.spool == nil || s.spool.len() == 0 || s.replaying {
		return
	}
	if !force && s.o.Now().Before(s.replayAt) {
		return
	}
	s.replaying = true
	defer func() { s.replaying = false }()
	for s.spool.len() > 0 && s.ctx.Err() == nil {
		seq, b, err := s.spool.oldest()
		if err != nil {
			s.c.corrupt.Add(1)
			s.setErr(err)
			s.spool.remove(seq)
			s.spoolGauges()
			continue
		}
		if !s.deliver(b, 1, true) {
			s.replayFail++
			s.replayAt = s.o.Now().Add(s.backoff(s.replayFail))
			return
		}
		s.replayFail = 0
		s.spool.remove(seq)
		s.spoolGauges()
		s.drain()
		if s.n >= s.o.BatchSize/2 {
			s.shipBatch()
		}
	}
}

// backoff returns the full-jitter wait before retry number attempt+1.
func (s *Shipper) backoff(attempt int) time.Duration {
	ceil := s.o.MaxBackoff
	if attempt < 32 {
		if d := s.o.MinBackoff << attempt; d > 0 && d < ceil {
			ceil = d
		}
	}
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}

// deliver sends a batch, retrying retryable failures up to attempts times
// in all (0: until s.ctx ends). It reports whether the batch is done with:
// acknowledged, or refused for good (its events then counted as dropped).
func (s *Shipper) deliver(b batch, attempts int, replayed bool) bool {
	refreshed := false
	for attempt := 0; ; attempt++ {
		if s.ctx.Err() != nil {
			return false
		}
		wait, done := s.post(b, replayed, &refreshed)
		if done {
			return true
		}
		if wait < 0 { // a 401 with a fresh token to try at once
			s.c.retries.Add(1)
			continue
		}
		if attempt == 0 {
			s.warn(warnRetrying, "capture: cannot deliver events, retrying", "error", s.Stats().LastError, "queued", s.queued())
		}
		if attempts > 0 && attempt+1 >= attempts {
			return false
		}
		if wait == 0 {
			wait = s.backoff(attempt)
		}
		s.c.retries.Add(1)
		if s.o.Sleep(s.ctx, wait) != nil {
			return false
		}
	}
}

// ingestAnswer is the 200 answer of POST /v2/events.
type ingestAnswer struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Rejected   []struct {
		Index   int    `json:"index"`
		ID      string `json:"id"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"rejected"`
}

// post makes one attempt. done: the batch is acknowledged or refused for
// good. Otherwise wait is how long to wait first: the server's Retry-After,
// 0 for the backoff, -1 to retry at once with a new token.
func (s *Shipper) post(b batch, replayed bool, refreshed *bool) (wait time.Duration, done bool) {
	n := b.n
	tok, err := s.o.Tokens.Token(s.ctx)
	if err != nil {
		s.setErr(fmt.Errorf("capture: token: %w", err))
		return 0, false
	}
	req, err := http.NewRequestWithContext(s.ctx, "POST", s.url, bytes.NewReader(b.body))
	if err != nil {
		s.setErr(err)
		return 0, false
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	if b.enc != CompressionNone {
		req.Header.Set("Content-Encoding", string(b.enc))
	}
	req.Header.Set("User-Agent", "callsign-capture")
	resp, err := s.o.HTTPClient.Do(req)
	if err != nil {
		s.setErr(err)
		return 0, false
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch st := resp.StatusCode; {
	case st == http.StatusOK && err == nil:
		s.acknowledged(data, n, replayed)
		return 0, true
	case st == http.StatusUnauthorized:
		s.setErr(fmt.Errorf("capture: the server refused the token (401)"))
		inv, ok := s.o.Tokens.(interface{ Invalidate() })
		if !ok {
			return 0, false
		}
		inv.Invalidate()
		s.c.refreshes.Add(1)
		if !*refreshed {
			*refreshed = true
			return -1, false
		}
		return 0, false
	case st == http.StatusTooManyRequests || st >= 500 || st == http.StatusRequestTimeout || st == http.StatusOK:
		s.setErr(fmt.Errorf("capture: ingest answered %d", st))
		if st == http.StatusTooManyRequests || st == http.StatusServiceUnavailable {
			if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), s.o.Now()); ok {
				return min(max(d, time.Millisecond), s.o.MaxRetryAfter), false
			}
		}
		return 0, false
	default:
		// 400, 413 and other refusals: sending it again would not help.
		s.c.droppedInvalid.Add(uint64(n))
		err := fmt.Errorf("capture: ingest refused a batch of %d events: %d %s", n, st, bytes.TrimSpace(data[:min(len(data), 512)]))
		s.setErr(err)
		s.warn(warnRefused, "capture: batch refused, events dropped", "status", st, "events", n,
			"dropped_invalid", s.c.droppedInvalid.Load(), "error", err)
		return 0, true
	}
}

func (s *Shipper) acknowledged(data []byte, n int, replayed bool) {
	s.c.batches.Add(1)
	if replayed {
		s.c.replayed.Add(uint64(n))
	}
	var a ingestAnswer
	if json.Unmarshal(data, &a) != nil {
		s.c.sent.Add(uint64(n)) // acknowledged, without details
		return
	}
	s.c.sent.Add(uint64(max(a.Accepted, 0)))
	s.c.duplicates.Add(uint64(max(a.Duplicates, 0)))
	if len(a.Rejected) > 0 {
		s.c.droppedRejected.Add(uint64(len(a.Rejected)))
		r := a.Rejected[0]
		s.setErr(fmt.Errorf("capture: ingest rejected event %s: %s: %s", r.ID, r.Code, r.Message))
		s.warn(warnRejected, "capture: events rejected by the server", "rejected", len(a.Rejected), "first_code", r.Code,
			"first_message", r.Message, "dropped_rejected", s.c.droppedRejected.Load())
	}
}

func (s *Shipper) setErr(err error) {
	s.errMu.Lock()
	s.lastErr, s.lastErrAt = err.Error(), s.o.Now()
	s.errMu.Unlock()
}

// parseRetryAfter reads a Retry-After value: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// Kinds of warnings, each rate-limited on its own.
const (
	warnQueueFull = iota
	warnRetrying
	warnRefused
	warnRejected
	warnSpool
	numWarnings
)

// warn logs a warning of a kind at most once per WarnInterval.
func (s *Shipper) warn(kind int, msg string, args ...any) {
	if s.warned[kind].allow(s.o.Now()) {
		s.o.Logger.Warn(msg, args...)
	}
}

// limiter lets one call in per interval.
type limiter struct {
	every time.Duration
	last  atomic.Int64 // UnixNano of the last allowed call; 0: none
}

func (l *limiter) allow(now time.Time) bool {
	n := now.UnixNano()
	last := l.last.Load()
	if last != 0 && n-last < int64(l.every) {
		return false
	}
	return l.last.CompareAndSwap(last, n)
}
