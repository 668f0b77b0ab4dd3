package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth"
	"github.com/callsignhq/callsign/auth/apptoken"
	"github.com/callsignhq/callsign/auth/hmacsig"
	"github.com/callsignhq/callsign/auth/jwks"
	"github.com/callsignhq/callsign/auth/jwtbearer"
	"github.com/callsignhq/callsign/auth/reqtoken"
	"github.com/callsignhq/callsign/replay"
)

// Config is the example's JSON configuration. Every section is optional;
// a scheme whose section is absent is not accepted.
type Config struct {
	JWT      *JWTConfig      `json:"jwt"`
	HMAC     *HMACConfig     `json:"hmac"`
	ReqToken *ReqTokenConfig `json:"reqtoken"`
	Callsign *CallsignConfig `json:"callsign"`
}

// JWTConfig configures JWT bearer tokens (seed 000: HS256, user in "id").
type JWTConfig struct {
	Keys []struct {
		Kid string `json:"kid"` // absent: the key of tokens without kid
		Alg string `json:"alg"` // HS256, HS384, HS512, RS256, ES256, EdDSA
		// Secret is an HS* key; PublicKey a PEM public key (RS256, ES256,
		// EdDSA).
		Secret    string `json:"secret"`
		PublicKey string `json:"public_key"`
	} `json:"keys"`
	// JWKSURL takes the keys from the issuer's JWK Set instead.
	JWKSURL   string   `json:"jwks_url"`
	UserClaim string   `json:"user_claim"` // default "sub"
	Issuer    string   `json:"issuer"`
	Audience  []string `json:"audience"`
	// AllowWeakSecrets accepts HS secrets under 32 bytes (seed 000 uses
	// "mytokensecret"); a warning is logged.
	AllowWeakSecrets bool `json:"allow_weak_secrets"`
}

// HMACConfig configures go-hmacauth signatures.
type HMACConfig struct {
	Keys                 map[string]string `json:"keys"`
	SignedHeaders        []string          `json:"signed_headers"`
	ExpiresIn            Duration          `json:"expires_in"`
	AllowedHosts         []string          `json:"allowed_hosts"`
	RequireContentDigest bool              `json:"require_content_digest"`
	SingleUse            bool              `json:"single_use"`
	AllowWeakSecrets     bool              `json:"allow_weak_secrets"`
}

// ReqTokenConfig configures Ed25519 request tokens (Mixin style).
type ReqTokenConfig struct {
	Sessions map[string]struct {
		UID       string   `json:"uid"`
		PublicKey string   `json:"public_key"` // base64url Ed25519 public key
		Scopes    []string `json:"scopes"`     // default ["FULL"]
	} `json:"sessions"`
	MaxAge Duration `json:"max_age"`
}

// CallsignConfig names the callsign server whose app access tokens are
// accepted (verified offline against its JWKS).
type CallsignConfig struct {
	Server string `json:"server"`
	// Issuer is the server's token issuer; Server if empty.
	Issuer string `json:"issuer"`
	// PublicToken and SecretToken are the app's tokens, used to ship
	// analytics events to the server.
	PublicToken string `json:"public_token"`
	SecretToken string `json:"secret_token"`
}

