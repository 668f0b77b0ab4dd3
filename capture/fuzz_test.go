package capture_test

import (
	"bytes"
	"encoding/json"
	"math"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/capture"
)

// The hand-written encoder writes exactly what encoding/json writes for the
// event's wire form (with one metadata entry, so that map order does not
// matter).
func FuzzEventJSON(f *testing.F) {
	f.Add("evt-1", "GET /notes/{id}", "/notes/1?q=REDACTED", "Mozilla/5.0", "k", "v", "alice", 200, int64(1500000), 1.0, int64(12), int64(0))
	f.Add("\x00\x1f\"\\<>&\u2028\u2029", "\xff\xfe", "é\tà\n", "\b\f\r", "", "", "", -1, int64(-5), 1e-9, int64(-1), int64(1<<62))
	f.Add("", "", "", "", "a\x7f", "\xed\xa0\x80", "üñí", 599, int64(math.MaxInt64), 1e21, int64(math.MinInt64), int64(-62135596800))
	f.Fuzz(func(t *testing.T, id, route, uri, ua, mk, mv, user string, status int, latency int64, weight float64, reqBytes, unix int64) {
		if math.IsNaN(weight) || math.IsInf(weight, 0) {
			weight = 0
		}
		// A time json.Marshal accepts: years 0 to 9999.
		ts := time.Unix(unix%253402300799, latency%1e9).UTC()
		if ts.Year() < 1 {
			ts = ts.AddDate(2000, 0, 0)
		}
		e := &callsign.Event{ID: id, AppID: user, Time: ts, Method: route, Route: route, URI: uri, Status: status, Latency: time.Duration(latency),
			RequestBytes: reqBytes, ResponseBytes: -reqBytes, UserID: user, APIUserID: ua, ClientUserID: mv, CompanyID: mk,
			Scheme: callsign.Scheme(mk), KeyID: id, AuthError: uri, RequestID: route, RemoteIP: mv, UserAgent: ua, Weight: weight,
			RequestBody: uri + ua, ResponseBody: id + mv}
		if mk != "" || mv != "" {
			e.Metadata = map[string]string{mk: mv}
		}
		want, err := json.Marshal(e.JSON())
		if err != nil {
			t.Skip(err)
		}
		got := capture.AppendEventJSON(nil, e)
		if !bytes.Equal(got, want) {
			t.Fatalf("encoding differs\n got %s\nwant %s", got, want)
		}
	})
}

// Segment decoding never panics, and what it accepts re-encodes to the same
// bytes.
func FuzzDecodeSegment(f *testing.F) {
	f.Add(capture.EncodeSegment(3, capture.CompressionGzip, []byte("\x1f\x8bpayload")))
	f.Add(capture.EncodeSegment(3, capture.CompressionSnappy, []byte("\x07\x18payload")))
	f.Add(capture.EncodeSegment(1, capture.CompressionNone, []byte(`{"events":[]}`)))
	f.Add([]byte("CSSPOOL1"))
	f.Add([]byte("CSSPOOL1\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add(capture.EncodeSegment(callsign.MaxEventsPerBatch+1, capture.CompressionGzip, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, enc, payload, err := capture.DecodeSegment(data)
		if err != nil {
			return
		}
		if n < 1 || n > callsign.MaxEventsPerBatch {
			t.Fatalf("count %d accepted", n)
		}
		if enc != capture.CompressionGzip && enc != capture.CompressionSnappy && enc != capture.CompressionNone {
			t.Fatalf("encoding %q accepted", enc)
		}
		if !bytes.Equal(capture.EncodeSegment(n, enc, payload), data) {
			t.Fatal("accepted segment does not re-encode to itself")
		}
	})
}

// Whatever the URI, the default policy lets no value through but those of
// allowed names, the deny policy no value of a denied name, and the path
// is untouched.
func FuzzRedactURI(f *testing.F) {
	for _, s := range []string{"/s?q=1&page=2", "/s?pa%67e=2&tok%65n=x&&=&a=b=c", "/?", "?x", "/a?b?c=d&%zz=1", "/s?PAGE&page=&token"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		path, _, _ := strings.Cut(uri, "?")
		for _, p := range []capture.QueryPolicy{capture.QueryRedactValues, capture.QueryRedactDenied, capture.QueryDrop, capture.QueryKeep} {
			out := string(capture.AppendRedactedURI(nil, uri, p, []string{"page"}, []string{"token"}))
			if !strings.HasPrefix(out, path) {
				t.Fatalf("policy %d: path changed: %q -> %q", p, uri, out)
			}
			_, q, hasQ := strings.Cut(out[len(path):], "?")
			if !hasQ {
				continue
			}
			for _, param := range strings.Split(q, "&") {
				if param == "" {
					continue
				}
				name, value, hasValue := strings.Cut(param, "=")
				decoded := name
				if u, err := url.QueryUnescape(name); err == nil {
					decoded = u
				}
				switch p {
				case capture.QueryRedactValues:
					allowed := strings.EqualFold(decoded, "page")
					if !allowed && param != capture.Redacted && !(hasValue && value == capture.Redacted) {
						t.Fatalf("value of %q passed: %q -> %q", name, uri, out)
					}
				case capture.QueryRedactDenied:
					if strings.Contains(strings.ToLower(decoded), "token") && hasValue && value != capture.Redacted {
						t.Fatalf("value of denied %q passed: %q -> %q", name, uri, out)
					}
				}
			}
		}
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"7", "0", "Wed, 21 Oct 2015 07:28:00 GMT", "-1", "99999999999", " 3 ", "soon"} {
		f.Add(s)
	}
	now := time.Date(2015, 10, 21, 7, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		if d, ok := capture.ParseRetryAfter(v, now); ok && d < 0 {
			t.Fatalf("%q: negative wait %v", v, d)
		}
	})
}

// The IPv4 fast path agrees with net/netip on everything it accepts.
func FuzzParseIPv4Port(f *testing.F) {
	for _, s := range []string{"203.0.113.7:51234", "1.2.3.4:", "01.2.3.4:5", "256.1.1.1:1", "[::1]:80", "1.2.3.4:5x", "0.0.0.0:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ip, ok := capture.ParseIPv4Port(s)
		if !ok {
			return
		}
		ap, err := netip.ParseAddrPort(s)
		if err != nil || !ap.Addr().Is4() || ap.Addr().As4() != ip {
			t.Fatalf("%q: fast path %v, netip %v %v", s, ip, ap, err)
		}
	})
}
