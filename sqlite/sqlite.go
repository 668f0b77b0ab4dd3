// Package sqlite is callsign's embedded store: SQLite through
// modernc.org/sqlite, a pure-Go translation of SQLite.
//
// # Why this engine
//
// The embedded store must need nothing installed: `go install` and
// `go run ./cmd/callsign serve` work on a machine without a C toolchain, and
// the data is one directory that can be copied. modernc.org/sqlite gives
// that: no cgo, the real SQLite file format and SQL, WAL journaling with
// fsync'd commits, and concurrent readers beside one writer, also across
// processes (so `callsign admin token` can write while a server runs on the
// same directory). The trade-off is speed: the translated C runs slower than
// cgo SQLite (mattn/go-sqlite3), and an analytical engine such as DuckDB
// aggregates far faster; BENCHMARKS.md has the figures we measured before
// choosing. The token service does point lookups by unique index and rare
// writes, where the difference is small next to an HTTP round trip; deployments
// that outgrow one machine use the --store engines instead.
//
// # Durability and files
//
// The database is DIR/callsign.db in WAL mode with synchronous=FULL: a
// commit is fsync'd before it returns. The directory is created 0700 and the
// database file 0600 (SQLite gives its -wal and -shm files the database
// file's mode).
//
// Writes go through a pool of one connection (SQLite has one writer anyway;
// a single connection avoids SQLITE_BUSY between our own goroutines) with
// BEGIN IMMEDIATE transactions; reads go through a separate read-only pool.
//
// # Analytics events
//
// DB is also the callsign.EventStore: raw events, and rollups (per minute,
// hour and day × route × status class × auth error; per hour and day × user
// × company) that answer Metrics without reading raw events. Latency
// percentiles come from DDSketch (github.com/DataDog/sketches-go) with a
// relative accuracy of 1% (SketchRelativeAccuracy): a reported p50, p95 or
// p99 is within 1% of the latency, truncated to the microsecond, of an
// event at that rank, whatever the distribution and however many buckets
// are merged. Raw events are stored in dictionary-encoded blocks of up to
// 2,048 events, one row each, with a narrow key table for idempotency:
// a row per event with 24 bound columns is what made appends slow. An
// append is durable when it returns; aggregation into the rollups follows,
// in the background, from a durable watermark (see events.go).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callsignhq/callsign"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// FileName is the name of the database file inside the data directory.
const FileName = "callsign.db"

// DB is the embedded store. It implements callsign.Store.
type DB struct {
	w, r *sql.DB
	path string
	// Prepared once: the lookups on the request path.
	secretByHash, adminByHash, appByID, appByPublic, originsOfApp *sql.Stmt
	ev                                                            eventStmts
	roll                                                          roller
	commit                                                        committer
	keys                                                          pendingKeys
	// Background work besides the roller and the committer, stopped by
	// Close.
	bgCtx  context.Context
	bgStop context.CancelFunc
	bg     sync.WaitGroup
	// The background work failing now, for BackgroundErr.
	failing struct {
		mu             sync.Mutex
		rollup, filter *bgFailure
	}
}

// bgFailure is a background job's failure: since when, the last error.
type bgFailure struct {
	since time.Time
	err   error
}

// setFailing records the outcome of a run of a background job: err
// (nil: it succeeded, and is well again).
func (db *DB) setFailing(job **bgFailure, err error) {
	db.failing.mu.Lock()
	defer db.failing.mu.Unlock()
	switch {
	case err == nil:
		*job = nil
	case *job == nil:
		*job = &bgFailure{since: time.Now(), err: err}
	default:
		(*job).err = err
	}
}

// BackgroundErr reports the background work of the store that is failing
// now, with the last error and since when, or nil when all is well: the
// aggregation of events into rollups (retried with backoff; events stay
// durable and queries aggregate what they need themselves) and the filter
// of stored event keys (until it is built, appends look every key up in
// SQL, which is slower).
func (db *DB) BackgroundErr() error {
	db.failing.mu.Lock()
	defer db.failing.mu.Unlock()
	var errs []error
	for _, f := range []struct {
		what string
		f    *bgFailure
	}{{"aggregating events into rollups", db.failing.rollup}, {"building the filter of stored event keys", db.failing.filter}} {
		if f.f != nil {
			errs = append(errs, fmt.Errorf("sqlite: %s has been failing since %s: %w", f.what, f.f.since.UTC().Format(time.RFC3339), f.f.err))
		}
	}
	return errors.Join(errs...)
}

var (
	_ callsign.Store      = (*DB)(nil)
	_ callsign.EventStore = (*DB)(nil)
)

// Errors of Open about the store's schema version.
var (
	// ErrSchemaNewer: the store was migrated by a newer callsign, whose
	// schema this one does not know. Upgrade callsign.
	ErrSchemaNewer = errors.New("sqlite: the store's schema is newer than this callsign knows")
	// ErrMigrationsPending: with WithoutMigrations, the store's schema is
	// older than this package's.
	ErrMigrationsPending = errors.New("sqlite: the store's schema needs migrating")
)

// Option configures Open.
type Option func(*openOptions)

type openOptions struct{ noMigrate bool }