// Duration is a time.Duration written as a Go duration string ("300s").
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`a duration must be a string such as "300s" or "5m"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("%q is not a duration such as \"300s\" or \"5m\"", s)
	}
	*d = Duration(v)
	return nil
}

// loadConfig reads and strictly decodes the configuration file.
func loadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config %s: %v", path, err)
	}
	if c.JWT == nil && c.HMAC == nil && c.ReqToken == nil && c.Callsign == nil {
		return nil, fmt.Errorf("config %s: no scheme configured (jwt, hmac, reqtoken or callsign)", path)
	}
	return &c, nil
}

// authenticators builds the Authenticators of the configured schemes, in
// the order the middleware must try them: app tokens and request tokens
// before plain JWT bearer, since all three are Bearer JWTs.
func authenticators(c *Config, log *slog.Logger) ([]auth.Authenticator, error) {
	var out []auth.Authenticator
	if c.Callsign != nil && c.Callsign.Server != "" {
		server := strings.TrimSuffix(c.Callsign.Server, "/")
		remote, err := jwks.NewRemote(server+"/.well-known/jwks.json", jwks.Options{Logger: log})
		if err != nil {
			return nil, fmt.Errorf("callsign: %w", err)
		}
		iss := c.Callsign.Issuer
		if iss == "" {
			iss = server
		}
		a, err := apptoken.NewAuthenticator(remote, iss)
		if err != nil {
			return nil, fmt.Errorf("callsign: %w", err)
		}
		out = append(out, a)
	}
	if c.ReqToken != nil {
		sessions := map[string]reqtoken.Session{}
		for sid, s := range c.ReqToken.Sessions {
			pk, err := reqtoken.ParsePublicKey(s.PublicKey)
			if err != nil {
				return nil, fmt.Errorf("reqtoken: session %q: %w", sid, err)
			}
			if s.UID == "" {
				return nil, fmt.Errorf("reqtoken: session %q has no uid", sid)
			}
			scopes := s.Scopes
			if len(scopes) == 0 {
				scopes = []string{"FULL"}
			}
			sessions[sid] = reqtoken.Session{UserID: s.UID, PublicKey: pk, Scopes: scopes}
		}
		v, err := reqtoken.New(reqtoken.Options{
			Sessions: func(_ context.Context, sid string) (reqtoken.Session, error) {
				if s, ok := sessions[sid]; ok {
					return s, nil
				}
				return reqtoken.Session{}, reqtoken.ErrUnknownSession
			},
			Replay: replay.NewMemory(1_000_000, nil),
			MaxAge: time.Duration(c.ReqToken.MaxAge),
		})
		if err != nil {
			return nil, fmt.Errorf("reqtoken: %w", err)
		}
		out = append(out, reqtoken.NewAuthenticator(v))
	}
	if c.JWT != nil {
		opts := []jwtbearer.Option{jwtbearer.WithLogger(log)}
		for _, k := range c.JWT.Keys {
			key, err := jwtKey(k.Alg, k.Secret, k.PublicKey)
			if err != nil {
				return nil, fmt.Errorf("jwt: key %q: %w", k.Kid, err)
			}
			opts = append(opts, jwtbearer.WithKey(k.Kid, k.Alg, key))
		}
		if c.JWT.JWKSURL != "" {
			remote, err := jwks.NewRemote(c.JWT.JWKSURL, jwks.Options{Logger: log})
			if err != nil {
				return nil, fmt.Errorf("jwt: %w", err)
			}
			opts = append(opts, jwtbearer.WithKeySource(remote))
		}
		if c.JWT.UserClaim != "" {
			opts = append(opts, jwtbearer.WithUserClaim(c.JWT.UserClaim))
		}
		if c.JWT.Issuer != "" {
			opts = append(opts, jwtbearer.WithIssuer(c.JWT.Issuer))
		}
		if len(c.JWT.Audience) > 0 {
			opts = append(opts, jwtbearer.WithAudience(c.JWT.Audience...))
		}
		if c.JWT.AllowWeakSecrets {
			opts = append(opts, jwtbearer.AllowWeakSecrets())
		}
		a, err := jwtbearer.New(opts...)
		if err != nil {
			return nil, fmt.Errorf("jwt: %w", err)
		}
		out = append(out, a)
	}
	if c.HMAC != nil {
		keys, err := hmacsig.StaticKeys(c.HMAC.Keys, c.HMAC.AllowWeakSecrets)
		if err != nil {
			return nil, err
		}
		o := hmacsig.Options{SignedHeaders: c.HMAC.SignedHeaders, Keys: keys, SignatureExpiresIn: time.Duration(c.HMAC.ExpiresIn),
			AllowedHosts: c.HMAC.AllowedHosts, RequireContentDigest: c.HMAC.RequireContentDigest,
			AllowWeakSecrets: c.HMAC.AllowWeakSecrets, Logger: log}
		if c.HMAC.SingleUse {
			o.Replay = replay.NewMemory(1_000_000, nil)
		}
		v, err := hmacsig.New(o)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// jwtKey turns a configured key into what jwtbearer.WithKey takes.
func jwtKey(alg, secret, publicKey string) (any, error) {
	if strings.HasPrefix(alg, "HS") {
		if secret == "" {
			return nil, fmt.Errorf("%s needs a \"secret\"", alg)
		}
		return []byte(secret), nil
	}
	block, _ := pem.Decode([]byte(publicKey))
	if block == nil {
		return nil, fmt.Errorf("%s needs a PEM \"public_key\"", alg)
	}
	pk, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public_key: %v", err)
	}
	return pk, nil
}

// principalJSON is the Principal as /whoami shows it.
func principalJSON(p *callsign.Principal) map[string]any {
	return map[string]any{"app_id": p.AppID, "user_id": p.UserID, "client_user_id": p.ClientUserID,
		"scheme": string(p.Scheme), "key_id": p.KeyID, "request_id": p.RequestID}
}
