package keyring_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/keyring"
	"github.com/callsignhq/callsign/sqlite"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is an injected clock that only moves when told to.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(t time.Time) *clock { return &clock{now: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newKEK(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

// openStore opens a sqlite store in dir, closed when the test ends.
func openStore(t *testing.T, dir string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newRing(t *testing.T, store callsign.KeyStore, kek []byte, opts keyring.Options) *keyring.Ring {
	t.Helper()
	r, err := keyring.New(store, kek, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func storedKeys(t *testing.T, store callsign.KeyStore) []*callsign.SealedKey {
	t.Helper()
	keys, err := store.SigningKeys(t.Context())
	must(t, err)
	return keys
}

func sealedIDs(keys []*callsign.SealedKey) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.ID)
	}
	return out
}

func keyIDs(keys []*callsign.SigningKey) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.ID)
	}
	return out
}

// checkSigner checks that k can sign and that its public half verifies.
func checkSigner(t *testing.T, k *callsign.SigningKey) {
	t.Helper()
	if k == nil || k.Private == nil {
		t.Fatalf("signer %v has no private key", k)
	}
	if k.RetiredAt != nil {
		t.Errorf("signer %s is retired at %v", k.ID, *k.RetiredAt)
	}
	msg := []byte("callsign")
	if !ed25519.Verify(k.Public, msg, ed25519.Sign(k.Private, msg)) {
		t.Errorf("signer %s: private and public keys do not match", k.ID)
	}
}

// checkRetirement checks that the store holds exactly one live key, id, and
// that every other key is retired.
func checkRetirement(t *testing.T, store callsign.KeyStore, live string) {
	t.Helper()
	for _, k := range storedKeys(t, store) {
		if (k.ID == live) != (k.RetiredAt == nil) {
			t.Errorf("key %s: RetiredAt = %v, want live only for %s", k.ID, k.RetiredAt, live)
		}
	}
}

