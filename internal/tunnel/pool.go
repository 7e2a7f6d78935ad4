package tunnel

import "sync"

// Buffers come in two sizes: small ones for the short DATA frames of
// interactive traffic and large ones (the largest frame we read or write) for
// bulk transfer. A stream holds a buffer only while data is in it.
const smallBufSize = 4 << 10

// frameHeaderLen is the size of an HTTP/2 frame header; send buffers keep
// this much room in front of the data.
const frameHeaderLen = 9

var smallBufs = sync.Pool{New: func() any { b := make([]byte, smallBufSize); return &b }}

// bufPool hands out buffers of one large size.
type bufPool struct {
	size int
	p    sync.Pool
}

func newBufPool(size int) *bufPool {
	bp := &bufPool{size: size}
	bp.p.New = func() any { b := make([]byte, size); return &b }
	return bp
}

var (
	largePoolsMu sync.Mutex
	largePools   = map[int]*bufPool{} // guarded by largePoolsMu; one pool per frame size in use
)

func largePool(size int) *bufPool {
	largePoolsMu.Lock()
	defer largePoolsMu.Unlock()
	p := largePools[size]
	if p == nil {
		p = newBufPool(size)
		largePools[size] = p
	}
	return p
}

// getBuf returns a buffer of at least n bytes (n ≤ large.size) and the
// pool it must go back to.
func getBuf(n int, large *bufPool) *[]byte {
	if n <= smallBufSize {
		return smallBufs.Get().(*[]byte)
	}
	return large.p.Get().(*[]byte)
}

func putBuf(b *[]byte, large *bufPool) {
	switch cap(*b) {
	case smallBufSize:
		*b = (*b)[:smallBufSize]
		smallBufs.Put(b)
	case large.size:
		*b = (*b)[:large.size]
		large.p.Put(b)
	}
}
