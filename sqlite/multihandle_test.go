package sqlite_test

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/sqlite"
)

// A randomized test against a model: one handle A appends batches (new
// events, resent ones, copies within a batch, times far in the past), runs
// retention, and is closed and opened again at random, as after a restart;
// a second handle B on the same directory is opened now and then, as a CLI
// command would be, and aggregates (a metrics query) or runs retention. The
// model: every event is counted once, in the rollups for good; retention
// deletes raw events, whose keys are then forgotten. It checks every
// append's accepted count and the counts the rollups give.
func TestMultiHandleModel(t *testing.T) {
	for _, bRetention := range []bool{false, true} {
		for seed := range 3 {
			t.Run(fmt.Sprintf("b-retention=%v/seed=%d", bRetention, seed), func(t *testing.T) {
				runMultiHandle(t, uint64(seed), bRetention)
			})
		}
	}
}

type modelKey struct {
	app string
	t   int64
	id  string
}

var modelBase = time.Date(2025, 3, 3, 12, 0, 0, 0, time.UTC)

func modelEvent(rng *rand.Rand, apps []string, span time.Duration, old bool) *callsign.Event {
	at := modelBase.Add(time.Duration(rng.Int64N(int64(span))))
	if rng.IntN(3) == 0 {
		at = modelBase.Add(time.Duration(rng.IntN(50)) * time.Second) // many in the same microsecond
	}
	if old {
		at = at.Add(-time.Duration(rng.IntN(48)) * time.Hour)
	}
	e := &callsign.Event{
		ID:      "e" + strconv.Itoa(rng.IntN(40)),
		AppID:   apps[rng.IntN(len(apps))],
		Time:    at,
		Method:  "GET",
		Route:   []string{"GET /a", "GET /b", "POST /c", ""}[rng.IntN(4)],
		Status:  []int{200, 201, 401, 404, 500}[rng.IntN(5)],
		Latency: time.Duration(rng.IntN(1e6)) * time.Microsecond,
	}
	if rng.IntN(3) > 0 {
		e.UserID = "u" + strconv.Itoa(rng.IntN(5))
	}
	if rng.IntN(4) == 0 {
		e.Weight = 2
	}
	return e
}

func modelCount(t *testing.T, db *sqlite.DB, app string) float64 {
	t.Helper()
	r, err := db.Metrics(t.Context(), callsign.MetricsQuery{AppID: app, From: modelBase.Add(-72 * time.Hour), To: modelBase.Add(72 * time.Hour), GroupBy: callsign.GroupRoute})
	if err != nil {
		t.Fatal(err)
	}
	var c float64
	for _, g := range r.Groups {
		c += g.Count
	}
	return c
}

func runMultiHandle(t *testing.T, seed uint64, bRetention bool) {
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(seed, 7))
	dir := t.TempDir()
	a := openDB(t, dir)
	apps := []string{"A", "B"}
	model := map[modelKey]*callsign.Event{} // the raw events stored
	weight := map[string]float64{}          // per app, of every event accepted
	retain := func(db *sqlite.DB, who string, op int) {
		app := apps[rng.IntN(2)]
		cut := modelBase.Add(time.Duration(rng.Int64N(int64(3*time.Hour))) - 24*time.Hour*time.Duration(rng.IntN(2)))
		want := 0
		for k, e := range model {
			if k.app == app && e.Time.Before(cut) {
				delete(model, k)
				want++
			}
		}
		if n, err := db.DeleteEventsBefore(ctx, app, cut, time.Time{}); err != nil || int(n) != want {
			t.Fatalf("op %d: %s deleted %d, %v; want %d", op, who, n, err, want)
		}
	}
	checkCounts := func(db *sqlite.DB, who string, op int) {
		for _, app := range apps {
			if c := modelCount(t, db, app); c != weight[app] {
				t.Fatalf("op %d: %s: app %s count %v, want %v", op, who, app, c, weight[app])
			}
		}
	}
	for op := range 60 {
		switch p := rng.IntN(20); {
		case p < 11:
			span := time.Duration(1+rng.IntN(120)) * time.Minute
			old := rng.IntN(4) == 0
			var batch []*callsign.Event
			for range 1 + rng.IntN(300) {
				batch = append(batch, modelEvent(rng, apps, span, old))
			}
			for _, e := range model { // resent
				if rng.IntN(10) == 0 {
					c := *e
					batch = append(batch, &c)
				}
			}
			rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
			want := 0
			for _, e := range batch {
				k := modelKey{e.AppID, e.Time.UnixMicro(), e.ID}
				if _, ok := model[k]; !ok {
					model[k] = e
					weight[e.AppID] += cmp.Or(e.Weight, 1)
					want++
				}
			}
			res, err := a.AppendEvents(ctx, batch)
			if err != nil || res.Accepted != want {
				t.Fatalf("op %d: append %+v, %v; want %d accepted of %d", op, res, err, want, len(batch))
			}
		case p < 13:
			retain(a, "A", op)
		case p < 16:
			b, err := sqlite.Open(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			if bRetention && rng.IntN(2) == 0 {
				retain(b, "B", op)
			} else {
				checkCounts(b, "B", op)
			}
			b.Close()
		case p < 17:
			a.Close()
			a = openDB(t, dir)
		case p < 18:
			time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond) // a filter build may finish
		}
		if rng.IntN(4) == 0 {
			checkCounts(a, "A", op)
		}
	}
	checkCounts(a, "A", 60)
}
