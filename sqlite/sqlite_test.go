package sqlite_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/sqlite"
)

// t0 has a non-zero microsecond part so that a store that rounds to
// milliseconds or seconds is caught; the store keeps microseconds.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)

// openDB opens the store in dir and closes it when the test ends.
func openDB(t testing.TB, dir string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatalf("Open(%q): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

// newDB opens a store in a fresh directory that Open has to create.
func newDB(t testing.TB) *sqlite.DB {
	t.Helper()
	return openDB(t, filepath.Join(t.TempDir(), "data"))
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := callsign.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (err %v), want %q", got, err, code)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newApp returns an app created at ts, with origins, and its first secret.
func newApp(name string, ts time.Time, origins ...string) (*callsign.App, *callsign.Secret) {
	a := callsign.NewApp(name, ts)
	a.AllowedOrigins = origins
	s, _ := callsign.NewSecret(a.ID, "first", ts)
	return a, s
}

func createApp(t *testing.T, db *sqlite.DB, name string, ts time.Time, origins ...string) (*callsign.App, *callsign.Secret) {
	t.Helper()
	a, s := newApp(name, ts, origins...)
	must(t, db.CreateApp(t.Context(), a, s))
	return a, s
}

func timeEq(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func fmtTime(p *time.Time) string {
	if p == nil {
		return "nil"
	}
	return p.Format(time.RFC3339Nano)
}

// originSet returns the origins sorted and deduplicated: the store keeps a
// set, in no promised order.
func originSet(o []string) []string {
	o = slices.Clone(o)
	slices.Sort(o)
	return slices.Compact(o)
}

func checkApp(t *testing.T, got, want *callsign.App) {
	t.Helper()
	if got == nil {
		t.Fatalf("got nil app, want %s", want.ID)
	}
	if got.ID != want.ID || got.Name != want.Name || got.PublicToken != want.PublicToken || got.AccessTokenTTL != want.AccessTokenTTL {
		t.Errorf("app = {%s %q %s %v}, want {%s %q %s %v}", got.ID, got.Name, got.PublicToken, got.AccessTokenTTL,
			want.ID, want.Name, want.PublicToken, want.AccessTokenTTL)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("app %s CreatedAt = %v, want %v", want.ID, got.CreatedAt, want.CreatedAt)
	}
	if !timeEq(got.RevokedAt, want.RevokedAt) {
		t.Errorf("app %s RevokedAt = %s, want %s", want.ID, fmtTime(got.RevokedAt), fmtTime(want.RevokedAt))
	}
	if g, w := originSet(got.AllowedOrigins), originSet(want.AllowedOrigins); !slices.Equal(g, w) {
		t.Errorf("app %s AllowedOrigins = %q, want %q", want.ID, g, w)
	}
}

func checkSecret(t *testing.T, got, want *callsign.Secret) {
	t.Helper()
	if got == nil {
		t.Fatalf("got nil secret, want %s", want.ID)
	}
	if got.ID != want.ID || got.AppID != want.AppID || got.Name != want.Name || got.Hash != want.Hash {
		t.Errorf("secret = {%s %s %q %x}, want {%s %s %q %x}", got.ID, got.AppID, got.Name, got.Hash[:4],
			want.ID, want.AppID, want.Name, want.Hash[:4])
	}
	if !got.CreatedAt.Equal(want.CreatedAt) || !timeEq(got.LastUsedAt, want.LastUsedAt) || !timeEq(got.RevokedAt, want.RevokedAt) {
		t.Errorf("secret %s times = (%v, %s, %s), want (%v, %s, %s)", want.ID,
			got.CreatedAt, fmtTime(got.LastUsedAt), fmtTime(got.RevokedAt),
			want.CreatedAt, fmtTime(want.LastUsedAt), fmtTime(want.RevokedAt))
	}
}

func checkAdmin(t *testing.T, got, want *callsign.AdminToken) {
	t.Helper()
	if got == nil {
		t.Fatalf("got nil admin token, want %s", want.ID)
	}
	if got.ID != want.ID || got.Name != want.Name || got.Hash != want.Hash {
		t.Errorf("admin token = {%s %q %x}, want {%s %q %x}", got.ID, got.Name, got.Hash[:4], want.ID, want.Name, want.Hash[:4])
	}
	if !got.CreatedAt.Equal(want.CreatedAt) || !timeEq(got.LastUsedAt, want.LastUsedAt) || !timeEq(got.RevokedAt, want.RevokedAt) {
		t.Errorf("admin token %s times = (%v, %s, %s), want (%v, %s, %s)", want.ID,
			got.CreatedAt, fmtTime(got.LastUsedAt), fmtTime(got.RevokedAt),
			want.CreatedAt, fmtTime(want.LastUsedAt), fmtTime(want.RevokedAt))
	}
}

func ids[T any](xs []T, id func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = id(x)
	}
	return out
}

func appID(a *callsign.App) string          { return a.ID }
func secretID(s *callsign.Secret) string    { return s.ID }
func adminID(a *callsign.AdminToken) string { return a.ID }
func keyID(k *callsign.SealedKey) string    { return k.ID }

func ptr[T any](v T) *T { return &v }

// at returns the time d after t0; atPtr a pointer to it.
func at(d time.Duration) time.Time     { return t0.Add(d) }
func atPtr(d time.Duration) *time.Time { return ptr(at(d)) }

// unknownHash returns the hash of a new token of kind k, which no store
// holds.
func unknownHash(k callsign.TokenKind) callsign.TokenHash {
	return callsign.HashToken(callsign.GenerateToken(k))
}

// newKey returns a signing key created at ts.
func newKey(ts time.Time) *callsign.SealedKey {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		panic(err)
	}
	// The store treats the sealed private key as opaque bytes.
	sealed := []byte(callsign.RandomID("sealed-", 40))
	return &callsign.SealedKey{ID: callsign.RandomID("k", 15), Public: pub, SealedPrivate: sealed, CreatedAt: ts}
}

func TestOpen(t *testing.T) {
	t.Run("no directory", func(t *testing.T) {
		if db, err := sqlite.Open(t.Context(), ""); err == nil {
			db.Close()
			t.Fatal("Open(\"\") succeeded, want an error")
		}
	})
	t.Run("directory is a file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		must(t, os.WriteFile(f, nil, 0o600))
		if db, err := sqlite.Open(t.Context(), f); err == nil {
			db.Close()
			t.Fatal("Open on a regular file succeeded, want an error")
		}
	})
}

func TestFileModes(t *testing.T) {
	perm := func(t *testing.T, path string) fs.FileMode {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	tests := []struct {
		name string
		// prepare runs before Open and returns the data directory.
		prepare func(t *testing.T) string
	}{
		{"new nested directory", func(t *testing.T) string {
			return filepath.Join(t.TempDir(), "a", "b", "data")
		}},
		{"existing world-readable database file", func(t *testing.T) string {
			dir := filepath.Join(t.TempDir(), "data")
			must(t, os.Mkdir(dir, 0o700))
			f := filepath.Join(dir, sqlite.FileName)
			must(t, os.WriteFile(f, nil, 0o644))
			must(t, os.Chmod(f, 0o644)) // whatever the umask
			return dir
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.prepare(t)
			db := openDB(t, dir)
			// A write makes sure the -wal file exists.
			createApp(t, db, "modes", t0)
			if got := perm(t, dir); got != 0o700 {
				t.Errorf("data directory mode = %v, want 0700", got)
			}
			dbFile := filepath.Join(dir, sqlite.FileName)
			for _, f := range []string{dbFile, dbFile + "-wal", dbFile + "-shm"} {
				if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) && f == dbFile+"-shm" {
					continue // SQLite may keep the shared memory elsewhere
				}
				if got := perm(t, f); got != 0o600 {
					t.Errorf("%s mode = %v, want 0600", filepath.Base(f), got)
				}
			}
		})
	}
}

func TestCreateApp(t *testing.T) {
	tests := []struct {
		name    string
		ttl     time.Duration
		origins []string
	}{
		{"no origins", 0, nil},
		{"custom TTL", 90 * time.Minute, nil},
		{"origins", 0, []string{"https://b.example", "https://a.example:8443"}},
		{"duplicate origins kept once", 0, []string{"https://a.example", "https://a.example"}},
		{"wildcard origin", time.Hour, []string{"*"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			db := newDB(t)
			a, s := newApp("app "+tt.name, t0, tt.origins...)
			a.AccessTokenTTL = tt.ttl
			must(t, db.CreateApp(ctx, a, s))

			got, err := db.App(ctx, a.ID)
			must(t, err)
			checkApp(t, got, a)
			if n := len(got.AllowedOrigins); n != len(originSet(tt.origins)) {
				t.Errorf("got %d origins %q, want %d", n, got.AllowedOrigins, len(originSet(tt.origins)))
			}

			got, err = db.AppByPublicToken(ctx, a.PublicToken)
			must(t, err)
			checkApp(t, got, a)

			all, err := db.Apps(ctx)
			must(t, err)
			if len(all) != 1 {
				t.Fatalf("Apps = %q, want one app", ids(all, appID))
			}
			checkApp(t, all[0], a)

			secrets, err := db.Secrets(ctx, a.ID)
			must(t, err)
			if len(secrets) != 1 {
				t.Fatalf("Secrets = %q, want the first secret only", ids(secrets, secretID))
			}
			checkSecret(t, secrets[0], s)

			byHash, err := db.SecretByHash(ctx, s.Hash)
			must(t, err)
			checkSecret(t, byHash, s)
		})
	}

	t.Run("without a first secret", func(t *testing.T) {
		db := newDB(t)
		a := callsign.NewApp("bare", t0)
		must(t, db.CreateApp(t.Context(), a, nil))
		got, err := db.App(t.Context(), a.ID)
		must(t, err)
		checkApp(t, got, a)
		secrets, err := db.Secrets(t.Context(), a.ID)
		must(t, err)
		if len(secrets) != 0 {
			t.Errorf("Secrets = %q, want none", ids(secrets, secretID))
		}
	})
}

// TestCreateAppAtomic checks that CreateApp stores the app, its origins and
// its first secret together or not at all.
func TestCreateAppAtomic(t *testing.T) {
	tests := []struct {
		name string
		// clash returns an app and secret that collide with existing.
		clash func(existing *callsign.App, existingSecret *callsign.Secret) (*callsign.App, *callsign.Secret)
	}{
		{"same app id", func(e *callsign.App, _ *callsign.Secret) (*callsign.App, *callsign.Secret) {
			a, s := newApp("clash", at(time.Hour), "https://clash.example")
			a.ID = e.ID
			s.AppID = e.ID
			return a, s
		}},
		{"same public token", func(e *callsign.App, _ *callsign.Secret) (*callsign.App, *callsign.Secret) {
			a, s := newApp("clash", at(time.Hour), "https://clash.example")
			a.PublicToken = e.PublicToken
			return a, s
		}},
		{"first secret with an existing hash", func(_ *callsign.App, es *callsign.Secret) (*callsign.App, *callsign.Secret) {
			a, s := newApp("clash", at(time.Hour), "https://clash.example")
			s.Hash = es.Hash
			return a, s
		}},
		{"first secret with an existing id", func(_ *callsign.App, es *callsign.Secret) (*callsign.App, *callsign.Secret) {
			a, s := newApp("clash", at(time.Hour), "https://clash.example")
			s.ID = es.ID
			return a, s
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			db := newDB(t)
			e, es := createApp(t, db, "existing", t0, "https://existing.example")
			a, s := tt.clash(e, es)
			if err := db.CreateApp(ctx, a, s); err == nil {
				t.Fatal("CreateApp of a clashing app succeeded")
			}
			apps, err := db.Apps(ctx)
			must(t, err)
			if len(apps) != 1 {
				t.Fatalf("Apps = %q after a failed CreateApp, want only %s", ids(apps, appID), e.ID)
			}
			checkApp(t, apps[0], e)
			if ok, err := db.AppsAllowingOrigin(ctx, "https://clash.example"); err != nil || ok {
				t.Errorf("origin of the failed app is allowed (%v, %v)", ok, err)
			}
			if s.Hash != es.Hash {
				_, err := db.SecretByHash(ctx, s.Hash)
				wantCode(t, err, callsign.ENotFound)
			}
			got, err := db.SecretByHash(ctx, es.Hash)
			must(t, err)
			checkSecret(t, got, es)
		})
	}
}

func TestNotFound(t *testing.T) {
	ctx := t.Context()
	db := newDB(t)
	// An existing app and admin token make sure "not found" is not just
	// "the table is empty".
	a, s := createApp(t, db, "existing", t0)
	adm, _ := callsign.NewAdminToken("existing", t0)
	must(t, db.CreateAdminToken(ctx, adm))

	tests := []struct {
		name string
		call func() error
	}{
		{"App", func() error { _, err := db.App(ctx, "app_missing"); return err }},
		{"App by secret id", func() error { _, err := db.App(ctx, s.ID); return err }},
		{"AppByPublicToken", func() error {
			_, err := db.AppByPublicToken(ctx, callsign.GenerateToken(callsign.TokenPublic))
			return err
		}},
		{"AppByPublicToken with an app id", func() error { _, err := db.AppByPublicToken(ctx, a.ID); return err }},
		{"UpdateApp", func() error {
			_, err := db.UpdateApp(ctx, "app_missing", callsign.AppUpdate{Name: ptr("x")})
			return err
		}},
		{"UpdateApp without changes", func() error { _, err := db.UpdateApp(ctx, "app_missing", callsign.AppUpdate{}); return err }},
		{"RevokeApp", func() error { return db.RevokeApp(ctx, "app_missing", t0) }},
		{"CreateSecret of a missing app", func() error {
			sec, _ := callsign.NewSecret("app_missing", "x", t0)
			return db.CreateSecret(ctx, sec)
		}},
		{"SecretByHash", func() error { _, err := db.SecretByHash(ctx, unknownHash(callsign.TokenSecret)); return err }},
		{"RevokeSecret of a missing secret", func() error { return db.RevokeSecret(ctx, a.ID, "sec_missing", t0) }},
		{"RevokeSecret of a missing app", func() error { return db.RevokeSecret(ctx, "app_missing", s.ID, t0) }},
		{"AdminTokenByHash", func() error { _, err := db.AdminTokenByHash(ctx, unknownHash(callsign.TokenAdmin)); return err }},
		{"AdminTokenByHash with a secret's hash", func() error { _, err := db.AdminTokenByHash(ctx, s.Hash); return err }},
		{"SecretByHash with an admin token's hash", func() error { _, err := db.SecretByHash(ctx, adm.Hash); return err }},
		{"RevokeAdminToken", func() error { return db.RevokeAdminToken(ctx, "adm_missing", t0) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			wantCode(t, err, callsign.ENotFound)
			var e *callsign.Error
			if !errors.As(err, &e) || e.Message == "" {
				t.Errorf("error %v is not a *callsign.Error with a message", err)
			}
		})
	}
}

func TestApps(t *testing.T) {
	ctx := t.Context()
	db := newDB(t)
	if apps, err := db.Apps(ctx); err != nil || len(apps) != 0 {
		t.Fatalf("Apps of an empty store = %q, %v; want none", ids(apps, appID), err)
	}
	// Created out of order: Apps sorts by creation time, not insertion.
	c, _ := createApp(t, db, "c", at(2*time.Hour), "https://c.example")
	a, _ := createApp(t, db, "a", at(0), "https://a1.example", "https://a2.example")
	b, _ := createApp(t, db, "b", at(time.Hour))
	must(t, db.RevokeApp(ctx, b.ID, at(3*time.Hour)))
	b.RevokedAt = atPtr(3 * time.Hour)

	got, err := db.Apps(ctx)
	must(t, err)
	want := []*callsign.App{a, b, c}
	if !slices.Equal(ids(got, appID), ids(want, appID)) {
		t.Fatalf("Apps = %q, want oldest first %q (revoked included)", ids(got, appID), ids(want, appID))
	}
	for i := range want {
		t.Run(want[i].Name, func(t *testing.T) { checkApp(t, got[i], want[i]) })
	}
}

func TestUpdateApp(t *testing.T) {
	tests := []struct {
		name   string
		update callsign.AppUpdate
		apply  func(a *callsign.App)
	}{
		{"nothing", callsign.AppUpdate{}, func(*callsign.App) {}},
		{"name", callsign.AppUpdate{Name: ptr("renamed")}, func(a *callsign.App) { a.Name = "renamed" }},
		{"TTL", callsign.AppUpdate{AccessTokenTTL: ptr(2 * time.Hour)}, func(a *callsign.App) { a.AccessTokenTTL = 2 * time.Hour }},
		{"TTL back to default", callsign.AppUpdate{AccessTokenTTL: ptr(time.Duration(0))}, func(a *callsign.App) { a.AccessTokenTTL = 0 }},
		{"origins replaced", callsign.AppUpdate{AllowedOrigins: &[]string{"https://new.example", "https://old.example"}},
			func(a *callsign.App) { a.AllowedOrigins = []string{"https://new.example", "https://old.example"} }},
		{"origins cleared", callsign.AppUpdate{AllowedOrigins: &[]string{}}, func(a *callsign.App) { a.AllowedOrigins = nil }},
		{"everything", callsign.AppUpdate{Name: ptr("all"), AccessTokenTTL: ptr(time.Minute), AllowedOrigins: &[]string{"*"}},
			func(a *callsign.App) {
				a.Name, a.AccessTokenTTL, a.AllowedOrigins = "all", time.Minute, []string{"*"}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			db := newDB(t)
			a, _ := newApp("original", t0, "https://old.example", "https://other.example")
			a.AccessTokenTTL = 30 * time.Minute
			must(t, db.CreateApp(ctx, a, nil))
			// A second app whose origins must not be touched.
			bystander, _ := createApp(t, db, "bystander", at(time.Second), "https://old.example", "https://bystander.example")

			got, err := db.UpdateApp(ctx, a.ID, tt.update)
			must(t, err)
			tt.apply(a)
			checkApp(t, got, a)
			stored, err := db.App(ctx, a.ID)
			must(t, err)
			checkApp(t, stored, a)
			stored, err = db.App(ctx, bystander.ID)
			must(t, err)
			checkApp(t, stored, bystander)
		})
	}
}

func TestRevokeApp(t *testing.T) {
	ctx := t.Context()
	db := newDB(t)
	a, s := createApp(t, db, "revoked", t0, "https://a.example")
	live, _ := createApp(t, db, "live", t0)

	must(t, db.RevokeApp(ctx, a.ID, at(time.Hour)))
	a.RevokedAt = atPtr(time.Hour)
	// Revoking again succeeds and keeps the first revocation time.
	must(t, db.RevokeApp(ctx, a.ID, at(2*time.Hour)))

	t.Run("App", func(t *testing.T) {
		got, err := db.App(ctx, a.ID)
		must(t, err)
		checkApp(t, got, a)
	})
	t.Run("AppByPublicToken", func(t *testing.T) {
		got, err := db.AppByPublicToken(ctx, a.PublicToken)
		must(t, err)
		checkApp(t, got, a)
	})
	t.Run("other app untouched", func(t *testing.T) {
		got, err := db.App(ctx, live.ID)
		must(t, err)
		checkApp(t, got, live)
	})
	t.Run("secrets kept", func(t *testing.T) {
		got, err := db.SecretByHash(ctx, s.Hash)
		must(t, err)
		checkSecret(t, got, s)
	})
	t.Run("CreateSecret refused", func(t *testing.T) {
		sec, _ := callsign.NewSecret(a.ID, "late", at(3*time.Hour))
		wantCode(t, db.CreateSecret(ctx, sec), callsign.ERevoked)
		_, err := db.SecretByHash(ctx, sec.Hash)
		wantCode(t, err, callsign.ENotFound)
		secrets, err := db.Secrets(ctx, a.ID)
		must(t, err)
		if len(secrets) != 1 {
			t.Errorf("Secrets = %q, want only the first", ids(secrets, secretID))
		}
	})
}

func TestAppsAllowingOrigin(t *testing.T) {
	type app struct {
		origins []string
		revoked bool
	}
	tests := []struct {
		name   string
		apps   []app
		origin string
		want   bool
	}{
		{"no apps", nil, "https://a.example", false},
		{"live app allows it", []app{{origins: []string{"https://a.example"}}}, "https://a.example", true},
		{"one of several origins", []app{{origins: []string{"https://x.example", "https://a.example"}}}, "https://a.example", true},
		{"other origin", []app{{origins: []string{"https://a.example"}}}, "https://b.example", false},
		{"other scheme", []app{{origins: []string{"https://a.example"}}}, "http://a.example", false},
		{"other port", []app{{origins: []string{"https://a.example"}}}, "https://a.example:8443", false},
		{"case differs", []app{{origins: []string{"https://a.example"}}}, "https://A.example", false},
		{"prefix is not a match", []app{{origins: []string{"https://a.example"}}}, "https://a.example.evil", false},
		{"only a revoked app allows it", []app{{origins: []string{"https://a.example"}, revoked: true}}, "https://a.example", false},
		{"revoked and live app allow it", []app{
			{origins: []string{"https://a.example"}, revoked: true},
			{origins: []string{"https://a.example"}},
		}, "https://a.example", true},
		{"live wildcard", []app{{origins: []string{"*"}}}, "https://anything.example", true},
		{"revoked wildcard", []app{{origins: []string{"*"}, revoked: true}}, "https://anything.example", false},
		{"app without origins", []app{{}}, "https://a.example", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			db := newDB(t)
			for i, x := range tt.apps {
				a, _ := createApp(t, db, fmt.Sprint("app", i), at(time.Duration(i)*time.Second), x.origins...)
				if x.revoked {
					must(t, db.RevokeApp(ctx, a.ID, at(time.Hour)))
				}
			}
			got, err := db.AppsAllowingOrigin(ctx, tt.origin)
			must(t, err)
			if got != tt.want {
				t.Errorf("AppsAllowingOrigin(%q) = %v, want %v", tt.origin, got, tt.want)
			}
		})
	}

	t.Run("follows updates and revocation", func(t *testing.T) {
		ctx := t.Context()
		db := newDB(t)
		const o = "https://a.example"
		check := func(t *testing.T, want bool) {
			t.Helper()
			got, err := db.AppsAllowingOrigin(ctx, o)
			must(t, err)
			if got != want {
				t.Fatalf("AppsAllowingOrigin(%q) = %v, want %v", o, got, want)
			}
		}
		a, _ := createApp(t, db, "a", t0)
		check(t, false)
		_, err := db.UpdateApp(ctx, a.ID, callsign.AppUpdate{AllowedOrigins: &[]string{o}})
		must(t, err)
		check(t, true)
		_, err = db.UpdateApp(ctx, a.ID, callsign.AppUpdate{AllowedOrigins: &[]string{"https://b.example"}})
		must(t, err)
		check(t, false)
		_, err = db.UpdateApp(ctx, a.ID, callsign.AppUpdate{AllowedOrigins: &[]string{o}})
		must(t, err)
		must(t, db.RevokeApp(ctx, a.ID, at(time.Hour)))
		check(t, false)
	})
}

