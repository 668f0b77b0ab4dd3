package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/callsignhq/callsign"
)

const appColumns = "id, name, public_token, access_token_ttl_ms, created_at, revoked_at, event_retention_ms, rollup_retention_ms"

func scanApp(s scanner) (*callsign.App, error) {
	var (
		a         callsign.App
		ttl, cr   int64
		revokedAt sql.NullInt64
		er, rr    int64
	)
	if err := s.Scan(&a.ID, &a.Name, &a.PublicToken, &ttl, &cr, &revokedAt, &er, &rr); err != nil {
		return nil, err
	}
	a.EventRetention = time.Duration(er) * time.Millisecond
	a.RollupRetention = time.Duration(rr) * time.Millisecond
	a.AccessTokenTTL = time.Duration(ttl) * time.Millisecond
	a.CreatedAt = fromMicros(cr)
	a.RevokedAt = timePtr(revokedAt)
	return &a, nil
}

// CreateApp implements callsign.AppStore.
func (db *DB) CreateApp(ctx context.Context, app *callsign.App, first *callsign.Secret) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			"INSERT INTO apps ("+appColumns+") VALUES (?, ?, ?, ?, ?, NULL, ?, ?)",
			app.ID, app.Name, app.PublicToken, app.AccessTokenTTL.Milliseconds(), micros(app.CreatedAt),
			app.EventRetention.Milliseconds(), app.RollupRetention.Milliseconds())
		if err != nil {
			return err
		}
		if err := insertOrigins(ctx, tx, app.ID, app.AllowedOrigins); err != nil {
			return err
		}
		if first != nil {
			return insertSecret(ctx, tx, first)
		}
		return nil
	})
}

func insertOrigins(ctx context.Context, tx *sql.Tx, appID string, origins []string) error {
	for _, o := range origins {
		if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO app_origins (origin, app_id) VALUES (?, ?)", o, appID); err != nil {
			return err
		}
	}
	return nil
}

// loadOrigins fills in the AllowedOrigins of apps.
func (db *DB) loadOrigins(ctx context.Context, apps ...*callsign.App) error {
	if len(apps) == 0 {
		return nil
	}
	byID := make(map[string]*callsign.App, len(apps))
	for _, a := range apps {
		byID[a.ID] = a
	}
	var (
		rows *sql.Rows
		err  error
	)
	if len(apps) == 1 {
		rows, err = db.originsOfApp.QueryContext(ctx, apps[0].ID)
	} else {
		rows, err = db.r.QueryContext(ctx, "SELECT app_id, origin FROM app_origins ORDER BY app_id, origin")
	}
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, o string
		if err := rows.Scan(&id, &o); err != nil {
			return err
		}
		if a := byID[id]; a != nil {
			a.AllowedOrigins = append(a.AllowedOrigins, o)
		}
	}
	return rows.Err()
}

