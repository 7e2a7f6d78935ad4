package e2e

import (
	"bufio"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fluidity/internal/proctest"
)

// payload returns n deterministic pseudo-random bytes for seed, generated
// as they are read, never held in memory.
func payload(seed uint64, n int64) io.Reader {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	return io.LimitReader(rand.NewChaCha8(key), n)
}

// payloadSum is the hex sha256 of payload(seed, n).
func payloadSum(seed uint64, n int64) string {
	h := sha256.New()
	if _, err := io.Copy(h, payload(seed, n)); err != nil {
		panic(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hashWriter hashes and counts what is written to it.
type hashWriter struct {
	mu sync.Mutex
	h  hash.Hash // guarded by mu
	n  atomic.Int64
}

func newHashWriter() *hashWriter { return &hashWriter{h: sha256.New()} }

func (w *hashWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.h.Write(p)
	w.n.Add(int64(len(p)))
	return len(p), nil
}

func (w *hashWriter) sum() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return hex.EncodeToString(w.h.Sum(nil))
}

// newOrigin starts the plain HTTP origin:
//
//	/hello                      "hello\n"
//	/stream?n=N&seed=S&delay=D  N bytes of payload(S, N), pausing D after each 64 KiB
//	/upload                     any method; answers "SHA256 COUNT\n" of the body
//	/ws                         a WebSocket echo server
//
// It counts its open connections, so tests can see what the exit leaves open.
func newOrigin(t *testing.T) *origin {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello\n")
	})
	mux.HandleFunc("/stream", serveStream)
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		hw := newHashWriter()
		if _, err := io.Copy(hw, r.Body); err != nil {
			http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%s %d\n", hw.sum(), hw.n.Load())
	})
	mux.HandleFunc("/ws", serveWebSocketEcho)
	o := &origin{Server: httptest.NewUnstartedServer(mux)}
	o.Config.ConnState = func(c net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			o.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			o.open.Add(-1)
		}
	}
	o.Start()
	t.Cleanup(o.Close)
	return o
}

// origin is the plain HTTP origin.
type origin struct {
	*httptest.Server
	open atomic.Int64 // connections accepted and not yet closed or hijacked
}

func serveStream(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, err := strconv.ParseInt(q.Get("n"), 10, 64)
	if err != nil || n < 0 {
		http.Error(w, "n: want a byte count", http.StatusBadRequest)
		return
	}
	seed, _ := strconv.ParseUint(q.Get("seed"), 10, 64)
	var delay time.Duration
	if s := q.Get("delay"); s != "" {
		if delay, err = time.ParseDuration(s); err != nil {
			http.Error(w, "delay: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	src := payload(seed, n)
	buf := make([]byte, 64<<10)
	for {
		m, rerr := src.Read(buf)
		if m > 0 {
			if _, err := w.Write(buf[:m]); err != nil {
				return
			}
			if delay > 0 {
				w.(http.Flusher).Flush()
				select {
				case <-time.After(delay):
				case <-r.Context().Done():
					return
				}
			}
		}
		if rerr != nil {
			return
		}
	}
}

// newTLSOrigin starts an HTTPS origin answering "hello tls\n" and writes its
// certificate to a file for curl's --cacert.
func newTLSOrigin(t *testing.T) (srv *httptest.Server, caFile string) {
	t.Helper()
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello tls\n")
	}))
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "origin.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	return srv, caFile
}

// websocketGUID is the key suffix of RFC 6455 section 1.3.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func websocketAccept(key string) string {
	h := sha1.Sum([]byte(key + websocketGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// serveWebSocketEcho upgrades to WebSocket and echoes every data frame back
// unmasked, until the client sends a close frame, which it echoes too.
func serveWebSocketEcho(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if r.Header.Get("Upgrade") != "websocket" || key == "" {
		http.Error(w, "want a WebSocket upgrade", http.StatusBadRequest)
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", websocketAccept(key))
	if rw.Flush() != nil {
		return
	}
	for {
		f, err := readFrame(rw.Reader)
		if err != nil {
			return
		}
		if !f.masked {
			return // RFC 6455 5.1: a server closes on an unmasked client frame
		}
		if err := writeFrame(rw.Writer, f.opcode, f.payload, false); err != nil || rw.Flush() != nil {
			return
		}
		if f.opcode == opClose {
			return
		}
	}
}

// WebSocket opcodes used here.
const (
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
)

type frame struct {
	opcode  byte
	masked  bool
	payload []byte
}

// readFrame reads one unfragmented WebSocket frame and unmasks it.
func readFrame(r *bufio.Reader) (frame, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return frame{}, err
	}
	if hdr[0]&0x80 == 0 {
		return frame{}, errors.New("fragmented frames are not supported")
	}
	f := frame{opcode: hdr[0] & 0x0f, masked: hdr[1]&0x80 != 0}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return frame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return frame{}, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 16<<20 {
		return frame{}, fmt.Errorf("frame of %d bytes is too large", n)
	}
	var mask [4]byte
	if f.masked {
		if _, err := io.ReadFull(r, mask[:]); err != nil {
			return frame{}, err
		}
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return frame{}, err
	}
	if f.masked {
		for i := range f.payload {
			f.payload[i] ^= mask[i%4]
		}
	}
	return f, nil
}

// writeFrame writes one final frame, masked with a random key if mask is set
// (as clients must).
func writeFrame(w io.Writer, opcode byte, payload []byte, mask bool) error {
	hdr := []byte{0x80 | opcode}
	maskBit := byte(0)
	if mask {
		maskBit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, maskBit|byte(n))
	case n <= 0xffff:
		hdr = append(hdr, maskBit|126)
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr = append(hdr, maskBit|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	body := payload
	if mask {
		var key [4]byte
		binary.LittleEndian.PutUint32(key[:], rand.Uint32())
		hdr = append(hdr, key[:]...)
		body = make([]byte, len(payload))
		for i := range payload {
			body[i] = payload[i] ^ key[i%4]
		}
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}

// greeting is what the hello-and-close target sends.
const greeting = "hello from the target\n"

// newGreeter starts a target that sends greeting and closes at once.
func newGreeter(t *testing.T) *proctest.Target {
	return proctest.NewTarget(t, func(c net.Conn) { io.WriteString(c, greeting) })
}

// newEchoHash starts a target that reads until the client half-closes and
// then answers "SHA256 COUNT\n" of what it read.
func newEchoHash(t *testing.T) *proctest.Target {
	return proctest.NewTarget(t, func(c net.Conn) {
		hw := newHashWriter()
		if _, err := io.Copy(hw, c); err != nil {
			return
		}
		fmt.Fprintf(c, "%s %d\n", hw.sum(), hw.n.Load())
	})
}

// newBlaster starts a target that writes payload(seed, n) as fast as the
// reader lets it, then closes. written counts the bytes accepted by the
// kernel so far.
func newBlaster(t *testing.T, seed uint64, n int64, written *atomic.Int64) *proctest.Target {
	return proctest.NewTarget(t, func(c net.Conn) {
		src := payload(seed, n)
		buf := make([]byte, 32<<10)
		for {
			m, rerr := src.Read(buf)
			if m > 0 {
				if _, err := c.Write(buf[:m]); err != nil {
					return
				}
				written.Add(int64(m))
			}
			if rerr != nil {
				return
			}
		}
	})
}