func TestSecrets(t *testing.T) {
	ctx := t.Context()
	db := newDB(t)
	a, first := createApp(t, db, "a", t0)
	other, otherFirst := createApp(t, db, "other", t0)

	// Created out of order: Secrets sorts by creation time.
	late, _ := callsign.NewSecret(a.ID, "late", at(2*time.Hour))
	mid, _ := callsign.NewSecret(a.ID, "mid", at(time.Hour))
	must(t, db.CreateSecret(ctx, late))
	must(t, db.CreateSecret(ctx, mid))

	t.Run("listed oldest first", func(t *testing.T) {
		got, err := db.Secrets(ctx, a.ID)
		must(t, err)
		want := []*callsign.Secret{first, mid, late}
		if !slices.Equal(ids(got, secretID), ids(want, secretID)) {
			t.Fatalf("Secrets = %q, want %q", ids(got, secretID), ids(want, secretID))
		}
		for i := range want {
			checkSecret(t, got[i], want[i])
		}
	})
	t.Run("other app's list", func(t *testing.T) {
		got, err := db.Secrets(ctx, other.ID)
		must(t, err)
		if !slices.Equal(ids(got, secretID), []string{otherFirst.ID}) {
			t.Fatalf("Secrets(other) = %q, want [%s]", ids(got, secretID), otherFirst.ID)
		}
	})
	t.Run("missing app has no secrets", func(t *testing.T) {
		got, err := db.Secrets(ctx, "app_missing")
		must(t, err)
		if len(got) != 0 {
			t.Fatalf("Secrets(missing) = %q, want none", ids(got, secretID))
		}
	})
	t.Run("duplicate hash refused", func(t *testing.T) {
		dup, _ := callsign.NewSecret(a.ID, "dup", at(3*time.Hour))
		dup.Hash = mid.Hash
		if err := db.CreateSecret(ctx, dup); err == nil {
			t.Fatal("CreateSecret with an existing hash succeeded")
		}
		got, err := db.SecretByHash(ctx, mid.Hash)
		must(t, err)
		checkSecret(t, got, mid)
	})
	t.Run("revoke another app's secret", func(t *testing.T) {
		wantCode(t, db.RevokeSecret(ctx, other.ID, mid.ID, at(4*time.Hour)), callsign.ENotFound)
		got, err := db.SecretByHash(ctx, mid.Hash)
		must(t, err)
		checkSecret(t, got, mid) // still live
	})
	t.Run("revoke", func(t *testing.T) {
		must(t, db.RevokeSecret(ctx, a.ID, mid.ID, at(5*time.Hour)))
		mid.RevokedAt = atPtr(5 * time.Hour)
		// Revoking again keeps the first time.
		must(t, db.RevokeSecret(ctx, a.ID, mid.ID, at(6*time.Hour)))
		got, err := db.SecretByHash(ctx, mid.Hash) // revoked or not
		must(t, err)
		checkSecret(t, got, mid)
		list, err := db.Secrets(ctx, a.ID)
		must(t, err)
		if len(list) != 3 {
			t.Fatalf("Secrets = %q, want 3 including the revoked one", ids(list, secretID))
		}
		checkSecret(t, list[1], mid)
		for _, s := range []*callsign.Secret{first, late, otherFirst} {
			got, err := db.SecretByHash(ctx, s.Hash)
			must(t, err)
			checkSecret(t, got, s)
		}
	})
	t.Run("touch", func(t *testing.T) {
		must(t, db.TouchSecret(ctx, late.ID, at(10*time.Hour)))
		late.LastUsedAt = atPtr(10 * time.Hour)
		// An older use (a slow request finishing late) does not move it back.
		must(t, db.TouchSecret(ctx, late.ID, at(9*time.Hour)))
		got, err := db.SecretByHash(ctx, late.Hash)
		must(t, err)
		checkSecret(t, got, late)
		must(t, db.TouchSecret(ctx, late.ID, at(11*time.Hour)))
		late.LastUsedAt = atPtr(11 * time.Hour)
		got, err = db.SecretByHash(ctx, late.Hash)
		must(t, err)
		checkSecret(t, got, late)
		got, err = db.SecretByHash(ctx, first.Hash)
		must(t, err)
		checkSecret(t, got, first) // untouched
	})
}

