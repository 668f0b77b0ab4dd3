package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/callsignhq/callsign"
)

const adminColumns = "id, name, hash, created_at, last_used_at, revoked_at"

func scanAdmin(s scanner) (*callsign.AdminToken, error) {
	var (
		x                 callsign.AdminToken
		hash              []byte
		cr                int64
		lastUsed, revoked sql.NullInt64
	)
	if err := s.Scan(&x.ID, &x.Name, &hash, &cr, &lastUsed, &revoked); err != nil {
		return nil, err
	}
	copy(x.Hash[:], hash)
	x.CreatedAt = fromMicros(cr)
	x.LastUsedAt = timePtr(lastUsed)
	x.RevokedAt = timePtr(revoked)
	return &x, nil
}

// CreateAdminToken implements callsign.AdminStore.
func (db *DB) CreateAdminToken(ctx context.Context, t *callsign.AdminToken) error {
	_, err := db.w.ExecContext(ctx, "INSERT INTO admin_tokens ("+adminColumns+") VALUES (?, ?, ?, ?, NULL, NULL)",
		t.ID, t.Name, t.Hash[:], micros(t.CreatedAt))
	return err
}

// AdminTokens implements callsign.AdminStore.
func (db *DB) AdminTokens(ctx context.Context) ([]*callsign.AdminToken, error) {
	rows, err := db.r.QueryContext(ctx, "SELECT "+adminColumns+" FROM admin_tokens ORDER BY created_at, id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*callsign.AdminToken
	for rows.Next() {
		t, err := scanAdmin(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// AdminTokenByHash implements callsign.AdminStore.
func (db *DB) AdminTokenByHash(ctx context.Context, h callsign.TokenHash) (*callsign.AdminToken, error) {
	t, err := scanAdmin(db.adminByHash.QueryRowContext(ctx, h[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("admin token")
	}
	return t, err
}

// RevokeAdminToken implements callsign.AdminStore.
func (db *DB) RevokeAdminToken(ctx context.Context, id string, t time.Time) error {
	return db.exec1(ctx, "admin token", "UPDATE admin_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", micros(t), id)
}

// TouchAdminToken implements callsign.AdminStore.
func (db *DB) TouchAdminToken(ctx context.Context, id string, t time.Time) error {
	_, err := db.w.ExecContext(ctx, "UPDATE admin_tokens SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE id = ?", micros(t), id)
	return err
}

// SigningKeys implements callsign.KeyStore.
func (db *DB) SigningKeys(ctx context.Context) ([]*callsign.SealedKey, error) {
	rows, err := db.r.QueryContext(ctx, "SELECT id, public_key, sealed_private, created_at, retired_at FROM signing_keys ORDER BY created_at DESC, id DESC")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*callsign.SealedKey
	for rows.Next() {
		var (
			k       callsign.SealedKey
			pub     []byte
			cr      int64
			retired sql.NullInt64
		)
		if err := rows.Scan(&k.ID, &pub, &k.SealedPrivate, &cr, &retired); err != nil {
			return nil, err
		}
		k.Public = pub
		k.CreatedAt = fromMicros(cr)
		k.RetiredAt = timePtr(retired)
		out = append(out, &k)
	}
	return out, rows.Err()
}

// RotateSigningKey implements callsign.KeyStore.
func (db *DB) RotateSigningKey(ctx context.Context, k *callsign.SealedKey) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL", micros(k.CreatedAt)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO signing_keys (id, public_key, sealed_private, created_at) VALUES (?, ?, ?, ?)",
			k.ID, []byte(k.Public), k.SealedPrivate, micros(k.CreatedAt))
		return err
	})
}
