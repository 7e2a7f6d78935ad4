// Package sockio is the one seam between fluidity's data path and the
// operating system's sockets: reading from a TCP source that may be idle
// without holding a buffer, writing to a TCP destination without waiting,
// writing with raw system calls, and peeking at a connection's first byte.
//
// On Linux these are read(2), write(2) and recvfrom(2) with MSG_PEEK on
// the non-blocking sockets the Go runtime already keeps, made as raw
// system calls and waiting for readiness through the runtime's poller
// (syscall.RawConn): the scheduler is not told of calls that never wait,
// so its monitor thread need not wake every 20 µs to hand the processor on.
//
// Everywhere else, and on Linux when built with the tag fluidity_portable,
// the portable default is used: every function reports that it has no fast
// path (nil, or false), and callers fall back to plain net.Conn reads and
// writes. CI runs the whole test suite a second time with that tag: the race
// detector cannot see memory written by a raw system call into a pooled
// buffer, so the portable run is where -race checks the code around them.
//
//	go test -race -tags fluidity_portable ./...
package sockio

// IdleRead reads once from a source that may be idle, into a buffer taken
// from get only when there is something to read: it returns the buffer and
// the count read, or an error (io.EOF at the source's end). When the source
// has nothing, the buffer goes back (put) before the goroutine waits, so an
// idle source pins no buffer. If mayPark is set and reports false when the
// source has nothing, IdleRead returns (nil, 0, nil) instead of waiting;
// mayPark runs inside the poller's read, where nothing may block, because
// closing the socket waits for that read to end.
type IdleRead func(get func() *[]byte, put func(*[]byte), mayPark func() bool) (*[]byte, int, error)

// Sink is a TCP destination written to without ever waiting (see SinkOf).
type Sink interface {
	// TryWrite writes as much of p as the socket takes now and returns the
	// count, with an error only for a failure other than a full buffer.
	TryWrite(p []byte) (int, error)
}

// Fast reports whether this build has the OS-specific fast paths.
const Fast = fast
