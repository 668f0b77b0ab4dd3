// Package keyring keeps the Ed25519 keys that sign app access tokens: it
// creates the first key, rotates keys, seals private keys at rest and says
// which public keys must still be published.
//
// # Protection at rest
//
// A private key is never stored in the clear. The store holds it sealed with
// AES-256-GCM under a key-encryption key (KEK), with the key id as
// additional data so that a sealed key cannot be swapped under another id.
// The KEK lives outside the database: in the file DIR/master.key (created
// 0600, refused if group- or world-readable) or in the environment variable
// CALLSIGN_MASTER_KEY. A copy of the database alone, a backup or a dump of
// a shared PostgreSQL, does not reveal the signing keys. Keys are never
// logged and never leave the process except as public keys in the JWKS.
//
// # Rotation
//
// The newest key signs. Rotate makes a new key the signer and retires the
// others; a retired key stays published (and so keeps verifying) until every
// token it can have signed has expired: its retirement time plus
// callsign.MaxAccessTokenTTL plus a leeway. Keys rotate by themselves after
// Options.RotateEvery.
package keyring

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/callsignhq/callsign"
)

// KEKFileName is the name of the key-encryption key file in a data directory.
const KEKFileName = "master.key"

// KEKEnv is the environment variable that, when set, holds the
// key-encryption key (base64 of 32 bytes) instead of the file.
const KEKEnv = "CALLSIGN_MASTER_KEY"

// Defaults.
const (
	DefaultRotateEvery = 30 * 24 * time.Hour
	// publishLeeway covers clock skew between the signer and verifiers.
	publishLeeway = 5 * time.Minute
	// reloadEvery bounds how long a rotation made by another process (the
	// CLI, another server on a shared store) goes unnoticed.
	reloadEvery = 30 * time.Second
)

// LoadKEK returns the key-encryption key from the CALLSIGN_MASTER_KEY value
// env if it is not empty, else from path, creating the file (0600) with a new
// random key if it does not exist.
func LoadKEK(path, env string) ([]byte, error) {
	if env != "" {
		return decodeKEK(env, KEKEnv)
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k := make([]byte, 32)
		rand.Read(k)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("keyring: create %s: %w", path, err)
		}
		_, werr := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			return nil, fmt.Errorf("keyring: write %s: %w", path, err)
		}
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keyring: read %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("keyring: %s is readable by other users (mode %v); run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	return decodeKEK(string(b), path)
}

func decodeKEK(s, from string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(k) != 32 {
		return nil, fmt.Errorf("keyring: %s must hold the base64 encoding of 32 bytes", from)
	}
	return k, nil
}

