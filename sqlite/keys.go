package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"sync"

	"github.com/callsignhq/callsign"
)

// Idempotency keys. event_key_chunks holds the key (app, time, id) of every
// aggregated event, in chunks (migrations/0004_event_key_chunks.sql); the
// keys of the events in blocks above the watermark are held in memory
// (pendingKeys), built again from those blocks at Open, and written to
// event_key_chunks by the aggregation that rolls their blocks up, sorted,
// many at a time. A filter of the stored keys (keyfilter.go) spares the
// lookup of nearly every new key.
//
// Why not insert each key with its event: batches from many concurrent
// sources cover the same recent seconds, so their keys interleave in
// (app, time, id) order, and each append dirtied a leaf page of a key
// table per event or so (4 KiB of WAL per event; the key inserts took
// ~5 µs per event through the HTTP endpoint against ~1.2 µs for one
// source's monotonic times). An append now only reads the stored keys,
// and the aggregation writes a row per chunk.

// Key chunks: up to keyChunkMax keys of one app, sorted by (time, id),
// each within keyChunkSpan µs of the first. The span bounds the index
// range a lookup reads (the chunks whose last key is at most keyChunkSpan
// after the key's time), whatever the rate; at high rates chunks are full,
// at low rates they hold a few keys each.
const (
	keyChunkMax  = 128
	keyChunkSpan = 10_000
)

// errCorruptKeyChunk reports a key chunk that does not decode.
var errCorruptKeyChunk = errors.New("corrupt key chunk")

// appendKeyChunk appends the encoding of keys, of one app, sorted by time
// and at most keyChunkMax, to b: per key, the uvarint time delta from the
// previous key (the first from tmin, its own time: 0), then the uvarint
// length of the id and the id.
func appendKeyChunk(b []byte, keys []eventKey) []byte {
	prev := keys[0].t
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(k.t-prev))
		b = binary.AppendUvarint(b, uint64(len(k.id)))
		b = append(b, k.id...)
		prev = k.t
	}
	return b
}

// decodeKeyChunk calls fn with each key of chunk b, whose first key is at
// tmin, in order; the id is valid during the call only. It returns
// errCorruptKeyChunk, having called fn with the keys before the fault, if
// b does not decode: a truncated varint, an id longer than
// callsign.MaxEventIDLen or past the end, a time that overflows, or more
// than keyChunkMax keys.
func decodeKeyChunk(b []byte, tmin int64, fn func(t int64, id []byte)) error {
	t := tmin
	for n := 0; len(b) > 0; n++ {
		d, k := binary.Uvarint(b)
		if k <= 0 || n == keyChunkMax || d > uint64(math.MaxInt64-t) {
			return errCorruptKeyChunk
		}
		b = b[k:]
		t += int64(d)
		l, k := binary.Uvarint(b)
		if k <= 0 || l > callsign.MaxEventIDLen || l > uint64(len(b)-k) {
			return errCorruptKeyChunk
		}
		fn(t, b[k:k+int(l)])
		b = b[k+int(l):]
	}
	return nil
}

// keyChunks cuts keys, sorted, into chunks and calls fn with each.
func keyChunks(keys []eventKey, fn func(chunk []eventKey) error) error {
	for lo := 0; lo < len(keys); {
		hi := lo + 1
		for hi < len(keys) && hi-lo < keyChunkMax && keys[hi].app == keys[lo].app && uint64(keys[hi].t-keys[lo].t) <= keyChunkSpan { // sorted
			hi++
		}
		if err := fn(keys[lo:hi]); err != nil {
			return err
		}
		lo = hi
	}
	return nil
}

