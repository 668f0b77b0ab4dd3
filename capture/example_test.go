package capture_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/auth/jwks"
	"github.com/callsignhq/callsign/auth/jwtbearer"
	"github.com/callsignhq/callsign/capture"
	"github.com/callsignhq/callsign/client"
	"github.com/golang-jwt/jwt/v5"
)

// printSink prints the events; a real API uses a *capture.Shipper.
type printSink struct{}

func (printSink) Enqueue(e *callsign.Event) bool {
	fmt.Printf("%s %s %d scheme=%q user_id=%q api_user_id=%q auth_error=%q uri=%s\n",
		e.Method, e.Route, e.Status, e.Scheme, e.UserID, e.APIUserID, e.AuthError, e.URI)
	return true
}

// Seed 000's credit-score API, captured: the capture goes outside the auth
// middleware, so that refused calls are events too, with their precise
// failure code.
func ExampleNew() {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	secret := []byte("a-32-byte-or-longer-hs256-secret!")
	jv, _ := jwtbearer.New(jwtbearer.WithKey("", jwks.HS256, secret), jwtbearer.WithUserClaim("id"),
		jwtbearer.WithNow(func() time.Time { return now }))
	mw, _ := auth.New(auth.Options{Authenticators: []auth.Authenticator{jv}, Logger: slog.New(slog.DiscardHandler)})

	mux := http.NewServeMux()
	mux.HandleFunc("GET /creditscore", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"credit_rating":720}`) })

	c := capture.New(capture.Options{
		Mux:        mux,              // routes refused calls, which never reach the mux
		QueryAllow: []string{"page"}, // every other query value is redacted
	}, printSink{})
	api := c.Handler(mw.Handler(capture.ReportPattern(mux)))

	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"id": "user-42", "exp": now.Add(time.Hour).Unix()}).SignedString(secret)
	r := httptest.NewRequest("GET", "/creditscore?page=1&ssn=123-45-6789", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	api.ServeHTTP(httptest.NewRecorder(), r)

	old, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"id": "user-42", "exp": now.Add(-time.Hour).Unix()}).SignedString(secret)
	r = httptest.NewRequest("GET", "/creditscore", nil)
	r.Header.Set("Authorization", "Bearer "+old)
	api.ServeHTTP(httptest.NewRecorder(), r)
	// Output:
	// GET GET /creditscore 200 scheme="jwt" user_id="user-42" api_user_id="" auth_error="" uri=/creditscore?page=1&ssn=REDACTED
	// GET GET /creditscore 401 scheme="jwt" user_id="" api_user_id="" auth_error="expired" uri=/creditscore
}

// An API that authenticates its users itself (seed 000's Identify_User):
// the id it returns is recorded as asserted by the API, never as verified.
func ExampleOptions_identifyUser() {
	c := capture.New(capture.Options{
		IdentifyUser: func(r *http.Request, resp capture.Response) string {
			return r.Header.Get("X-Session-User") // whatever the API trusts
		},
		IdentifyCompany: func(r *http.Request, resp capture.Response) string { return "acme" },
	}, printSink{})
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	r := httptest.NewRequest("GET", "/profile", nil)
	r.Header.Set("X-Session-User", "carol")
	h.ServeHTTP(httptest.NewRecorder(), r)
	// Output:
	// GET /profile 200 scheme="" user_id="" api_user_id="carol" auth_error="" uri=/profile
}

// A server-side shipper: the app's secret token gets short-lived server
// ingest tokens, which may attribute verified and API-asserted users;
// batches the server cannot take wait in a spool directory.
func ExampleNewShipper() {
	shipper, err := capture.NewShipper(capture.ShipperOptions{
		Server:   "http://127.0.0.1:8080",
		Tokens:   &client.ServerTokenSource{Server: "http://127.0.0.1:8080", SecretToken: "cs_sec_..."},
		SpoolDir: "/var/lib/myapi/callsign-spool",
	})
	if err != nil {
		panic(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shipper.Close(ctx) // flushes the queue; what cannot be sent stays in the spool
	}()
	mux := http.NewServeMux()
	api := capture.New(capture.Options{}, shipper).Handler(mux)
	_ = api // http.ListenAndServe(addr, api)
}