func TestCreateSecretErrors(t *testing.T) {
	tests := []struct {
		name  string
		appID func(t *testing.T, db *sqlite.DB) string
		want  string
	}{
		{"live app", func(t *testing.T, db *sqlite.DB) string {
			a, _ := createApp(t, db, "live", t0)
			return a.ID
		}, ""},
		{"revoked app", func(t *testing.T, db *sqlite.DB) string {
			a, _ := createApp(t, db, "revoked", t0)
			must(t, db.RevokeApp(t.Context(), a.ID, t0))
			return a.ID
		}, callsign.ERevoked},
		{"missing app", func(t *testing.T, db *sqlite.DB) string {
			createApp(t, db, "someone else", t0)
			return "app_missing"
		}, callsign.ENotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newDB(t)
			id := tt.appID(t, db)
			s, _ := callsign.NewSecret(id, "new", at(time.Minute))
			wantCode(t, db.CreateSecret(t.Context(), s), tt.want)
			_, err := db.SecretByHash(t.Context(), s.Hash)
			if tt.want == "" {
				must(t, err)
			} else {
				wantCode(t, err, callsign.ENotFound) // nothing stored
			}
		})
	}
}

func TestAdminTokens(t *testing.T) {
	ctx := t.Context()
	db := newDB(t)
	if list, err := db.AdminTokens(ctx); err != nil || len(list) != 0 {
		t.Fatalf("AdminTokens of an empty store = %q, %v; want none", ids(list, adminID), err)
	}
	late, _ := callsign.NewAdminToken("late", at(time.Hour))
	early, _ := callsign.NewAdminToken("early", t0)
	must(t, db.CreateAdminToken(ctx, late))
	must(t, db.CreateAdminToken(ctx, early))

	t.Run("listed oldest first", func(t *testing.T) {
		got, err := db.AdminTokens(ctx)
		must(t, err)
		want := []*callsign.AdminToken{early, late}
		if !slices.Equal(ids(got, adminID), ids(want, adminID)) {
			t.Fatalf("AdminTokens = %q, want %q", ids(got, adminID), ids(want, adminID))
		}
		for i := range want {
			checkAdmin(t, got[i], want[i])
		}
	})
	t.Run("by hash", func(t *testing.T) {
		for _, want := range []*callsign.AdminToken{early, late} {
			got, err := db.AdminTokenByHash(ctx, want.Hash)
			must(t, err)
			checkAdmin(t, got, want)
		}
	})
	t.Run("duplicate hash refused", func(t *testing.T) {
		dup, _ := callsign.NewAdminToken("dup", at(2*time.Hour))
		dup.Hash = early.Hash
		if err := db.CreateAdminToken(ctx, dup); err == nil {
			t.Fatal("CreateAdminToken with an existing hash succeeded")
		}
	})
	t.Run("touch", func(t *testing.T) {
		must(t, db.TouchAdminToken(ctx, early.ID, at(5*time.Hour)))
		must(t, db.TouchAdminToken(ctx, early.ID, at(4*time.Hour)))
		early.LastUsedAt = atPtr(5 * time.Hour)
		got, err := db.AdminTokenByHash(ctx, early.Hash)
		must(t, err)
		checkAdmin(t, got, early)
		got, err = db.AdminTokenByHash(ctx, late.Hash)
		must(t, err)
		checkAdmin(t, got, late)
	})
	t.Run("revoke", func(t *testing.T) {
		must(t, db.RevokeAdminToken(ctx, late.ID, at(6*time.Hour)))
		must(t, db.RevokeAdminToken(ctx, late.ID, at(7*time.Hour)))
		late.RevokedAt = atPtr(6 * time.Hour)
		got, err := db.AdminTokenByHash(ctx, late.Hash) // revoked or not
		must(t, err)
		checkAdmin(t, got, late)
		got, err = db.AdminTokenByHash(ctx, early.Hash)
		must(t, err)
		checkAdmin(t, got, early)
		list, err := db.AdminTokens(ctx)
		must(t, err)
		if len(list) != 2 {
			t.Fatalf("AdminTokens = %q, want both", ids(list, adminID))
		}
	})
}

