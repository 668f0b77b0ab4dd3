package enginebench

import (
	"database/sql"
	"sync"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"
)

var sqlEngines = []sqlEngine{moderncEngine, mattnEngine, duckEngine}

// ---- cache of read-only fixtures, shared across b.N ramp-up and -count runs ----

var (
	cacheMu sync.Mutex
	cache   = map[string]any{}
	closers []func() error
)

func cached[T any](key string, mk func() (T, func() error)) T {
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if v, ok := cache[key]; ok {
		return v.(T)
	}
	v, c := mk()
	cache[key] = v
	closers = append(closers, c)
	return v
}

func closeCached() {
	for _, c := range closers {
		c()
	}
}

// ---- A: secret lookup by hash ----

const lookupSQL = `SELECT id, app_id, revoked_at FROM secrets WHERE hash = ?`

func secretsDB(b *testing.B, e sqlEngine) *sql.DB {
	return cached("A/"+e.name, func() (*sql.DB, func() error) {
		db := e.open(b, newDir(b, "A-"+e.name))
		mustExec(b, db, secretsDDL)
		seedSecrets(b, db)
		return db, db.Close
	})
}

func secretsBolt(b *testing.B) *bolt.DB {
	return cached("A/bbolt", func() (*bolt.DB, func() error) {
		db := openBolt(b, newDir(b, "A-bbolt"))
		seedBolt(b, db)
		return db, db.Close
	})
}

func lookupOnce(b *testing.B, st *sql.Stmt, h []byte) {
	var id, app string
	var rev sql.NullInt64
	if err := st.QueryRow(h).Scan(&id, &app, &rev); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkA_SecretLookup(b *testing.B) {
	for _, e := range sqlEngines {
		b.Run(e.name, func(b *testing.B) {
			db := secretsDB(b, e)
			st, err := db.Prepare(lookupSQL)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				lookupOnce(b, st, lookupOrder[i%nSecrets])
			}
		})
	}
	b.Run("bbolt", func(b *testing.B) {
		db := secretsBolt(b)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, _, ok, err := boltLookup(db, lookupOrder[i%nSecrets]); err != nil || !ok {
				b.Fatal("lookup failed", err)
			}
		}
	})
}

func BenchmarkA_SecretLookupParallel(b *testing.B) {
	for _, e := range sqlEngines {
		b.Run(e.name, func(b *testing.B) {
			db := secretsDB(b, e)
			st, err := db.Prepare(lookupSQL)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			var off atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(off.Add(1)) * 7919
				for pb.Next() {
					lookupOnce(b, st, lookupOrder[i%nSecrets])
					i++
				}
			})
		})
	}
	b.Run("bbolt", func(b *testing.B) {
		db := secretsBolt(b)
		var off atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := int(off.Add(1)) * 7919
			for pb.Next() {
				if _, _, ok, err := boltLookup(db, lookupOrder[i%nSecrets]); err != nil || !ok {
					b.Error("lookup failed", err)
					return
				}
				i++
			}
		})
	})
}

// ---- B: insert one row per durable transaction (10k rows already present) ----

func BenchmarkB_InsertOneTx(b *testing.B) {
	for _, e := range sqlEngines {
		b.Run(e.name, func(b *testing.B) {
			db := e.open(b, newDir(b, "B-"+e.name))
			defer db.Close()
			mustExec(b, db, secretsDDL)
			seedSecrets(b, db)
			st, err := db.Prepare(insertSecret)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s := makeSecret(nSecrets + i)
				tx, err := db.Begin()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := tx.Stmt(st).Exec(s.id, s.appID, s.hash, s.revokedAt); err != nil {
					b.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("bbolt", func(b *testing.B) {
		db := openBolt(b, newDir(b, "B-bbolt"))
		defer db.Close()
		seedBolt(b, db)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			s := makeSecret(nSecrets + i)
			if err := db.Update(func(tx *bolt.Tx) error { return boltPutSecret(tx, s) }); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// ---- C: bulk insert, 1,000 event rows per durable transaction ----

const batch = 1000

func reportRows(b *testing.B) {
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkC_BulkInsert1000(b *testing.B) {
	for _, e := range []sqlEngine{moderncEngine, mattnEngine} {
		b.Run(e.name, func(b *testing.B) {
			db := e.open(b, newDir(b, "C-"+e.name))
			defer db.Close()
			mustExec(b, db, e.eventsDDL())
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				insertEventsTx(b, db, uint64(i*batch), batch)
			}
			reportRows(b)
		})
	}
	b.Run("duckdb-appender", func(b *testing.B) {
		db := duckEngine.open(b, newDir(b, "C-duckdb"))
		defer db.Close()
		mustExec(b, db, duckEngine.eventsDDL())
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			appendEvents(b, db, uint64(i*batch), batch)
		}
		reportRows(b)
	})
	b.Run("duckdb-prepared", func(b *testing.B) { // same INSERT path as SQLite, for reference
		db := duckEngine.open(b, newDir(b, "C-duckdbp"))
		defer db.Close()
		mustExec(b, db, duckEngine.eventsDDL())
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			insertEventsTx(b, db, uint64(i*batch), batch)
		}
		reportRows(b)
	})
	b.Run("bbolt", func(b *testing.B) {
		db := openBolt(b, newDir(b, "C-bbolt"))
		defer db.Close()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			first := uint64(i * batch)
			err := db.Update(func(tx *bolt.Tx) error {
				bk := tx.Bucket(bEvents)
				for j := uint64(0); j < batch; j++ {
					ev := eventAt(first + j)
					if err := bk.Put([]byte(ev.id), encodeEvent(make([]byte, 0, 96), ev)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		reportRows(b)
	})
}

// ---- D: aggregate over 1,000,000 events ----

const (
	nEvents = 1_000_000
	aggSQL  = `SELECT route, count(*), sum(CASE WHEN status >= 500 THEN 1 ELSE 0 END) FROM events GROUP BY route`
)

func eventsDB(b *testing.B, e sqlEngine) *sql.DB {
	return cached("D/"+e.name, func() (*sql.DB, func() error) {
		db := e.open(b, newDir(b, "D-"+e.name))
		mustExec(b, db, e.eventsDDL())
		const chunk = 10_000
		for f := 0; f < nEvents; f += chunk {
			if e.isSQLite() {
				insertEventsTx(b, db, uint64(f), chunk)
			} else {
				appendEvents(b, db, uint64(f), chunk)
			}
		}
		if e.isSQLite() {
			mustExec(b, db, "PRAGMA wal_checkpoint(TRUNCATE)")
		} else {
			mustExec(b, db, "CHECKPOINT")
		}
		return db, db.Close
	})
}

func BenchmarkD_AggregateByRoute(b *testing.B) {
	for _, e := range sqlEngines {
		b.Run(e.name, func(b *testing.B) {
			db := eventsDB(b, e)
			st, err := db.Prepare(aggSQL)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				rows, err := st.Query()
				if err != nil {
					b.Fatal(err)
				}
				var groups, total, errs int64
				for rows.Next() {
					var route string
					var c, e5 int64
					if err := rows.Scan(&route, &c, &e5); err != nil {
						b.Fatal(err)
					}
					groups++
					total += c
					errs += e5
				}
				if err := rows.Err(); err != nil {
					b.Fatal(err)
				}
				rows.Close()
				if groups != nRoutes || total != nEvents || errs == 0 {
					b.Fatalf("bad result: groups=%d total=%d errs=%d", groups, total, errs)
				}
			}
		})
	}
}
