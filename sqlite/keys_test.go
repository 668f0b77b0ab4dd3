package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
)

// keyChunks cuts sorted keys at an app change, at keyChunkMax keys and
// past keyChunkSpan from a chunk's first key; each chunk decodes to its
// keys.
func TestKeyChunks(t *testing.T) {
	var keys []eventKey
	for i := range 300 { // 300 keys 10 µs apart: 3 chunks by count
		keys = append(keys, eventKey{"a", 1_000_000 + int64(i)*10, fmt.Sprint("e", i)})
	}
	keys = append(keys,
		eventKey{"a", 1_000_000 + 300*10 + keyChunkSpan*3, "late"}, // its own chunk: past the span
		eventKey{"b", 5, "x"}, eventKey{"b", 5, "y"}, eventKey{"b", 5 + keyChunkSpan, "z"}) // another app: one chunk
	var got [][]eventKey
	err := keyChunks(keys, func(c []eventKey) error {
		b := appendKeyChunk(nil, c)
		var dec []eventKey
		if err := decodeKeyChunk(b, c[0].t, func(t int64, id []byte) { dec = append(dec, eventKey{c[0].app, t, string(id)}) }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(dec, c) {
			t.Fatalf("chunk decodes to %v, want %v", dec, c)
		}
		got = append(got, dec)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, c := range got {
		sizes = append(sizes, len(c))
	}
	if want := []int{128, 128, 44, 1, 3}; !slices.Equal(sizes, want) {
		t.Errorf("chunk sizes %v, want %v", sizes, want)
	}
}

func FuzzDecodeKeyChunk(f *testing.F) {
	f.Add(appendKeyChunk(nil, []eventKey{{"a", 10, "e1"}, {"a", 12, "e2"}}), int64(10))
	f.Add([]byte{0x80}, int64(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0}, int64(math.MaxInt64-5))
	f.Add([]byte{0, 65}, int64(0))
	f.Fuzz(func(t *testing.T, b []byte, tmin int64) {
		var keys []eventKey
		prev := tmin
		err := decodeKeyChunk(b, tmin, func(kt int64, id []byte) {
			if kt < prev || len(id) > callsign.MaxEventIDLen {
				t.Fatalf("key at %d after %d, id of %d bytes", kt, prev, len(id))
			}
			prev = kt
			keys = append(keys, eventKey{"a", kt, string(id)})
		})
		if err != nil || len(keys) == 0 {
			return
		}
		// What decodes re-encodes to the same keys (the first key's time is
		// the chunk's tmin when written: re-encode from it).
		var again []eventKey
		if err := decodeKeyChunk(appendKeyChunk(nil, keys), keys[0].t, func(kt int64, id []byte) {
			again = append(again, eventKey{"a", kt, string(id)})
		}); err != nil || !slices.Equal(again, keys) {
			t.Fatalf("re-encoded: %v, %v; want %v", again, err, keys)
		}
	})
}

// Retention deletes the keys of the events it deletes, and only those: a
// key chunk that straddles the cutoff keeps its newer keys. Sent again, the
// deleted events are new, the others duplicates.
func TestRetentionDeletesKeys(t *testing.T) {
	ctx := t.Context()
	db := openTestDB(t)
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	var evs []*callsign.Event
	for i := range 40 { // 100 µs apart: chunks hold ~keyChunkSpan/100 keys, one straddles the cut
		evs = append(evs, &callsign.Event{AppID: "app", ID: fmt.Sprint("e", i), Time: t0.Add(time.Duration(i) * 100 * time.Microsecond)})
	}
	for i := range 300 { // many older chunks, whole ones
		evs = append(evs, &callsign.Event{AppID: "app", ID: fmt.Sprint("old", i), Time: t0.Add(-time.Hour + time.Duration(i)*20*time.Millisecond)})
	}
	evs = append(evs, &callsign.Event{AppID: "other", ID: "e0", Time: t0}) // another app's: kept
	if _, err := db.AppendEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := db.rollUp(ctx, 1, rollupChunk); err != nil {
		t.Fatal(err)
	}
	var straddling int
	cut := t0.Add(2050 * time.Microsecond) // e21 is the first kept
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.r.QueryRowContext(ctx, "SELECT count(*) FROM event_key_chunks WHERE app_id = 'app' AND tmin < ? AND tmax >= ?", cut.UnixMicro(), cut.UnixMicro()).Scan(&straddling))
	if straddling != 1 {
		t.Fatalf("%d key chunks straddle the cutoff, want 1 for this test", straddling)
	}
	if n, err := db.DeleteEventsBefore(ctx, "app", cut, time.Time{}); err != nil || n != 321 {
		t.Fatalf("DeleteEventsBefore = %d, %v; want 321", n, err)
	}
	// Every stored key, decoded.
	var left []eventKey
	rows, err := db.r.QueryContext(ctx, "SELECT app_id, tmin, keys FROM event_key_chunks ORDER BY app_id, tmin")
	must(err)
	for rows.Next() {
		var app string
		var tmin int64
		var b []byte
		must(rows.Scan(&app, &tmin, &b))
		must(decodeKeyChunk(b, tmin, func(kt int64, id []byte) { left = append(left, eventKey{app, kt, string(id)}) }))
	}
	must(rows.Err())
	rows.Close()
	var want []eventKey
	for _, e := range evs[21:40] {
		want = append(want, eventKey{"app", e.Time.UnixMicro(), e.ID})
	}
	want = append(want, eventKey{"other", t0.UnixMicro(), "e0"})
	if !slices.Equal(left, want) {
		t.Errorf("keys left after retention:\n%v\nwant\n%v", left, want)
	}
	// Sent again: the 321 deleted are new (the filter of stored keys may
	// still hold them: they are looked up), the 20 kept are duplicates.
	res, err := db.AppendEvents(ctx, evs)
	if err != nil || res.Accepted != 321 || res.Duplicates != 20 {
		t.Errorf("sent again after retention: %+v, %v; want 321 accepted, 20 duplicates", res, err)
	}
}

// Migration 4 moves a store's event_keys rows into key chunks and drops
// the table: events stored before it are still duplicates after it.
func TestMigrateEventKeys(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	db, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	var evs []*callsign.Event
	for i := range 500 {
		evs = append(evs, &callsign.Event{AppID: []string{"a", "b"}[i%2], ID: fmt.Sprint("e", i), Time: t0.Add(time.Duration(i*i) * 10 * time.Microsecond)})
	}
	if _, err := db.AppendEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := db.rollUp(ctx, 1, rollupChunk); err != nil {
		t.Fatal(err)
	}
	// Back to the layout of version 3: the keys a row each in event_keys.
	err = db.tx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{
			"CREATE TABLE event_keys (app_id TEXT NOT NULL, time INTEGER NOT NULL, id TEXT NOT NULL, PRIMARY KEY (app_id, time, id)) STRICT, WITHOUT ROWID",
			"DROP TABLE event_key_chunks",
			"DELETE FROM sqlite_sequence WHERE name = 'event_key_chunks'",
			"ALTER TABLE event_rollup_state DROP COLUMN rollup_deletes", // migration 5's
			"PRAGMA user_version = 3",
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		for _, e := range evs {
			if _, err := tx.ExecContext(ctx, "INSERT INTO event_keys VALUES (?, ?, ?)", e.AppID, e.Time.UnixMicro(), e.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables int
	if err := db.r.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE name = 'event_keys'").Scan(&tables); err != nil || tables != 0 {
		t.Errorf("event_keys still there (%d), %v", tables, err)
	}
	var n int
	err = forEachKeyChunk(ctx, db, func(string, int64) { n++ })
	if err != nil || n != len(evs) {
		t.Errorf("%d keys in chunks, %v; want %d", n, err, len(evs))
	}
	if res, err := db.AppendEvents(ctx, evs); err != nil || res.Duplicates != len(evs) {
		t.Errorf("sent again after the migration: %+v, %v; want all duplicates", res, err)
	}
}

func forEachKeyChunk(ctx context.Context, db *DB, fn func(app string, t int64)) error {
	rows, err := db.r.QueryContext(ctx, "SELECT app_id, tmin, keys FROM event_key_chunks")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var app string
		var tmin int64
		var b []byte
		if err := rows.Scan(&app, &tmin, &b); err != nil {
			return err
		}
		if err := decodeKeyChunk(b, tmin, func(kt int64, _ []byte) { fn(app, kt) }); err != nil {
			return err
		}
	}
	return rows.Err()
}
