package reqtoken_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/auth/reqtoken"
	"github.com/callsignhq/callsign/replay"
)

// A client signs every request with a Transport: the key comes in one of
// the forms the Mixin SDKs use (here, hex of the 32-byte seed).
func ExampleTransport() {
	api := exampleServer() // an API behind the auth middleware, see ExampleAuthenticator
	defer api.Close()

	key, err := reqtoken.ParsePrivateKey("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Transport: &reqtoken.Transport{
		UserID:    "6a87e67f-02fb-47cf-b31f-32a13dd5b3d9",
		SessionID: "f1b3d1a8-2f5e-4a0c-9d8e-7c6b5a493827",
		Key:       key,
	}}
	resp, err := client.Post(api.URL+"/v1/transfers?dry_run=1", "application/json", strings.NewReader(`{"amount":"1"}`))
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, string(b))
	// Output: 200 OK user 6a87e67f-02fb-47cf-b31f-32a13dd5b3d9 read {"amount":"1"}
}

// A server verifies request tokens with a Verifier behind the auth
// middleware. Sessions are looked up by sid (here a map; usually a
// database); each token's jti goes to a replay store, so a token captured
// on the wire cannot be sent again.
func ExampleAuthenticator() {
	pub, err := reqtoken.ParsePublicKey("A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg") // the session's public key
	if err != nil {
		log.Fatal(err)
	}
	sessions := map[string]reqtoken.Session{
		"f1b3d1a8-2f5e-4a0c-9d8e-7c6b5a493827": {UserID: "6a87e67f-02fb-47cf-b31f-32a13dd5b3d9", PublicKey: pub, Scopes: []string{"FULL"}},
	}
	v, err := reqtoken.New(reqtoken.Options{
		Sessions: func(_ context.Context, sid string) (reqtoken.Session, error) {
			s, ok := sessions[sid]
			if !ok {
				return reqtoken.Session{}, reqtoken.ErrUnknownSession
			}
			return s, nil
		},
		Replay: replay.NewMemory(1_000_000, nil),
	})
	if err != nil {
		log.Fatal(err)
	}
	mw, err := auth.New(auth.Options{Authenticators: []auth.Authenticator{reqtoken.NewAuthenticator(v)}})
	if err != nil {
		log.Fatal(err)
	}
	handler := mw.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := callsign.PrincipalFrom(r.Context())
		fmt.Fprintf(w, "hello %s", p.UserID)
	}))

	// A request signed by hand, as Mixin's SignAuthenticationToken does.
	key := ed25519.NewKeyFromSeed([]byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f"))
	tok, err := reqtoken.Sign("6a87e67f-02fb-47cf-b31f-32a13dd5b3d9", "f1b3d1a8-2f5e-4a0c-9d8e-7c6b5a493827", key, "GET", "/me", nil)
	if err != nil {
		log.Fatal(err)
	}
	for range 2 {
		r := httptest.NewRequest("GET", "/me", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, r)
		fmt.Println(w.Code, strings.TrimSpace(w.Body.String()))
	}
	// Output:
	// 200 hello 6a87e67f-02fb-47cf-b31f-32a13dd5b3d9
	// 401 {"error":{"code":"replayed","message":"These credentials were already used; sign each request anew."}}
}

func exampleServer() *httptest.Server {
	pub, _ := reqtoken.ParsePublicKey("A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg")
	v, err := reqtoken.New(reqtoken.Options{
		Sessions: sessions(map[string]reqtoken.Session{sid: {UserID: uid, PublicKey: pub, Scopes: []string{"FULL"}}}),
		Replay:   replay.NewMemory(1000, nil),
	})
	if err != nil {
		log.Fatal(err)
	}
	mw, err := auth.New(auth.Options{Authenticators: []auth.Authenticator{reqtoken.NewAuthenticator(v)}})
	if err != nil {
		log.Fatal(err)
	}
	return httptest.NewServer(mw.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := callsign.PrincipalFrom(r.Context())
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "user %s read %s", p.UserID, b)
	})))
}
