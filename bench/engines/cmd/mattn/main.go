// Command mattn opens a database with the sqlite3 driver (build-size / CGO_ENABLED=0 probe).
package main

import (
	"database/sql"
	"fmt"
	"os"

	_ "github.com/mattn/go-sqlite3"
)

func main() {
	db, err := sql.Open("sqlite3", os.Args[1])
	if err == nil {
		err = db.Ping()
	}
	fmt.Println("open:", err)
}