func (db *DB) oneApp(ctx context.Context, st *sql.Stmt, arg any) (*callsign.App, error) {
	a, err := scanApp(st.QueryRowContext(ctx, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("app")
	}
	if err != nil {
		return nil, err
	}
	return a, db.loadOrigins(ctx, a)
}

// App implements callsign.AppStore.
func (db *DB) App(ctx context.Context, id string) (*callsign.App, error) {
	return db.oneApp(ctx, db.appByID, id)
}

// AppByPublicToken implements callsign.AppStore.
func (db *DB) AppByPublicToken(ctx context.Context, token string) (*callsign.App, error) {
	return db.oneApp(ctx, db.appByPublic, token)
}

// Apps implements callsign.AppStore.
func (db *DB) Apps(ctx context.Context) ([]*callsign.App, error) {
	rows, err := db.r.QueryContext(ctx, "SELECT "+appColumns+" FROM apps ORDER BY created_at, id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var apps []*callsign.App
	for rows.Next() {
		a, err := scanApp(rows)
		if err != nil {
			return nil, err
		}
		apps = append(apps, a)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return apps, db.loadOrigins(ctx, apps...)
}

// AppsAllowingOrigin implements callsign.AppStore.
func (db *DB) AppsAllowingOrigin(ctx context.Context, origin string) (bool, error) {
	var n int
	err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM app_origins o JOIN apps a ON a.id = o.app_id
		WHERE o.origin IN (?, '*') AND a.revoked_at IS NULL`, origin).Scan(&n)
	return n > 0, err
}

// UpdateApp implements callsign.AppStore.
func (db *DB) UpdateApp(ctx context.Context, id string, u callsign.AppUpdate) (*callsign.App, error) {
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, "SELECT 1 FROM apps WHERE id = ?", id).Scan(&one); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return notFound("app")
			}
			return err
		}
		if u.Name != nil {
			if _, err := tx.ExecContext(ctx, "UPDATE apps SET name = ? WHERE id = ?", *u.Name, id); err != nil {
				return err
			}
		}
		if u.AccessTokenTTL != nil {
			if _, err := tx.ExecContext(ctx, "UPDATE apps SET access_token_ttl_ms = ? WHERE id = ?", u.AccessTokenTTL.Milliseconds(), id); err != nil {
				return err
			}
		}
		for _, f := range []struct {
			col string
			d   *time.Duration
		}{{"event_retention_ms", u.EventRetention}, {"rollup_retention_ms", u.RollupRetention}} {
			if f.d != nil {
				if _, err := tx.ExecContext(ctx, "UPDATE apps SET "+f.col+" = ? WHERE id = ?", f.d.Milliseconds(), id); err != nil {
					return err
				}
			}
		}
		if u.AllowedOrigins != nil {
			if _, err := tx.ExecContext(ctx, "DELETE FROM app_origins WHERE app_id = ?", id); err != nil {
				return err
			}
			return insertOrigins(ctx, tx, id, *u.AllowedOrigins)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return db.App(ctx, id)
}

// RevokeApp implements callsign.AppStore.
func (db *DB) RevokeApp(ctx context.Context, id string, t time.Time) error {
	return db.exec1(ctx, "app", "UPDATE apps SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", micros(t), id)
}

// exec1 runs a statement that must affect exactly one row, else ENotFound.
func (db *DB) exec1(ctx context.Context, what, q string, args ...any) error {
	res, err := db.w.ExecContext(ctx, q, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound(what)
	}
	return nil
}

const secretColumns = "id, app_id, name, hash, created_at, last_used_at, revoked_at"

func insertSecret(ctx context.Context, tx *sql.Tx, s *callsign.Secret) error {
	_, err := tx.ExecContext(ctx, "INSERT INTO secrets ("+secretColumns+") VALUES (?, ?, ?, ?, ?, NULL, NULL)",
		s.ID, s.AppID, s.Name, s.Hash[:], micros(s.CreatedAt))
	return err
}

func scanSecret(s scanner) (*callsign.Secret, error) {
	var (
		x                 callsign.Secret
		hash              []byte
		cr                int64
		lastUsed, revoked sql.NullInt64
	)
	if err := s.Scan(&x.ID, &x.AppID, &x.Name, &hash, &cr, &lastUsed, &revoked); err != nil {
		return nil, err
	}
	copy(x.Hash[:], hash)
	x.CreatedAt = fromMicros(cr)
	x.LastUsedAt = timePtr(lastUsed)
	x.RevokedAt = timePtr(revoked)
	return &x, nil
}

// CreateSecret implements callsign.AppStore.
func (db *DB) CreateSecret(ctx context.Context, s *callsign.Secret) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		var revoked sql.NullInt64
		err := tx.QueryRowContext(ctx, "SELECT revoked_at FROM apps WHERE id = ?", s.AppID).Scan(&revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("app")
		}
		if err != nil {
			return err
		}
		if revoked.Valid {
			return callsign.Errorf(callsign.ERevoked, "The app is revoked; it cannot get new secrets.")
		}
		return insertSecret(ctx, tx, s)
	})
}

// Secrets implements callsign.AppStore.
func (db *DB) Secrets(ctx context.Context, appID string) ([]*callsign.Secret, error) {
	rows, err := db.r.QueryContext(ctx, "SELECT "+secretColumns+" FROM secrets WHERE app_id = ? ORDER BY created_at, id", appID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*callsign.Secret
	for rows.Next() {
		s, err := scanSecret(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// SecretByHash implements callsign.AppStore.
func (db *DB) SecretByHash(ctx context.Context, h callsign.TokenHash) (*callsign.Secret, error) {
	s, err := scanSecret(db.secretByHash.QueryRowContext(ctx, h[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("secret")
	}
	return s, err
}

// RevokeSecret implements callsign.AppStore.
func (db *DB) RevokeSecret(ctx context.Context, appID, id string, t time.Time) error {
	return db.exec1(ctx, "secret", "UPDATE secrets SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? AND app_id = ?", micros(t), id, appID)
}

// TouchSecret implements callsign.AppStore.
func (db *DB) TouchSecret(ctx context.Context, id string, t time.Time) error {
	_, err := db.w.ExecContext(ctx, "UPDATE secrets SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE id = ?", micros(t), id)
	return err
}
