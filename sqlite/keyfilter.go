package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"

	"github.com/bits-and-blooms/bloom/v3"
)

// The filter of stored keys. Looking each new event's key up in the key
// table took a third of the writer's time (~1.5 µs per event, with a row
// per key: a query per 64 events, and a B-tree probe per key), and nearly
// every key is new. A Bloom filter of the stored keys answers "not stored"
// for all but about 1% of the new keys; those, and every retried event, are
// looked up.
//
// The filter is built from event_key_chunks in the background after Open
// (until then every key is looked up), and the aggregation adds the keys
// it commits. It is split by UTC day of the event time, so that the memory
// bound drops whole old days. A day's first filter is sized for the events
// the store holds of that day (at a build) or for as many as the day
// before it had; when it fills up, another of twice its capacity follows
// it, so that a key is tested against few filters. The filters hold about
// 1.2 bytes per stored event; past storedFilterMaxBytes the oldest days are
// dropped, and their keys looked up again. Keys deleted by retention stay
// in the filter: a lookup answers for them.

const (
	// storedFilterFP is the false-positive rate of each filter.
	storedFilterFP = 0.01
	// storedFilterFirst is the least capacity (in keys) of a filter, and
	// storedFilterNew that of the first filter of a day when no day
	// before it is held: ~300 KB.
	storedFilterFirst = 1 << 16
	storedFilterNew   = 1 << 18
	// storedFilterMaxBytes bounds the filters' memory: 128 MiB, about 110
	// million stored events.
	storedFilterMaxBytes = 128 << 20
	dayMicros            = 86400e6
)

// storedFilter is a filter of the keys in event_key_chunks. Its owner
// (pendingKeys) guards it with its mutex.
type storedFilter struct {
	// ready: every stored key has been added (the build finished).
	ready bool
	// gen counts resets: a build started before one stops.
	gen   int
	days  map[int64]*dayFilter
	bytes int
	// maxBytes bounds bytes: storedFilterMaxBytes.
	maxBytes int
	// below is the first day still held: older days were dropped to bound
	// the memory, and any of their keys may be stored.
	below int64
}

// dayFilter holds the keys of one day, in filters of growing capacity; the
// last one takes the new keys.
type dayFilter struct {
	chain    []*bloom.BloomFilter
	n, limit uint // keys in the last filter, and its capacity
	total    uint // keys added
}

// reset empties the filter, not ready until a build finishes.
func (f *storedFilter) reset() {
	f.ready = false
	f.gen++
	f.days = map[int64]*dayFilter{}
	f.bytes, f.maxBytes = 0, storedFilterMaxBytes
	f.below = -1 << 62
}

// mayHold reports whether key h, of an event at t µs, may be stored.
func (f *storedFilter) mayHold(h keyHash, t int64) bool {
	day := floorDiv(t, dayMicros)
	if !f.ready || day < f.below {
		return true
	}
	d := f.days[day]
	if d == nil {
		return false
	}
	b := h.bytes()
	for _, bf := range d.chain {
		if bf.Test(b[:]) {
			return true
		}
	}
	return false
}

// add adds key h, of an event at t µs.
func (f *storedFilter) add(h keyHash, t int64) {
	day := floorDiv(t, dayMicros)
	if day < f.below {
		return
	}
	d := f.days[day]
	if d == nil {
		d = f.newDay(day, 0)
		if d == nil {
			return // dropped itself: the oldest day
		}
	}
	if d.n == d.limit && !f.grow(day, d, 2*d.limit) {
		return // dropped itself: the oldest day
	}
	b := h.bytes()
	d.chain[len(d.chain)-1].Add(b[:])
	d.n++
	d.total++
}

// newDay adds day's filter, sized for n keys, or for as many as the latest
// day before it has when n is 0; nil if it was dropped at once to bound
// the memory (it is the oldest day).
func (f *storedFilter) newDay(day int64, n uint) *dayFilter {
	if n == 0 {
		latest := int64(-1 << 63)
		for dd, d := range f.days {
			if dd < day && dd > latest {
				latest, n = dd, d.total
			}
		}
	}
	if n == 0 {
		n = storedFilterNew
	}
	d := &dayFilter{}
	f.days[day] = d
	if !f.grow(day, d, n+n/8) {
		return nil
	}
	return d
}