func checkKeys(t *testing.T, db *sqlite.DB, want []*callsign.SealedKey) {
	t.Helper()
	got, err := db.SigningKeys(t.Context())
	must(t, err)
	if !slices.Equal(ids(got, keyID), ids(want, keyID)) {
		t.Fatalf("SigningKeys = %q, want newest first %q", ids(got, keyID), ids(want, keyID))
	}
	for i, w := range want {
		g := got[i]
		if !g.Public.Equal(w.Public) || !bytes.Equal(g.SealedPrivate, w.SealedPrivate) {
			t.Errorf("key %s bytes did not round-trip", w.ID)
		}
		if !g.CreatedAt.Equal(w.CreatedAt) || !timeEq(g.RetiredAt, w.RetiredAt) {
			t.Errorf("key %s times = (%v, %s), want (%v, %s)", w.ID, g.CreatedAt, fmtTime(g.RetiredAt), w.CreatedAt, fmtTime(w.RetiredAt))
		}
	}
}

func TestRotateSigningKey(t *testing.T) {
	ctx := t.Context()
	db := newDB(t)
	checkKeys(t, db, nil)

	k1 := newKey(t0)
	must(t, db.RotateSigningKey(ctx, k1))
	checkKeys(t, db, []*callsign.SealedKey{k1})

	k2 := newKey(at(time.Hour))
	must(t, db.RotateSigningKey(ctx, k2))
	k1.RetiredAt = atPtr(time.Hour)
	checkKeys(t, db, []*callsign.SealedKey{k2, k1})

	k3 := newKey(at(2 * time.Hour))
	must(t, db.RotateSigningKey(ctx, k3))
	k2.RetiredAt = atPtr(2 * time.Hour) // k1 keeps its first retirement time
	checkKeys(t, db, []*callsign.SealedKey{k3, k2, k1})

	t.Run("failed rotation retires nothing", func(t *testing.T) {
		dup := newKey(at(3 * time.Hour))
		dup.ID = k1.ID
		if err := db.RotateSigningKey(ctx, dup); err == nil {
			t.Fatal("RotateSigningKey with an existing id succeeded")
		}
		checkKeys(t, db, []*callsign.SealedKey{k3, k2, k1})
	})
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "data")
	db, err := sqlite.Open(ctx, dir)
	must(t, err)
	a, s := newApp("persisted", t0, "https://a.example")
	a.AccessTokenTTL = time.Hour
	must(t, db.CreateApp(ctx, a, s))
	must(t, db.TouchSecret(ctx, s.ID, at(time.Minute)))
	s.LastUsedAt = atPtr(time.Minute)
	revoked, _ := createApp(t, db, "revoked", at(time.Second), "https://r.example")
	must(t, db.RevokeApp(ctx, revoked.ID, at(time.Hour)))
	revoked.RevokedAt = atPtr(time.Hour)
	adm, _ := callsign.NewAdminToken("root", t0)
	must(t, db.CreateAdminToken(ctx, adm))
	k := newKey(t0)
	must(t, db.RotateSigningKey(ctx, k))
	must(t, db.Close())

	for i := range 2 { // migrations already applied must not run again
		t.Run(fmt.Sprint("reopen ", i+1), func(t *testing.T) {
			db := openDB(t, dir)
			apps, err := db.Apps(ctx)
			must(t, err)
			if len(apps) != 2 {
				t.Fatalf("Apps = %q, want 2", ids(apps, appID))
			}
			checkApp(t, apps[0], a)
			checkApp(t, apps[1], revoked)
			got, err := db.SecretByHash(ctx, s.Hash)
			must(t, err)
			checkSecret(t, got, s)
			gotAdm, err := db.AdminTokenByHash(ctx, adm.Hash)
			must(t, err)
			checkAdmin(t, gotAdm, adm)
			checkKeys(t, db, []*callsign.SealedKey{k})
			if ok, err := db.AppsAllowingOrigin(ctx, "https://a.example"); err != nil || !ok {
				t.Errorf("AppsAllowingOrigin after reopen = %v, %v; want true", ok, err)
			}
		})
	}
}

