package httpproxy_test

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"fluidity/internal/httpproxy"
)

const (
	largeSize  = 32 << 20 // bytes in a large body
	firstChunk = 64 << 10 // bytes the far end must see before the near end sends the rest
)

// payload returns size deterministic pseudo-random bytes, generated as they
// are read.
func payload(seed uint64, size int64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	return io.LimitReader(rand.NewChaCha8(s), size)
}

func TestForwardStreamsLargeResponses(t *testing.T) {
	gotFirst := make(chan struct{}) // closed by the client when it has the first bytes
	sent := make(chan []byte, 1)    // the hash of what the origin sent
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		src := io.TeeReader(payload(1, largeSize), h)
		w.Header().Set("Content-Type", "application/octet-stream")
		if _, err := io.CopyN(w, src, firstChunk); err != nil {
			t.Errorf("origin: %v", err)
			return
		}
		http.NewResponseController(w).Flush()
		select {
		case <-gotFirst:
		case <-time.After(waitTimeout):
			t.Error("the client never got the first bytes while the origin held back the rest: the proxy buffers responses")
			return
		}
		if _, err := io.Copy(w, src); err != nil {
			t.Errorf("origin: %v", err)
		}
		sent <- h.Sum(nil)
	}))
	t.Cleanup(origin.Close)
	p := startProxy(t, nil)

	res, err := p.client(t).Get(origin.URL + "/large")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, res.Body, firstChunk); err != nil {
		t.Fatal(err)
	}
	close(gotFirst)
	n, err := io.Copy(h, res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if n+firstChunk != largeSize {
		t.Fatalf("got %d bytes, want %d", n+firstChunk, largeSize)
	}
	if want := <-sent; !bytes.Equal(h.Sum(nil), want) {
		t.Fatal("the body the client got differs from the one the origin sent")
	}
	rec := p.logs.wait(t, 1)[0]
	checkLog(t, rec, map[string]any{"msg": "request", "status": int64(200), "down": int64(largeSize), "result": "ok"})
}

func TestForwardPassesOnEachPieceOfAKnownLengthBody(t *testing.T) {
	// A response with a Content-Length whose origin sends a few bytes and
	// waits: the client gets them at once, not when a buffer fills.
	gotFirst := make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "first")
		http.NewResponseController(w).Flush()
		select {
		case <-gotFirst:
		case <-time.After(waitTimeout):
			t.Error("the client never got the first 5 bytes of a 10-byte body while the origin held back the rest")
			return
		}
		io.WriteString(w, " last")
	}))
	t.Cleanup(origin.Close)
	p := startProxy(t, nil)
	res, err := p.client(t).Get(origin.URL + "/trickle")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	first := make([]byte, 5)
	if _, err := io.ReadFull(res.Body, first); err != nil {
		t.Fatal(err)
	}
	close(gotFirst)
	rest, err := io.ReadAll(res.Body)
	if err != nil || string(first)+string(rest) != "first last" {
		t.Fatalf("body %q%q, %v", first, rest, err)
	}
}

// gatedReader produces a body lazily and stops after before bytes until gate
// is closed.
type gatedReader struct {
	r      io.Reader
	gate   <-chan struct{}
	before int64
	n      int64
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if g.n == g.before {
		select {
		case <-g.gate:
		case <-time.After(waitTimeout):
			return 0, errors.New("the origin never got the first bytes while the client held back the rest: the proxy buffers request bodies")
		}
	}
	if g.n < g.before && int64(len(p)) > g.before-g.n {
		p = p[:g.before-g.n]
	}
	n, err := g.r.Read(p)
	g.n += int64(n)
	return n, err
}

