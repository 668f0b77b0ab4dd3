package enginebench

import (
	"database/sql"
	"testing"
)

// TestVersions logs the engine library versions (run with -v).
func TestVersions(t *testing.T) {
	for _, e := range []struct{ drv, q string }{
		{"sqlite", "select sqlite_version()"},
		{"sqlite3", "select sqlite_version()"},
		{"duckdb", "select version()"},
	} {
		db, err := sql.Open(e.drv, ":memory:")
		if e.drv == "duckdb" {
			db, err = sql.Open(e.drv, "")
		}
		if err != nil {
			t.Fatal(err)
		}
		var v string
		if err := db.QueryRow(e.q).Scan(&v); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s", e.drv, v)
		db.Close()
	}
}
