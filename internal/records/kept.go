package records

import "sync"

// kept holds reads derived from the database until the next committed write (db.Generation):
// a value read with the generation current before its query is returned while that generation
// is still current. At most max entries are held (all are dropped past it).
type kept[K comparable, V any] struct {
	mu  sync.Mutex
	max int
	m   map[K]keptEntry[V]
}

type keptEntry[V any] struct {
	gen uint64
	v   V
}

func newKept[K comparable, V any](max int) *kept[K, V] {
	return &kept[K, V]{max: max, m: map[K]keptEntry[V]{}}
}

// get returns the value kept for k at generation gen, or reads it (read's value is kept when it
// succeeds). Values are shared: callers must not change them.
func (c *kept[K, V]) get(gen uint64, k K, read func() (V, error)) (V, error) {
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	if ok && e.gen == gen {
		return e.v, nil
	}
	v, err := read()
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[k] = keptEntry[V]{gen: gen, v: v}
	c.mu.Unlock()
	return v, nil
}
