package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/internal/flock"
)

// Segment layout: see "Spool" in the package documentation.
const (
	segHeader = 20
	segSuffix = ".seg"
	// maxSegment bounds the file read back: a payload is a batch of at
	// most MaxBatchBytes, compressed (snappy's worst case is the
	// largest: 32 + n + n/6 bytes).
	maxSegment = segHeader + callsign.MaxBatchBytes + callsign.MaxBatchBytes/6 + 1<<10
)

// segMagics gives the magic of a segment by its payload's encoding; the
// first one is the only one spools written before snappy knew.
var segMagics = [...]struct {
	magic string
	enc   Compression
}{{"CSSPOOL1", CompressionGzip}, {"CSSPOOLS", CompressionSnappy}, {"CSSPOOLI", CompressionNone}}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Segment decoding errors.
var (
	errSegShort    = errors.New("capture: spool segment: shorter than its header")
	errSegMagic    = errors.New("capture: spool segment: bad magic")
	errSegCount    = errors.New("capture: spool segment: event count out of range")
	errSegLength   = errors.New("capture: spool segment: payload length does not match the file")
	errSegChecksum = errors.New("capture: spool segment: checksum mismatch")
)

// encodeSegment returns the segment of a batch. Its encoding must be one
// of segMagics'.
func encodeSegment(b batch) []byte {
	data := make([]byte, segHeader, segHeader+len(b.body))
	for _, m := range segMagics {
		if m.enc == b.enc {
			copy(data, m.magic)
		}
	}
	binary.BigEndian.PutUint32(data[8:], uint32(b.n))
	binary.BigEndian.PutUint32(data[12:], uint32(len(b.body)))
	binary.BigEndian.PutUint32(data[16:], crc32.Checksum(b.body, castagnoli))
	return append(data, b.body...)
}

// segEncoding returns the encoding a segment's magic names, or "".
func segEncoding(magic []byte) Compression {
	for _, m := range segMagics {
		if string(magic) == m.magic {
			return m.enc
		}
	}
	return ""
}

// decodeSegment returns the batch of a segment file's content (its body
// within data). It never panics, whatever data holds.
func decodeSegment(data []byte) (batch, error) {
	if len(data) < segHeader {
		return batch{}, errSegShort
	}
	b := batch{enc: segEncoding(data[:8])}
	if b.enc == "" {
		return batch{}, errSegMagic
	}
	count := binary.BigEndian.Uint32(data[8:])
	if count == 0 || count > callsign.MaxEventsPerBatch {
		return batch{}, errSegCount
	}
	if uint64(binary.BigEndian.Uint32(data[12:])) != uint64(len(data)-segHeader) {
		return batch{}, errSegLength
	}
	b.body = data[segHeader:]
	if crc32.Checksum(b.body, castagnoli) != binary.BigEndian.Uint32(data[16:]) {
		return batch{}, errSegChecksum
	}
	b.n = int(count)
	return b, nil
}

type segInfo struct {
	seq  uint64
	size int64
}

// spool is owned by the Shipper's goroutine; it is not safe for
// concurrent use, and one directory serves one Shipper at a time (locked).
type spool struct {
	lock  *os.File // held while the spool is open (nil where flock is not)
	dir   string
	max   int64
	segs  []segInfo // by seq
	total int64
	next  uint64
}

func openSpool(dir string, maxBytes int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("capture: spool: %w", err)
	}
	// Two Shippers on one directory would replay and delete each other's
	// segments.
	lock, err := flock.TryLock(filepath.Join(dir, "LOCK"))
	if errors.Is(err, flock.ErrLocked) {
		return nil, fmt.Errorf("capture: spool directory %s is in use by another Shipper; give each Shipper its own SpoolDir", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("capture: spool: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		return nil, fmt.Errorf("capture: spool: %w", err)
	}
	sp := &spool{lock: lock, dir: dir, max: maxBytes, next: 1}
	for _, de := range entries {
		name := de.Name()
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(filepath.Join(dir, name)) // a write a crash interrupted
			continue
		}
		seq, ok := parseSegName(name)
		if !ok || !de.Type().IsRegular() {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue
		}
		sp.segs = append(sp.segs, segInfo{seq: seq, size: fi.Size()})
		sp.total += fi.Size()
		sp.next = max(sp.next, seq+1)
	}
	slices.SortFunc(sp.segs, func(a, b segInfo) int {
		if a.seq < b.seq {
			return -1
		}
		if a.seq > b.seq {
			return 1
		}
		return 0
	})
	return sp, nil
}

func parseSegName(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(base) != 20 {
		return 0, false
	}
	seq, err := strconv.ParseUint(base, 10, 64)
	return seq, err == nil
}

func (sp *spool) path(seq uint64, suffix string) string {
	return filepath.Join(sp.dir, fmt.Sprintf("%020d%s", seq, suffix))
}

func (sp *spool) len() int { return len(sp.segs) }

// unlock releases the directory for another Shipper.
func (sp *spool) unlock() {
	if sp.lock != nil {
		sp.lock.Close()
		sp.lock = nil
	}
}

// write stores a batch durably. It returns the number of events of the
// segments deleted to stay within the bound (possibly this one's).
func (sp *spool) write(b batch) (dropped int, err error) {
	seq := sp.next
	sp.next++
	data := encodeSegment(b)
	tmp, final := sp.path(seq, ".tmp"), sp.path(seq, segSuffix)
	if err := writeFileSync(tmp, data); err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("capture: spool: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("capture: spool: %w", err)
	}
	syncDir(sp.dir)
	sp.segs = append(sp.segs, segInfo{seq: seq, size: int64(len(data))})
	sp.total += int64(len(data))
	for sp.total > sp.max && len(sp.segs) > 0 {
		dropped += sp.count(sp.segs[0].seq)
		sp.remove(sp.segs[0].seq)
	}
	return dropped, nil
}

func writeFileSync(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDir makes a rename durable; not every platform can, and a failure
// costs at most the replay of a batch the server already has.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// count returns the number of events of a segment, from its header; 0 if
// it cannot be read.
func (sp *spool) count(seq uint64) int {
	f, err := os.Open(sp.path(seq, segSuffix))
	if err != nil {
		return 0
	}
	defer f.Close()
	var h [segHeader]byte
	if _, err := io.ReadFull(f, h[:]); err != nil || segEncoding(h[:8]) == "" {
		return 0
	}
	return int(min(binary.BigEndian.Uint32(h[8:]), callsign.MaxEventsPerBatch))
}

// oldest reads the oldest segment. A segment that cannot be read or
// decoded is returned with its error; the caller removes it.
func (sp *spool) oldest() (seq uint64, b batch, err error) {
	seg := sp.segs[0]
	f, err := os.Open(sp.path(seg.seq, segSuffix))
	if err != nil {
		return seg.seq, batch{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSegment+1))
	if err != nil {
		return seg.seq, batch{}, err
	}
	if len(data) > maxSegment {
		return seg.seq, batch{}, errSegLength
	}
	b, err = decodeSegment(data)
	return seg.seq, b, err
}

// remove deletes a segment.
func (sp *spool) remove(seq uint64) {
	i := slices.IndexFunc(sp.segs, func(s segInfo) bool { return s.seq == seq })
	if i < 0 {
		return
	}
	os.Remove(sp.path(seq, segSuffix))
	sp.total -= sp.segs[i].size
	sp.segs = slices.Delete(sp.segs, i, i+1)
}
