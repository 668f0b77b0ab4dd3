package httpapi

import (
	"context"
	"time"
)

// EnforceRetention deletes, for every app (revoked ones included), the raw
// events older than its event retention and the rollups older than its
// rollup retention, as of the server's clock. It goes on past an app that
// fails and returns the number of raw events deleted and the first error.
func (s *Server) EnforceRetention(ctx context.Context) (int64, error) {
	if s.events == nil {
		return 0, errNoEvents()
	}
	apps, err := s.store.Apps(ctx)
	if err != nil {
		return 0, err
	}
	now := s.now()
	var total int64
	var first error
	for _, a := range apps {
		events, rollups := a.Retentions()
		n, err := s.events.DeleteEventsBefore(ctx, a.ID, now.Add(-events), now.Add(-rollups))
		if err != nil {
			s.log.Error("retention failed", "app_id", a.ID, "error", err.Error())
			if first == nil {
				first = err
			}
			continue
		}
		total += n
		if n > 0 {
			s.log.Info("retention deleted events", "app_id", a.ID, "events", n, "before", now.Add(-events).UTC().Format(time.RFC3339))
		}
	}
	return total, first
}

// RunRetention runs EnforceRetention after first and then every every,
// until ctx is done. It returns when ctx is done and the run in progress,
// if any, has finished (a run in progress sees ctx cancelled and stops).
func (s *Server) RunRetention(ctx context.Context, first, every time.Duration) {
	if s.events == nil || every <= 0 {
		return
	}
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.EnforceRetention(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("retention run failed", "error", err.Error())
		}
		t.Reset(every)
	}
}
