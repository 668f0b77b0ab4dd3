// Command authload serves a small JSON handler behind callsign's auth
// middleware with one scheme (or none), for load runs with wrk. It prints
// the request headers a client must send, as JSON on one line of stdout,
// then serves until killed. For the single-use request tokens it writes a
// pool of pre-signed tokens to -tokens, one per line, for wrk's Lua script.
//
// With -capture, the capture middleware wraps the (authenticated) handler,
// as an API using callsign's analytics would, and a real Shipper sends its
// events to a collector served by the same process on another loopback
// port. The collector either reads each batch and answers at once
// (-collector discard: what the API's machine pays when the callsign
// server is elsewhere) or also decompresses it and counts its events
// (-collector count). With -collector none there is no Shipper: the
// events are dropped as the middleware hands them over, which measures the
// middleware alone. On SIGTERM the Shipper's Stats are printed to stderr
// as JSON.
//
//	authload -mode bare|hmac|jwt|apptoken|reqtoken -addr 127.0.0.1:18090 [-capture]
//
// See bench/load/run.sh and BENCHMARKS.md.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/auth/apptoken"
	"github.com/callsignhq/callsign/auth/hmacsig"
	"github.com/callsignhq/callsign/auth/jwks"
	"github.com/callsignhq/callsign/auth/jwtbearer"
	"github.com/callsignhq/callsign/auth/reqtoken"
	"github.com/callsignhq/callsign/capture"
	"github.com/callsignhq/callsign/client"
	"github.com/callsignhq/callsign/replay"
	"github.com/golang-jwt/jwt/v5"
	"github.com/klauspost/compress/s2"
)

const secret = "load-test-secret-0123456789abcdef"

func main() {
	mode := flag.String("mode", "bare", "bare, hmac, jwt, apptoken or reqtoken")
	addr := flag.String("addr", "127.0.0.1:18090", "listen address")
	tokens := flag.String("tokens", "", "reqtoken: file to write pre-signed tokens to")
	n := flag.Int("n", 400000, "reqtoken: number of tokens to pre-sign")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the serving to this file until SIGTERM")
	memprofile := flag.String("memprofile", "", "write an allocation profile of the serving to this file at SIGTERM")
	withCapture := flag.Bool("capture", false, "wrap the handler in the capture middleware with a Shipper")
	collector := flag.String("collector", "discard", "with -capture: discard, count or none (no Shipper: events dropped)")
	compression := flag.String("compression", "", "with -capture: the Shipper's compression (snappy, gzip or identity; default snappy)")
	flag.Parse()
	var stop []func()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "authload:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		stop = append(stop, func() { pprof.StopCPUProfile(); f.Close() })
	}
	if *memprofile != "" {
		runtime.MemProfileRate = 4096
		stop = append(stop, func() {
			if f, err := os.Create(*memprofile); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		})
	}
	var sink capture.Sink
	if *withCapture && *collector == "none" {
		drop := new(dropSink)
		sink = drop
		stop = append(stop, func() {
			json.NewEncoder(os.Stderr).Encode(map[string]int64{"enqueued": drop.n.Load(), "sent": 0, "dropped_queue_full": 0, "dropped_shutdown": 0, "dropped_invalid": 0})
		})
	} else if *withCapture {
		url, err := serveCollector(*collector)
		if err != nil {
			fmt.Fprintln(os.Stderr, "authload:", err)
			os.Exit(1)
		}
		sh, err := capture.NewShipper(capture.ShipperOptions{Server: url, Tokens: client.StaticToken("load"), Logger: slog.New(slog.DiscardHandler),
			Compression: capture.Compression(*compression)})
		if err != nil {
			fmt.Fprintln(os.Stderr, "authload:", err)
			os.Exit(1)
		}
		stop = append(stop, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			sh.Close(ctx)
			json.NewEncoder(os.Stderr).Encode(sh.Stats())
		})
		sink = sh
	}
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, os.Interrupt)
		<-c
		for _, f := range stop {
			f()
		}
		os.Exit(0)
	}()
	if err := run(*mode, *addr, *tokens, *n, sink); err != nil {
		fmt.Fprintln(os.Stderr, "authload:", err)
		os.Exit(1)
	}
}

