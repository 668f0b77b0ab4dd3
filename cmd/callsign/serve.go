package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/httpapi"
	"github.com/callsignhq/callsign/internal/flock"
	"github.com/callsignhq/callsign/keyring"
	"github.com/callsignhq/callsign/sqlite"
	"github.com/spf13/cobra"
)

type serveFlags struct {
	addr, data, store, issuer, logFormat string
	rateApp, rateIP, ingestRate          float64
	rotateEvery, retentionEvery          time.Duration
}

func newServeCmd() *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the callsign server (token service, event ingest and queries, admin API) on the embedded store",
		Long: `Run the callsign server.

By default the data lives in an embedded store in --data (created if
missing; nothing to install). The key that encrypts access-token signing
keys is --data/master.key (or $CALLSIGN_MASTER_KEY); keep it with backups
but apart from database copies.

Events sent to POST /v2/events are acknowledged once durable in the same
store; a background job deletes them (and metric rollups) past each app's
retention every --retention-every.

One server runs on a data directory at a time (it holds a lock on
DATA/serve.lock); other commands may use the directory meanwhile.

Stop with SIGINT or SIGTERM: in-flight requests finish first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return serve(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "127.0.0.1:8080", "address to listen on (HOST:PORT)")
	fl.StringVar(&f.data, "data", "./callsign-data", "data directory of the embedded store")
	fl.StringVar(&f.store, "store", "", "external store URL (reserved; only the embedded store exists in this release)")
	fl.StringVar(&f.issuer, "issuer", "", `"iss" of minted access tokens, normally the public base URL (default "http://" + the listening address)`)
	fl.StringVar(&f.logFormat, "log-format", "json", "log format: json or text")
	fl.Float64Var(&f.rateApp, "upgrade-rate-app", 0, "token upgrades per second per app (0: default 50; negative: unlimited)")
	fl.Float64Var(&f.rateIP, "upgrade-rate-ip", 0, "token upgrades per second per client IP (0: default 10; negative: unlimited)")
	fl.DurationVar(&f.rotateEvery, "rotate-keys-every", keyring.DefaultRotateEvery, "age at which the access-token signing key is replaced")
	fl.Float64Var(&f.ingestRate, "ingest-rate-app", 0, fmt.Sprintf("events per second each app may ingest (0: default %d; negative: unlimited)", httpapi.DefaultIngestRatePerApp))
	fl.DurationVar(&f.retentionEvery, "retention-every", 15*time.Minute, "how often expired events and rollups are deleted (first run 10s after start; 0: never)")
	return cmd
}

// openStore opens the store named by storeURL, or the embedded one in dir,
// for a command other than serve. While a server runs on dir (it holds
// serve.lock), the embedded store is not migrated: that server may be an
// older version, which the new schema would break; the command asks for
// the server to be stopped instead.
func openStore(ctx context.Context, storeURL, dir string) (callsign.Store, error) {
	if storeURL != "" {
		return openStoreServing(ctx, storeURL, dir)
	}
	f, err := flock.TryLock(filepath.Join(dir, serveLock))
	switch {
	case errors.Is(err, flock.ErrLocked):
		db, err := sqlite.Open(ctx, dir, sqlite.WithoutMigrations())
		if errors.Is(err, sqlite.ErrMigrationsPending) {
			return nil, fmt.Errorf("%w: a callsign serve is running on %s; stop it and run this again (or start this version's callsign serve, which migrates the store)", err, dir)
		}
		return db, err
	case err == nil && f != nil:
		f.Close() // no server: this command may migrate
	}
	return sqlite.Open(ctx, dir)
}

// openStoreServing opens the store named by storeURL, or the embedded one
// in dir (which serve has locked), migrating it.
func openStoreServing(ctx context.Context, storeURL, dir string) (callsign.Store, error) {
	if storeURL == "" {
		return sqlite.Open(ctx, dir)
	}
	u, err := url.Parse(storeURL)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("--store %q is not a URL such as postgres://host/db", redactURL(storeURL))
	}
	switch u.Scheme {
	case "postgres", "postgresql":
		return nil, fmt.Errorf("--store %s://: the PostgreSQL engine is not in this release yet; omit --store to use the embedded store", u.Scheme)
	}
	return nil, fmt.Errorf("--store: unknown engine %q; omit --store to use the embedded store in --data", u.Scheme)
}

// redactURL drops anything after the scheme, which may hold a password.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		return u.Scheme + "://..."
	}
	return "(unparsable)"
}

func newLogger(format string) (*slog.Logger, error) {
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, nil)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, nil)), nil
	}
	return nil, fmt.Errorf("--log-format must be json or text, not %q", format)
}

func openRing(store callsign.Store, dir string, rotateEvery time.Duration) (*keyring.Ring, error) {
	kek, err := keyring.LoadKEK(filepath.Join(dir, keyring.KEKFileName), os.Getenv(keyring.KEKEnv))
	if err != nil {
		return nil, err
	}
	return keyring.New(store, kek, keyring.Options{RotateEvery: rotateEvery})
}

func serve(ctx context.Context, f *serveFlags) error {
	log, err := newLogger(f.logFormat)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	if f.store == "" {
		lock, err := lockDataDir(f.data)
		if err != nil {
			return err
		}
		if lock != nil {
			defer lock.Close()
		}
	}
	store, err := openStoreServing(ctx, f.store, f.data)
	if err != nil {
		return err
	}
	defer store.Close()
	ring, err := openRing(store, f.data, f.rotateEvery)
	if err != nil {
		return err
	}
	if _, err := ring.Signer(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return err
	}
	issuer := f.issuer
	if issuer == "" {
		issuer = defaultIssuer(ln.Addr())
	}
	// The embedded store keeps events beside apps; an engine without
	// events leaves the analytics routes answering 503.
	events, _ := store.(callsign.EventStore)
	api, err := httpapi.New(httpapi.Config{Store: store, Events: events, Keys: ring, Issuer: issuer, Logger: log,
		UpgradeRatePerApp: f.rateApp, UpgradeRatePerIP: f.rateIP, IngestRatePerApp: f.ingestRate})
	if err != nil {
		return err
	}
	jobs, stopJobs := context.WithCancel(context.Background())
	retentionDone := make(chan struct{})
	go func() {
		defer close(retentionDone)
		api.RunRetention(jobs, min(10*time.Second, f.retentionEvery), f.retentionEvery)
	}()
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		watchBackground(jobs, events, log, 10*time.Second)
	}()
	// Before the store closes (deferred above): stop the jobs and wait for
	// a run in progress.
	defer func() {
		stopJobs()
		<-retentionDone
		<-watchDone
	}()
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("callsign serving", "addr", ln.Addr().String(), "data", f.data, "issuer", issuer)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// watchBackground logs, every interval until ctx ends, the background
// work of the event store that is failing (when it has any, as
// *sqlite.DB), when that changes: an error when it starts or changes, info
// when it is well again. GET /healthz says "degraded" meanwhile.
func watchBackground(ctx context.Context, events callsign.EventStore, log *slog.Logger, interval time.Duration) {
	bg, ok := events.(httpapi.BackgroundErrer)
	if !ok {
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := ""
		if err := bg.BackgroundErr(); err != nil {
			now = err.Error()
		}
		switch {
		case now == last:
		case now != "":
			log.Error("event store background work failing", "error", now)
		default:
			log.Info("event store background work well again")
		}
		last = now
	}
}

// defaultIssuer is http://HOST:PORT of the listener, with 127.0.0.1 for an
// unspecified host (":8080", "0.0.0.0:8080"), so that it is a URL a local
// client can use. Behind a proxy or on a public name, set --issuer.
func defaultIssuer(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "http://" + a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
