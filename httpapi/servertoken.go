package httpapi

import (
	"net/http"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/auth/apptoken"
)

// serverTokenRequest is the body of POST /v2/tokens/server: an empty
// object, so that any field is refused (there is nothing to choose).
type serverTokenRequest struct{}

// serverToken mints an ingest token for a server-side shipper: the app's
// secret token as Bearer, an empty JSON object as body; the answer has the
// upgrade's shape without userId. The token has scope ingest:server and no
// user: it may attribute verified and API-asserted user ids event by event,
// which is why only the secret token gets it. Same checks, codes and rate
// limits as the upgrade; no CORS, as a secret token never sits in a browser.
func (s *Server) serverToken(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	if ok, d := s.perIP.Allow(clientIP(r), now); !ok {
		retryAfter(w, d)
		writeError(w, r, callsign.Errorf(callsign.ERateLimited, "Too many token requests from this address; retry later."))
		return
	}
	secret, hasSecret, err := bearer(r)
	if err == nil && !hasSecret {
		err = callsign.Errorf(callsign.EUnauthorized, "A server token needs the app's secret token in Authorization: Bearer <secret token>.")
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	var req serverTokenRequest
	if err := readJSON(w, r, MaxUpgradeBody, &req); err != nil {
		writeError(w, r, err)
		return
	}
	if err := callsign.ParseTokenOf(secret, callsign.TokenSecret); err != nil {
		writeError(w, r, err)
		return
	}
	sec, err := s.checkSecret(r, secret)
	if err != nil {
		writeError(w, r, err)
		return
	}
	app, err := s.store.App(r.Context(), sec.AppID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if !s.admitApp(w, r, app, now) {
		return
	}
	s.logger(r).Info("server token requested", "app_id", app.ID, "secret_id", sec.ID)
	s.mint(w, r, app, "", now, apptoken.WithScope(apptoken.ScopeServer))
}
