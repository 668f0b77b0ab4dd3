package httpapi_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
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

// FuzzDecodeBatch checks the ingest decoder against encoding/json: what it
// accepts, encoding/json decodes to the same events (it is stricter, never
// looser), and its errors are in the API's codes.
func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(batch(evt("a"), withUser(evt("b"), "alice"))))
	f.Add([]byte(`{"events":[{"id":"x","metadata":{"k":"v","k2":""},"latency_ms":1.5e2,"weight":0,"status":201}]}`))
	f.Add([]byte(`{"events":[{"id":"\u00e9\ud83d\ude00\ud800x","route":"\/a\\b\"c\n"}]}`))
	f.Add([]byte(`{"events":[{"id":"x","time":"2026-01-02T15:04:05.999999999+02:00"}]}`))
	f.Add([]byte(`{"events":[{"id":"x","time":"2026-13-02T15:04:05Z"}]}`))
	f.Add([]byte(`{"events":[{"ID":"x","id":"y"}]}`))
	f.Add([]byte(` {"events" : [ ] } `))
	f.Add([]byte(`{"events":[{"id":"x","status":-0,"request_bytes":9223372036854775807}]}`))
	f.Add([]byte(`{"events":[{"id":"x","status":[[[[{"a":[1,2,{"b":null}]}]]]]}]}`))
	codes := []string{"invalid_json", "unknown_field", "duplicate_field", "trailing_data", "invalid_request", "missing_field"}
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, bad, err := httpapi.DecodeBatch(data)
		if err != nil {
			if c := callsign.ErrorCode(err); !slices.Contains(codes, c) {
				t.Fatalf("error code %q (%v)", c, err)
			}
			return
		}
		var ref struct {
			Events []callsign.EventJSON `json:"events"`
		}
		if err := json.Unmarshal(data, &ref); err != nil {
			var pe *time.ParseError
			if slices.Contains(bad, true) || errors.As(err, &pe) {
				return // a time the event is rejected for, or one encoding/json is stricter about
			}
			t.Fatalf("accepted what encoding/json refuses (%v): %q", err, data)
		}
		if len(ref.Events) != len(evs) {
			t.Fatalf("%d events, encoding/json has %d", len(evs), len(ref.Events))
		}
		for i := range evs {
			a, b := evs[i], ref.Events[i]
			if !a.Time.Equal(b.Time) {
				t.Fatalf("event %d time %v, encoding/json %v", i, a.Time, b.Time)
			}
			a.Time, b.Time = time.Time{}, time.Time{}
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("event %d:\n%+v\nencoding/json:\n%+v", i, a, b)
			}
		}
	})
}

// FuzzIngest sends arbitrary bodies to the ingest handler: never a 5xx,
// refusals in the error shape.
func FuzzIngest(f *testing.F) {
	e := newEnv(f, httpapi.Config{})
	a := e.createApp("a", "")
	tok := e.serverToken(a)
	// enc picks the Content-Encoding: 0 none, 1 gzip, 2 snappy.
	f.Add(batch(evt("a")), uint8(0))
	f.Add(gz(batch(evt("b"))), uint8(1))
	f.Add(sn(batch(evt("c"))), uint8(2))
	f.Add(`{"events":[{"id":"x","time":"yesterday","status":99}]}`, uint8(0))
	f.Add(`{"events":[{}]}`, uint8(0))
	f.Fuzz(func(t *testing.T, body string, enc uint8) {
		req := httptest.NewRequest("POST", "/v2/events", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		switch enc % 3 {
		case 1:
			req.Header.Set("Content-Encoding", "gzip")
		case 2:
			req.Header.Set("Content-Encoding", "snappy")
		}
		w := httptest.NewRecorder()
		e.api.ServeHTTP(w, req)
		checkAnswer(t, w, body)
	})
}

// FuzzQueries sends arbitrary query strings to GET /v2/events and
// GET /v2/metrics: never a 5xx; a refusal is a 400 or 404 that names its
// code.
func FuzzQueries(f *testing.F) {
	e := newEnv(f, httpapi.Config{})
	a := e.createApp("a", "")
	e.ingestOK(e.serverToken(a), evt("a"), withUser(evt("b"), "alice"))
	for _, s := range []string{"user_id=alice&status=4xx&limit=5", "status=401&from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z",
		"cursor=abc", "group_by=route&interval=5m", "group_by=user_id&interval=1d&order_by=errors&limit=3", "limit=%zz;x", "route=GET%20%2Fa&method=GET&auth_error=expired"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, query string, metrics bool) {
		path := "/v2/events"
		if metrics {
			path = "/v2/metrics"
		}
		req := httptest.NewRequest("GET", "/", nil)
		req.URL.Path, req.URL.RawQuery = path, query
		req.Header.Set("Authorization", "Bearer "+a.secret)
		w := httptest.NewRecorder()
		e.api.ServeHTTP(w, req)
		if w.Code != 200 && w.Code != 400 {
			t.Fatalf("%s?%s: status %d: %s", path, query, w.Code, w.Body)
		}
		checkAnswer(t, w, query)
	})
}

func checkAnswer(t *testing.T, w *httptest.ResponseRecorder, input string) {
	t.Helper()
	if w.Code >= 500 {
		t.Fatalf("status %d for %q: %s", w.Code, input, w.Body)
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
}