func TestLoadKEK(t *testing.T) {
	known := bytes.Repeat([]byte{0xA5}, 32)
	other := bytes.Repeat([]byte{0x5A}, 32)
	b64 := base64.StdEncoding.EncodeToString
	writeFile := func(content string, mode fs.FileMode) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			must(t, os.WriteFile(path, []byte(content), mode))
			must(t, os.Chmod(path, mode)) // whatever the umask
		}
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T, path string) // nil: no file
		env     string
		want    []byte   // nil: a new random key is expected
		wantErr []string // substrings of the error; nil: success
		// noLeak must not appear in the error message.
		noLeak string
	}{
		{name: "0600 file", setup: writeFile(b64(known)+"\n", 0o600), want: known},
		{name: "0400 file", setup: writeFile(b64(known), 0o400), want: known},
		{name: "file with surrounding space", setup: writeFile("  "+b64(known)+"\r\n\n", 0o600), want: known},
		{name: "0644 file", setup: writeFile(b64(known), 0o644), wantErr: []string{"chmod 600", keyring.KEKFileName}, noLeak: b64(known)},
		{name: "0640 file", setup: writeFile(b64(known), 0o640), wantErr: []string{"chmod 600"}},
		{name: "0604 file", setup: writeFile(b64(known), 0o604), wantErr: []string{"chmod 600"}},
		{name: "0620 file", setup: writeFile(b64(known), 0o620), wantErr: []string{"chmod 600"}},
		{name: "bad base64 in file", setup: writeFile("not base64 at all!\n", 0o600), wantErr: []string{"32 bytes"}, noLeak: "not base64"},
		{name: "16 bytes in file", setup: writeFile(b64(known[:16]), 0o600), wantErr: []string{"32 bytes"}, noLeak: b64(known[:16])},
		{name: "33 bytes in file", setup: writeFile(b64(append(known, 1)), 0o600), wantErr: []string{"32 bytes"}},
		{name: "empty file", setup: writeFile("", 0o600), wantErr: []string{"32 bytes"}},
		{name: "raw 32 bytes in file", setup: writeFile(string(known), 0o600), wantErr: []string{"32 bytes"}},
		{name: "env wins over file", setup: writeFile(b64(other), 0o600), env: b64(known), want: known},
		{name: "env wins over 0644 file", setup: writeFile(b64(other), 0o644), env: b64(known), want: known},
		{name: "env wins over bad file", setup: writeFile("garbage", 0o600), env: b64(known), want: known},
		{name: "env without file", env: b64(known), want: known},
		{name: "env with space", env: " " + b64(known) + "\n", want: known},
		{name: "bad base64 in env", env: "%%%not-base64%%%", wantErr: []string{keyring.KEKEnv, "32 bytes"}, noLeak: "not-base64"},
		{name: "16 bytes in env", env: b64(known[:16]), wantErr: []string{keyring.KEKEnv, "32 bytes"}, noLeak: b64(known[:16])},
		{name: "64 bytes in env", env: b64(append(slices.Clone(known), known...)), wantErr: []string{keyring.KEKEnv}},
		{name: "URL base64 in env", env: base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xFF}, 32)), wantErr: []string{keyring.KEKEnv}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), keyring.KEKFileName)
			if tt.setup != nil {
				tt.setup(t, path)
			}
			before, _ := os.ReadFile(path)
			got, err := keyring.LoadKEK(path, tt.env)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("LoadKEK succeeded with %x, want an error", got)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				if tt.noLeak != "" && strings.Contains(err.Error(), tt.noLeak) {
					t.Errorf("error %q repeats the key material", err)
				}
				return
			}
			must(t, err)
			if !bytes.Equal(got, tt.want) {
				t.Errorf("LoadKEK = %x, want %x", got, tt.want)
			}
			after, err := os.ReadFile(path)
			if tt.setup == nil {
				if !os.IsNotExist(err) {
					t.Errorf("LoadKEK with the env set created %s", path)
				}
			} else if !bytes.Equal(before, after) {
				t.Errorf("LoadKEK changed an existing file")
			}
		})
	}

	t.Run("creates the file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), keyring.KEKFileName)
		k, err := keyring.LoadKEK(path, "")
		must(t, err)
		if len(k) != 32 || bytes.Equal(k, make([]byte, 32)) {
			t.Fatalf("new key = %x, want 32 random bytes", k)
		}
		fi, err := os.Stat(path)
		must(t, err)
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", path, fi.Mode().Perm())
		}
		again, err := keyring.LoadKEK(path, "")
		must(t, err)
		if !bytes.Equal(again, k) {
			t.Errorf("second LoadKEK = %x, want the created key %x", again, k)
		}
		other, err := keyring.LoadKEK(filepath.Join(t.TempDir(), keyring.KEKFileName), "")
		must(t, err)
		if bytes.Equal(other, k) {
			t.Errorf("two new keys are equal")
		}
	})
	t.Run("directory missing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "missing", keyring.KEKFileName)
		if k, err := keyring.LoadKEK(path, ""); err == nil {
			t.Fatalf("LoadKEK in a missing directory = %x, want an error", k)
		}
	})
}

func TestNew(t *testing.T) {
	store := openStore(t, t.TempDir())
	for _, n := range []int{0, 7, 16, 24, 31, 33} { // 16 and 24 would be AES-128/192
		if _, err := keyring.New(store, make([]byte, n), keyring.Options{}); err == nil {
			t.Errorf("New with a %d-byte key-encryption key succeeded", n)
		}
	}
}

