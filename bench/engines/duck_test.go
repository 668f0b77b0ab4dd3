package enginebench

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"testing"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// appendEvents appends n events starting at first through the DuckDB Appender
// on one dedicated connection, inside one explicit transaction, then commits.
func appendEvents(tb testing.TB, db *sql.DB, first uint64, n int) {
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		tb.Fatal(err)
	}
	err = conn.Raw(func(dc any) error {
		app, err := duckdb.NewAppenderFromConn(dc.(driver.Conn), "", "events")
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			e := eventAt(first + uint64(i))
			if err := app.AppendRow(e.id, e.appID, e.ts, e.method, e.route, e.status, e.latencyUS, e.userID, e.clientUserID, e.bytesIn, e.bytesOut); err != nil {
				app.Close()
				return err
			}
		}
		return app.Close() // flushes
	})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		tb.Fatal(err)
	}
}