// TestTwoHandles opens the same directory twice, as `callsign admin token`
// does while a server runs, and writes through both at once.
func TestTwoHandles(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "data")
	server := openDB(t, dir)
	cli := openDB(t, dir)

	const n = 20
	var (
		wg   sync.WaitGroup
		errs = make(chan error, 2*n)
		adm  = make([]*callsign.AdminToken, n)
		apps = make([]*callsign.App, n)
	)
	for i := range n {
		adm[i], _ = callsign.NewAdminToken(fmt.Sprint("cli ", i), at(time.Duration(i)*time.Second))
		apps[i], _ = newApp(fmt.Sprint("server ", i), at(time.Duration(i)*time.Second))
	}
	wg.Go(func() {
		for _, x := range adm {
			errs <- cli.CreateAdminToken(ctx, x)
		}
	})
	wg.Go(func() {
		for _, a := range apps {
			s, _ := callsign.NewSecret(a.ID, "first", a.CreatedAt)
			errs <- server.CreateApp(ctx, a, s)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent write: %v", err)
		}
	}

	for name, db := range map[string]*sqlite.DB{"server": server, "cli": cli} {
		t.Run(name+" sees both", func(t *testing.T) {
			gotAdm, err := db.AdminTokens(ctx)
			must(t, err)
			if !slices.Equal(ids(gotAdm, adminID), ids(adm, adminID)) {
				t.Errorf("AdminTokens = %q, want %q", ids(gotAdm, adminID), ids(adm, adminID))
			}
			gotApps, err := db.Apps(ctx)
			must(t, err)
			if !slices.Equal(ids(gotApps, appID), ids(apps, appID)) {
				t.Errorf("Apps = %q, want %q", ids(gotApps, appID), ids(apps, appID))
			}
		})
	}

	t.Run("revocation is seen by the other handle", func(t *testing.T) {
		must(t, cli.RevokeAdminToken(ctx, adm[0].ID, at(time.Hour)))
		got, err := server.AdminTokenByHash(ctx, adm[0].Hash)
		must(t, err)
		if !timeEq(got.RevokedAt, atPtr(time.Hour)) {
			t.Errorf("server sees RevokedAt = %s, want %s", fmtTime(got.RevokedAt), at(time.Hour))
		}
	})
}