func TestSignerRotatesAfterRotateEvery(t *testing.T) {
	tests := []struct {
		name        string
		rotateEvery time.Duration // given to Options
		period      time.Duration // expected rotation period
	}{
		{"explicit", 24 * time.Hour, 24 * time.Hour},
		{"default", 0, keyring.DefaultRotateEvery},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := openStore(t, t.TempDir())
			clk := newClock(t0)
			r := newRing(t, store, newKEK(t), keyring.Options{RotateEvery: tt.rotateEvery, Now: clk.Now})
			if keys := storedKeys(t, store); len(keys) != 0 {
				t.Fatalf("New stored keys %q", sealedIDs(keys))
			}

			first, err := r.Signer(t.Context())
			must(t, err)
			checkSigner(t, first)
			if !first.CreatedAt.Equal(t0) {
				t.Errorf("first key CreatedAt = %v, want %v", first.CreatedAt, t0)
			}
			if ids := sealedIDs(storedKeys(t, store)); !slices.Equal(ids, []string{first.ID}) {
				t.Fatalf("stored keys = %q, want [%s]", ids, first.ID)
			}

			steps := []struct {
				name    string
				at      time.Duration // since t0
				wantNew bool
			}{
				{"same instant", 0, false},
				{"a minute later", time.Minute, false},
				{"half way", tt.period / 2, false},
				{"just before the period ends", tt.period - time.Microsecond, false},
				{"period ended", tt.period, true},
				{"new key kept", tt.period + time.Hour, false},
				{"second period ended", 2*tt.period + time.Second, true},
			}
			cur := first
			all := []string{first.ID}
			for _, st := range steps {
				t.Run(st.name, func(t *testing.T) {
					clk.Set(t0.Add(st.at))
					k, err := r.Signer(t.Context())
					must(t, err)
					checkSigner(t, k)
					if st.wantNew {
						if k.ID == cur.ID {
							t.Fatalf("Signer kept key %s at %v, want a new one", k.ID, st.at)
						}
						if !k.CreatedAt.Equal(clk.Now()) {
							t.Errorf("new key CreatedAt = %v, want %v", k.CreatedAt, clk.Now())
						}
						all = append(all, k.ID)
					} else if k.ID != cur.ID {
						t.Fatalf("Signer at %v = %s, want %s", st.at, k.ID, cur.ID)
					}
					cur = k
					stored := storedKeys(t, store)
					got := sealedIDs(stored)
					want := slices.Clone(all)
					slices.Reverse(want)
					if !slices.Equal(got, want) {
						t.Fatalf("stored keys = %q, want newest first %q", got, want)
					}
					checkRetirement(t, store, k.ID)
					if st.wantNew && !stored[1].RetiredAt.Equal(k.CreatedAt) {
						t.Errorf("previous key retired at %v, want %v", stored[1].RetiredAt, k.CreatedAt)
					}
				})
			}
		})
	}
}

func TestRotate(t *testing.T) {
	ctx := t.Context()
	store := openStore(t, t.TempDir())
	clk := newClock(t0)
	r := newRing(t, store, newKEK(t), keyring.Options{Now: clk.Now})

	k1, err := r.Signer(ctx)
	must(t, err)
	clk.Advance(time.Hour)
	k2, err := r.Rotate(ctx)
	must(t, err)
	checkSigner(t, k2)
	if k2.ID == k1.ID || k2.Public.Equal(k1.Public) {
		t.Fatalf("Rotate returned the previous key %s", k1.ID)
	}
	signer, err := r.Signer(ctx)
	must(t, err)
	if signer.ID != k2.ID {
		t.Errorf("Signer after Rotate = %s, want %s", signer.ID, k2.ID)
	}
	stored := storedKeys(t, store)
	if got := sealedIDs(stored); !slices.Equal(got, []string{k2.ID, k1.ID}) {
		t.Fatalf("stored keys = %q, want [%s %s]", got, k2.ID, k1.ID)
	}
	if stored[1].RetiredAt == nil || !stored[1].RetiredAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("previous key RetiredAt = %v, want %v", stored[1].RetiredAt, t0.Add(time.Hour))
	}
	checkRetirement(t, store, k2.ID)

	t.Run("without a previous key", func(t *testing.T) {
		store := openStore(t, t.TempDir())
		r := newRing(t, store, newKEK(t), keyring.Options{Now: newClock(t0).Now})
		k, err := r.Rotate(ctx)
		must(t, err)
		checkSigner(t, k)
		if got := sealedIDs(storedKeys(t, store)); !slices.Equal(got, []string{k.ID}) {
			t.Fatalf("stored keys = %q, want [%s]", got, k.ID)
		}
	})

	// A clock that does not move between rotations (or steps back, as an
	// NTP correction can) must not make an older key the signer again.
	clockTests := []struct {
		name string
		step time.Duration
	}{
		{"same instant", 0},
		{"clock stepped back", -time.Minute},
	}
	for _, tt := range clockTests {
		t.Run(tt.name, func(t *testing.T) {
			store := openStore(t, t.TempDir())
			clk := newClock(t0)
			r := newRing(t, store, newKEK(t), keyring.Options{Now: clk.Now})
			var last *callsign.SigningKey
			for range 8 {
				k, err := r.Rotate(ctx)
				must(t, err)
				last = k
				clk.Advance(tt.step)
			}
			n := len(storedKeys(t, store))
			for range 3 {
				k, err := r.Signer(ctx)
				must(t, err)
				if k.ID != last.ID {
					t.Fatalf("Signer = %s, want the last rotated key %s", k.ID, last.ID)
				}
			}
			if got := len(storedKeys(t, store)); got != n {
				t.Errorf("Signer created %d more keys", got-n)
			}
			checkRetirement(t, store, last.ID)
		})
	}
}

