package enginebench

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

var (
	bSecrets       = []byte("secrets")         // id -> record
	bSecretsByHash = []byte("secrets_by_hash") // hash -> id (secondary index)
	bEvents        = []byte("events")          // id -> record
)

// openBolt opens a file-backed bbolt DB with default options (fsync on every commit).
func openBolt(tb testing.TB, dir string) *bolt.DB {
	db, err := bolt.Open(filepath.Join(dir, "db.bolt"), 0o600, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if db.NoSync {
		tb.Fatal("bbolt NoSync set")
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, n := range [][]byte{bSecrets, bSecretsByHash, bEvents} {
			if _, err := tx.CreateBucketIfNotExists(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return db
}

// bbolt requires Put values to stay valid until the transaction ends, so no buffer reuse.
func boltPutSecret(tx *bolt.Tx, s secret) error {
	if err := tx.Bucket(bSecrets).Put([]byte(s.id), encodeSecret(make([]byte, 0, 64), s)); err != nil {
		return err
	}
	return tx.Bucket(bSecretsByHash).Put(s.hash, []byte(s.id))
}

func seedBolt(tb testing.TB, db *bolt.DB) {
	err := db.Update(func(tx *bolt.Tx) error {
		for _, s := range secretsSeed {
			if err := boltPutSecret(tx, s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

func boltLookup(db *bolt.DB, hash []byte) (id, appID string, found bool, err error) {
	err = db.View(func(tx *bolt.Tx) error {
		sid := tx.Bucket(bSecretsByHash).Get(hash)
		if sid == nil {
			return nil
		}
		v := tx.Bucket(bSecrets).Get(sid)
		if v == nil {
			return nil
		}
		id, appID, _ = decodeSecret(v) // copies out of the mmap
		found = true
		return nil
	})
	return
}
