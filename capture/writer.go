package capture

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/callsignhq/callsign"
)

// recorder is the ResponseWriter the handler sees: it counts what is
// written, remembers the status and what the auth middleware reported, and
// passes everything else (Flush, Hijack, ResponseController's deadlines
// through Unwrap) to the server's writer.
type recorder struct {
	w           http.ResponseWriter
	c           *Capture
	status      int
	bytes       int64
	wroteHeader bool
	hijacked    bool
	panicked    bool

	// What the auth middleware reported (RecordAuth).
	scheme                                                   callsign.Scheme
	userID, clientUserID, keyID, appID, requestID, authError string
	route                                                    string

	// The last millisecond an event id was made for and its base62
	// digits: a pooled recorder often serves calls of the same
	// millisecond. Kept across release.
	idMS     int64
	idPrefix [idTimeLen]byte

	body    countingBody
	respLog bool // the response body is being logged
	respDec bool // respLog was decided (at the first write)
	respBuf []byte
	scratch []byte
}

var recorderPool = sync.Pool{New: func() any { return new(recorder) }}

// maxPooledBuf bounds the buffers a pooled recorder keeps, so that one
// large call does not pin memory for ever.
const maxPooledBuf = 8 << 10

// release clears rec and puts it back in the pool.
func (rec *recorder) release() {
	scratch, reqBuf, respBuf := rec.scratch[:0], rec.body.buf[:0], rec.respBuf[:0]
	if cap(scratch) > maxPooledBuf {
		scratch = nil
	}
	if cap(reqBuf) > maxPooledBuf {
		reqBuf = nil
	}
	if cap(respBuf) > maxPooledBuf {
		respBuf = nil
	}
	*rec = recorder{scratch: scratch, respBuf: respBuf, idMS: rec.idMS, idPrefix: rec.idPrefix}
	rec.body.buf = reqBuf
	recorderPool.Put(rec)
}

var (
	_ http.ResponseWriter   = (*recorder)(nil)
	_ http.Flusher          = (*recorder)(nil)
	_ http.Hijacker         = (*recorder)(nil)
	_ io.ReaderFrom         = (*recorder)(nil)
	_ io.StringWriter       = (*recorder)(nil)
	_ callsign.AuthRecorder = (*recorder)(nil)
)

// Header implements http.ResponseWriter.
func (rec *recorder) Header() http.Header { return rec.w.Header() }

// WriteHeader implements http.ResponseWriter. Informational answers (1xx
// but 101) may precede the final status and are not recorded.
func (rec *recorder) WriteHeader(code int) {
	if !rec.wroteHeader && (code < 100 || code >= 200 || code == http.StatusSwitchingProtocols) {
		rec.status, rec.wroteHeader = code, true
	}
	rec.w.WriteHeader(code)
}

func (rec *recorder) implicitHeader() {
	if !rec.wroteHeader {
		rec.status, rec.wroteHeader = http.StatusOK, true
	}
}

// Write implements http.ResponseWriter.
func (rec *recorder) Write(p []byte) (int, error) {
	rec.implicitHeader()
	if rec.c.o.LogBodies {
		rec.logResponse(p)
	}
	n, err := rec.w.Write(p)
	rec.bytes += int64(n)
	return n, err
}

// WriteString implements io.StringWriter, so that io.WriteString does not
// copy s when the server's writer takes strings.
func (rec *recorder) WriteString(s string) (int, error) {
	if rec.c.o.LogBodies {
		return rec.Write([]byte(s))
	}
	rec.implicitHeader()
	var n int
	var err error
	if sw, ok := rec.w.(io.StringWriter); ok {
		n, err = sw.WriteString(s)
	} else {
		n, err = rec.w.Write([]byte(s))
	}
	rec.bytes += int64(n)
	return n, err
}

// ReadFrom implements io.ReaderFrom, so that io.Copy to the response keeps
// the server's sendfile path.
func (rec *recorder) ReadFrom(src io.Reader) (int64, error) {
	rec.implicitHeader()
	if rf, ok := rec.w.(io.ReaderFrom); ok && !rec.c.o.LogBodies {
		n, err := rf.ReadFrom(src)
		rec.bytes += n
		return n, err
	}
	return io.Copy(writerOnly{rec}, src)
}

// writerOnly hides ReadFrom, so that io.Copy does not recurse.
type writerOnly struct{ io.Writer }

func (rec *recorder) logResponse(p []byte) {
	if !rec.respDec {
		rec.respDec = true
		ct := rec.w.Header().Get("Content-Type")
		if ct == "" {
			ct = http.DetectContentType(p) // what the server will send
		}
		rec.respLog = mediaTypeIn(ct, rec.c.bodyTypes)
	}
	if rec.respLog && len(rec.respBuf) < rec.c.maxBody {
		rec.respBuf = append(rec.respBuf, p[:min(len(p), rec.c.maxBody-len(rec.respBuf))]...)
	}
}

// Flush implements http.Flusher: it flushes the server's writer when it
// can (see FlushError).
func (rec *recorder) Flush() { rec.FlushError() }

// FlushError flushes the server's writer and returns
// http.ErrNotSupported when it cannot be flushed. http.ResponseController
// calls it.
func (rec *recorder) FlushError() error {
	rec.implicitHeader()
	return http.NewResponseController(rec.w).Flush()
}

// Hijack implements http.Hijacker by passing the call on; once it
// succeeds the call's status is what was written, else 101 for an Upgrade
// request, and bytes written on the connection are not counted.
func (rec *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(rec.w).Hijack()
	if err == nil {
		rec.hijacked = true
	}
	return conn, brw, err
}

// Push implements http.Pusher when the server's writer does.
func (rec *recorder) Push(target string, opts *http.PushOptions) error {
	if p, ok := rec.w.(http.Pusher); ok {
		return p.Push(target, opts)
	}
	return http.ErrNotSupported
}

// Unwrap returns the server's writer, for http.ResponseController.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.w }

// RecordAuth implements callsign.AuthRecorder. On success it records the
// Principal's verified user, client user, key, scheme, app and request id.
// On a refusal it records the failure code and what identifies the
// credential presented (scheme, key id), never the refused credential's
// user: that user is not verified. The exception is insufficient_scope,
// whose credentials did verify. When called twice (a refused credential
// served as anonymous), the failure code stays.
func (rec *recorder) RecordAuth(p *callsign.Principal, authError string) {
	if authError != "" {
		rec.authError = authError
	}
	if p == nil {
		return
	}
	if p.Scheme != "" {
		rec.scheme = p.Scheme
	}
	if p.KeyID != "" {
		rec.keyID = p.KeyID
	}
	if p.RequestID != "" {
		rec.requestID = p.RequestID
	}
	if p.ClientUserID != "" {
		rec.clientUserID = p.ClientUserID
	}
	if authError == "" || authError == "insufficient_scope" {
		if p.UserID != "" {
			rec.userID = p.UserID
		}
		if p.AppID != "" {
			rec.appID = p.AppID
		}
	}
}

// countingBody counts (and, when logging, keeps the start of) the request
// body the handler reads.
type countingBody struct {
	rc  io.ReadCloser
	n   int64
	log bool
	max int
	buf []byte
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if b.log && n > 0 && len(b.buf) < b.max {
		b.buf = append(b.buf, p[:min(n, b.max-len(b.buf))]...)
	}
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }
