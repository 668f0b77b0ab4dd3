// Command bbolt opens a bbolt file (build-size / CGO_ENABLED=0 probe).
package main

import (
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

func main() {
	db, err := bolt.Open(os.Args[1], 0o600, nil)
	if err == nil {
		db.Close()
	}
	fmt.Println("open:", err)
}
