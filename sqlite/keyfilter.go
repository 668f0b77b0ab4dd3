package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"

	"github.com/bits-and-blooms/bloom/v3"
)

// The filter of stored keys. Looking each new event's key up in event_keys
// took a third of the writer's time (~1.5 µs per event: a query per 64
// events, and a B-tree probe per key); nearly every key is new. A Bloom
// filter of the keys in event_keys answers "not stored" for all but about
// 1% of the new keys; those, and every retried event, are looked up.
//
// The filter is built from event_keys in the background after Open (until
// then every key is looked up), and the aggregation adds the keys it
// commits. It is split by UTC day of the event time, each day a chain of
// filters of growing capacity, so that a day of few events costs little
// and the days retention emptied can be dropped. It holds about 1.2 bytes
// per stored event; past storedFilterMaxBytes the oldest days are dropped,
// and their keys looked up again.

const (
	// storedFilterFP is the false-positive rate of each filter.
	storedFilterFP = 0.01
	// storedFilterFirst and storedFilterMax are the capacities (in keys)
	// of the first filter of a day and of the largest.
	storedFilterFirst = 1 << 16
	storedFilterMax   = 1 << 20
	// storedFilterMaxBytes bounds the filters' memory: ~128 MiB, about 110
	// million stored events.
	storedFilterMaxBytes = 128 << 20
	dayMicros            = 86400e6
)

// storedFilter is a filter of the keys in event_keys. Its owner
// (pendingKeys) guards it with its mutex.
type storedFilter struct {
	// ready: every key in event_keys has been added (the build finished).
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
}

// reset empties the filter, not ready until a build finishes.
func (f *storedFilter) reset() {
	f.ready = false
	f.gen++
	f.days = map[int64]*dayFilter{}
	f.bytes, f.maxBytes = 0, storedFilterMaxBytes
	f.below = -1 << 62
}

// mayHold reports whether key h, of an event at t µs, may be in event_keys.
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
		d = &dayFilter{}
		f.days[day] = d
	}
	if d.n == d.limit {
		d.limit = min(uint(storedFilterFirst)<<len(d.chain), storedFilterMax)
		bf := bloom.NewWithEstimates(d.limit, storedFilterFP)
		d.chain = append(d.chain, bf)
		d.n = 0
		f.bytes += int(bf.Cap() / 8)
		for f.bytes > f.maxBytes && len(f.days) > 1 {
			f.dropOldest()
		}
		if day < f.below {
			return // dropped itself: the oldest day
		}
	}
	b := h.bytes()
	d.chain[len(d.chain)-1].Add(b[:])
	d.n++
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
		_ = db.buildStoredFilter(db.bgCtx, gen)
	})
}

// buildStoredFilter adds every key in event_keys to the filter, and marks
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
		rows, err := tx.QueryContext(ctx, "SELECT app_id, time, id FROM event_keys")
		if err != nil {
			return err
		}
		defer rows.Close()
		var app string
		var t int64
		var id sql.RawBytes
		for rows.Next() {
			if err := rows.Scan(&app, &t, &id); err != nil {
				return err
			}
			buf = append(buf, pending{p.hash(app, t, id), t})
			if len(buf) == batch && !flush() {
				return nil
			}
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
