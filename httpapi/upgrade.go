package httpapi

import (
	"crypto/subtle"
	"net/http"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth/apptoken"
)

type upgradeRequest struct {
	PublicToken *string `json:"public_token"`
	UserID      *string `json:"user_id"`
}

type upgradeResponse struct {
	AppAccessToken string `json:"appAccessToken"`
	ExpiresAt      string `json:"expiresAt"`
	UserID         string `json:"userId,omitempty"`
}

// touchEvery throttles last_used_at writes: a secret used many times a
// second costs one write a minute.
const touchEvery = time.Minute

// upgrade turns a public token into an app access token: anonymous without
// credentials, bound to user_id with the app's secret token as Bearer.
// Cheap checks (rate, shape, checksum) run before any lookup.
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	if ok, d := s.perIP.Allow(clientIP(r), now); !ok {
		retryAfter(w, d)
		writeError(w, r, callsign.Errorf(callsign.ERateLimited, "Too many token upgrades from this address; retry later."))
		return
	}
	secret, hasSecret, err := bearer(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var req upgradeRequest
	if err := readJSON(w, r, MaxUpgradeBody, &req); err != nil {
		writeError(w, r, err)
		return
	}
	if req.PublicToken == nil {
		writeError(w, r, callsign.Errorf(callsign.EMissingField, "The field \"public_token\" is required."))
		return
	}
	switch {
	case hasSecret && req.UserID == nil:
		writeError(w, r, callsign.Errorf(callsign.EMissingField, "The field \"user_id\" is required when upgrading with a secret token."))
		return
	case !hasSecret && req.UserID != nil:
		writeError(w, r, callsign.Errorf(callsign.EUnauthorized, "Binding a user_id requires the app's secret token in Authorization: Bearer <secret token>."))
		return
	}
	if req.UserID != nil {
		if err := ValidateUserID(*req.UserID); err != nil {
			writeError(w, r, err)
			return
		}
	}
	if err := callsign.ParseTokenOf(*req.PublicToken, callsign.TokenPublic); err != nil {
		writeError(w, r, publicTokenError(err))
		return
	}
	if hasSecret {
		if err := callsign.ParseTokenOf(secret, callsign.TokenSecret); err != nil {
			writeError(w, r, err)
			return
		}
	}

	ctx := r.Context()
	app, err := s.store.AppByPublicToken(ctx, *req.PublicToken)
	if callsign.ErrorCode(err) == callsign.ENotFound {
		err = callsign.Errorf(callsign.EUnauthorized, "The public token is not valid.")
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	if !s.admitApp(w, r, app, now) {
		return
	}
	if !s.corsAllow(w, r, app) {
		return
	}

	userID := ""
	if hasSecret {
		sec, err := s.checkSecret(r, secret)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if sec.AppID != app.ID {
			writeError(w, r, callsign.Errorf(callsign.EAppMismatch, "The secret token and the public token belong to different apps."))
			return
		}
		userID = *req.UserID
	}

	s.mint(w, r, app, userID, now)
}

// admitApp refuses a revoked app and applies the per-app rate limit of the
// token endpoints; it reports whether the request may go on.
func (s *Server) admitApp(w http.ResponseWriter, r *http.Request, app *callsign.App, now time.Time) bool {
	if app.RevokedAt != nil {
		writeError(w, r, callsign.Errorf(callsign.ERevoked, "The app has been revoked."))
		return false
	}
	if ok, d := s.perApp.Allow(app.ID, now); !ok {
		retryAfter(w, d)
		writeError(w, r, callsign.Errorf(callsign.ERateLimited, "Too many token requests for this app; retry later."))
		return false
	}
	return true
}

// mint signs an app access token for app (bound to userID unless empty)
// with the current key and answers it.
func (s *Server) mint(w http.ResponseWriter, r *http.Request, app *callsign.App, userID string, now time.Time, opts ...apptoken.MintOption) {
	key, err := s.keys.Signer(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	tok, exp, err := apptoken.Mint(key, s.issuer, app.ID, userID, now, app.TTL(), opts...)
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.logger(r).Info("access token minted", "app_id", app.ID, "bound", userID != "", "kid", key.ID)
	writeJSON(w, http.StatusOK, upgradeResponse{AppAccessToken: tok, ExpiresAt: exp.UTC().Format(time.RFC3339), UserID: userID})
}

// publicTokenError rewords a token shape error to name the field.
func publicTokenError(err error) error {
	switch callsign.ErrorCode(err) {
	case callsign.EWrongTokenKind:
		return callsign.Errorf(callsign.EWrongTokenKind, "The field \"public_token\" must hold the app's public token (cs_pub_...).")
	case callsign.EBadChecksum:
		return callsign.Errorf(callsign.EBadChecksum, "The public token's checksum does not match: it was probably mistyped or truncated.")
	}
	return callsign.Errorf(callsign.EMalformedToken, "The field \"public_token\" is not a callsign public token.")
}

// checkSecret finds the live secret whose token is tok (already
// shape-checked). An unknown token and a wrong one are the same thing here:
// the lookup is by hash, so there is no "right app, wrong secret" path.
func (s *Server) checkSecret(r *http.Request, tok string) (*callsign.Secret, error) {
	h := callsign.HashToken(tok)
	sec, err := s.store.SecretByHash(r.Context(), h)
	if callsign.ErrorCode(err) == callsign.ENotFound {
		return nil, callsign.Errorf(callsign.EUnauthorized, "The secret token is not valid.")
	}
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(sec.Hash[:], h[:]) != 1 {
		return nil, callsign.Errorf(callsign.EUnauthorized, "The secret token is not valid.")
	}
	if sec.RevokedAt != nil {
		return nil, callsign.Errorf(callsign.ERevoked, "The secret token has been revoked.")
	}
	now := s.now()
	if sec.LastUsedAt == nil || now.Sub(*sec.LastUsedAt) >= touchEvery {
		if err := s.store.TouchSecret(r.Context(), sec.ID, now); err != nil {
			s.logger(r).Warn("recording secret use failed", "secret_id", sec.ID, "error", err.Error())
		}
	}
	return sec, nil
}

// ValidateUserID checks a user id: 1 to callsign.MaxUserIDLen bytes of
// valid UTF-8 without control characters. It returns an *callsign.Error
// with code EInvalidUserID.
func ValidateUserID(id string) error {
	if id == "" {
		return callsign.Errorf(callsign.EInvalidUserID, "The user_id must not be empty.")
	}
	if len(id) > callsign.MaxUserIDLen {
		return callsign.Errorf(callsign.EInvalidUserID, "The user_id must be at most %d bytes.", callsign.MaxUserIDLen)
	}
	if !utf8.ValidString(id) {
		return callsign.Errorf(callsign.EInvalidUserID, "The user_id must be valid UTF-8.")
	}
	for _, c := range id {
		if unicode.IsControl(c) {
			return callsign.Errorf(callsign.EInvalidUserID, "The user_id must not contain control characters.")
		}
	}
	return nil
}

// corsAllow handles the Origin of a browser request to an app's endpoint:
// no Origin (a server) passes; an origin the app allows gets CORS headers; any
// other origin is refused with origin_not_allowed (and no CORS headers, so
// the browser does not expose the answer either).
func (s *Server) corsAllow(w http.ResponseWriter, r *http.Request, app *callsign.App) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if !app.AllowsOrigin(origin) {
		writeError(w, r, callsign.Errorf(callsign.EOriginNotAllowed, "The app does not allow calls from this browser origin; add it to the app's allowed_origins."))
		return false
	}
	setCORS(w, origin)
	return true
}

func setCORS(w http.ResponseWriter, origin string) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", "X-Request-Id, Retry-After")
}

// preflight answers a CORS preflight. The preflight carries no body, so the
// app is not known yet: an origin is allowed if any live app allows it, and
// the actual request is then checked against its own app.
func (s *Server) preflight(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	ok := false
	if origin != "" && len(origin) <= 512 {
		var err error
		ok, err = s.store.AppsAllowingOrigin(r.Context(), origin)
		if err != nil {
			writeError(w, r, err)
			return
		}
	}
	if !ok {
		writeError(w, r, callsign.Errorf(callsign.EOriginNotAllowed, "No app allows calls from this browser origin."))
		return
	}
	setCORS(w, origin)
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Content-Encoding, X-Request-Id")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	keys, err := s.keys.Published(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.WriteHeader(http.StatusOK)
	writeBody(w, apptoken.NewJWKS(keys))
}
