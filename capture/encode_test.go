package capture_test

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/capture"
)

// oddPieces are what generated strings are made of: plain ASCII, every
// byte encoding/json escapes, multi-byte UTF-8, the line separators it
// escapes, and invalid UTF-8 (lone bytes, truncated sequences, surrogates,
// overlong forms).
var oddPieces = []string{
	"a", "Z", "0", " ", "/notes/42", "GET /notes/{id}", "Mozilla/5.0 (X11; Linux x86_64)", "user-42", "page=2",
	"\"", "\\", "<", ">", "&", "'", "=", "?", "%2F", "\x7f",
	"\x00", "\x01", "\b", "\t", "\n", "\f", "\r", "\x1b", "\x1f",
	"é", "ü", "日本語", "€", "\U0001F600", "\u00a0", "\ufeff", "\ufffd",
	"\u2028", "\u2029", "\u2027", "\u202a",
	"\xff", "\xfe", "\x80", "\xc3", "\xe2\x82", "\xf0\x9f\x98", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80",
}

// oddString returns a string of up to 40 pieces, or a long plain one
// with one odd piece somewhere, or an empty one.
func oddString(r *rand.Rand) string {
	switch r.IntN(8) {
	case 0:
		return ""
	case 1: // long plain ASCII with one odd piece somewhere
		s := strings.Repeat("abcdefgh", 1+r.IntN(8))
		i := r.IntN(len(s) + 1)
		return s[:i] + oddPieces[r.IntN(len(oddPieces))] + s[i:]
	}
	var b strings.Builder
	for range r.IntN(40) {
		b.WriteString(oddPieces[r.IntN(len(oddPieces))])
	}
	return b.String()
}

// randomEvent returns an event with every field drawn from odd values.
func randomEvent(r *rand.Rand) *callsign.Event {
	// Any time json.Marshal accepts (years 1 to 9999), any offset, and
	// nanoseconds with and without trailing zeros.
	unix := r.Int64N(253402300799+62135596800) - 62135596800
	ns := []int64{0, 0, r.Int64N(1e9), r.Int64N(1e3) * 1e6, r.Int64N(1e6) * 1e3, 1, 999999999, 100000000}[r.IntN(8)]
	ts := time.Unix(unix, ns).In(time.FixedZone("", (r.IntN(49)-24)*1800))
	if y := ts.UTC().Year(); y < 1 || y > 9999 {
		ts = time.Unix(0, ns)
	}
	latencies := []int64{0, 1, 999, 1000, 1001, 1500, 1234567, -1, -999, -1000, -123456, r.Int64N(1e12), -r.Int64N(1e12),
		1e15*1000 - 1, 1e15 * 1000, 1e15*1000 + 1, (1e15 - 1) * 1000, math.MaxInt64, math.MinInt64, r.Int64()}
	weights := []float64{0, 1, 2, 1.5, 1e6, 1e-6, 1e-7, 1e-9, 1e20, 1e21, 1e22, -3, 1 / 3.0, r.Float64() * 1e6, r.NormFloat64()}
	e := &callsign.Event{
		ID: oddString(r), AppID: oddString(r), Time: ts, Method: oddString(r), Route: oddString(r), URI: oddString(r),
		Status: []int{0, 200, 401, 599, -1, math.MaxInt32, r.Int()}[r.IntN(7)], Latency: time.Duration(latencies[r.IntN(len(latencies))]),
		RequestBytes: r.Int64() - r.Int64(), ResponseBytes: r.Int64N(1 << 20),
		UserID: oddString(r), APIUserID: oddString(r), ClientUserID: oddString(r), CompanyID: oddString(r),
		Scheme: callsign.Scheme(oddString(r)), KeyID: oddString(r), AuthError: oddString(r), RequestID: oddString(r),
		RemoteIP: oddString(r), UserAgent: oddString(r), Weight: weights[r.IntN(len(weights))],
		RequestBody: oddString(r), ResponseBody: oddString(r),
	}
	if n := r.IntN(6); n > 0 {
		if n == 5 {
			n = callsign.MaxMetadataEntries + 8 // more than a Capture sends (Mask may add them)
		}
		e.Metadata = map[string]string{}
		for range n {
			e.Metadata[oddString(r)] = oddString(r)
		}
	}
	return e
}

// The hand-written encoder writes byte for byte what encoding/json writes
// for the event's wire form, over many generated events: odd strings,
// invalid UTF-8, control characters, times in any zone, extreme latencies
// and weights, metadata maps of many entries (in key order).
func TestEventJSONMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 2026))
	var got []byte
	for i := range 50000 {
		e := randomEvent(r)
		want, err := json.Marshal(e.JSON())
		if err != nil {
			t.Fatalf("event %d: json.Marshal: %v", i, err)
		}
		got = capture.AppendEventJSON(got[:0], e)
		if !bytes.Equal(got, want) {
			t.Fatalf("event %d: encoding differs\n got %s\nwant %s", i, got, want)
		}
	}
}

// A NaN or infinite Weight, which json.Marshal refuses (failing the whole
// batch), is left out; the rest of the event is what encoding/json writes.
func TestEventJSONNonFiniteWeight(t *testing.T) {
	for _, w := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		e := &callsign.Event{ID: "e1", Time: testNow, Method: "GET", Route: "/", Status: 200, Weight: w}
		want, err := json.Marshal((&callsign.Event{ID: "e1", Time: testNow, Method: "GET", Route: "/", Status: 200}).JSON())
		if err != nil {
			t.Fatal(err)
		}
		if got := capture.AppendEventJSON(nil, e); !bytes.Equal(got, want) {
			t.Errorf("weight %v:\n got %s\nwant %s", w, got, want)
		}
	}
}

// A batch of generated events decodes, with encoding/json, to the events'
// wire forms.
func TestEventJSONBatchDecodes(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	raw := []byte(`{"events":[`)
	var want []callsign.EventJSON
	for i := range 500 {
		e := randomEvent(r)
		if i > 0 {
			raw = append(raw, ',')
		}
		raw = capture.AppendEventJSON(raw, e)
		j, _ := json.Marshal(e.JSON())
		var w callsign.EventJSON
		if err := json.Unmarshal(j, &w); err != nil {
			t.Fatal(err)
		}
		want = append(want, w)
	}
	raw = append(raw, "]}"...)
	var batch struct{ Events []callsign.EventJSON }
	if err := json.Unmarshal(raw, &batch); err != nil {
		t.Fatal(err)
	}
	g, _ := json.Marshal(batch.Events)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		t.Fatal("the batch does not decode to the events")
	}
}