// convertEventKeys is the code of migration 4: it moves the keys of
// event_keys, a row per key, into event_key_chunks, and drops event_keys.
// It streams: at most one chunk of keys is in memory.
func convertEventKeys(ctx context.Context, tx *sql.Tx) error {
	ins, err := tx.PrepareContext(ctx, "INSERT INTO event_key_chunks (app_id, tmin, tmax, keys) VALUES (?, ?, ?, ?)")
	if err != nil {
		return err
	}
	defer ins.Close()
	rows, err := tx.QueryContext(ctx, "SELECT app_id, time, id FROM event_keys ORDER BY app_id, time, id")
	if err != nil {
		return err
	}
	defer rows.Close()
	write := func(c []eventKey) error {
		_, err := ins.ExecContext(ctx, c[0].app, c[0].t, c[len(c)-1].t, appendKeyChunk(nil, c))
		return err
	}
	var keys []eventKey // sorted, less than a full chunk
	for rows.Next() {
		var k eventKey
		if err := rows.Scan(&k.app, &k.t, &k.id); err != nil {
			return err
		}
		// The cut of keyChunks, one key at a time.
		if len(keys) > 0 && (len(keys) == keyChunkMax || k.app != keys[0].app || uint64(k.t-keys[0].t) > keyChunkSpan) {
			if err := write(keys); err != nil {
				return err
			}
			keys = keys[:0]
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(keys) > 0 {
		if err := write(keys); err != nil {
			return err
		}
	}
	rows.Close()
	_, err = tx.ExecContext(ctx, "DROP TABLE event_keys")
	return err
}

// keyHash identifies a key in memory: 128 bits of two independently seeded
// hashes, so that two distinct keys collide with probability ~2⁻¹²⁸.
type keyHash [2]uint64

// pendingKeys is the set of the keys of events appended and not yet
// aggregated, and a filter of the keys in event_keys.
type pendingKeys struct {
	seeds [2]maphash.Seed
	mu    sync.Mutex
	set   map[keyHash]int64 // a key → the seq of its block
	// stored answers for most new keys, without a query, that they are
	// not stored.
	stored storedFilter
	// mark is the watermark the set and the filter are up to date with:
	// every key of a block at or below it is stored (in the filter, once
	// it is ready), every key of a block of this process above it is in
	// the set. A watermark that differs means another process aggregated:
	// see resyncKeys.
	mark int64
}

func (p *pendingKeys) init() {
	p.seeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}
	p.set = make(map[keyHash]int64)
	p.stored.reset()
}

func (p *pendingKeys) hash(app string, t int64, id []byte) keyHash {
	var tb [8]byte
	binary.LittleEndian.PutUint64(tb[:], uint64(t))
	var h keyHash
	for i, seed := range p.seeds {
		var m maphash.Hash
		m.SetSeed(seed)
		m.WriteString(app)
		m.WriteByte(0)
		m.Write(tb[:])
		m.Write(id)
		h[i] = m.Sum64()
	}
	return h
}

// add adds hs to the set.
func (p *pendingKeys) add(hs []keyHash, seqs []int64) {
	p.mu.Lock()
	for i, h := range hs {
		p.set[h] = seqs[i]
	}
	p.mu.Unlock()
}

// remove takes hs out of the set.
func (p *pendingKeys) remove(hs []keyHash) {
	p.mu.Lock()
	for _, h := range hs {
		delete(p.set, h)
	}
	p.mu.Unlock()
}

// aggregated moves keys, now committed to event_keys, from the set to the
// filter of stored keys.
func (p *pendingKeys) aggregated(keys []eventKey) {
	hs := make([]keyHash, len(keys))
	for i, k := range keys {
		hs[i] = p.hash(k.app, k.t, []byte(k.id))
	}
	// A few thousand at a time: appends check their keys under p.mu, on
	// the writer, in between.
	const step = 4096
	for lo := 0; lo < len(hs); lo += step {
		p.mu.Lock()
		for i := lo; i < min(lo+step, len(hs)); i++ {
			p.stored.add(hs[i], keys[i].t)
			delete(p.set, hs[i])
		}
		p.mu.Unlock()
	}
}

// loadPendingKeys fills db.keys from the blocks above the watermark.
func (db *DB) loadPendingKeys(ctx context.Context) error {
	db.keys.init()
	return db.readTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, "SELECT rolled_up FROM event_rollup_state").Scan(&db.keys.mark); err != nil {
			return err
		}
		return db.blockKeys(ctx, tx, db.keys.mark, math.MaxInt64, func(h keyHash, seq int64) { db.keys.set[h] = seq })
	})
}

// blockKeys calls fn with the hash of the key of every event in the
// blocks with lo < seq <= hi, and the seq of its block.
func (db *DB) blockKeys(ctx context.Context, tx *sql.Tx, lo, hi int64, fn func(h keyHash, seq int64)) error {
	rows, err := tx.QueryContext(ctx, "SELECT seq, app_id, tmin, data FROM event_blocks WHERE seq > ? AND seq <= ?", lo, hi)
	if err != nil {
		return err
	}
	defer rows.Close()
	var r blockReader
	var e blockEvent
	for rows.Next() {
		var seq, tmin int64
		var app string
		var data sql.RawBytes
		if err := rows.Scan(&seq, &app, &tmin, &data); err != nil {
			return err
		}
		if err := r.reset(data, tmin); err != nil {
			return fmt.Errorf("sqlite: block %d: %w", seq, err)
		}
		for r.next(&e) {
			fn(db.keys.hash(app, e.time, r.bytesOf(e.id)), seq)
		}
		if r.err != nil {
			return fmt.Errorf("sqlite: block %d: %w", seq, r.err)
		}
	}
	return rows.Err()
}

