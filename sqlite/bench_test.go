package sqlite_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
)

// BenchmarkSecretByHash measures the lookup every secret-authenticated
// request makes, in a store holding 10,000 secrets.
func BenchmarkSecretByHash(b *testing.B) {
	const (
		apps          = 100
		secretsPerApp = 100 // 10,000 secrets in all
	)
	ctx := b.Context()
	db := openDB(b, filepath.Join(b.TempDir(), "data"))
	var hashes []callsign.TokenHash
	for i := range apps {
		a := callsign.NewApp(fmt.Sprint("bench ", i), t0)
		first, _ := callsign.NewSecret(a.ID, "first", t0)
		must(b, db.CreateApp(ctx, a, first))
		hashes = append(hashes, first.Hash)
		for j := 1; j < secretsPerApp; j++ {
			s, _ := callsign.NewSecret(a.ID, fmt.Sprint("secret ", j), t0.Add(time.Duration(j)*time.Second))
			must(b, db.CreateSecret(ctx, s))
			hashes = append(hashes, s.Hash)
		}
	}
	if len(hashes) != apps*secretsPerApp {
		b.Fatalf("created %d secrets", len(hashes))
	}
	want := hashes[len(hashes)/2]

	// lookup returns an error rather than failing: RunParallel's goroutines
	// may not call b.Fatal.
	lookup := func() error {
		s, err := db.SecretByHash(ctx, want)
		if err != nil {
			return err
		}
		if s.Hash != want {
			return fmt.Errorf("SecretByHash returned secret %s with another hash", s.ID)
		}
		return nil
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := lookup(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := lookup(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
