package callsign

import (
	"context"
	"time"
)

// Limits on events.
const (
	MaxEventsPerBatch  = 1000    // events in one ingest batch
	MaxBatchBytes      = 5 << 20 // bytes of one batch, decompressed
	MaxEventIDLen      = 64
	MaxRouteLen        = 256
	MaxURILen          = 2048
	MaxUserAgentLen    = 512
	MaxMetadataEntries = 32
	MaxMetadataLen     = 256 // bytes of each metadata key and value
	MaxBodyLogBytes    = 64 << 10
)

// Event is one API call, as the capture middleware saw it.
//
// A user can be attributed with three provenances, kept in three fields and
// never merged: UserID was verified (a credential callsign or the API's auth
// middleware checked), APIUserID was asserted by the API itself (an
// IdentifyUser callback of an API that authenticates on its own), and
// ClientUserID was asserted by the client (X-Client-User-Id).
type Event struct {
	// ID identifies the event: a retried batch resends the same (ID,
	// Time) and is not counted twice. Stores deduplicate on (AppID, Time,
	// ID), which keeps inserts in time order; an ID reused with another
	// Time is another event.
	ID    string
	AppID string
	Time  time.Time
	// Method, Route and URI: Route is the router's pattern ("GET
	// /notes/{id}") when there is one, else the path; URI is the request
	// URI after the query redaction policy.
	Method, Route, URI string
	Status             int
	Latency            time.Duration
	// RequestBytes and ResponseBytes count bodies.
	RequestBytes, ResponseBytes     int64
	UserID, APIUserID, ClientUserID string
	CompanyID                       string
	// Scheme and KeyID identify the credential presented.
	Scheme Scheme
	KeyID  string
	// AuthError is the precise failure code of a refused authentication
	// (expired, replayed, unknown_key, ...); empty otherwise.
	AuthError string
	RequestID string
	RemoteIP  string
	UserAgent string
	// Weight is how many calls the event stands for (the inverse of the
	// sampling rate); counts are sums of weights. 0 means 1.
	Weight   float64
	Metadata map[string]string
	// RequestBody and ResponseBody are set only when body logging is on.
	RequestBody, ResponseBody string
}

// StatusClass returns "2xx", "4xx", ... for a status code.
func StatusClass(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return string(rune('0'+status/100)) + "xx"
}

// EventFilter selects events. Zero fields do not filter.
type EventFilter struct {
	AppID        string
	From, To     time.Time // From inclusive, To exclusive
	UserID       string
	ClientUserID string
	APIUserID    string
	Route        string
	Method       string
	// Status is an exact code (401) or, with StatusClass, a class (4).
	Status      int
	StatusClass int
	AuthError   string
	// Limit bounds the page (DefaultEventPage if 0, at most MaxEventPage);
	// Cursor continues after the last event of the previous page.
	Limit  int
	Cursor string
}

// Page sizes of event listings.
const (
	DefaultEventPage = 100
	MaxEventPage     = 1000
)

// EventPage is one page of events, newest first. NextCursor is empty on
// the last page.
type EventPage struct {
	Events     []*Event
	NextCursor string
}

// Dimensions metrics can be grouped by.
const (
	GroupRoute     = "route"
	GroupUserID    = "user_id"
	GroupCompany   = "company_id"
	GroupStatus    = "status"
	GroupAuthError = "auth_error"
)

// MetricsQuery asks for metrics of one app over [From, To), grouped by
// GroupBy, optionally as a time series of Interval buckets.
type MetricsQuery struct {
	AppID    string
	From, To time.Time
	GroupBy  string
	Interval time.Duration // 0: no series
	// Limit keeps the Limit largest groups by OrderBy ("count" or
	// "errors"); 0 keeps all (at most MaxMetricGroups).
	Limit   int
	OrderBy string
}

// MaxMetricGroups bounds the groups of one metrics answer.
const MaxMetricGroups = 1000

// Metrics are the figures of one group or bucket. Errors counts calls with
// a 5xx status or a failed authentication. Latency percentiles come from a
// mergeable sketch with a stated relative error (see the store's docs).
type Metrics struct {
	Count, Errors               float64
	P50, P95, P99               time.Duration
	RequestBytes, ResponseBytes float64
}

// MetricsGroup is the metrics of one value of the grouping dimension.
type MetricsGroup struct {
	Key string
	Metrics
	Series []MetricsBucket // with an Interval only
}

// MetricsBucket is one time bucket of a series.
type MetricsBucket struct {
	Start time.Time
	Metrics
}