// checkKeys marks the events of in whose key is stored, pending or
// aggregated, as duplicates, and adds the keys of the others to the pending
// keys: added, for the caller to remove if the append does not commit.
// dups reports whether any event of in is a duplicate. Only the keys the
// filter of stored keys may hold are looked up in event_key_chunks.
func (db *DB) checkKeys(ctx context.Context, tx *sql.Tx, in []incoming, blocks []plannedBlock) (dups bool, added []keyHash, err error) {
	var todo []*incoming
	added = make([]keyHash, 0, len(in))
	seqs := make([]int64, 0, len(in))
	var w int64
	if err := tx.QueryRowContext(ctx, "SELECT rolled_up FROM event_rollup_state").Scan(&w); err != nil {
		return false, nil, err
	}
	db.keys.mu.Lock()
	// Another process aggregated since: look every key up until this
	// one's aggregation resyncs (woken below).
	stale := w != db.keys.mark
	for i := range in {
		x := &in[i]
		if x.dup {
			dups = true // within the batch
			continue
		}
		// A key of a block above the watermark is pending: a duplicate.
		// One of a block at or below it was aggregated (elsewhere, when
		// stale) and may have been deleted since: looked up.
		seq, ok := db.keys.set[x.h]
		if ok && seq > w {
			x.dup, dups = true, true
			continue
		}
		if ok || stale || db.keys.stored.mayHold(x.h, x.t) {
			todo = append(todo, x)
		} else {
			added, seqs = append(added, x.h), append(seqs, blocks[x.block].seq)
		}
	}
	db.keys.mu.Unlock()
	if stale {
		select {
		case db.roll.kick <- struct{}{}:
		default:
		}
	}

	if len(todo) > 0 {
		// The chunks that may hold a key, each decoded once.
		st := tx.StmtContext(ctx, db.ev.findKeyChunks)
		read := map[int64]bool{}
		stored := map[eventKey]bool{}
		// todo is in (app, time) order, as the batch: keys within
		// keyChunkSpan of the first of a run share one query.
		for lo := 0; lo < len(todo); {
			first := todo[lo]
			hi := lo + 1
			for hi < len(todo) && todo[hi].e.AppID == first.e.AppID && uint64(todo[hi].t-first.t) <= keyChunkSpan {
				hi++
			}
			if err := readKeyChunks(ctx, st, first.e.AppID, first.t, todo[hi-1].t, read, stored); err != nil {
				return false, nil, err
			}
			lo = hi
		}
		for _, x := range todo {
			if stored[eventKey{x.e.AppID, x.t, x.e.ID}] {
				x.dup, dups = true, true
			} else {
				added, seqs = append(added, x.h), append(seqs, blocks[x.block].seq)
			}
		}
	}
	db.keys.add(added, seqs)
	return dups, added, nil
}

// findKeyChunksSQL selects the chunks of app ?1 that may hold a key at a
// time in [?2, ?4]: their tmax in [?2, ?3], ?3 being ?4 + keyChunkSpan,
// their tmin <= ?4.
const findKeyChunksSQL = "SELECT id, tmin, keys FROM event_key_chunks WHERE app_id = ?1 AND tmax >= ?2 AND tmax <= ?3 AND tmin <= ?4"

// readKeyChunks adds to stored the keys of the chunks of app that may hold
// a key at a time in [t1, t2], unless read already (read is keyed by chunk
// id).
func readKeyChunks(ctx context.Context, st *sql.Stmt, app string, t1, t2 int64, read map[int64]bool, stored map[eventKey]bool) error {
	rows, err := st.QueryContext(ctx, app, t1, sat(t2, keyChunkSpan), t2)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, tmin int64
		var b sql.RawBytes
		if err := rows.Scan(&id, &tmin, &b); err != nil {
			return err
		}
		if read[id] {
			continue
		}
		read[id] = true
		err := decodeKeyChunk(b, tmin, func(t int64, kid []byte) {
			stored[eventKey{app, t, string(kid)}] = true
		})
		if err != nil {
			return fmt.Errorf("sqlite: key chunk %d: %w", id, err)
		}
	}
	return rows.Err()
}

// resyncKeys brings the keys in memory up to the watermark from, as an
// aggregation of this process read it. When another process aggregated
// since the mark (from differs), the filter of stored keys lacks the keys
// that process stored, and the pending set holds the keys of the blocks it
// aggregated: the filter is built again, those keys leave the set, and the
// pending count is read again. Callers hold db.roll.mu.
func (db *DB) resyncKeys(ctx context.Context, from int64) error {
	db.keys.mu.Lock()
	old := db.keys.mark
	db.keys.mu.Unlock()
	if old == from {
		return nil
	}
	db.rebuildStoredFilter() // not ready until built: every key is looked up
	if from > old {
		var hs []keyHash
		err := db.readTx(ctx, func(tx *sql.Tx) error {
			return db.blockKeys(ctx, tx, old, from, func(h keyHash, _ int64) { hs = append(hs, h) })
		})
		if err != nil {
			return fmt.Errorf("sqlite: resync event keys: %w", err)
		}
		db.keys.remove(hs)
	}
	var pending int64
	if err := db.ev.pendingCount.QueryRowContext(ctx).Scan(&pending); err != nil {
		return fmt.Errorf("sqlite: count pending events: %w", err)
	}
	db.roll.pending.Store(pending)
	db.keys.mu.Lock()
	db.keys.mark = from
	db.keys.mu.Unlock()
	return nil
}
