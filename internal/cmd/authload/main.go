// Command authload serves a small JSON handler behind callsign's auth
// middleware with one scheme (or none), for load runs with wrk. It prints
// the request headers a client must send, as JSON on one line of stdout,
// then serves until killed. For the single-use request tokens it writes a
// pool of pre-signed tokens to -tokens, one per line, for wrk's Lua script.
//
//	authload -mode bare|hmac|jwt|apptoken|reqtoken -addr 127.0.0.1:18090
//
// See bench/load/run.sh and BENCHMARKS.md.
package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/auth/apptoken"
	"github.com/callsignhq/callsign/auth/hmacsig"
	"github.com/callsignhq/callsign/auth/jwks"
	"github.com/callsignhq/callsign/auth/jwtbearer"
	"github.com/callsignhq/callsign/auth/reqtoken"
	"github.com/callsignhq/callsign/replay"
	"github.com/golang-jwt/jwt/v5"
)

const secret = "load-test-secret-0123456789abcdef"

func main() {
	mode := flag.String("mode", "bare", "bare, hmac, jwt, apptoken or reqtoken")
	addr := flag.String("addr", "127.0.0.1:18090", "listen address")
	tokens := flag.String("tokens", "", "reqtoken: file to write pre-signed tokens to")
	n := flag.Int("n", 400000, "reqtoken: number of tokens to pre-sign")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the serving to this file until SIGTERM")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "authload:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		go func() {
			c := make(chan os.Signal, 1)
			signal.Notify(c, syscall.SIGTERM, os.Interrupt)
			<-c
			pprof.StopCPUProfile()
			f.Close()
			os.Exit(0)
		}()
	}
	if err := run(*mode, *addr, *tokens, *n); err != nil {
		fmt.Fprintln(os.Stderr, "authload:", err)
		os.Exit(1)
	}
}

func handler(w http.ResponseWriter, r *http.Request) {
	user := ""
	if p, ok := callsign.PrincipalFrom(r.Context()); ok {
		user = p.UserID
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"credit_rating":700,"user":%q}`, user)
}

func run(mode, addr, tokensPath string, n int) error {
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
		pub, priv, _ := ed25519.GenerateKey(nil)
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