// Options configure a Ring. The zero value is usable.
type Options struct {
	// RotateEvery is the age at which the signing key is replaced;
	// DefaultRotateEvery if zero.
	RotateEvery time.Duration
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Ring holds the signing keys. It is safe for concurrent use.
type Ring struct {
	store callsign.KeyStore
	aead  cipher.AEAD
	opts  Options

	mu       sync.Mutex
	keys     []*callsign.SigningKey // newest first
	loadedAt time.Time
}

// New returns a Ring over store whose private keys are sealed with kek (32
// bytes).
func New(store callsign.KeyStore, kek []byte, opts Options) (*Ring, error) {
	if len(kek) != 32 {
		return nil, fmt.Errorf("keyring: the key-encryption key must be 32 bytes (AES-256), not %d", len(kek))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("keyring: key-encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if opts.RotateEvery <= 0 {
		opts.RotateEvery = DefaultRotateEvery
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Ring{store: store, aead: aead, opts: opts}, nil
}

func aad(kid string) []byte { return []byte("callsign signing key v1:" + kid) }

func (r *Ring) seal(k *callsign.SigningKey) []byte {
	nonce := make([]byte, r.aead.NonceSize(), r.aead.NonceSize()+ed25519.SeedSize+r.aead.Overhead())
	rand.Read(nonce)
	return r.aead.Seal(nonce, nonce, k.Private.Seed(), aad(k.ID))
}

func (r *Ring) unseal(s *callsign.SealedKey) (*callsign.SigningKey, error) {
	ns := r.aead.NonceSize()
	if len(s.SealedPrivate) < ns {
		return nil, fmt.Errorf("keyring: sealed key %s is truncated", s.ID)
	}
	seed, err := r.aead.Open(nil, s.SealedPrivate[:ns], s.SealedPrivate[ns:], aad(s.ID))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("keyring: cannot unseal signing key %s: wrong master key (%s) or corrupted store", s.ID, KEKFileName)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	if !priv.Public().(ed25519.PublicKey).Equal(s.Public) {
		return nil, fmt.Errorf("keyring: signing key %s does not match its public key", s.ID)
	}
	return &callsign.SigningKey{ID: s.ID, Public: s.Public, Private: priv, CreatedAt: s.CreatedAt, RetiredAt: s.RetiredAt}, nil
}

// load reads the keys from the store when the cache is older than
// reloadEvery (or force is set). r.mu must be held.
func (r *Ring) load(ctx context.Context, force bool) error {
	now := r.opts.Now()
	if !force && r.keys != nil && now.Sub(r.loadedAt) < reloadEvery {
		return nil
	}
	sealed, err := r.store.SigningKeys(ctx)
	if err != nil {
		return err
	}
	keys := make([]*callsign.SigningKey, 0, len(sealed))
	for _, s := range sealed {
		k, err := r.unseal(s)
		if err != nil {
			return err
		}
		keys = append(keys, k)
	}
	r.keys, r.loadedAt = keys, now
	return nil
}

// Signer returns the key that signs new tokens, creating or rotating it
// when there is none or it is older than Options.RotateEvery.
func (r *Ring) Signer(ctx context.Context) (*callsign.SigningKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.load(ctx, false); err != nil {
		return nil, err
	}
	// The live key is the one not retired, which is not always keys[0]:
	// keys are ordered by creation time, and a clock that stood still or
	// stepped back between two rotations puts the new key after older ones.
	for _, k := range r.keys {
		if k.RetiredAt == nil && r.opts.Now().Sub(k.CreatedAt) < r.opts.RotateEvery {
			return k, nil
		}
	}
	return r.rotate(ctx)
}

// Rotate makes a new key the signer and retires the previous ones.
func (r *Ring) Rotate(ctx context.Context) (*callsign.SigningKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rotate(ctx)
}

func (r *Ring) rotate(ctx context.Context) (*callsign.SigningKey, error) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	k := &callsign.SigningKey{ID: callsign.RandomID("k", 15), Public: pub, Private: priv, CreatedAt: r.opts.Now().UTC().Truncate(time.Microsecond)}
	err = r.store.RotateSigningKey(ctx, &callsign.SealedKey{ID: k.ID, Public: pub, SealedPrivate: r.seal(k), CreatedAt: k.CreatedAt})
	if err != nil {
		return nil, fmt.Errorf("keyring: store new signing key: %w", err)
	}
	if err := r.load(ctx, true); err != nil {
		return nil, err
	}
	return k, nil
}

// Published returns the keys that verifiers must know, newest first: the
// signer and every retired key that may have signed a token not yet expired.
// Private halves are not included.
func (r *Ring) Published(ctx context.Context) ([]*callsign.SigningKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.load(ctx, false); err != nil {
		return nil, err
	}
	now := r.opts.Now()
	var out []*callsign.SigningKey
	for _, k := range r.keys {
		if k.RetiredAt != nil && now.After(k.RetiredAt.Add(callsign.MaxAccessTokenTTL+publishLeeway)) {
			continue
		}
		out = append(out, &callsign.SigningKey{ID: k.ID, Public: k.Public, CreatedAt: k.CreatedAt, RetiredAt: k.RetiredAt})
	}
	return out, nil
}
