package sqlite

import (
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
)

func blockEvents() []*callsign.Event {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	evs := []*callsign.Event{
		{AppID: "app", ID: "e1", Time: t0, Method: "GET", Route: "GET /a/{id}", URI: "/a/1?x=é", Status: 200,
			Latency: 1234 * time.Microsecond, RequestBytes: 10, ResponseBytes: 2000, UserID: "u1", CompanyID: "c1",
			Scheme: callsign.SchemeJWT, KeyID: "k1", RequestID: "r1", RemoteIP: "10.0.0.1", UserAgent: "ua/1",
			Metadata: map[string]string{"plan": "pro", "region": "eu"}},
		{AppID: "app", ID: "e2", Time: t0, Method: "POST", Route: "POST /b", Status: 401, AuthError: "expired",
			ClientUserID: "cu", APIUserID: "au", Weight: 2.5, RequestBody: `{"a":1}`, ResponseBody: "x\x00y"},
		{AppID: "app", ID: "e3", Time: t0.Add(3 * time.Minute), Status: -7, Latency: -time.Microsecond,
			RequestBytes: -1, ResponseBytes: math.MaxInt64, Weight: math.SmallestNonzeroFloat64},
		{AppID: "app", ID: "e4", Time: t0.Add(3 * time.Minute), UserID: "u1", Method: "GET", Route: "GET /a/{id}"},
	}
	for i := range 300 { // enough to need multi-byte dictionary indexes
		evs = append(evs, &callsign.Event{AppID: "app", ID: fmt.Sprint("n", i), Time: t0.Add(time.Hour + time.Duration(i)*time.Second),
			UserID: fmt.Sprint("user-", i), Route: fmt.Sprint("GET /r", i%7), Status: 200})
	}
	return evs
}

// A block decodes to the events it was made of, field for field.
func TestBlockRoundTrip(t *testing.T) {
	evs := blockEvents()
	tmin := evs[0].Time.UnixMicro()
	data := newBlockEncoder().encode(nil, evs, tmin)
	var r blockReader
	if err := r.reset(data, tmin); err != nil {
		t.Fatal(err)
	}
	var be blockEvent
	var got []*callsign.Event
	for r.next(&be) {
		got = append(got, r.event("app", &be))
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(got) != len(evs) {
		t.Fatalf("decoded %d events, want %d", len(got), len(evs))
	}
	for i := range evs {
		if !reflect.DeepEqual(got[i], evs[i]) {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, got[i], evs[i])
		}
	}
}

// Every truncation and many corruptions of a block are errors, never a
// panic nor an endless loop.
func TestBlockCorrupt(t *testing.T) {
	evs := blockEvents()[:4]
	tmin := evs[0].Time.UnixMicro()
	data := newBlockEncoder().encode(nil, evs, tmin)
	decode := func(b []byte) error {
		var r blockReader
		if err := r.reset(b, tmin); err != nil {
			return err
		}
		var be blockEvent
		for r.next(&be) {
		}
		return r.err
	}
	for i := range len(data) {
		if err := decode(data[:i]); err == nil {
			t.Errorf("block truncated to %d of %d bytes decoded", i, len(data))
		}
	}
	if err := decode(append(data[:len(data):len(data)], 0)); err == nil {
		t.Error("block with a trailing byte decoded")
	}
}

func FuzzDecodeBlock(f *testing.F) {
	evs := blockEvents()
	f.Add(newBlockEncoder().encode(nil, evs[:4], evs[0].Time.UnixMicro()), evs[0].Time.UnixMicro())
	f.Add([]byte{blockVersion, 1, 0}, int64(0))
	f.Add([]byte{blockVersion, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, data []byte, tmin int64) {
		var r blockReader
		if r.reset(data, tmin) != nil {
			return
		}
		var be blockEvent
		var evs []*callsign.Event
		for r.next(&be) {
			if be.time < tmin {
				t.Fatalf("event at %d before the block's first time %d", be.time, tmin)
			}
			evs = append(evs, r.event("app", &be))
		}
		if r.err != nil || len(evs) == 0 {
			return
		}
		// What decodes re-encodes to the same events.
		again := newBlockEncoder().encode(nil, evs, tmin)
		var r2 blockReader
		if err := r2.reset(again, tmin); err != nil {
			t.Fatal(err)
		}
		for i := 0; r2.next(&be); i++ {
			if e := r2.event("app", &be); !reflect.DeepEqual(e, evs[i]) {
				t.Fatalf("event %d: %+v, then %+v", i, evs[i], e)
			}
		}
		if r2.err != nil {
			t.Fatal(r2.err)
		}
	})
}
