package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/callsignhq/callsign/httpapi"
)

// FuzzUpgrade sends arbitrary bodies and Authorization values to the upgrade
// handler: it must never answer 5xx, and every refusal must be in the error
// shape with a code.
func FuzzUpgrade(f *testing.F) {
	e := newEnv(f, httpapi.Config{})
	a := e.createApp("a", "")
	f.Add(upgradeBody(a.public), "")
	f.Add(upgradeBody(a.public, "alice"), "Bearer "+a.secret)
	f.Add(`{"public_token":"`+a.public+`","public_token":1}`, "")
	f.Add(`{"user_id":"\u0000"}`, "Bearer x")
	f.Add(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`, "Basic")
	f.Fuzz(func(t *testing.T, body, auth string) {
		req := httptest.NewRequest("POST", "/v2/tokens/upgrade", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header["Authorization"] = []string{auth}
		}
		w := httptest.NewRecorder()
		e.api.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("status %d for body %q auth %q: %s", w.Code, body, auth, w.Body)
		}
		if w.Code == http.StatusOK {
			return
		}
		var eb struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
			t.Fatalf("refusal %d not in the error shape: %q", w.Code, w.Body)
		}
		for _, tok := range []string{a.secret, e.admin} {
			if strings.Contains(w.Body.String(), tok) {
				t.Fatal("a secret is echoed")
			}
		}
	})
}
