package hmacsig

import (
	"net/url"
	"testing"
)

// FuzzAppendRequestURI checks that the string to sign holds exactly what
// url.URL.RequestURI returns, whatever the request line was.
func FuzzAppendRequestURI(f *testing.F) {
	for _, s := range []string{"/", "/a/b?x=1", "/a%2Fb?", "?", "", "*", "/p?%zz", "//host/p", "http://h/p?q#f",
		"mailto:x@y", "/caf%C3%A9/%20?a=%20", "/a;b?c=d;e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.ParseRequestURI(s)
		if err != nil {
			return
		}
		for _, force := range []bool{false, true} {
			u.ForceQuery = u.ForceQuery || force
			if got, want := string(appendRequestURI([]byte("x"), u)), "x"+u.RequestURI(); got != want {
				t.Fatalf("%q: appendRequestURI = %q, RequestURI = %q", s, got, want)
			}
		}
	})
}