func TestPublished(t *testing.T) {
	ctx := t.Context()
	store := openStore(t, t.TempDir())
	kek := newKEK(t)
	clk := newClock(t0)
	r := newRing(t, store, kek, keyring.Options{Now: clk.Now})
	k1, err := r.Signer(ctx)
	must(t, err)
	clk.Advance(time.Hour)
	retired := clk.Now()
	k2, err := r.Rotate(ctx)
	must(t, err)

	// A retired key stays published for as long as a token it signed can
	// be valid, plus a leeway for clock skew.
	until := retired.Add(callsign.MaxAccessTokenTTL + 5*time.Minute)
	tests := []struct {
		name string
		at   time.Time
		want []string
	}{
		{"at rotation", retired, []string{k2.ID, k1.ID}},
		{"a day later", retired.Add(24 * time.Hour), []string{k2.ID, k1.ID}},
		{"after the longest token expired, within the leeway", retired.Add(callsign.MaxAccessTokenTTL + time.Minute), []string{k2.ID, k1.ID}},
		{"end of the leeway", until, []string{k2.ID, k1.ID}},
		{"just after", until.Add(time.Nanosecond), []string{k2.ID}},
		{"long after", until.Add(365 * 24 * time.Hour), []string{k2.ID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A fresh ring (a restarted server) at the case's time.
			r := newRing(t, store, kek, keyring.Options{Now: func() time.Time { return tt.at }})
			got, err := r.Published(ctx)
			must(t, err)
			if ids := keyIDs(got); !slices.Equal(ids, tt.want) {
				t.Fatalf("Published at %v = %q, want %q", tt.at, ids, tt.want)
			}
			for _, k := range got {
				if k.Private != nil {
					t.Errorf("published key %s includes its private key", k.ID)
				}
				want := k1
				if k.ID == k2.ID {
					want = k2
				}
				if !k.Public.Equal(want.Public) || !k.CreatedAt.Equal(want.CreatedAt) {
					t.Errorf("published key %s = (%x, %v), want (%x, %v)", k.ID, k.Public, k.CreatedAt, want.Public, want.CreatedAt)
				}
				if (k.ID == k1.ID) != (k.RetiredAt != nil) {
					t.Errorf("published key %s RetiredAt = %v", k.ID, k.RetiredAt)
				}
			}
		})
	}

	t.Run("running ring drops the key", func(t *testing.T) {
		clk.Set(until)
		got, err := r.Published(ctx)
		must(t, err)
		if ids := keyIDs(got); !slices.Equal(ids, []string{k2.ID, k1.ID}) {
			t.Fatalf("Published = %q, want both keys", ids)
		}
		clk.Advance(time.Nanosecond)
		got, err = r.Published(ctx)
		must(t, err)
		if ids := keyIDs(got); !slices.Equal(ids, []string{k2.ID}) {
			t.Fatalf("Published = %q, want only %s", ids, k2.ID)
		}
	})
	t.Run("empty store", func(t *testing.T) {
		r := newRing(t, openStore(t, t.TempDir()), kek, keyring.Options{Now: clk.Now})
		got, err := r.Published(ctx)
		must(t, err)
		if len(got) != 0 {
			t.Errorf("Published of an empty store = %q, want none", keyIDs(got))
		}
	})
}