// WithoutMigrations makes Open refuse, with ErrMigrationsPending, a store
// whose schema is older than this package's instead of migrating it: for a
// process sharing the directory with a running server, which may be an
// older version that does not know the new schema.
func WithoutMigrations() Option { return func(o *openOptions) { o.noMigrate = true } }

// Open opens (creating if needed) the store in directory dir and applies
// pending migrations (unless WithoutMigrations). It refuses a store whose
// schema is newer than it knows (ErrSchemaNewer).
func Open(ctx context.Context, dir string, opts ...Option) (*DB, error) {
	var o openOptions
	for _, opt := range opts {
		opt(&o)
	}
	if dir == "" {
		return nil, errors.New("sqlite: no data directory given")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: create data directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	// Create the file ourselves so that it (and the -wal/-shm files SQLite
	// derives from it) is 0600 whatever the umask.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	f.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("sqlite: chmod %s: %w", path, err)
	}

	pragmas := "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"
	u := "file:" + (&url.URL{Path: path}).EscapedPath() + "?"
	w, err := sql.Open("sqlite", u+pragmas+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	r, err := sql.Open("sqlite", u+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxLifetime(0)

	db := &DB{w: w, r: r, path: path}
	db.bgCtx, db.bgStop = context.WithCancel(context.WithoutCancel(ctx))
	if err := db.migrate(ctx, o.noMigrate); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.prepare(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.loadPendingKeys(ctx); err != nil {
		db.Close()
		return nil, err
	}
	db.startCommitter()
	if err := db.startRoller(ctx); err != nil {
		db.Close()
		return nil, err
	}
	db.rebuildStoredFilter()
	return db, nil
}

func (db *DB) prepare(ctx context.Context) error {
	for _, p := range []struct {
		stmt **sql.Stmt
		q    string
	}{
		{&db.secretByHash, "SELECT " + secretColumns + " FROM secrets WHERE hash = ?"},
		{&db.adminByHash, "SELECT " + adminColumns + " FROM admin_tokens WHERE hash = ?"},
		{&db.appByID, "SELECT " + appColumns + " FROM apps WHERE id = ?"},
		{&db.appByPublic, "SELECT " + appColumns + " FROM apps WHERE public_token = ?"},
		{&db.originsOfApp, "SELECT app_id, origin FROM app_origins WHERE app_id = ? ORDER BY origin"},
	} {
		st, err := db.r.PrepareContext(ctx, p.q)
		if err != nil {
			return fmt.Errorf("sqlite: prepare: %w", err)
		}
		*p.stmt = st
	}
	return db.prepareEvents(ctx)
}

// Close stops the background aggregation and closes both connection
// pools. Events it had not aggregated yet are aggregated by the next Open.
func (db *DB) Close() error {
	db.stopCommitter()
	db.stopRoller()
	if db.bgStop != nil {
		db.bgStop()
		db.bg.Wait()
	}
	var errs []error
	for _, st := range append([]*sql.Stmt{db.secretByHash, db.adminByHash, db.appByID, db.appByPublic, db.originsOfApp}, db.ev.all()...) {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(append(errs, db.r.Close(), db.w.Close())...)
}

// migrate applies, in one transaction each, the embedded migrations newer
// than the database's user_version; with check only, it fails instead when
// there are any.
func (db *DB) migrate(ctx context.Context, checkOnly bool) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	versions := make([]int, len(names))
	for i, name := range names {
		if versions[i], err = strconv.Atoi(strings.SplitN(filepath.Base(name), "_", 2)[0]); err != nil {
			return fmt.Errorf("sqlite: migration %s: bad name", name)
		}
	}
	latest := versions[len(versions)-1]
	var cur int
	if err := db.r.QueryRowContext(ctx, "PRAGMA user_version").Scan(&cur); err != nil {
		return fmt.Errorf("sqlite: read the schema version: %w", err)
	}
	switch {
	case cur > latest:
		return fmt.Errorf("%w: %s is at schema version %d; this callsign knows up to %d: upgrade callsign", ErrSchemaNewer, db.path, cur, latest)
	case cur < latest && checkOnly:
		return fmt.Errorf("%w: %s is at schema version %d; this callsign needs %d", ErrMigrationsPending, db.path, cur, latest)
	}
	for i, name := range names {
		v := versions[i]
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		err = db.tx(ctx, func(tx *sql.Tx) error {
			var cur int
			if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&cur); err != nil {
				return err
			}
			if cur >= v {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			if post := migrationCode[v]; post != nil {
				if err := post(ctx, tx); err != nil {
					return err
				}
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v))
			return err
		})
		if err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", name, err)
		}
	}
	return nil
}

// migrationCode is the part of a migration that SQL alone cannot do, run
// after its SQL in its transaction.
var migrationCode = map[int]func(context.Context, *sql.Tx) error{
	4: convertEventKeys,
}

// readTx runs fn in a read-only transaction on the readers: one snapshot.
func (db *DB) readTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(tx)
}

func (db *DB) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func timePtr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

func notFound(what string) error {
	return callsign.Errorf(callsign.ENotFound, "No %s with that id exists.", what)
}

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner interface{ Scan(...any) error }