func TestForwardStreamsLargeRequestBodies(t *testing.T) {
	tests := []struct {
		name          string
		contentLength bool
	}{
		{"a 32 MB chunked body reaches the origin before the client has sent it all", false},
		{"a 32 MB body with a Content-Length reaches the origin before the client has sent it all", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotFirst := make(chan struct{}) // closed by the origin when it has the first bytes
			origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.contentLength && r.ContentLength != largeSize {
					t.Errorf("origin got Content-Length %d, want %d", r.ContentLength, largeSize)
				}
				if !tt.contentLength && (len(r.TransferEncoding) == 0 || r.TransferEncoding[0] != "chunked") {
					t.Errorf("origin got Transfer-Encoding %q, want chunked", r.TransferEncoding)
				}
				h := sha256.New()
				if _, err := io.CopyN(h, r.Body, firstChunk); err != nil {
					t.Errorf("origin: %v", err)
					return
				}
				close(gotFirst)
				n, err := io.Copy(h, r.Body)
				if err != nil {
					t.Errorf("origin: %v", err)
					return
				}
				fmt.Fprintf(w, "%d %x", n+firstChunk, h.Sum(nil))
			}))
			t.Cleanup(origin.Close)
			p := startProxy(t, nil)

			h := sha256.New()
			body := &gatedReader{r: io.TeeReader(payload(2, largeSize), h), gate: gotFirst, before: firstChunk}
			req, err := http.NewRequest(http.MethodPost, origin.URL+"/upload", body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.contentLength {
				req.ContentLength = largeSize
			}
			res, err := p.client(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got := readBody(t, res)
			if want := fmt.Sprintf("%d %x", largeSize, h.Sum(nil)); got != want {
				t.Fatalf("origin got %q, want %q", got, want)
			}
			rec := p.logs.wait(t, 1)[0]
			checkLog(t, rec, map[string]any{"msg": "request", "method": "POST", "status": int64(200), "up": int64(largeSize), "result": "ok"})
		})
	}
}

func TestForwardPassesTrailers(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("origin: %v", err)
		}
		w.Header().Set("Trailer", "X-Checksum")
		w.Header().Set("X-Request-Trailer", r.Trailer.Get("X-Request-Sum"))
		w.Header().Set("X-Request-Body", string(body))
		for i := range 3 {
			fmt.Fprintf(w, "chunk %d\n", i)
			http.NewResponseController(w).Flush()
		}
		w.Header().Set("X-Checksum", "abc123")
	}))
	t.Cleanup(origin.Close)
	p := startProxy(t, nil)

	req, err := http.NewRequest(http.MethodPost, origin.URL, io.MultiReader(strings.NewReader("request body")))
	if err != nil {
		t.Fatal(err)
	}
	req.Trailer = http.Header{"X-Request-Sum": nil}
	// Trailer values are set once the body has been read, as real
	// clients do.
	req.Body = &trailerSetter{r: req.Body, set: func() { req.Trailer.Set("X-Request-Sum", "req456") }}
	res, err := p.client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, res)

	t.Run("a chunked response keeps its trailers", func(t *testing.T) {
		if body != "chunk 0\nchunk 1\nchunk 2\n" {
			t.Errorf("body %q", body)
		}
		if res.ContentLength != -1 || len(res.TransferEncoding) == 0 {
			t.Errorf("response is not chunked: Content-Length %d, Transfer-Encoding %q", res.ContentLength, res.TransferEncoding)
		}
		if got := res.Trailer.Get("X-Checksum"); got != "abc123" {
			t.Errorf("trailer X-Checksum = %q, want abc123 (trailers %v)", got, res.Trailer)
		}
	})
	t.Run("a chunked request keeps its trailers", func(t *testing.T) {
		if got := res.Header.Get("X-Request-Body"); got != "request body" {
			t.Errorf("origin got body %q", got)
		}
		if got := res.Header.Get("X-Request-Trailer"); got != "req456" {
			t.Errorf("origin got request trailer %q, want req456", got)
		}
	})
}

// trailerSetter calls set when r reaches EOF.
type trailerSetter struct {
	r   io.ReadCloser
	set func()
}

func (s *trailerSetter) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF {
		s.set()
	}
	return n, err
}

func (s *trailerSetter) Close() error { return s.r.Close() }

func TestForwardPassesRedirectsWithoutFollowing(t *testing.T) {
	var mu sync.Mutex
	var paths []string // guarded by mu
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		if r.URL.Path == "/old" {
			http.Redirect(w, r, "/new", http.StatusFound)
			return
		}
		io.WriteString(w, "new page")
	}))
	t.Cleanup(origin.Close)
	p := startProxy(t, nil)

	res, err := p.client(t).Get(origin.URL + "/old")
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, res)
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/new" {
		t.Fatalf("got %d Location %q, want 302 to /new", res.StatusCode, res.Header.Get("Location"))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 1 || paths[0] != "/old" {
		t.Fatalf("origin saw %q, want only /old: the proxy followed the redirect", paths)
	}
}

