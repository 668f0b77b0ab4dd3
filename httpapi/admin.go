package httpapi

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/callsignhq/callsign"
)

// admin wraps h so that it runs only for a live admin token.
func (s *Server) admin(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, present, err := bearer(r)
		if err == nil && !present {
			err = callsign.Errorf(callsign.EUnauthorized, "This endpoint needs an admin token: Authorization: Bearer cs_adm_... (create one with `callsign admin token`).")
		}
		if err == nil {
			err = callsign.ParseTokenOf(tok, callsign.TokenAdmin)
		}
		if err == nil {
			err = s.checkAdmin(r, tok)
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		h(w, r)
	})
}

func (s *Server) checkAdmin(r *http.Request, tok string) error {
	h := callsign.HashToken(tok)
	t, err := s.store.AdminTokenByHash(r.Context(), h)
	if callsign.ErrorCode(err) == callsign.ENotFound {
		return callsign.Errorf(callsign.EUnauthorized, "The admin token is not valid.")
	}
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(t.Hash[:], h[:]) != 1 {
		return callsign.Errorf(callsign.EUnauthorized, "The admin token is not valid.")
	}
	if t.RevokedAt != nil {
		return callsign.Errorf(callsign.ERevoked, "The admin token has been revoked.")
	}
	now := s.now()
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) >= touchEvery {
		if err := s.store.TouchAdminToken(r.Context(), t.ID, now); err != nil {
			s.logger(r).Warn("recording admin token use failed", "admin_token_id", t.ID, "error", err.Error())
		}
	}
	return nil
}

// AppJSON is an app as the admin API shows it. SecretToken and Secret are
// set only in the answer that created the app.
type AppJSON struct {
	ID                    string      `json:"id"`
	Name                  string      `json:"name"`
	PublicToken           string      `json:"public_token"`
	SecretToken           string      `json:"secret_token,omitempty"`
	Secret                *SecretJSON `json:"secret,omitempty"`
	AccessTokenTTLSeconds int64       `json:"access_token_ttl_seconds"`
	AllowedOrigins        []string    `json:"allowed_origins"`
	// EventRetentionDays and RollupRetentionDays are how long raw events
	// and metric rollups are kept, defaults applied.
	EventRetentionDays  int64      `json:"event_retention_days"`
	RollupRetentionDays int64      `json:"rollup_retention_days"`
	CreatedAt           time.Time  `json:"created_at"`
	RevokedAt           *time.Time `json:"revoked_at,omitempty"`
}

