// Package capture turns every call to an API into a callsign.Event and
// ships the events to the callsign server, without slowing the calls down.
//
// # Capture
//
// New returns a Capture whose Handler is net/http middleware. Put it OUTSIDE
// the auth middleware, so that refused authentications are events too:
//
//	c := capture.New(capture.Options{}, shipper)
//	handler := c.Handler(authMiddleware.Handler(mux))
//
// The auth middleware (package auth) reports to the capture's
// ResponseWriter, through callsign.AuthRecorder, the verified Principal or
// the partial Principal and the precise failure code (expired,
// unknown_key, replayed, ...). An event then carries:
//
//   - UserID, the verified user (from the Principal; never anything else),
//   - ClientUserID, what the client asserted (X-Client-User-Id),
//   - APIUserID, what the API asserted through Options.IdentifyUser (for APIs
//     that authenticate on their own, as seed 000's Identify_User did),
//
// three provenances kept apart; and Scheme, KeyID, AuthError, RequestID,
// AppID when the auth middleware told them.
//
// Route: the route template. A Go 1.22+ http.ServeMux sets r.Pattern on the
// request it serves; when the capture wraps the mux directly that is the
// capture's request, but behind other middleware (auth) the mux sees a copy.
// The route is therefore, in order: what SetRoute recorded (ReportPattern
// does it for a ServeMux, at no cost), Options.Route(r), the pattern of
// Options.Mux.Handler(r) (the mux routes the request a second time, after
// the handler), r.Pattern, else the path. The recommended setup reports
// the pattern and names the mux, so that only refused calls, which never
// reach the mux, are routed twice:
//
//	c := capture.New(capture.Options{Mux: mux}, shipper)
//	handler := c.Handler(authMiddleware.Handler(capture.ReportPattern(mux)))
//
// For chi (v5.2 and later), resolve the route with the router's Find:
//
//	Route: func(r *http.Request) string {
//		return router.Find(chi.NewRouteContext(), r.Method, r.URL.Path)
//	},
//
// or call SetRoute(w, chi.RouteContext(r.Context()).RoutePattern()) from a
// chi middleware after next returns.
//
// Query strings are redacted by default: the names stay, every value is
// replaced by "REDACTED" unless its name is in Options.QueryAllow (see
// QueryPolicy). Remote IPs are truncated by default (IPv4 to /24, IPv6 to
// /48; see IPPolicy). Bodies are not captured unless Options.LogBodies is
// set. Request headers are captured only when named in Options.Headers, and
// credential headers (Authorization, Cookie, X-Api-Key, signatures, ...)
// are then always redacted.
//
// Sampling: with Options.SampleRate r in (0, 1), a call is kept with
// probability r and its event has Weight 1/r, so that sums of weights
// estimate counts without bias. The decision is a hash of the request id
// when there is one (every service sharing the request id keeps the same
// calls), random otherwise.
//
// The hot path costs well under a microsecond and one allocation (the
// event's id, URI and IP share one string); writers and events are pooled.
// Handing the event to the Sink never blocks.
//
// # Shipper
//
// Shipper is the Sink that sends events to the callsign server's
// POST /v2/events: a bounded queue (events are dropped and counted when it
// is full), batches by count, bytes and time, compresses them (snappy by
// default, gzip or none: ShipperOptions.Compression), retries with
// exponential backoff and full jitter on 5xx and network errors, honours
// 429 Retry-After, refreshes its token once on 401. It authenticates with a
// client.TokenSource: a client.ServerTokenSource (the app's secret token;
// may send verified and API-asserted user ids) on servers, a
// client.UpgradeSource (the public token; client-asserted ids only)
// elsewhere. With ShipperOptions.SpoolDir, batches the server cannot take
// are kept on disk (bounded in bytes) and replayed, oldest first, when it is
// back or after a restart.
//
// # Spool
//
// The spool is a directory of segment files, one per batch the server
// could not take, named by a sequence number (20 decimal digits and
// ".seg"), so that name order is write order. A segment is:
//
//	offset  size  content
//	0       8     magic: "CSSPOOL1" (gzip payload), "CSSPOOLS" (snappy)
//	              or "CSSPOOLI" (uncompressed)
//	8       4     number of events, big-endian uint32 (1 to callsign.MaxEventsPerBatch)
//	12      4     payload length, big-endian uint32 (the rest of the file)
//	16      4     CRC-32C (Castagnoli) of the payload, big-endian
//	20      ...   payload: the ingest body {"events": [...]}, compressed
//	              as the magic says, exactly as it is POSTed
//
// A segment is written to "<seq>.tmp", fsynced, renamed to "<seq>.seg" and
// the directory fsynced: a crash leaves no segment or a whole one (stray
// .tmp files are removed when the spool is opened). A segment is deleted
// only after the server answered its batch for good (200, or a 400 or 413
// that says it never will take it); the server drops events it already
// has, so a segment replayed twice after a crash is not counted twice.
// Segments that do not decode are deleted and counted
// (Stats.CorruptSegments). Beyond ShipperOptions.SpoolMaxBytes the oldest
// segments are deleted and their events counted (Stats.DroppedSpoolFull).
//
// This package imports no database driver.
package capture
