// Command duckdb opens a database with the duckdb driver (build-size / CGO_ENABLED=0 probe).
package main

import (
	"database/sql"
	"fmt"
	"os"

	_ "github.com/duckdb/duckdb-go/v2"
)

func main() {
	db, err := sql.Open("duckdb", os.Args[1])
	if err == nil {
		err = db.Ping()
	}
	fmt.Println("open:", err)
}