// TestOtherProcessRotation checks that a ring notices, within a bounded
// time, a rotation made by another ring (another process) on its store.
func TestOtherProcessRotation(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	kek := newKEK(t)
	clk := newClock(t0)
	server := newRing(t, openStore(t, dir), kek, keyring.Options{Now: clk.Now})
	cliStore := openStore(t, dir)
	cli := newRing(t, cliStore, kek, keyring.Options{Now: clk.Now})

	k1, err := server.Signer(ctx)
	must(t, err)
	clk.Advance(time.Minute)
	k2, err := cli.Rotate(ctx)
	must(t, err)
	clk.Advance(5 * time.Minute)
	got, err := server.Signer(ctx)
	must(t, err)
	if got.ID != k2.ID {
		t.Errorf("server Signer = %s, want %s rotated by the other ring (first was %s)", got.ID, k2.ID, k1.ID)
	}
	if n := len(storedKeys(t, cliStore)); n != 2 {
		t.Errorf("store has %d keys, want 2", n)
	}
}

func TestWrongKEK(t *testing.T) {
	ctx := t.Context()
	store := openStore(t, t.TempDir())
	clk := newClock(t0)
	good := newRing(t, store, newKEK(t), keyring.Options{Now: clk.Now})
	_, err := good.Signer(ctx)
	must(t, err)

	bad := newRing(t, store, newKEK(t), keyring.Options{Now: clk.Now})
	calls := []struct {
		name string
		call func() error
	}{
		{"Signer", func() error { _, err := bad.Signer(ctx); return err }},
		{"Published", func() error { _, err := bad.Published(ctx); return err }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if err == nil {
				t.Fatal("a ring with another key-encryption key unsealed the signing key")
			}
			if !strings.Contains(err.Error(), keyring.KEKFileName) {
				t.Errorf("error %q does not mention %s", err, keyring.KEKFileName)
			}
		})
	}
	if n := len(storedKeys(t, store)); n != 1 {
		t.Errorf("store has %d keys after the failed calls, want 1", n)
	}
}

// tamperStore returns its KeyStore's keys after passing them to tamper.
type tamperStore struct {
	callsign.KeyStore
	tamper func([]*callsign.SealedKey)
}

func (s tamperStore) SigningKeys(ctx context.Context) ([]*callsign.SealedKey, error) {
	keys, err := s.KeyStore.SigningKeys(ctx)
	if err == nil {
		s.tamper(keys)
	}
	return keys, err
}

// TestTamperedStore checks that a sealed key is authenticated: bound to its
// id and its public key, and refused when altered.
func TestTamperedStore(t *testing.T) {
	tests := []struct {
		name   string
		tamper func([]*callsign.SealedKey)
	}{
		{"sealed keys swapped", func(k []*callsign.SealedKey) {
			k[0].SealedPrivate, k[1].SealedPrivate = k[1].SealedPrivate, k[0].SealedPrivate
		}},
		{"ids swapped", func(k []*callsign.SealedKey) { k[0].ID, k[1].ID = k[1].ID, k[0].ID }},
		{"public key replaced", func(k []*callsign.SealedKey) { k[0].Public = k[1].Public }},
		{"bit flipped", func(k []*callsign.SealedKey) {
			k[0].SealedPrivate = slices.Clone(k[0].SealedPrivate)
			k[0].SealedPrivate[len(k[0].SealedPrivate)-1] ^= 1
		}},
		{"truncated", func(k []*callsign.SealedKey) { k[1].SealedPrivate = k[1].SealedPrivate[:5] }},
		{"empty", func(k []*callsign.SealedKey) { k[1].SealedPrivate = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			store := openStore(t, t.TempDir())
			kek := newKEK(t)
			clk := newClock(t0)
			r := newRing(t, store, kek, keyring.Options{Now: clk.Now})
			_, err := r.Signer(ctx)
			must(t, err)
			clk.Advance(time.Hour)
			_, err = r.Rotate(ctx)
			must(t, err)

			// Control: the untampered store loads.
			if _, err := newRing(t, store, kek, keyring.Options{Now: clk.Now}).Published(ctx); err != nil {
				t.Fatalf("untampered store: %v", err)
			}
			tampered := newRing(t, tamperStore{store, tt.tamper}, kek, keyring.Options{Now: clk.Now})
			if got, err := tampered.Published(ctx); err == nil {
				t.Fatalf("tampered store loaded: %q", keyIDs(got))
			}
			if _, err := tampered.Signer(ctx); err == nil {
				t.Fatal("tampered store gave a signer")
			}
		})
	}
}

