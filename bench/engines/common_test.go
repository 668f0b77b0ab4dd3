package enginebench

import (
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// rootDir holds every database file of one test-binary run (file-backed, on disk).
var rootDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "enginebench-")
	if err != nil {
		panic(err)
	}
	rootDir = d
	code := m.Run()
	closeCached()
	os.RemoveAll(d)
	os.Exit(code)
}

var dirSeq int

func newDir(tb testing.TB, name string) string {
	dirSeq++
	d := filepath.Join(rootDir, fmt.Sprintf("%s-%d", name, dirSeq))
	if err := os.MkdirAll(d, 0o755); err != nil {
		tb.Fatal(err)
	}
	return d
}

// ---- workload A/B data: secrets ----

const nSecrets = 10_000

type secret struct {
	id, appID string
	hash      []byte
	revokedAt sql.NullInt64
}

func makeSecret(i int) secret {
	id := "sec_" + fmt.Sprintf("%016x", uint64(i)*0x9E3779B97F4A7C15)
	h := sha256.Sum256([]byte(id))
	s := secret{id: id, appID: "app_" + strconv.Itoa(i%20), hash: h[:]}
	if i%10 == 0 {
		s.revokedAt = sql.NullInt64{Int64: 1_700_000_000 + int64(i), Valid: true}
	}
	return s
}

var secretsSeed = func() []secret {
	s := make([]secret, nSecrets)
	for i := range s {
		s[i] = makeSecret(i)
	}
	return s
}()

// lookup order: a fixed pseudo-random permutation of the seeded hashes.
var lookupOrder = func() [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	p := r.Perm(nSecrets)
	out := make([][]byte, nSecrets)
	for i, j := range p {
		out[i] = secretsSeed[j].hash
	}
	return out
}()

// ---- workload C/D data: analytics events ----

type event struct {
	id, appID            string
	ts                   int64
	method, route        string
	status               int64
	latencyUS            int64
	userID, clientUserID string
	bytesIn, bytesOut    int64
}

const nRoutes = 50

var (
	methods = []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
	routes  = func() []string {
		r := make([]string, nRoutes)
		for i := range r {
			r[i] = fmt.Sprintf("/v1/resource%02d/{id}", i)
		}
		return r
	}()
)

// eventTemplate: 1,000 pre-generated rows; ids are made unique per insert.
var eventTemplate = func() []event {
	r := rand.New(rand.NewPCG(3, 4))
	ev := make([]event, 1000)
	for i := range ev {
		st := int64(200)
		switch x := r.IntN(100); {
		case x < 2:
			st = 500 + int64(r.IntN(4))
		case x < 6:
			st = 400 + int64(r.IntN(5))
		}
		ev[i] = event{
			appID:        "app_" + strconv.Itoa(r.IntN(20)),
			ts:           1_750_000_000_000 + int64(i),
			method:       methods[r.IntN(len(methods))],
			route:        routes[r.IntN(nRoutes)],
			status:       st,
			latencyUS:    int64(200 + r.IntN(50_000)),
			userID:       "usr_" + strconv.Itoa(r.IntN(10_000)),
			clientUserID: "cu_" + strconv.Itoa(r.IntN(50_000)),
			bytesIn:      int64(r.IntN(4096)),
			bytesOut:     int64(r.IntN(65536)),
		}
	}
	return ev
}()

// eventAt returns event number n (monotonic, time-ordered unique id).
func eventAt(n uint64) event {
	e := eventTemplate[n%1000]
	e.id = fmt.Sprintf("evt_%016x", n)
	e.ts += int64(n)
	return e
}

// ---- bbolt value encoding ----

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func readStr(b []byte) (string, []byte) {
	n, k := binary.Uvarint(b)
	b = b[k:]
	return string(b[:n]), b[n:]
}

func encodeSecret(b []byte, s secret) []byte {
	b = appendStr(b, s.id)
	b = appendStr(b, s.appID)
	if s.revokedAt.Valid {
		b = append(b, 1)
		b = binary.AppendVarint(b, s.revokedAt.Int64)
	} else {
		b = append(b, 0)
	}
	return b
}

func decodeSecret(b []byte) (id, appID string, revoked sql.NullInt64) {
	id, b = readStr(b)
	appID, b = readStr(b)
	if b[0] == 1 {
		v, _ := binary.Varint(b[1:])
		revoked = sql.NullInt64{Int64: v, Valid: true}
	}
	return
}

func encodeEvent(b []byte, e event) []byte {
	b = appendStr(b, e.appID)
	b = binary.AppendVarint(b, e.ts)
	b = appendStr(b, e.method)
	b = appendStr(b, e.route)
	b = binary.AppendVarint(b, e.status)
	b = binary.AppendVarint(b, e.latencyUS)
	b = appendStr(b, e.userID)
	b = appendStr(b, e.clientUserID)
	b = binary.AppendVarint(b, e.bytesIn)
	b = binary.AppendVarint(b, e.bytesOut)
	return b
}
