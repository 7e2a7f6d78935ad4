// Package tunnel carries many TCP connections over one HTTP/2 connection.
//
// Each carried connection is one standard HTTP/2 CONNECT stream (RFC 9113
// §8.5): the client sends HEADERS with :method CONNECT and :authority
// host:port, the server answers :status 200 and the stream becomes a byte
// pipe in both directions. END_STREAM on either side is a half-close, so a
// carried connection behaves like TCP with CloseWrite. Because the framing is
// the standard one, any HTTP/2 client can use a tunnel server as a proxy.
//
// The package implements the HTTP/2 connection itself, on top of the frame
// codec and HPACK of golang.org/x/net/http2, because a tunnel needs what a
// general HTTP library does not give: true half-close in both directions,
// no buffer held by an idle stream, DATA payloads read straight into the
// buffers they are delivered from, and few system calls and thread
// hand-offs per frame.
//
// # Flow control
//
// Each stream has its own receive window (Config.StreamWindow), so a stalled
// reader on one stream never slows another. Connection-level credit is given
// back as soon as data is received into a stream's buffer: the stream windows
// and the stream limit bound memory, and one paused reader can never use up
// the connection's window.
//
// # Writing
//
// Writing is a role held by one goroutine at a time. A stream goroutine
// that finds the connection quiet (no one writing, nothing queued) writes
// its own frame; otherwise it queues the frame, and the write loop writes
// everything queued in one batch. The read loop never takes the role: it
// queues its control frames, and its only writes are non-blocking writes of
// arriving data to an idle relay's TCP destination (Stream.WriteTo), so it
// never waits on a write. Before it writes a small batch, the writer yields
// once to the goroutines ready to run, and adds the frames they queue
// meanwhile to the same write.
//
// # Sizes
//
// DATA frames go up to a megabyte. Senders size their read buffers from how
// full the last read came and read no more than they may send; receivers
// read a frame in pieces, each what has arrived, and deliver each piece at
// once, so a large frame never delays data. Buffers come from pools and
// are held only while they hold data.
//
// # Goroutines
//
// A connection runs a read loop, a write loop and, when configured, a ping
// loop and an idle-timeout sweeper; Close (or the death of the connection)
// ends them and waits for them. Streams start no goroutines. Server handlers
// run one goroutine per stream, which Serve waits for before it returns.
package tunnel