// Open refuses a store migrated by a newer callsign, and with
// WithoutMigrations one that needs migrating; a current store opens either
// way.
func TestOpenSchemaVersion(t *testing.T) {
	ctx := t.Context()

	fresh := t.TempDir()
	if db, err := sqlite.Open(ctx, fresh, sqlite.WithoutMigrations()); !errors.Is(err, sqlite.ErrMigrationsPending) {
		if db != nil {
			db.Close()
		}
		t.Fatalf("WithoutMigrations on a new directory: %v, want ErrMigrationsPending", err)
	}

	dir := t.TempDir()
	db, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = sqlite.Open(ctx, dir, sqlite.WithoutMigrations())
	if err != nil {
		t.Fatalf("WithoutMigrations on a current store: %v", err)
	}
	db.Close()

	var cur int
	c := side(t, dir)
	if err := c.QueryRow("PRAGMA user_version").Scan(&cur); err != nil || cur < 1 {
		t.Fatalf("user_version %d, %v", cur, err)
	}
	for _, tt := range []struct {
		name    string
		version int
		opts    []sqlite.Option
		want    error
	}{
		{"newer", cur + 1, nil, sqlite.ErrSchemaNewer},
		{"newer, without migrations", cur + 1, []sqlite.Option{sqlite.WithoutMigrations()}, sqlite.ErrSchemaNewer},
		{"older, without migrations", cur - 1, []sqlite.Option{sqlite.WithoutMigrations()}, sqlite.ErrMigrationsPending},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Exec(fmt.Sprintf("PRAGMA user_version = %d", tt.version)); err != nil {
				t.Fatal(err)
			}
			db, err := sqlite.Open(ctx, dir, tt.opts...)
			if db != nil {
				db.Close()
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open = %v, want %v", err, tt.want)
			}
		})
	}
}