func TestForwardStripsHopByHopAndProxyHeaders(t *testing.T) {
	got := make(chan *http.Request, 1)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r
	}))
	t.Cleanup(origin.Close)
	p := startProxy(t, nil)

	host := strings.TrimPrefix(origin.URL, "http://")
	res, _, _ := p.rawRoundTrip(t, http.MethodGet, "GET "+origin.URL+"/headers?q=1 HTTP/1.1\r\n"+
		"Host: "+host+"\r\n"+
		"Connection: keep-alive, X-Hop\r\n"+
		"X-Hop: named by Connection\r\n"+
		"Keep-Alive: timeout=5\r\n"+
		"TE: trailers, deflate\r\n"+
		"Upgrade: h2c\r\n"+
		"Proxy-Connection: keep-alive\r\n"+
		"Proxy-Authorization: Basic dXNlcjpwYXNz\r\n"+
		"Proxy-Foo: bar\r\n"+
		"proxy-lowercase: baz\r\n"+
		"X-End-To-End: kept\r\n"+
		"User-Agent: test-agent/1.0\r\n"+
		"Cookie: a=b\r\n"+
		"\r\n")
	readBody(t, res)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	r := <-got

	for _, name := range []string{
		"Connection", "X-Hop", "Keep-Alive", "Upgrade",
		"Proxy-Connection", "Proxy-Authorization", "Proxy-Foo", "Proxy-Lowercase",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "Via",
	} {
		t.Run(name+" does not reach the origin", func(t *testing.T) {
			if v, ok := r.Header[name]; ok {
				t.Errorf("origin got %s: %q", name, v)
			}
		})
	}
	for name, want := range map[string]string{
		"Te":           "trailers",
		"X-End-To-End": "kept",
		"User-Agent":   "test-agent/1.0",
		"Cookie":       "a=b",
	} {
		t.Run(name+" reaches the origin", func(t *testing.T) {
			if got := r.Header.Get(name); got != want {
				t.Errorf("origin got %s: %q, want %q", name, got, want)
			}
		})
	}
	t.Run("the client's Host and path reach the origin", func(t *testing.T) {
		if r.Host != host || r.RequestURI != "/headers?q=1" {
			t.Errorf("origin got Host %q, request URI %q", r.Host, r.RequestURI)
		}
	})
}

func TestForwardHTTPSURLs(t *testing.T) {
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "secure %s", r.URL.Path)
	}))
	t.Cleanup(origin.Close)
	roots := x509.NewCertPool()
	roots.AddCert(origin.Certificate())

	p := startProxy(t, nil, func(h *httpproxy.Handler) {
		h.TLSClientConfig = &tls.Config{RootCAs: roots}
	})
	host := strings.TrimPrefix(origin.URL, "https://")
	res, _, _ := p.rawRoundTrip(t, http.MethodGet, "GET "+origin.URL+"/page HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
	if body := readBody(t, res); res.StatusCode != http.StatusOK || body != "secure /page" {
		t.Fatalf("got %d %q, want 200 \"secure /page\"", res.StatusCode, body)
	}
	rec := p.logs.wait(t, 1)[0]
	checkLog(t, rec, map[string]any{"msg": "request", "target": host, "status": int64(200), "result": "ok"})
}

// websocketOrigin is a raw TCP origin that accepts one WebSocket handshake
// and then echoes bytes until the client half-closes.
func websocketOrigin(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}) // closed when the origin goroutine returns
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitTimeout))
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Errorf("origin: %v", err)
			return
		}
		if !strings.EqualFold(req.Header.Get("Upgrade"), "websocket") ||
			!strings.Contains(strings.ToLower(req.Header.Get("Connection")), "upgrade") {
			fmt.Fprint(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
			t.Errorf("origin got Upgrade %q, Connection %q", req.Header.Get("Upgrade"), req.Header.Get("Connection"))
			return
		}
		fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
			websocketAccept(req.Header.Get("Sec-WebSocket-Key")))
		io.Copy(c, br)
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

// websocketAccept computes Sec-WebSocket-Accept (RFC 6455, section 4.2.2).
func websocketAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

