package enginebench

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3" // driver "sqlite3" (cgo)
	_ "modernc.org/sqlite"          // driver "sqlite"  (pure Go)
)

// sqlEngine describes one database/sql backed engine.
type sqlEngine struct {
	name   string
	driver string
	dsn    func(path string) string
	// bigint is the integer column type (DuckDB INTEGER is 32-bit).
	bigint string
}

var (
	moderncEngine = sqlEngine{
		name: "modernc", driver: "sqlite", bigint: "INTEGER",
		dsn: func(p string) string {
			return "file:" + p + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)&_txlock=immediate"
		},
	}
	mattnEngine = sqlEngine{
		name: "mattn", driver: "sqlite3", bigint: "INTEGER",
		dsn: func(p string) string {
			return "file:" + p + "?_journal_mode=WAL&_synchronous=FULL&_busy_timeout=5000&_txlock=immediate"
		},
	}
	duckEngine = sqlEngine{
		name: "duckdb", driver: "duckdb", bigint: "BIGINT",
		dsn: func(p string) string { return p },
	}
)

func (e sqlEngine) isSQLite() bool { return e.driver != "duckdb" }

func (e sqlEngine) open(tb testing.TB, dir string) *sql.DB {
	db, err := sql.Open(e.driver, e.dsn(filepath.Join(dir, "db."+e.name)))
	if err != nil {
		tb.Fatal(err)
	}
	if err := db.Ping(); err != nil {
		tb.Fatal(err)
	}
	if e.isSQLite() {
		// sanity-check the per-connection pragmas actually applied
		var jm string
		var sync int
		if err := db.QueryRow("PRAGMA journal_mode").Scan(&jm); err != nil {
			tb.Fatal(err)
		}
		if err := db.QueryRow("PRAGMA synchronous").Scan(&sync); err != nil {
			tb.Fatal(err)
		}
		if strings.ToLower(jm) != "wal" || sync != 2 {
			tb.Fatalf("%s: journal_mode=%s synchronous=%d, want wal/2(FULL)", e.name, jm, sync)
		}
	}
	return db
}

func mustExec(tb testing.TB, db interface {
	Exec(string, ...any) (sql.Result, error)
}, q string, args ...any) {
	if _, err := db.Exec(q, args...); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
}

const secretsDDL = `CREATE TABLE secrets (
	id TEXT PRIMARY KEY,
	app_id TEXT NOT NULL,
	hash BLOB NOT NULL UNIQUE,
	revoked_at INTEGER NULL)`

const insertSecret = `INSERT INTO secrets (id, app_id, hash, revoked_at) VALUES (?, ?, ?, ?)`

func (e sqlEngine) eventsDDL() string {
	t := e.bigint
	return `CREATE TABLE events (
	id TEXT PRIMARY KEY,
	app_id TEXT NOT NULL,
	ts ` + t + ` NOT NULL,
	method TEXT NOT NULL,
	route TEXT NOT NULL,
	status ` + t + ` NOT NULL,
	latency_us ` + t + ` NOT NULL,
	user_id TEXT,
	client_user_id TEXT,
	bytes_in ` + t + ` NOT NULL,
	bytes_out ` + t + ` NOT NULL)`
}

const insertEvent = `INSERT INTO events (id, app_id, ts, method, route, status, latency_us, user_id, client_user_id, bytes_in, bytes_out) VALUES (?,?,?,?,?,?,?,?,?,?,?)`

func seedSecrets(tb testing.TB, db *sql.DB) {
	tx, err := db.Begin()
	if err != nil {
		tb.Fatal(err)
	}
	st, err := tx.Prepare(insertSecret)
	if err != nil {
		tb.Fatal(err)
	}
	for _, s := range secretsSeed {
		if _, err := st.Exec(s.id, s.appID, s.hash, s.revokedAt); err != nil {
			tb.Fatal(err)
		}
	}
	st.Close()
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

func insertEventsTx(tb testing.TB, db *sql.DB, first uint64, n int) {
	tx, err := db.Begin()
	if err != nil {
		tb.Fatal(err)
	}
	st, err := tx.Prepare(insertEvent)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i < n; i++ {
		ev := eventAt(first + uint64(i))
		if _, err := st.Exec(ev.id, ev.appID, ev.ts, ev.method, ev.route, ev.status, ev.latencyUS, ev.userID, ev.clientUserID, ev.bytesIn, ev.bytesOut); err != nil {
			tb.Fatal(err)
		}
	}
	st.Close()
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}
