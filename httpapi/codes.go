package httpapi

import (
	"sync"
	"time"

	"github.com/callsignhq/callsign"
	"golang.org/x/time/rate"
)

// Error codes of the analytics routes, beside those of package callsign.
// Like those, they are stable and snake_case; statusOf maps them.
const (
	// EUnavailable: the server has no event store (503).
	EUnavailable = "unavailable"
	// ETooManyEvents: an ingest batch of more than
	// callsign.MaxEventsPerBatch events (413).
	ETooManyEvents = "too_many_events"
	// EInvalidEncoding: a gzip or snappy body that does not decompress (400).
	EInvalidEncoding = "invalid_encoding"
	// EInvalidParameter, EMissingParameter and EUnknownParameter: a query
	// parameter that does not parse or is out of range, one that is
	// required, one the route does not know (400). The message names it.
	EInvalidParameter = "invalid_parameter"
	EMissingParameter = "missing_parameter"
	EUnknownParameter = "unknown_parameter"
)

// Codes of the events an ingest batch rejects one by one, in the
// "rejected" list of a 200 answer (statusOf maps them to 400 too, should
// one ever be the answer to a whole request).
const (
	// EInvalidEventID: an id that is empty, longer than
	// callsign.MaxEventIDLen or not of [A-Za-z0-9_-].
	EInvalidEventID = "invalid_id"
	// EInvalidTime: no time, or one that is not RFC 3339.
	EInvalidTime = "invalid_time"
	// ETimeOutOfRange: a time more than MaxEventFutureSkew ahead of the
	// server's clock, or older than the app's event retention.
	ETimeOutOfRange = "time_out_of_range"
	// EInvalidEvent: any other field out of its limits; the message names
	// the field.
	EInvalidEvent = "invalid_event"
	// EProvenanceNotAllowed: a user id the token may not attribute (a
	// verified or API-asserted user id from a client token, or another
	// user's events from a user-bound token).
	EProvenanceNotAllowed = "provenance_not_allowed"
)

// eventLimiter is a token bucket of events per app. Its keys are the app
// ids of verified tokens, which only an admin can create, so the map stays
// as small as the set of apps; it is cleared if it ever grows past
// maxLimiterKeys anyway.
type eventLimiter struct {
	limit rate.Limit
	burst int

	mu   sync.Mutex
	apps map[string]*rate.Limiter
}

const maxLimiterKeys = 1 << 16

// newEventLimiter returns a limiter of perSecond events per app (def when
// 0), nil (no limit) when negative.
func newEventLimiter(perSecond, def float64) *eventLimiter {
	if perSecond == 0 {
		perSecond = def
	}
	if perSecond < 0 {
		return nil
	}
	return &eventLimiter{limit: rate.Limit(perSecond), burst: max(int(2*perSecond), callsign.MaxEventsPerBatch), apps: map[string]*rate.Limiter{}}
}

// allow takes n events from app's bucket at now, or says how long until
// they would fit (at least a second, Retry-After's unit).
func (l *eventLimiter) allow(app string, n int, now time.Time) (bool, time.Duration) {
	if l == nil || n == 0 {
		return true, 0
	}
	l.mu.Lock()
	lim, ok := l.apps[app]
	if !ok {
		if len(l.apps) >= maxLimiterKeys {
			clear(l.apps)
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.apps[app] = lim
	}
	l.mu.Unlock()
	r := lim.ReserveN(now, n)
	if !r.OK() {
		return false, time.Duration(float64(n) / float64(l.limit) * float64(time.Second))
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, max(d, time.Second)
	}
	return true, 0
}
