package auth_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth"
)

// accept is an Authenticator that accepts every request carrying
// Authorization: ok, to measure the middleware alone.
type accept struct{}

func (accept) Scheme() callsign.Scheme { return callsign.SchemeHMAC }
func (accept) Detect(r *http.Request) bool {
	return r.Header.Get("Authorization") == "ok"
}
func (accept) Authenticate(*http.Request) (*callsign.Principal, error) {
	return &callsign.Principal{Scheme: callsign.SchemeHMAC, KeyID: "k", UserID: "u"}, nil
}

// BenchmarkMiddleware is the cost of the middleware itself (request id,
// scheme choice, Principal in the context) around an authenticator that
// does nothing, beside the same handler unwrapped.
func BenchmarkMiddleware(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	mw, err := auth.New(auth.Options{Authenticators: []auth.Authenticator{accept{}}})
	if err != nil {
		b.Fatal(err)
	}
	wrapped := mw.Handler(h)
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "ok")
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"unwrapped", h}, {"middleware", wrapped}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			w := httptest.NewRecorder()
			for b.Loop() {
				c.h.ServeHTTP(w, r)
			}
		})
	}
}