// SecretJSON is a secret as the admin API shows it. SecretToken is set only
// in the answer that created it.
type SecretJSON struct {
	ID          string     `json:"id"`
	AppID       string     `json:"app_id"`
	Name        string     `json:"name"`
	SecretToken string     `json:"secret_token,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
}

// AdminTokenJSON is an admin token as the admin API shows it.
type AdminTokenJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Token      string     `json:"token,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

func appJSON(a *callsign.App) AppJSON {
	o := a.AllowedOrigins
	if o == nil {
		o = []string{}
	}
	events, rollups := a.Retentions()
	return AppJSON{ID: a.ID, Name: a.Name, PublicToken: a.PublicToken, AccessTokenTTLSeconds: int64(a.TTL() / time.Second),
		AllowedOrigins: o, EventRetentionDays: int64(events / day), RollupRetentionDays: int64(rollups / day),
		CreatedAt: a.CreatedAt, RevokedAt: a.RevokedAt}
}

func secretJSON(x *callsign.Secret) *SecretJSON {
	return &SecretJSON{ID: x.ID, AppID: x.AppID, Name: x.Name, CreatedAt: x.CreatedAt, LastUsedAt: x.LastUsedAt, RevokedAt: x.RevokedAt}
}

type appRequest struct {
	Name                  *string   `json:"name"`
	AccessTokenTTLSeconds *int64    `json:"access_token_ttl_seconds"`
	AllowedOrigins        *[]string `json:"allowed_origins"`
	EventRetentionDays    *int64    `json:"event_retention_days"`
	RollupRetentionDays   *int64    `json:"rollup_retention_days"`
}

const day = 24 * time.Hour

// MaxRetentionDays bounds an app's event and rollup retentions (10 years).
const MaxRetentionDays = 3650

// validate checks the request's fields; create requires a name.
func (q *appRequest) validate(create bool) (callsign.AppUpdate, error) {
	var u callsign.AppUpdate
	if q.Name == nil && create {
		return u, callsign.Errorf(callsign.EMissingField, "The field \"name\" is required.")
	}
	if q.Name != nil {
		if err := ValidateName(*q.Name); err != nil {
			return u, err
		}
		u.Name = q.Name
	}
	if q.AccessTokenTTLSeconds != nil {
		d := time.Duration(*q.AccessTokenTTLSeconds) * time.Second
		if *q.AccessTokenTTLSeconds < int64(callsign.MinAccessTokenTTL/time.Second) || *q.AccessTokenTTLSeconds > int64(callsign.MaxAccessTokenTTL/time.Second) {
			return u, callsign.Errorf(callsign.EInvalid, "The field \"access_token_ttl_seconds\" must be between %d and %d.",
				int64(callsign.MinAccessTokenTTL/time.Second), int64(callsign.MaxAccessTokenTTL/time.Second))
		}
		u.AccessTokenTTL = &d
	}
	if q.AllowedOrigins != nil {
		if len(*q.AllowedOrigins) > callsign.MaxAllowedOrigins {
			return u, callsign.Errorf(callsign.EInvalid, "At most %d allowed_origins may be set.", callsign.MaxAllowedOrigins)
		}
		for _, o := range *q.AllowedOrigins {
			if err := ValidateOrigin(o); err != nil {
				return u, err
			}
		}
		u.AllowedOrigins = q.AllowedOrigins
	}
	for _, f := range [...]struct {
		name string
		days *int64
		dst  **time.Duration
	}{{"event_retention_days", q.EventRetentionDays, &u.EventRetention}, {"rollup_retention_days", q.RollupRetentionDays, &u.RollupRetention}} {
		if f.days == nil {
			continue
		}
		if *f.days < 1 || *f.days > MaxRetentionDays {
			return u, callsign.Errorf(callsign.EInvalid, "The field %q must be between 1 and %d.", f.name, MaxRetentionDays)
		}
		d := time.Duration(*f.days) * day
		*f.dst = &d
	}
	return u, nil
}

// ValidateName checks the name of an app, secret or admin token: 1 to
// callsign.MaxNameLen bytes of UTF-8 without control characters.
func ValidateName(n string) error {
	if strings.TrimSpace(n) == "" || len(n) > callsign.MaxNameLen || !utf8.ValidString(n) || strings.ContainsFunc(n, unicode.IsControl) {
		return callsign.Errorf(callsign.EInvalid, "A name must be 1 to %d bytes of UTF-8 text without control characters.", callsign.MaxNameLen)
	}
	return nil
}

// ValidateOrigin checks a CORS origin: "*" or scheme://host[:port] with
// scheme http or https and nothing after the host.
func ValidateOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || len(o) > 512 || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#") {
		return callsign.Errorf(callsign.EInvalid, "The origin %q is not of the form https://host[:port].", truncate(o, 80))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func (s *Server) createApp(w http.ResponseWriter, r *http.Request) {
	var q appRequest
	if err := readJSON(w, r, MaxAdminBody, &q); err != nil {
		writeError(w, r, err)
		return
	}
	u, err := q.validate(true)
	if err != nil {
		writeError(w, r, err)
		return
	}
	now := s.now()
	app := callsign.NewApp(*u.Name, now)
	if u.AccessTokenTTL != nil {
		app.AccessTokenTTL = *u.AccessTokenTTL
	}
	if u.AllowedOrigins != nil {
		app.AllowedOrigins = *u.AllowedOrigins
	}
	if u.EventRetention != nil {
		app.EventRetention = *u.EventRetention
	}
	if u.RollupRetention != nil {
		app.RollupRetention = *u.RollupRetention
	}
	sec, tok := callsign.NewSecret(app.ID, "default", now)
	if err := s.store.CreateApp(r.Context(), app, sec); err != nil {
		writeError(w, r, err)
		return
	}
	s.logger(r).Info("app created", "app_id", app.ID, "secret_id", sec.ID)
	out := appJSON(app)
	out.SecretToken = tok
	out.Secret = secretJSON(sec)
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listApps(w http.ResponseWriter, r *http.Request) {
	apps, err := s.store.Apps(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := make([]AppJSON, 0, len(apps))
	for _, a := range apps {
		out = append(out, appJSON(a))
	}
	writeJSON(w, http.StatusOK, map[string]any{"apps": out})
}

func (s *Server) getApp(w http.ResponseWriter, r *http.Request) {
	app, err := s.store.App(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, appJSON(app))
}

func (s *Server) updateApp(w http.ResponseWriter, r *http.Request) {
	var q appRequest
	if err := readJSON(w, r, MaxAdminBody, &q); err != nil {
		writeError(w, r, err)
		return
	}
	u, err := q.validate(false)
	if err != nil {
		writeError(w, r, err)
		return
	}
	app, err := s.store.UpdateApp(r.Context(), r.PathValue("id"), u)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, appJSON(app))
}

func (s *Server) revokeApp(w http.ResponseWriter, r *http.Request) {
	if err := s.store.RevokeApp(r.Context(), r.PathValue("id"), s.now()); err != nil {
		writeError(w, r, err)
		return
	}
	s.logger(r).Info("app revoked", "app_id", r.PathValue("id"))
	w.WriteHeader(http.StatusNoContent)
}

type nameRequest struct {
	Name *string `json:"name"`
}

func (q *nameRequest) validate() (string, error) {
	if q.Name == nil {
		return "", callsign.Errorf(callsign.EMissingField, "The field \"name\" is required.")
	}
	return *q.Name, ValidateName(*q.Name)
}

func (s *Server) createSecret(w http.ResponseWriter, r *http.Request) {
	var q nameRequest
	if err := readJSON(w, r, MaxAdminBody, &q); err != nil {
		writeError(w, r, err)
		return
	}
	name, err := q.validate()
	if err != nil {
		writeError(w, r, err)
		return
	}
	sec, tok := callsign.NewSecret(r.PathValue("id"), name, s.now())
	if err := s.store.CreateSecret(r.Context(), sec); err != nil {
		writeError(w, r, err)
		return
	}
	s.logger(r).Info("secret created", "app_id", sec.AppID, "secret_id", sec.ID)
	out := secretJSON(sec)
	out.SecretToken = tok
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) {
	if _, err := s.store.App(r.Context(), r.PathValue("id")); err != nil {
		writeError(w, r, err)
		return
	}
	secs, err := s.store.Secrets(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := make([]*SecretJSON, 0, len(secs))
	for _, x := range secs {
		out = append(out, secretJSON(x))
	}
	writeJSON(w, http.StatusOK, map[string]any{"secrets": out})
}

func (s *Server) revokeSecret(w http.ResponseWriter, r *http.Request) {
	if err := s.store.RevokeSecret(r.Context(), r.PathValue("id"), r.PathValue("secret_id"), s.now()); err != nil {
		writeError(w, r, err)
		return
	}
	s.logger(r).Info("secret revoked", "app_id", r.PathValue("id"), "secret_id", r.PathValue("secret_id"))
	w.WriteHeader(http.StatusNoContent)
}

func adminTokenJSON(t *callsign.AdminToken) AdminTokenJSON {
	return AdminTokenJSON{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt, LastUsedAt: t.LastUsedAt, RevokedAt: t.RevokedAt}
}

func (s *Server) createAdminToken(w http.ResponseWriter, r *http.Request) {
	var q nameRequest
	if err := readJSON(w, r, MaxAdminBody, &q); err != nil {
		writeError(w, r, err)
		return
	}
	name, err := q.validate()
	if err != nil {
		writeError(w, r, err)
		return
	}
	t, tok := callsign.NewAdminToken(name, s.now())
	if err := s.store.CreateAdminToken(r.Context(), t); err != nil {
		writeError(w, r, err)
		return
	}
	s.logger(r).Info("admin token created", "admin_token_id", t.ID)
	out := adminTokenJSON(t)
	out.Token = tok
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listAdminTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := s.store.AdminTokens(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := make([]AdminTokenJSON, 0, len(ts))
	for _, t := range ts {
		out = append(out, adminTokenJSON(t))
	}
	writeJSON(w, http.StatusOK, map[string]any{"admin_tokens": out})
}

func (s *Server) revokeAdminToken(w http.ResponseWriter, r *http.Request) {
	if err := s.store.RevokeAdminToken(r.Context(), r.PathValue("id"), s.now()); err != nil {
		writeError(w, r, err)
		return
	}
	s.logger(r).Info("admin token revoked", "admin_token_id", r.PathValue("id"))
	w.WriteHeader(http.StatusNoContent)
}

type keyJSON struct {
	ID        string     `json:"kid"`
	CreatedAt time.Time  `json:"created_at"`
	RetiredAt *time.Time `json:"retired_at,omitempty"`
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.keys.Published(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := make([]keyJSON, 0, len(keys))
	for _, k := range keys {
		out = append(out, keyJSON{ID: k.ID, CreatedAt: k.CreatedAt, RetiredAt: k.RetiredAt})
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
}

func (s *Server) rotateKeys(w http.ResponseWriter, r *http.Request) {
	k, err := s.keys.Rotate(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.logger(r).Info("signing key rotated", "kid", k.ID)
	writeJSON(w, http.StatusOK, keyJSON{ID: k.ID, CreatedAt: k.CreatedAt})
}