func TestConcurrentSigner(t *testing.T) {
	ctx := t.Context()
	store := openStore(t, t.TempDir())
	r := newRing(t, store, newKEK(t), keyring.Options{Now: newClock(t0).Now})
	const n = 16
	var (
		wg   sync.WaitGroup
		keys = make([]*callsign.SigningKey, n)
		errs = make([]error, n)
	)
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = r.Signer(ctx) })
	}
	wg.Wait()
	for i := range n {
		must(t, errs[i])
		if keys[i].ID != keys[0].ID {
			t.Fatalf("concurrent Signer calls returned %s and %s", keys[0].ID, keys[i].ID)
		}
	}
	if got := len(storedKeys(t, store)); got != 1 {
		t.Errorf("concurrent first Signer calls stored %d keys, want 1", got)
	}
}

// TestPrivateKeyNotStored reads every file of a data directory and looks
// for the signing keys' seeds in any encoding we might plausibly write.
func TestPrivateKeyNotStored(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, dir)
	must(t, err)
	t.Cleanup(func() { db.Close() })
	kek, err := keyring.LoadKEK(filepath.Join(dir, keyring.KEKFileName), "")
	must(t, err)
	clk := newClock(t0)
	r := newRing(t, db, kek, keyring.Options{Now: clk.Now})
	k1, err := r.Signer(ctx)
	must(t, err)
	clk.Advance(time.Hour)
	k2, err := r.Rotate(ctx)
	must(t, err)

	forms := func(b []byte) map[string][]byte {
		return map[string][]byte{
			"raw":        b,
			"base64":     []byte(base64.StdEncoding.EncodeToString(b)),
			"raw base64": []byte(base64.RawStdEncoding.EncodeToString(b)),
			"base64url":  []byte(base64.RawURLEncoding.EncodeToString(b)),
			"hex":        []byte(hex.EncodeToString(b)),
		}
	}
	dirBytes := func(t *testing.T) map[string][]byte {
		t.Helper()
		files := map[string][]byte{}
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			files[path] = b
			return err
		})
		must(t, err)
		return files
	}
	check := func(t *testing.T) {
		t.Helper()
		files := dirBytes(t)
		if _, ok := files[filepath.Join(dir, sqlite.FileName)]; !ok {
			t.Fatalf("no %s among %d files", sqlite.FileName, len(files))
		}
		for _, k := range []*callsign.SigningKey{k1, k2} {
			// Control: the public key is stored in the clear, so the search
			// does see the keys' rows.
			found := false
			for _, b := range files {
				found = found || bytes.Contains(b, k.Public)
			}
			if !found {
				t.Fatalf("public key of %s not found in the data directory: the search reads the wrong files", k.ID)
			}
			secrets := forms(k.Private.Seed())
			secrets["private key"] = k.Private
			for path, b := range files {
				for form, s := range secrets {
					if bytes.Contains(b, s) {
						t.Errorf("%s holds the %s form of the seed of key %s", filepath.Base(path), form, k.ID)
					}
				}
			}
		}
	}
	t.Run("open", check) // recent writes are in the -wal file
	t.Run("closed", func(t *testing.T) {
		must(t, db.Close()) // checkpoints the WAL into the database file
		check(t)
	})
}
