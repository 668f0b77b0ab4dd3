// Command modernc opens a database with the sqlite driver (build-size / CGO_ENABLED=0 probe).
package main

import (
	"database/sql"
	"fmt"
	"os"

	_ "modernc.org/sqlite"
)

func main() {
	db, err := sql.Open("sqlite", os.Args[1])
	if err == nil {
		err = db.Ping()
	}
	fmt.Println("open:", err)
}
