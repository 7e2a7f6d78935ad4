package tunnel

import "sync"

// Buffers come in size classes, each four times the one before, from 4 KiB
// up to the largest frame. A stream holds a buffer only while data is in
// it, and sizes the next one from how much data came last time: an
// interactive stream keeps to small buffers, a bulk one grows to the
// largest and so moves a megabyte per system call.
var bufClasses = []*bufPool{
	newBufPool(4 << 10),
	newBufPool(16 << 10),
	newBufPool(64 << 10),
	newBufPool(256 << 10),
	newBufPool(1 << 20),
}

// frameHeaderLen is the size of an HTTP/2 frame header; send buffers keep
// this much room in front of the data.
const frameHeaderLen = 9

// bufPool hands out buffers of one size.
type bufPool struct {
	size int
	p    sync.Pool
}

func newBufPool(size int) *bufPool {
	bp := &bufPool{size: size}
	bp.p.New = func() any { b := make([]byte, size); return &b }
	return bp
}

func (bp *bufPool) get() *[]byte { return bp.p.Get().(*[]byte) }

func (bp *bufPool) put(b *[]byte) {
	*b = (*b)[:bp.size]
	bp.p.Put(b)
}

var (
	largePoolsMu sync.Mutex
	largePools   = map[int]*bufPool{} // guarded by largePoolsMu; frame sizes in use that are no class
)

// largePool returns the pool of buffers of the given frame size.
func largePool(size int) *bufPool {
	for _, bp := range bufClasses {
		if bp.size == size {
			return bp
		}
	}
	largePoolsMu.Lock()
	defer largePoolsMu.Unlock()
	bp := largePools[size]
	if bp == nil {
		bp = newBufPool(size)
		largePools[size] = bp
	}
	return bp
}

// poolFor is the pool of the smallest class that holds n bytes, or the
// frame-size pool (n ≤ large.size).
func poolFor(n int, large *bufPool) *bufPool {
	for _, bp := range bufClasses {
		if bp.size >= large.size {
			break
		}
		if n <= bp.size {
			return bp
		}
	}
	return large
}

// getBuf returns a buffer of at least n bytes (n ≤ large.size).
func getBuf(n int, large *bufPool) *[]byte { return poolFor(n, large).get() }

// putBuf gives back a buffer from getBuf.
func putBuf(b *[]byte, large *bufPool) {
	c := cap(*b)
	if c == large.size {
		large.put(b)
		return
	}
	for _, bp := range bufClasses {
		if bp.size == c {
			bp.put(b)
			return
		}
	}
}

// nextReadSize sizes the buffer for the next read from a source after a
// read of n bytes into one of size: a read that filled it grows it to the
// next class, one a class smaller would have held shrinks it by one.
func nextReadSize(size, n int, large *bufPool) int {
	if n >= size-frameHeaderLen {
		return poolFor(min(size+1, large.size), large).size
	}
	if size > bufClasses[0].size && n <= size/4-frameHeaderLen {
		return poolFor(size/4, large).size
	}
	return size
}
