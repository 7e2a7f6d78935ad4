package iamauth

import (
	"container/heap"
	"time"
)

// cache holds verified identities keyed by the SHA-256 of their token,
// each until its token expires. When full, expired entries go first, then
// those closest to expiry. It is not safe for concurrent use: Verifier
// guards it with its mutex.
type cache struct {
	max     int
	entries map[[32]byte]*cacheEntry
	byExp   expiryHeap
}

type cacheEntry struct {
	key   [32]byte
	id    Identity
	index int // in byExp
}

func newCache(max int) *cache {
	return &cache{max: max, entries: make(map[[32]byte]*cacheEntry)}
}

func (c *cache) get(key [32]byte, now time.Time) (Identity, bool) {
	e, ok := c.entries[key]
	if !ok {
		return Identity{}, false
	}
	if !now.Before(e.id.Expires) {
		c.remove(e)
		return Identity{}, false
	}
	return e.id, true
}

func (c *cache) put(key [32]byte, id Identity, now time.Time) {
	if e, ok := c.entries[key]; ok {
		c.remove(e)
	}
	for len(c.byExp) > 0 && (!now.Before(c.byExp[0].id.Expires) || len(c.byExp) >= c.max) {
		c.remove(c.byExp[0])
	}
	e := &cacheEntry{key: key, id: id}
	c.entries[key] = e
	heap.Push(&c.byExp, e)
}

func (c *cache) remove(e *cacheEntry) {
	heap.Remove(&c.byExp, e.index)
	delete(c.entries, e.key)
}

type expiryHeap []*cacheEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].id.Expires.Before(h[j].id.Expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*cacheEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
