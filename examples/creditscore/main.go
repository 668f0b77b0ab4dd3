// Command creditscore is seed 000's credit-score API, protected by callsign:
// every route requires credentials of one of four schemes (JWT bearer,
// go-hmacauth HMAC signatures, Ed25519 request tokens, callsign app access
// tokens), and handlers read who called from the Principal.
//
//	go run ./examples/creditscore --addr 127.0.0.1:8081 --config config.json
//
// Routes: GET /creditscore, GET /whoami, POST /notes (body up to 1 MiB).
// With "callsign": {"server", "public_token" and/or "secret_token"} in the
// configuration, every call (refused ones included) is captured as an
// event and shipped to that callsign server. See config.go for the
// configuration file and README.md for a walkthrough.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/capture"
	"github.com/callsignhq/callsign/client"
)

const (
	creditScoreMin = 500
	creditScoreMax = 900
	maxNoteBytes   = 1 << 20
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "address to listen on")
	configPath := flag.String("config", "", "JSON configuration file (required)")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(*addr, *configPath, log); err != nil {
		fmt.Fprintln(os.Stderr, "creditscore:", err)
		os.Exit(1)
	}
}

func run(addr, configPath string, log *slog.Logger) error {
	if configPath == "" {
		return errors.New("--config is required")
	}
	cfg, err := loadConfig(configPath)
	if err != nil {
		return err
	}
	h, shipper, err := newHandler(cfg, log)
	if err != nil {
		return err
	}
	if shipper != nil {
		defer func() {
			// Deliver what is queued before exiting.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := shipper.Close(ctx); err != nil {
				log.Warn("events not all delivered at shutdown", "error", err.Error())
			}
		}()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 32 << 10}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("creditscore serving", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// newHandler returns the API: every route behind the auth middleware, with
// credentials required; and, when the config names a callsign server and
// the app's tokens, the capture middleware around it all (so that refused
// calls are events too) with the shipper that sends the events.
func newHandler(cfg *Config, log *slog.Logger) (http.Handler, *capture.Shipper, error) {
	authns, err := authenticators(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	mw, err := auth.New(auth.Options{Authenticators: authns, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /creditscore", getCreditScore)
	mux.HandleFunc("GET /whoami", whoami)
	mux.HandleFunc("POST /notes", postNote)
	h := mw.Handler(capture.ReportPattern(mux))

	cs := cfg.Callsign
	if cs == nil || cs.Server == "" || (cs.PublicToken == "" && cs.SecretToken == "") {
		return h, nil, nil
	}
	// With the secret token the example is a server-side shipper: it may
	// send the verified user ids its auth middleware established. With
	// only the public token it may send client-asserted ids only.
	var tokens client.TokenSource = &client.UpgradeSource{Server: cs.Server, PublicToken: cs.PublicToken}
	if cs.SecretToken != "" {
		tokens = &client.ServerTokenSource{Server: cs.Server, SecretToken: cs.SecretToken}
	}
	shipper, err := capture.NewShipper(capture.ShipperOptions{Server: cs.Server, Tokens: tokens, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	return capture.New(capture.Options{Mux: mux}, shipper).Handler(h), shipper, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func getCreditScore(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]int{"credit_rating": creditScoreMin + rand.IntN(creditScoreMax-creditScoreMin)})
}

func whoami(w http.ResponseWriter, r *http.Request) {
	p, _ := callsign.PrincipalFrom(r.Context())
	writeJSON(w, http.StatusOK, principalJSON(p))
}

func postNote(w http.ResponseWriter, r *http.Request) {
	p, _ := callsign.PrincipalFrom(r.Context())
	n, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, maxNoteBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"error": map[string]string{
				"code": "body_too_large", "message": "A note is at most 1 MiB."}})
			return
		}
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "invalid_request", "message": "The body could not be read."}})
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"principal": principalJSON(p), "bytes": n})
}
