// Package testserver starts a real callsign server for tests of the
// packages that talk to one (httpapi, client, capture, apptoken): the
// embedded store in a temporary directory, a keyring sealed with a fresh
// KEK, and the HTTP API on a loopback httptest.Server. Nothing is mocked.
package testserver

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/httpapi"
	"github.com/callsignhq/callsign/keyring"
	"github.com/callsignhq/callsign/sqlite"
)

// Issuer is the issuer of the access tokens the servers mint, unless the
// Config given to Start names another.
const Issuer = "https://callsign.test"

// Server is a running callsign server.
type Server struct {
	URL   string // http://127.0.0.1:port
	Store *sqlite.DB
	Ring  *keyring.Ring
	API   *httpapi.Server
	Admin string // an admin API token
}

// Start starts a server with cfg, whose Store and Keys it sets. When they
// are zero it also sets Events (the store), Logger (discarding), Issuer
// (Issuer) and turns the upgrade rate limits off. The server, its store and
// its directory go away when t ends.
func Start(t testing.TB, cfg httpapi.Config) *Server {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	kek, err := keyring.LoadKEK(filepath.Join(dir, keyring.KEKFileName), "")
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.New(store, kek, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store, cfg.Keys = store, ring
	if cfg.Events == nil {
		cfg.Events = store
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Issuer == "" {
		cfg.Issuer = Issuer
	}
	if cfg.UpgradeRatePerApp == 0 {
		cfg.UpgradeRatePerApp = -1
	}
	if cfg.UpgradeRatePerIP == 0 {
		cfg.UpgradeRatePerIP = -1
	}
	api, err := httpapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	adm, tok := callsign.NewAdminToken("test", time.Now())
	if err := store.CreateAdminToken(ctx, adm); err != nil {
		t.Fatal(err)
	}
	return &Server{URL: srv.URL, Store: store, Ring: ring, API: api, Admin: tok}
}

// NewApp creates an app named name in the store, changed by edit if not
// nil, with a first secret, and returns the app and the secret token.
func (s *Server) NewApp(t testing.TB, name string, edit func(*callsign.App)) (*callsign.App, string) {
	t.Helper()
	app := callsign.NewApp(name, time.Now())
	if edit != nil {
		edit(app)
	}
	sec, tok := callsign.NewSecret(app.ID, "default", time.Now())
	if err := s.Store.CreateApp(context.Background(), app, sec); err != nil {
		t.Fatal(err)
	}
	return app, tok
}