func TestForwardUpgradesToWebSocket(t *testing.T) {
	origin := websocketOrigin(t)
	p := startProxy(t, nil)
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	res, c, br := p.rawRoundTrip(t, http.MethodGet, "GET http://"+origin+"/chat HTTP/1.1\r\n"+
		"Host: "+origin+"\r\n"+
		"Connection: Upgrade\r\n"+
		"Upgrade: websocket\r\n"+
		"Sec-WebSocket-Key: "+key+"\r\n"+
		"Sec-WebSocket-Version: 13\r\n"+
		"\r\n")
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", res.StatusCode)
	}
	if got, want := res.Header.Get("Sec-WebSocket-Accept"), websocketAccept(key); got != want {
		t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, want)
	}
	// A masked text frame "Hello" (RFC 6455, section 5.7), echoed as bytes.
	frame, _ := hex.DecodeString("818537fa213d7f9f4d5158")
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	echo := make([]byte, len(frame))
	if _, err := io.ReadFull(br, echo); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if !bytes.Equal(echo, frame) {
		t.Fatalf("echo %x, want %x", echo, frame)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("after half-close: %q, %v; want a clean EOF", rest, err)
	}
	rec := p.logs.wait(t, 1)[0]
	checkLog(t, rec, map[string]any{
		"msg": "request", "target": origin, "status": int64(101),
		"up": int64(len(frame)), "down": int64(len(frame)), "result": "ok",
	})
}

func TestForwardKeepsConnectionsAlive(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, strings.Repeat("x", 1000))
	}))
	t.Cleanup(origin.Close)
	p := startProxy(t, nil)
	client := p.client(t)

	for i := range 2 {
		res, err := client.Post(origin.URL+"/", "text/plain", strings.NewReader(strings.Repeat("y", 500)))
		if err != nil {
			t.Fatal(err)
		}
		if body := readBody(t, res); len(body) != 1000 {
			t.Fatalf("request %d: body of %d bytes", i, len(body))
		}
	}
	t.Run("two requests share one client connection", func(t *testing.T) {
		if n := p.accepts.Load(); n != 1 {
			t.Errorf("proxy accepted %d connections, want 1", n)
		}
	})
	t.Run("two requests share one tunnel stream", func(t *testing.T) {
		if n := p.dials.Load(); n != 1 {
			t.Errorf("proxy dialed %d times, want 1", n)
		}
	})
	t.Run("each request logs one line with its byte counts", func(t *testing.T) {
		recs := p.logs.wait(t, 2)
		if len(recs) != 2 {
			t.Fatalf("got %d records, want 2", len(recs))
		}
		for _, rec := range recs {
			checkLog(t, rec, map[string]any{
				"msg": "request", "method": "POST", "target": strings.TrimPrefix(origin.URL, "http://"),
				"status": int64(200), "up": int64(500), "down": int64(1000), "result": "ok",
			})
		}
	})
}

func TestForwardExpectContinue(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/reject" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		io.Copy(w, r.Body)
	}))
	t.Cleanup(origin.Close)
	p := startProxy(t, nil)
	host := strings.TrimPrefix(origin.URL, "http://")

	t.Run("a client whose request the origin rejects gets the rejection instead of 100 Continue", func(t *testing.T) {
		res, _, _ := p.rawRoundTrip(t, http.MethodPost, "POST "+origin.URL+"/reject HTTP/1.1\r\n"+
			"Host: "+host+"\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
		if readBody(t, res); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", res.StatusCode)
		}
	})

	res, c, br := p.rawRoundTrip(t, http.MethodPost, "POST "+origin.URL+"/ HTTP/1.1\r\n"+
		"Host: "+host+"\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	t.Run("a client that expects 100 Continue gets it before sending its body", func(t *testing.T) {
		if res.StatusCode != http.StatusContinue {
			t.Fatalf("status %d, want 100", res.StatusCode)
		}
	})
	io.WriteString(c, "hello")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the body sent after 100 Continue reaches the origin", func(t *testing.T) {
		if body := readBody(t, res); res.StatusCode != http.StatusOK || body != "hello" {
			t.Errorf("got %d %q, want 200 \"hello\"", res.StatusCode, body)
		}
	})
	t.Run("the connection serves the next request", func(t *testing.T) {
		io.WriteString(c, "GET "+origin.URL+"/ HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if readBody(t, res); res.StatusCode != http.StatusOK {
			t.Errorf("status %d", res.StatusCode)
		}
	})
}
