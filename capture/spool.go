package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/callsignhq/callsign/internal/flock"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/callsignhq/callsign"
)

// Segment layout: see "Spool" in the package documentation.
const (
	segMagic  = "CSSPOOL1"
	segHeader = 20
	segSuffix = ".seg"
	// maxSegment bounds the file read back: a payload is a compressed
	// batch of at most MaxBatchBytes.
	maxSegment = segHeader + callsign.MaxBatchBytes + callsign.MaxBatchBytes/8 + 1<<10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Segment decoding errors.
var (
	errSegShort    = errors.New("capture: spool segment: shorter than its header")
	errSegMagic    = errors.New("capture: spool segment: bad magic")
	errSegCount    = errors.New("capture: spool segment: event count out of range")
	errSegLength   = errors.New("capture: spool segment: payload length does not match the file")
	errSegChecksum = errors.New("capture: spool segment: checksum mismatch")
)

// encodeSegment returns the segment of a batch of n events.
func encodeSegment(n int, payload []byte) []byte {
	b := make([]byte, segHeader, segHeader+len(payload))
	copy(b, segMagic)
	binary.BigEndian.PutUint32(b[8:], uint32(n))
	binary.BigEndian.PutUint32(b[12:], uint32(len(payload)))
	binary.BigEndian.PutUint32(b[16:], crc32.Checksum(payload, castagnoli))
	return append(b, payload...)
}

// decodeSegment returns the event count and payload of a segment file's
// content. It never panics, whatever data holds.
func decodeSegment(data []byte) (n int, payload []byte, err error) {
	if len(data) < segHeader {
		return 0, nil, errSegShort
	}
	if string(data[:8]) != segMagic {
		return 0, nil, errSegMagic
	}
	count := binary.BigEndian.Uint32(data[8:])
	if count == 0 || count > callsign.MaxEventsPerBatch {
		return 0, nil, errSegCount
	}
	if uint64(binary.BigEndian.Uint32(data[12:])) != uint64(len(data)-segHeader) {
		return 0, nil, errSegLength
	}
	payload = data[segHeader:]
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(data[16:]) {
		return 0, nil, errSegChecksum
	}
	return int(count), payload, nil
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
func (sp *spool) write(n int, payload []byte) (dropped int, err error) {
	seq := sp.next
	sp.next++
	data := encodeSegment(n, payload)
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
	if _, err := io.ReadFull(f, h[:]); err != nil || string(h[:8]) != segMagic {
		return 0
	}
	return int(min(binary.BigEndian.Uint32(h[8:]), callsign.MaxEventsPerBatch))
}

// oldest reads the oldest segment. A segment that cannot be read or
// decoded is returned with its error; the caller removes it.
func (sp *spool) oldest() (seq uint64, n int, payload []byte, err error) {
	seg := sp.segs[0]
	f, err := os.Open(sp.path(seg.seq, segSuffix))
	if err != nil {
		return seg.seq, 0, nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSegment+1))
	if err != nil {
		return seg.seq, 0, nil, err
	}
	if len(data) > maxSegment {
		return seg.seq, 0, nil, errSegLength
	}
	n, payload, err = decodeSegment(data)
	return seg.seq, n, payload, err
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
