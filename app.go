package callsign

import (
	"context"
	"crypto/ed25519"
	"time"
)

// Limits on app settings.
const (
	// DefaultAccessTokenTTL is the lifetime of an app access token when the
	// app does not set one: 24 hours, as in the token model callsign follows.
	DefaultAccessTokenTTL = 24 * time.Hour
	// MinAccessTokenTTL and MaxAccessTokenTTL bound an app's
	// AccessTokenTTL. The maximum also bounds how long a retired signing key
	// must stay published.
	MinAccessTokenTTL = time.Minute
	MaxAccessTokenTTL = 7 * 24 * time.Hour
	// MaxNameLen is the longest app, secret or admin token name, in bytes.
	MaxNameLen = 200
	// MaxAllowedOrigins is the most CORS origins an app may allow.
	MaxAllowedOrigins = 50
	// MaxUserIDLen is the longest user id, in bytes.
	MaxUserIDLen = 256
	// DefaultEventRetention and DefaultRollupRetention are how long an
	// app's raw events and its metric rollups are kept by default.
	DefaultEventRetention  = 30 * 24 * time.Hour
	DefaultRollupRetention = 400 * 24 * time.Hour
)

// App is an application registered with callsign: the unit that owns tokens
// and, later, analytics events.
type App struct {
	ID   string
	Name string
	// PublicToken is restrictive (it can only be upgraded) and not secret:
	// an admin can always read it again, so it is stored as is.
	PublicToken string
	// AccessTokenTTL is the lifetime of the app access tokens minted for
	// this app; zero means DefaultAccessTokenTTL.
	AccessTokenTTL time.Duration
	// AllowedOrigins are the browser origins ("https://app.example.com")
	// allowed to call the upgrade endpoint for this app (CORS).
	AllowedOrigins []string
	// EventRetention and RollupRetention are how long raw events and
	// metric rollups are kept; zero means DefaultEventRetention and
	// DefaultRollupRetention.
	EventRetention, RollupRetention time.Duration
	CreatedAt                       time.Time
	// RevokedAt is set when the app is revoked; a revoked app's tokens are
	// all refused from the next request on.
	RevokedAt *time.Time
}

// TTL returns the app's access token lifetime, applying the default.
func (a *App) TTL() time.Duration {
	if a.AccessTokenTTL <= 0 {
		return DefaultAccessTokenTTL
	}
	return a.AccessTokenTTL
}

// Retentions returns the app's raw-event and rollup retentions, applying
// the defaults.
func (a *App) Retentions() (events, rollups time.Duration) {
	events, rollups = a.EventRetention, a.RollupRetention
	if events <= 0 {
		events = DefaultEventRetention
	}
	if rollups <= 0 {
		rollups = DefaultRollupRetention
	}
	return events, rollups
}

// AllowsOrigin reports whether the browser origin o may call the app's
// endpoints. Origins are compared exactly (scheme, host and port).
func (a *App) AllowsOrigin(o string) bool {
	for _, x := range a.AllowedOrigins {
		if x == o || x == "*" {
			return true
		}
	}
	return false
}

