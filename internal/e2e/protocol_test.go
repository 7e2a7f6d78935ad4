package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHTTPSThroughConnect fetches from an HTTPS origin with curl through the
// agent: curl sends CONNECT and verifies the origin's certificate end to end.
func TestHTTPSThroughConnect(t *testing.T) {
	tp := startPair(t)
	origin, caFile := newTLSOrigin(t)
	res := mustCurl(t, curlOpts{}, "-x", "http://"+tp.agentAddr, "--cacert", caFile, origin.URL+"/")
	if res.stdout != "hello tls\n" {
		t.Fatalf("got %q, want the origin's page", res.stdout)
	}
}

// TestSOCKS5WithRemoteDNS downloads through the agent's SOCKS5 side, with
// the host name resolved by the exit.
func TestSOCKS5WithRemoteDNS(t *testing.T) {
	tp := startPair(t)
	origin := newOrigin(t)
	const size, seed = 1 << 20, 7
	got := newHashWriter()
	mustCurl(t, curlOpts{stdout: got}, "--socks5-hostname", tp.agentAddr,
		fmt.Sprintf("http://localhost:%s/stream?n=%d&seed=%d", urlPort(t, origin.URL), size, seed))
	if got.n.Load() != size || got.sum() != payloadSum(seed, size) {
		t.Fatalf("got %d bytes with the wrong checksum, want %d intact", got.n.Load(), size)
	}
	// The exit, not curl, looked the name up: the tunnel carried it.
	if !tp.exit.WaitLog("target=localhost:", 1, 5*time.Second) {
		t.Errorf("the exit did not log a stream to localhost: curl resolved the name itself")
	}
}

// TestWebSocketEchoThroughProxy upgrades an absolute-URI request to
// WebSocket through the agent and exchanges frames with an echo server.
func TestWebSocketEchoThroughProxy(t *testing.T) {
	tp := startPair(t)
	origin := newOrigin(t)
	host := strings.TrimPrefix(origin.URL, "http://")

	nc, err := net.DialTimeout("tcp", tp.agentAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	var keyBytes [16]byte
	rand.Read(keyBytes[:])
	key := base64.StdEncoding.EncodeToString(keyBytes[:])
	fmt.Fprintf(nc, "GET http://%s/ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", host, host, key)
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		t.Fatalf("read the upgrade response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("upgrade answered %s: %s", resp.Status, body)
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), websocketAccept(key); got != want {
		t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, want)
	}

	large := make([]byte, 200<<10) // needs the 64-bit length form
	rand.Read(large)
	for _, m := range []struct {
		opcode  byte
		payload []byte
	}{
		{opText, []byte("hello through fluidity")},
		{opBinary, bytes.Repeat([]byte{0xAB}, 300)},
		{opBinary, large},
	} {
		if err := writeFrame(nc, m.opcode, m.payload, true); err != nil {
			t.Fatalf("send frame: %v", err)
		}
		f, err := readFrame(br)
		if err != nil {
			t.Fatalf("read the echo of a %d-byte frame: %v", len(m.payload), err)
		}
		if f.opcode != m.opcode || f.masked || !bytes.Equal(f.payload, m.payload) {
			t.Fatalf("echo of a %d-byte frame (opcode %d) came back as %d bytes, opcode %d, masked %v",
				len(m.payload), m.opcode, len(f.payload), f.opcode, f.masked)
		}
	}
	if err := writeFrame(nc, opClose, []byte{0x03, 0xe8}, true); err != nil {
		t.Fatalf("send close: %v", err)
	}
	if f, err := readFrame(br); err != nil || f.opcode != opClose {
		t.Fatalf("close handshake: frame %+v, err %v", f, err)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the close handshake: got %v, want EOF from the proxy", err)
	}
}

// TestTargetThatClosesAtOnce checks that the bytes a target sends just
// before it closes reach the client, followed promptly by EOF, through
// CONNECT and through SOCKS5.
func TestTargetThatClosesAtOnce(t *testing.T) {
	tp := startPair(t)
	target := newGreeter(t)

	check := func(t *testing.T, c net.Conn) {
		t.Helper()
		start := time.Now()
		c.SetReadDeadline(start.Add(10 * time.Second))
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("read: %v (got %q)", err, got)
		}
		if string(got) != greeting {
			t.Fatalf("got %q, want %q", got, greeting)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("EOF came %v after the target closed, want < 2s", d)
		}
	}
	t.Run("CONNECT", func(t *testing.T) {
		check(t, mustConnect(t, tp.agentAddr, target.Addr()))
	})
	t.Run("SOCKS5", func(t *testing.T) {
		host, port := splitHostPort(t, target.Addr())
		c, reply := dialSOCKS5(t, tp.agentAddr, host, port)
		if reply != 0 {
			t.Fatalf("SOCKS5 reply %d, want success", reply)
		}
		check(t, c)
	})
}
