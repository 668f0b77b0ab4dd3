package jwtbearer_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/auth/jwks"
	"github.com/callsignhq/callsign/auth/jwtbearer"
	"github.com/golang-jwt/jwt/v5"
)

type vectors struct {
	JWT []struct {
		Name   string          `json:"name"`
		Proves string          `json:"proves"`
		JWK    json.RawMessage `json:"jwk"`
		Alg    string          `json:"alg"`
		Token  string          `json:"token"`
		Iss    string          `json:"iss"`
		Exp    int64           `json:"exp"`
	} `json:"jwt"`
	RFC8037 struct {
		PrivateJWK struct{ D, X string } `json:"private_jwk"`
		PublicJWK  json.RawMessage       `json:"public_jwk"`
		Header     string                `json:"header"`
		Payload    string                `json:"payload"`
		JWS        string                `json:"jws"`
	} `json:"rfc8037"`
}

func loadVectors(t *testing.T) *vectors {
	t.Helper()
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

// The JWTs of RFC 7515 Appendix A verify end to end (the JWK parsed by
// jwks.ParseSet with go-jose, the token by Verify), at a clock before their
// exp, and are refused after it and with one signature bit changed.
func TestRFC7515Vectors(t *testing.T) {
	for _, v := range loadVectors(t).JWT {
		t.Run(v.Name, func(t *testing.T) {
			keys, err := jwks.ParseSet([]byte(`{"keys":[`+string(v.JWK)+`]}`), jwks.ParseOptions{DefaultAlg: v.Alg, AllowSymmetric: true})
			if err != nil || keys.Len() != 1 {
				t.Fatalf("ParseSet: %v, %d keys", err, keys.Len())
			}
			exp := time.Unix(v.Exp, 0)
			verifier := func(now time.Time) *jwtbearer.Authenticator {
				a, err := jwtbearer.New(jwtbearer.WithKeySource(keys), jwtbearer.WithIssuer(v.Iss), jwtbearer.WithUserClaim("iss"), jwtbearer.WithNow(at(now)))
				if err != nil {
					t.Fatal(err)
				}
				return a
			}
			p, err := verifier(exp.Add(-time.Minute)).Verify(context.Background(), v.Token)
			if err != nil {
				t.Fatalf("the published token does not verify: %v", err)
			}
			if p.UserID != v.Iss || !p.ExpiresAt.Equal(exp) || p.KeyID != "" {
				t.Fatalf("principal = %+v", p)
			}
			if _, err := verifier(exp.Add(jwtbearer.DefaultLeeway)).Verify(context.Background(), v.Token); auth.Code(err) != auth.CodeExpired {
				t.Fatalf("after exp: %v", err)
			}
			i := strings.LastIndexByte(v.Token, '.') + 2
			c := byte('A')
			if v.Token[i] == 'A' {
				c = 'B'
			}
			tampered := v.Token[:i] + string(c) + v.Token[i+1:]
			if _, err := verifier(exp.Add(-time.Minute)).Verify(context.Background(), tampered); auth.Code(err) != auth.CodeBadSignature {
				t.Fatalf("one signature bit changed: %v", err)
			}
		})
	}
}

func TestRFC8037Vectors(t *testing.T) {
	v := loadVectors(t).RFC8037
	keys, err := jwks.ParseSet([]byte(`{"keys":[`+string(v.PublicJWK)+`]}`), jwks.ParseOptions{DefaultAlg: jwks.EdDSA})
	if err != nil || keys.Len() != 1 {
		t.Fatalf("ParseSet: %v", err)
	}
	pub := keys.Lookup("").Public().(ed25519.PublicKey)
	d, _ := base64.RawURLEncoding.DecodeString(v.PrivateJWK.D)
	priv := ed25519.NewKeyFromSeed(d)
	if !bytes.Equal(priv.Public().(ed25519.PublicKey), pub) {
		t.Fatal("A.1's d does not give A.2's x")
	}
	parts := strings.Split(v.JWS, ".")
	if parts[0] != base64.RawURLEncoding.EncodeToString([]byte(v.Header)) || parts[1] != base64.RawURLEncoding.EncodeToString([]byte(v.Payload)) {
		t.Fatal("the JWS does not encode the header and payload")
	}
	input := parts[0] + "." + parts[1]
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	// A.5: validation with golang-jwt's EdDSA, the library jwtbearer uses.
	if err := jwt.SigningMethodEdDSA.Verify(input, sig, pub); err != nil {
		t.Fatalf("A.5: %v", err)
	}
	// A.4: signing is deterministic, so the private key gives the same bytes.
	mine, err := jwt.SigningMethodEdDSA.Sign(input, priv)
	if err != nil || !bytes.Equal(mine, sig) {
		t.Fatalf("A.4: signing gives %x, the RFC %x", mine, sig)
	}
	sig[0] ^= 1
	if jwt.SigningMethodEdDSA.Verify(input, sig, pub) == nil {
		t.Fatal("a changed signature verifies")
	}
	// As a bearer JWT it is malformed: its payload is not a claims set.
	a, err := jwtbearer.New(jwtbearer.WithKeySource(keys))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(context.Background(), v.JWS); auth.Code(err) != auth.CodeMalformed {
		t.Fatalf("Verify: %v", err)
	}
}