// MetricsReport answers a MetricsQuery.
type MetricsReport struct {
	Groups []MetricsGroup
}

// IngestResult says what became of each event of a batch.
type IngestResult struct {
	Accepted   int
	Duplicates int
}

// EventStore stores events and answers queries over them. Metrics are
// answered from rollups, never by scanning raw events.
type EventStore interface {
	// AppendEvents stores events (already validated, AppID set) durably:
	// when it returns nil they survive a crash. Events whose (AppID, Time,
	// ID) is already stored are counted as duplicates and not stored again.
	// The batch is written entirely or not at all.
	AppendEvents(ctx context.Context, events []*Event) (IngestResult, error)
	// Events lists events matching f, newest first.
	Events(ctx context.Context, f EventFilter) (*EventPage, error)
	// Metrics answers q from rollups.
	Metrics(ctx context.Context, q MetricsQuery) (*MetricsReport, error)
	// DeleteEventsBefore deletes the app's raw events older than t and
	// rollupsBefore its rollups older than rollupsBefore; it returns the
	// number of raw events deleted.
	DeleteEventsBefore(ctx context.Context, appID string, t, rollupsBefore time.Time) (int64, error)
}

// EventJSON is an event on the wire: in ingest batches and in query
// answers. Field names are snake_case. user_id, client_user_id and scheme
// are always present (empty when unknown); auth_error only for failed
// authentications.
type EventJSON struct {
	ID            string            `json:"id"`
	AppID         string            `json:"app_id,omitempty"`
	Time          time.Time         `json:"time"`
	Method        string            `json:"method"`
	Route         string            `json:"route"`
	URI           string            `json:"uri,omitempty"`
	Status        int               `json:"status"`
	LatencyMS     float64           `json:"latency_ms"`
	RequestBytes  int64             `json:"request_bytes"`
	ResponseBytes int64             `json:"response_bytes"`
	UserID        string            `json:"user_id"`
	APIUserID     string            `json:"api_user_id,omitempty"`
	ClientUserID  string            `json:"client_user_id"`
	CompanyID     string            `json:"company_id,omitempty"`
	Scheme        string            `json:"scheme"`
	KeyID         string            `json:"key_id,omitempty"`
	AuthError     string            `json:"auth_error,omitempty"`
	RequestID     string            `json:"request_id,omitempty"`
	RemoteIP      string            `json:"remote_ip,omitempty"`
	UserAgent     string            `json:"user_agent,omitempty"`
	Weight        float64           `json:"weight,omitempty"`
	Metadata      map[string]string `json:"metadata,omitempty"`
	RequestBody   string            `json:"request_body,omitempty"`
	ResponseBody  string            `json:"response_body,omitempty"`
}

// JSON returns the wire form of e.
func (e *Event) JSON() EventJSON {
	return EventJSON{ID: e.ID, AppID: e.AppID, Time: e.Time.UTC(), Method: e.Method, Route: e.Route, URI: e.URI, Status: e.Status,
		LatencyMS: float64(e.Latency.Microseconds()) / 1000, RequestBytes: e.RequestBytes, ResponseBytes: e.ResponseBytes,
		UserID: e.UserID, APIUserID: e.APIUserID, ClientUserID: e.ClientUserID, CompanyID: e.CompanyID, Scheme: string(e.Scheme),
		KeyID: e.KeyID, AuthError: e.AuthError, RequestID: e.RequestID, RemoteIP: e.RemoteIP, UserAgent: e.UserAgent,
		Weight: e.Weight, Metadata: e.Metadata, RequestBody: e.RequestBody, ResponseBody: e.ResponseBody}
}

// Event returns the event of its wire form (not validated).
func (j *EventJSON) Event() *Event {
	return &Event{ID: j.ID, AppID: j.AppID, Time: j.Time, Method: j.Method, Route: j.Route, URI: j.URI, Status: j.Status,
		Latency: time.Duration(j.LatencyMS * float64(time.Millisecond)), RequestBytes: j.RequestBytes, ResponseBytes: j.ResponseBytes,
		UserID: j.UserID, APIUserID: j.APIUserID, ClientUserID: j.ClientUserID, CompanyID: j.CompanyID, Scheme: Scheme(j.Scheme),
		KeyID: j.KeyID, AuthError: j.AuthError, RequestID: j.RequestID, RemoteIP: j.RemoteIP, UserAgent: j.UserAgent,
		Weight: j.Weight, Metadata: j.Metadata, RequestBody: j.RequestBody, ResponseBody: j.ResponseBody}
}
