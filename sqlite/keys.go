package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"sync"
)

// Idempotency keys. event_keys holds the key (app, time, id) of every
// aggregated event; the keys of the events in blocks above the watermark
// are held in memory (pendingKeys), built again from those blocks at Open,
// and written to event_keys by the aggregation that rolls their blocks up,
// sorted, many at a time.
//
// Why not insert each key with its event: batches from many concurrent
// sources cover the same recent seconds, so their keys interleave in
// (app, time, id) order, and each append dirtied a leaf page of the key
// table per event or so (4 KiB of WAL per event; the key inserts took
// ~5 µs per event through the HTTP endpoint against ~1.2 µs for one
// source's monotonic times). An append now only reads the key table, and
// the aggregation writes each leaf page once per run.

// keyHash identifies a key in memory: 128 bits of two independently seeded
// hashes, so that two distinct keys collide with probability ~2⁻¹²⁸.
type keyHash [2]uint64

// pendingKeys is the set of the keys of events appended and not yet
// aggregated, and a filter of the keys in event_keys.
type pendingKeys struct {
	seeds [2]maphash.Seed
	mu    sync.Mutex
	set   map[keyHash]struct{}
	// stored answers for most new keys, without a query, that they are
	// not in event_keys.
	stored storedFilter
}

func (p *pendingKeys) init() {
	p.seeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}
	p.set = make(map[keyHash]struct{})
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
func (p *pendingKeys) add(hs []keyHash) {
	p.mu.Lock()
	for _, h := range hs {
		p.set[h] = struct{}{}
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
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, h := range hs {
		p.stored.add(h, keys[i].t)
		delete(p.set, h)
	}
}

// loadPendingKeys fills db.keys from the blocks above the watermark.
func (db *DB) loadPendingKeys(ctx context.Context) error {
	db.keys.init()
	return db.readTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT seq, app_id, tmin, data FROM event_blocks
			WHERE seq > (SELECT rolled_up FROM event_rollup_state)`)
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
				db.keys.set[db.keys.hash(app, e.time, r.bytesOf(e.id))] = struct{}{}
			}
			if r.err != nil {
				return fmt.Errorf("sqlite: block %d: %w", seq, r.err)
			}
		}
		return rows.Err()
	})
}

// checkKeys marks the events of in whose key is stored, pending or
// aggregated, as duplicates, and adds the keys of the others to the pending
// keys: added, for the caller to remove if the append does not commit.
// dups reports whether any event of in is a duplicate. Only the keys the
// filter of stored keys may hold are looked up in event_keys.
func (db *DB) checkKeys(ctx context.Context, tx *sql.Tx, in []incoming) (dups bool, added []keyHash, err error) {
	var todo []*incoming
	added = make([]keyHash, 0, len(in))
	db.keys.mu.Lock()
	for i := range in {
		x := &in[i]
		if x.dup {
			dups = true // within the batch
			continue
		}
		if _, ok := db.keys.set[x.h]; ok {
			x.dup, dups = true, true
			continue
		}
		if db.keys.stored.mayHold(x.h, x.t) {
			todo = append(todo, x)
		} else {
			added = append(added, x.h)
		}
	}
	db.keys.mu.Unlock()

	type key struct {
		app string
		t   int64
		id  string
	}
	args := make([]any, 0, min(len(todo), insertChunkL)*3)
	for i, size := range [3]int{insertChunkL, insertChunkM, insertChunkS} {
		if len(todo) < size {
			continue
		}
		st := tx.StmtContext(ctx, db.ev.findKeys[i])
		for len(todo) >= size {
			chunk := todo[:size]
			todo = todo[size:]
			args = args[:0]
			for _, x := range chunk {
				args = append(args, x.e.AppID, x.t, x.e.ID)
			}
			rows, err := st.QueryContext(ctx, args...)
			if err != nil {
				return false, nil, err
			}
			found := map[key]bool{}
			for rows.Next() {
				var k key
				if err := rows.Scan(&k.app, &k.t, &k.id); err != nil {
					rows.Close()
					return false, nil, err
				}
				found[k] = true
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return false, nil, err
			}
			for _, x := range chunk {
				if found[key{x.e.AppID, x.t, x.e.ID}] {
					x.dup, dups = true, true
				} else {
					added = append(added, x.h)
				}
			}
		}
	}
	db.keys.add(added)
	return dups, added, nil
}