// serveCollector serves POST /v2/events on a loopback port and returns its
// base URL.
func serveCollector(mode string) (string, error) {
	if mode != "discard" && mode != "count" {
		return "", fmt.Errorf("unknown -collector %q", mode)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	marker := []byte(`{"id":`)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mode == "discard" {
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, "ok") // no details: the Shipper counts the whole batch as sent
			return
		}
		raw, err := io.ReadAll(r.Body)
		if err == nil {
			switch r.Header.Get("Content-Encoding") {
			case "gzip":
				var zr *gzip.Reader
				if zr, err = gzip.NewReader(bytes.NewReader(raw)); err == nil {
					raw, err = io.ReadAll(zr)
				}
			case "snappy":
				raw, err = s2.Decode(nil, raw)
			}
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// The load's events carry no metadata: each event starts with {"id":.
		io.WriteString(w, `{"accepted":`+strconv.Itoa(bytes.Count(raw, marker))+`,"duplicates":0,"rejected":[]}`)
	})
	go (&http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}).Serve(ln)
	return "http://" + ln.Addr().String(), nil
}

func handler(w http.ResponseWriter, r *http.Request) {
	user := ""
	if p, ok := callsign.PrincipalFrom(r.Context()); ok {
		user = p.UserID
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"credit_rating":700,"user":%q}`, user)
}

func run(mode, addr, tokensPath string, n int, sink capture.Sink) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	path := "/creditscore"
	headers := map[string]string{}
	var a auth.Authenticator
	now := time.Now()
	switch mode {
	case "bare":
	case "hmac":
		keys, _ := hmacsig.StaticKeys(map[string]string{"k1": secret}, false)
		v, err := hmacsig.New(hmacsig.Options{SignedHeaders: []string{"User-Agent"}, Keys: keys, SignatureExpiresIn: time.Hour})
		if err != nil {
			return err
		}
		a = v
		r, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		r.Header.Set("User-Agent", "wrk")
		s := &hmacsig.Signer{APIKey: "k1", Secret: []byte(secret), SignedHeaders: []string{"User-Agent"}}
		if _, err := s.Sign(r); err != nil {
			return err
		}
		headers["Authorization"], headers["User-Agent"] = r.Header.Get("Authorization"), "wrk"
	case "jwt":
		v, err := jwtbearer.New(jwtbearer.WithKey("k1", jwks.HS256, []byte(secret)), jwtbearer.WithUserClaim("id"))
		if err != nil {
			return err
		}
		a = v
		t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"id": "alice", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()})
		t.Header["kid"] = "k1"
		tok, _ := t.SignedString([]byte(secret))
		headers["Authorization"] = "Bearer " + tok
	case "apptoken":
		// A fixed key, so that the token printed by one process is valid in
		// the next one (bench/load/run.sh reads the headers once).
		priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
		pub := priv.Public().(ed25519.PublicKey)
		key := &callsign.SigningKey{ID: "k1", Public: pub, Private: priv}
		// The JWKS is served on the same listener, as the callsign server would.
		set, err := jwks.ParseSet(mustJSON(apptoken.NewJWKS([]*callsign.SigningKey{key})), jwks.ParseOptions{})
		if err != nil {
			return err
		}
		v, err := apptoken.NewAuthenticator(set, "http://"+addr)
		if err != nil {
			return err
		}
		a = v
		tok, _, err := apptoken.Mint(key, "http://"+addr, "app_load", "alice", now, time.Hour)
		if err != nil {
			return err
		}
		headers["Authorization"] = "Bearer " + tok
	case "reqtoken":
		pub, priv, _ := ed25519.GenerateKey(nil)
		v, err := reqtoken.New(reqtoken.Options{
			Sessions: func(context.Context, string) (reqtoken.Session, error) {
				return reqtoken.Session{UserID: "alice", PublicKey: pub, Scopes: []string{"FULL"}}, nil
			},
			Replay: replay.NewMemory(2*n, nil),
			MaxAge: time.Hour,
		})
		if err != nil {
			return err
		}
		a = reqtoken.NewAuthenticator(v)
		if tokensPath == "" {
			return fmt.Errorf("-tokens is required with -mode reqtoken")
		}
		f, err := os.Create(tokensPath)
		if err != nil {
			return err
		}
		w := bufio.NewWriter(f)
		for range n {
			tok, err := reqtoken.Sign("alice", "s1", priv, "GET", path, nil, reqtoken.WithLifetime(time.Hour))
			if err != nil {
				return err
			}
			fmt.Fprintln(w, tok)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		f.Close()
	default:
		return fmt.Errorf("unknown -mode %q", mode)
	}
	var h http.Handler = http.HandlerFunc(handler)
	if a != nil {
		mw, err := auth.New(auth.Options{Authenticators: []auth.Authenticator{a}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return err
		}
		h = mw.Handler(h)
	}
	if sink != nil {
		h = capture.New(capture.Options{}, sink).Handler(h)
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{"path": path, "headers": headers})
	return (&http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}).Serve(ln)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// dropSink counts the events the middleware hands over and drops them.
type dropSink struct{ n atomic.Int64 }

func (d *dropSink) Enqueue(*callsign.Event) bool { d.n.Add(1); return true }
