package callsign_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/callsignhq/callsign"
)

func TestGenerateParseRoundTrip(t *testing.T) {
	for _, k := range []callsign.TokenKind{callsign.TokenPublic, callsign.TokenSecret, callsign.TokenAdmin} {
		t.Run(k.String(), func(t *testing.T) {
			seen := map[string]bool{}
			for range 200 {
				tok := callsign.GenerateToken(k)
				if len(tok) != callsign.TokenLen || !strings.HasPrefix(tok, k.Prefix()) {
					t.Fatalf("GenerateToken(%v) = %q: wrong length or prefix", k, tok)
				}
				got, err := callsign.ParseToken(tok)
				if err != nil || got != k {
					t.Fatalf("ParseToken(%q) = %v, %v; want %v", tok, got, err, k)
				}
				if seen[tok] {
					t.Fatalf("GenerateToken repeated %q", tok)
				}
				seen[tok] = true
			}
		})
	}
}

func TestParseTokenErrors(t *testing.T) {
	good := callsign.GenerateToken(callsign.TokenSecret)
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	tests := []struct {
		name, in, code string
	}{
		{"empty", "", callsign.EMalformedToken},
		{"too short", good[:len(good)-1], callsign.EMalformedToken},
		{"too long", good + "a", callsign.EMalformedToken},
		{"unknown prefix", "cs_xxx_" + good[7:], callsign.EMalformedToken},
		{"github token", "ghp_" + good[4:], callsign.EMalformedToken},
		{"non-base62 char", good[:20] + "-" + good[21:], callsign.EMalformedToken},
		{"non-ASCII", good[:20] + "é" + good[22:], callsign.EMalformedToken},
		{"NUL byte", good[:20] + "\x00" + good[21:], callsign.EMalformedToken},
		{"typo in random part", flip(good, 10), callsign.EBadChecksum},
		{"typo in checksum", flip(good, callsign.TokenLen-1), callsign.EBadChecksum},
		{"prefix swapped", "cs_pub_" + good[7:], callsign.EBadChecksum}, // the checksum covers the prefix
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := callsign.ParseToken(tt.in)
			if got := callsign.ErrorCode(err); got != tt.code {
				t.Fatalf("ParseToken code = %q (%v), want %q", got, err, tt.code)
			}
			if tt.in != "" && strings.Contains(err.Error(), tt.in) {
				t.Fatalf("error message echoes the token: %v", err)
			}
		})
	}
}

// Every single-character substitution in a token is caught by the checksum
// (CRC-32 detects all errors confined to 32 consecutive bits).
func TestChecksumCatchesEverySingleSubstitution(t *testing.T) {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	tok := callsign.GenerateToken(callsign.TokenAdmin)
	for i := 7; i < len(tok); i++ {
		for j := 0; j < len(alphabet); j++ {
			if alphabet[j] == tok[i] {
				continue
			}
			typo := tok[:i] + string(alphabet[j]) + tok[i+1:]
			if _, err := callsign.ParseToken(typo); callsign.ErrorCode(err) != callsign.EBadChecksum {
				t.Fatalf("substitution at %d (%c) not caught: %v", i, alphabet[j], err)
			}
		}
	}
}

func TestParseTokenOf(t *testing.T) {
	pub := callsign.GenerateToken(callsign.TokenPublic)
	if err := callsign.ParseTokenOf(pub, callsign.TokenPublic); err != nil {
		t.Fatalf("ParseTokenOf(public, public) = %v", err)
	}
	err := callsign.ParseTokenOf(pub, callsign.TokenSecret)
	if callsign.ErrorCode(err) != callsign.EWrongTokenKind {
		t.Fatalf("ParseTokenOf(public, secret) = %v, want wrong_token_kind", err)
	}
}

func TestErrorCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"callsign error", callsign.Errorf(callsign.ENotFound, "x"), callsign.ENotFound},
		{"wrapped", fmt.Errorf("ctx: %w", callsign.Errorf(callsign.ERevoked, "x")), callsign.ERevoked},
		{"other", fmt.Errorf("disk on fire"), callsign.EInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := callsign.ErrorCode(tt.err); got != tt.want {
				t.Fatalf("ErrorCode = %q, want %q", got, tt.want)
			}
		})
	}
	if m := callsign.ErrorMessage(fmt.Errorf("secret detail")); strings.Contains(m, "secret detail") {
		t.Fatalf("ErrorMessage leaks an internal error: %q", m)
	}
}

func FuzzParseToken(f *testing.F) {
	for _, k := range []callsign.TokenKind{callsign.TokenPublic, callsign.TokenSecret, callsign.TokenAdmin} {
		f.Add(callsign.GenerateToken(k))
	}
	f.Add("")
	f.Add("cs_pub_")
	f.Add("cs_sec_000000000000000000000000000000000000000")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := callsign.ParseToken(s)
		if err != nil {
			if k != callsign.TokenUnknown {
				t.Fatalf("kind %v returned with error %v", k, err)
			}
			switch code := callsign.ErrorCode(err); code {
			case callsign.EMalformedToken, callsign.EBadChecksum:
			default:
				t.Fatalf("unexpected error code %q", code)
			}
			return
		}
		// Accepted: it must have the documented shape.
		if len(s) != callsign.TokenLen || !strings.HasPrefix(s, k.Prefix()) {
			t.Fatalf("accepted %q of kind %v with the wrong shape", s, k)
		}
	})
}

func ExampleParseToken() {
	tok := callsign.GenerateToken(callsign.TokenSecret)
	kind, err := callsign.ParseToken(tok)
	fmt.Println(kind, err)

	typo := tok[:20] + "!" + tok[21:]
	_, err = callsign.ParseToken(typo)
	fmt.Println(callsign.ErrorCode(err))
	// Output:
	// secret <nil>
	// malformed_token
}