// Secret is one of an app's secret tokens, without the token: only its hash
// is ever stored.
type Secret struct {
	ID         string
	AppID      string
	Name       string
	Hash       TokenHash
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// AdminToken is an administrator's API token, without the token.
type AdminToken struct {
	ID         string
	Name       string
	Hash       TokenHash
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// SigningKey is an Ed25519 key that signs app access tokens. Private is
// nil when the key was loaded only for verification.
type SigningKey struct {
	ID        string // the JWS "kid"
	Public    ed25519.PublicKey
	Private   ed25519.PrivateKey
	CreatedAt time.Time
	// RetiredAt is set when a newer key took over signing. A retired key
	// stays published until every token it signed has expired.
	RetiredAt *time.Time
}

// AppUpdate holds the fields of an app to change; nil fields are left as
// they are.
type AppUpdate struct {
	Name            *string
	AccessTokenTTL  *time.Duration
	AllowedOrigins  *[]string
	EventRetention  *time.Duration
	RollupRetention *time.Duration
}

// AppStore stores apps and their secrets. Methods return *Error with code
// ENotFound for a missing (or, for lookups by token, revoked) row.
type AppStore interface {
	// CreateApp stores a new app together with its first secret.
	CreateApp(ctx context.Context, app *App, first *Secret) error
	// App returns the app with the given id, revoked or not.
	App(ctx context.Context, id string) (*App, error)
	// AppByPublicToken returns the app whose public token is token,
	// revoked or not.
	AppByPublicToken(ctx context.Context, token string) (*App, error)
	// Apps returns every app, oldest first.
	Apps(ctx context.Context) ([]*App, error)
	// AppsAllowingOrigin reports whether any live app allows origin.
	AppsAllowingOrigin(ctx context.Context, origin string) (bool, error)
	// UpdateApp applies u to the app and returns it.
	UpdateApp(ctx context.Context, id string, u AppUpdate) (*App, error)
	// RevokeApp marks the app revoked at t.
	RevokeApp(ctx context.Context, id string, t time.Time) error

	// CreateSecret stores a new secret of an existing, live app.
	CreateSecret(ctx context.Context, s *Secret) error
	// Secrets returns the app's secrets, revoked ones included, oldest first.
	Secrets(ctx context.Context, appID string) ([]*Secret, error)
	// SecretByHash returns the secret with the given hash, revoked or not.
	SecretByHash(ctx context.Context, h TokenHash) (*Secret, error)
	// RevokeSecret marks the app's secret revoked at t.
	RevokeSecret(ctx context.Context, appID, id string, t time.Time) error
	// TouchSecret records that the secret was used at t.
	TouchSecret(ctx context.Context, id string, t time.Time) error
}

// AdminStore stores admin tokens.
type AdminStore interface {
	CreateAdminToken(ctx context.Context, t *AdminToken) error
	AdminTokens(ctx context.Context) ([]*AdminToken, error)
	AdminTokenByHash(ctx context.Context, h TokenHash) (*AdminToken, error)
	RevokeAdminToken(ctx context.Context, id string, t time.Time) error
	TouchAdminToken(ctx context.Context, id string, t time.Time) error
}

// SealedKey is a signing key as stored: the private key sealed (encrypted
// and authenticated) by the server's key-encryption key.
type SealedKey struct {
	ID            string
	Public        ed25519.PublicKey
	SealedPrivate []byte
	CreatedAt     time.Time
	RetiredAt     *time.Time
}

// KeyStore stores access-token signing keys, sealed.
type KeyStore interface {
	// SigningKeys returns every stored key, newest first.
	SigningKeys(ctx context.Context) ([]*SealedKey, error)
	// RotateSigningKey stores k as the newest key and retires every key
	// not yet retired, at k.CreatedAt, in one transaction.
	RotateSigningKey(ctx context.Context, k *SealedKey) error
}

// Store is everything the callsign server keeps.
type Store interface {
	AppStore
	AdminStore
	KeyStore
	Close() error
}

// NewSecret returns a new secret of app appID named name, created at now,
// and its token: the only copy of the plaintext there will ever be.
func NewSecret(appID, name string, now time.Time) (*Secret, string) {
	tok := GenerateToken(TokenSecret)
	return &Secret{ID: RandomID("sec_", 16), AppID: appID, Name: name, Hash: HashToken(tok), CreatedAt: now.UTC().Truncate(time.Microsecond)}, tok
}

// NewAdminToken returns a new admin token named name, created at now, and
// its token: the only copy of the plaintext there will ever be.
func NewAdminToken(name string, now time.Time) (*AdminToken, string) {
	tok := GenerateToken(TokenAdmin)
	return &AdminToken{ID: RandomID("adm_", 16), Name: name, Hash: HashToken(tok), CreatedAt: now.UTC().Truncate(time.Microsecond)}, tok
}

// NewApp returns a new app named name, created at now, with a new public
// token.
func NewApp(name string, now time.Time) *App {
	return &App{ID: RandomID("app_", 16), Name: name, PublicToken: GenerateToken(TokenPublic), CreatedAt: now.UTC().Truncate(time.Microsecond)}
}