// grow starts a new filter of capacity n (at least storedFilterFirst, at
// most half the memory bound) in day's chain d, and drops the oldest days
// past the memory bound; false if day itself was dropped.
func (f *storedFilter) grow(day int64, d *dayFilter, n uint) bool {
	d.limit = min(max(n, storedFilterFirst), uint(f.maxBytes)*8/10/2)
	bf := bloom.NewWithEstimates(d.limit, storedFilterFP)
	d.chain = append(d.chain, bf)
	d.n = 0
	f.bytes += int(bf.Cap() / 8)
	for f.bytes > f.maxBytes && len(f.days) > 0 {
		f.dropOldest() // perhaps day itself, when it alone is past the bound
	}
	return day >= f.below
}

// dropOldest drops the oldest day held.
func (f *storedFilter) dropOldest() {
	oldest := int64(1<<63 - 1)
	for day := range f.days {
		oldest = min(oldest, day)
	}
	for _, bf := range f.days[oldest].chain {
		f.bytes -= int(bf.Cap() / 8)
	}
	delete(f.days, oldest)
	f.below = oldest + 1
}

func (h keyHash) bytes() [16]byte {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], h[0])
	binary.LittleEndian.PutUint64(b[8:], h[1])
	return b
}

// rebuildStoredFilter empties the filter of stored keys and builds it
// again in the background: at Open, and when another process aggregated
// events (its keys are not in the filter).
func (db *DB) rebuildStoredFilter() {
	db.keys.mu.Lock()
	db.keys.stored.reset()
	gen := db.keys.stored.gen
	db.keys.mu.Unlock()
	db.bg.Go(func() {
		// On failure the filter stays not ready: every key is looked up.
		if err := db.buildStoredFilter(db.bgCtx, gen); db.bgCtx.Err() == nil {
			db.setFailing(&db.failing.filter, err)
		}
	})
}

// buildStoredFilter adds every stored key to the filter, and marks
// it ready, unless it is reset (past generation gen) meanwhile or ctx
// ends. The aggregations that commit meanwhile add their keys themselves.
func (db *DB) buildStoredFilter(ctx context.Context, gen int) error {
	p := &db.keys
	const batch = 4096
	type pending struct {
		h keyHash
		t int64
	}
	buf := make([]pending, 0, batch)
	// flush adds buf to the filter; false when the filter was reset.
	flush := func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.stored.gen != gen {
			return false
		}
		for _, k := range buf {
			p.stored.add(k.h, k.t)
		}
		buf = buf[:0]
		return true
	}
	err := db.readTx(ctx, func(tx *sql.Tx) error {
		// Each day's first filter sized for the events of that day.
		rows, err := tx.QueryContext(ctx, "SELECT tmin / 86400000000, sum(n) FROM event_blocks GROUP BY 1")
		if err != nil {
			return err
		}
		sizes := map[int64]uint{}
		for rows.Next() {
			var day, n int64
			if err := rows.Scan(&day, &n); err != nil {
				rows.Close()
				return err
			}
			sizes[day] = uint(max(n, 0))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		p.mu.Lock()
		if p.stored.gen == gen {
			for day, n := range sizes {
				if p.stored.days[day] == nil && day >= p.stored.below {
					p.stored.newDay(day, n)
				}
			}
		}
		p.mu.Unlock()

		rows, err = tx.QueryContext(ctx, "SELECT id, app_id, tmin, keys FROM event_key_chunks")
		if err != nil {
			return err
		}
		defer rows.Close()
		var app string
		var id, tmin int64
		var keys sql.RawBytes
		reset := false
		for rows.Next() && !reset {
			if err := rows.Scan(&id, &app, &tmin, &keys); err != nil {
				return err
			}
			err := decodeKeyChunk(keys, tmin, func(t int64, kid []byte) {
				buf = append(buf, pending{p.hash(app, t, kid), t})
				if len(buf) >= batch && !reset {
					reset = !flush()
				}
			})
			if err != nil {
				return fmt.Errorf("key chunk %d: %w", id, err)
			}
		}
		if reset {
			return nil
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("sqlite: build the filter of stored event keys: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stored.gen == gen {
		for _, k := range buf {
			p.stored.add(k.h, k.t)
		}
		p.stored.ready = true
	}
	return nil
}
