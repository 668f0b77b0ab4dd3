package reqtoken

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/callsignhq/callsign/auth"
)

// FuzzPeekPayload checks that Detect's allocation-free peek answers as
// auth.PeekJWT does, for tokens small enough for its buffers and larger.
func FuzzPeekPayload(f *testing.F) {
	enc := base64.RawURLEncoding.EncodeToString
	f.Add(enc([]byte(`{"alg":"EdDSA"}`)) + "." + enc([]byte(`{"sid":"s","sig":"x"}`)) + ".sig")
	f.Add("a.b.c")
	f.Add("eyJ.eyJ")
	f.Add("e30.e30\r\n.x.y")
	f.Add("e30." + strings.Repeat("A", 2000) + ".x")
	f.Add(strings.Repeat("A", 400) + ".e30.")
	f.Fuzz(func(t *testing.T, tok string) {
		var b detectBuf
		got, ok := peekPayload(tok, b.h[:], b.p[:])
		_, want, wantOK := auth.PeekJWT(tok)
		if ok != wantOK || !bytes.Equal(got, want) {
			t.Fatalf("peekPayload(%q) = %q, %v; PeekJWT: %q, %v", tok, got, ok, want, wantOK)
		}
	})
}
