package replay

import "time"

// NewMemoryShards is NewMemory with a chosen number of shards, for the
// benchmarks that justify the default.
func NewMemoryShards(max int, now func() time.Time, shards int) *Memory {
	return newMemory(max, now, shards)
}

// MapLen returns the number of keys in m's maps, counted with every shard
// locked at once (a consistent snapshot).
func MapLen(m *Memory) int {
	for i := range m.shards {
		m.shards[i].mu.Lock()
	}
	n := 0
	for i := range m.shards {
		n += len(m.shards[i].m)
		if len(m.shards[i].h) != len(m.shards[i].m) {
			panic("replay: heap and map out of step")
		}
	}
	for i := range m.shards {
		m.shards[i].mu.Unlock()
	}
	return n
}
