package apptoken_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth/apptoken"
)

// A server token (scope ingest:server) is minted on request, never bound
// to a user, and its scope is what Verify and the Authenticator report.
func TestScopes(t *testing.T) {
	k := newKey(t, "k1")
	keys := apptoken.NewJWKS([]*callsign.SigningKey{k})
	v := apptoken.NewVerifier(keys, issuer, at(t0))
	a := newAuthenticator(t, keySet(t, edKey(t, k)), at(t0))
	for _, c := range []struct {
		name, user string
		opts       []apptoken.MintOption
		scope      string
	}{
		{"default anonymous", "", nil, apptoken.Scope},
		{"default bound", "alice", nil, apptoken.Scope},
		{"explicit ingest", "alice", []apptoken.MintOption{apptoken.WithScope(apptoken.Scope)}, apptoken.Scope},
		{"server", "", []apptoken.MintOption{apptoken.WithScope(apptoken.ScopeServer)}, apptoken.ScopeServer},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok, _, err := apptoken.Mint(k, issuer, "app_1", c.user, t0, time.Hour, c.opts...)
			if err != nil {
				t.Fatal(err)
			}
			cl, err := v.Verify(tok)
			if err != nil || cl.Scope != c.scope || cl.UserID != c.user {
				t.Fatalf("Verify = %+v, %v; want scope %q", cl, err, c.scope)
			}
			p, err := a.Verify(context.Background(), tok)
			if err != nil || !slices.Equal(p.Scopes, []string{c.scope}) || p.UserID != c.user {
				t.Fatalf("Authenticator.Verify = %+v, %v; want scopes [%s]", p, err, c.scope)
			}
		})
	}
	t.Run("refused at mint", func(t *testing.T) {
		if _, _, err := apptoken.Mint(k, issuer, "app_1", "alice", t0, time.Hour, apptoken.WithScope(apptoken.ScopeServer)); err == nil {
			t.Fatal("a server token bound to a user was minted")
		}
		if _, _, err := apptoken.Mint(k, issuer, "app_1", "", t0, time.Hour, apptoken.WithScope("admin")); err == nil {
			t.Fatal("a token of an unknown scope was minted")
		}
	})
	t.Run("refused at verify", func(t *testing.T) {
		claims := func(scope, user string) map[string]any {
			c := map[string]any{"iss": issuer, "aud": []string{apptoken.Audience}, "iat": t0.Unix(), "exp": t0.Add(time.Hour).Unix(),
				"jti": "j1", "app_id": "app_1", "scope": scope}
			if user != "" {
				c["user_id"] = user
			}
			return c
		}
		h := map[string]any{"alg": "EdDSA", "typ": apptoken.Type, "kid": "k1"}
		sig := func(b []byte) []byte { return ed25519.Sign(k.Private, b) }
		for _, c := range []struct{ name, scope, user string }{
			{"server token bound to a user", apptoken.ScopeServer, "alice"},
			{"unknown scope", "ingest:admin", ""},
			{"scope list", "ingest ingest:server", ""},
			{"empty scope", "", ""},
		} {
			tok := sign(h, claims(c.scope, c.user), sig)
			if _, err := v.Verify(tok); !errors.Is(err, apptoken.ErrInvalidClaims) {
				t.Errorf("%s: Verify = %v, want ErrInvalidClaims", c.name, err)
			}
			if _, err := a.Verify(context.Background(), tok); !errors.Is(err, apptoken.ErrInvalidClaims) {
				t.Errorf("%s: Authenticator.Verify = %v, want ErrInvalidClaims", c.name, err)
			}
		}
	})
}

// A server-side shipper gets a token of scope ingest:server (the callsign
// server mints it in POST /v2/tokens/server for the app's secret token);
// verifiers see the scope and refuse such a token bound to a user.
func ExampleWithScope() {
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	key := &callsign.SigningKey{ID: "k1", Public: priv.Public().(ed25519.PublicKey), Private: priv}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	tok, _, _ := apptoken.Mint(key, "https://callsign.example", "app_1", "", now, time.Hour, apptoken.WithScope(apptoken.ScopeServer))

	v := apptoken.NewVerifier(apptoken.NewJWKS([]*callsign.SigningKey{key}), "https://callsign.example", func() time.Time { return now })
	c, err := v.Verify(tok)
	fmt.Println(c.AppID, c.Scope, c.UserID == "", err)

	_, _, err = apptoken.Mint(key, "https://callsign.example", "app_1", "alice", now, time.Hour, apptoken.WithScope(apptoken.ScopeServer))
	fmt.Println(err)
	// Output:
	// app_1 ingest:server true <nil>
	// apptoken: a server token cannot be bound to a user
}
