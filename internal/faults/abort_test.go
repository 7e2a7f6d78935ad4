package faults

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"fluidity/internal/proctest"
)

// resetAfter is a target that reads a request (a line; with http set, an
// HTTP request head, answered as an HTTP/1.0 server whose body ends with
// the connection), sends n bytes, then resets the connection.
func resetAfter(t *testing.T, n int, http bool) *proctest.Target {
	return proctest.NewTarget(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil || !http || line == "\r\n" {
				break
			}
		}
		if http {
			io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
		}
		io.CopyN(c, zeros{}, int64(n))
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
}

// sink is a target that reads until its connection ends and reports how it
// ended: nil for a clean end (EOF), else the error. started gets a value
// once the first bytes have arrived.
func sink(t *testing.T) (tg *proctest.Target, started <-chan struct{}, ended <-chan error) {
	st := make(chan struct{}, 8)
	end := make(chan error, 8)
	tg = proctest.NewTarget(t, func(c net.Conn) {
		buf := make([]byte, 32<<10)
		if _, err := c.Read(buf); err != nil {
			end <- err
			return
		}
		st <- struct{}{}
		_, err := io.Copy(io.Discard, c)
		end <- err
	})
	return tg, st, end
}

// waitStarted waits for a sink's first bytes.
func waitStarted(t *testing.T, started <-chan struct{}) {
	t.Helper()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing reached the target")
	}
}

// readEnd reads c to its end within d and returns how it ended.
func readEnd(c net.Conn, d time.Duration) error {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	return err
}

// reset closes c with a TCP reset, as a client that aborts does.
func reset(c net.Conn) {
	if tc, ok := c.(*tunnelConn); ok {
		c = tc.Conn
	}
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
}

func wantReset(t *testing.T, who string, err error) {
	t.Helper()
	switch {
	case errors.Is(err, syscall.ECONNRESET):
	case err == nil:
		t.Fatalf("%s saw a clean end (EOF) where the other end aborted: a truncated stream passes for a complete one", who)
	default:
		t.Fatalf("%s saw %v, want a reset (ECONNRESET)", who, err)
	}
}

// Issue 13: an abort stays an abort end to end (RFC 9113 §8.5). A target's
// reset mid-download reaches the client as a TCP reset, and a client's
// reset mid-upload reaches the target as one, on CONNECT, SOCKS5 and the
// plain HTTP proxy; and when the exit is killed mid-download, the client
// gets a reset, not a FIN after a truncated body.
func TestAbortsStayAbortsEndToEnd(t *testing.T) {
	needProcesses(t)
	certs := proctest.CertsInit(t)
	exit, exitAddr := proctest.StartExit(t, certs, "--allow-private")
	_, agentAddr := proctest.StartAgent(t, certs, exitAddr)
	dial := map[string]func(target string) (net.Conn, error){
		"CONNECT": func(target string) (net.Conn, error) { return dialConnect(agentAddr, target, 5*time.Second) },
		"SOCKS5":  func(target string) (net.Conn, error) { return dialSOCKS5(agentAddr, target, 5*time.Second) },
	}
	for _, front := range []string{"CONNECT", "SOCKS5"} {
		t.Run(front+": the target resets mid-download", func(t *testing.T) {
			target := resetAfter(t, 256<<10, false)
			c, err := dial[front](target.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "send\n")
			wantReset(t, "the client", readEnd(c, 10*time.Second))
		})
		t.Run(front+": the client resets mid-upload", func(t *testing.T) {
			target, started, ended := sink(t)
			c, err := dial[front](target.Addr())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(make([]byte, 64<<10)); err != nil {
				t.Fatal(err)
			}
			waitStarted(t, started)
			reset(c)
			select {
			case err := <-ended:
				wantReset(t, "the target", err)
			case <-time.After(10 * time.Second):
				t.Fatal("the target's connection outlived the client's reset")
			}
		})
	}
	t.Run("plain proxy: the target resets mid-body", func(t *testing.T) {
		target := resetAfter(t, 256<<10, true)
		c, err := net.Dial("tcp", agentAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET http://%s/file HTTP/1.1\r\nHost: %s\r\n\r\n", target.Addr(), target.Addr())
		wantReset(t, "the client", readEnd(c, 10*time.Second))
	})
	t.Run("plain proxy: the client resets mid-upload", func(t *testing.T) {
		target, started, ended := sink(t)
		c, err := net.Dial("tcp", agentAddr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST http://%s/upload HTTP/1.1\r\nHost: %s\r\nContent-Length: 10000000\r\n\r\n", target.Addr(), target.Addr())
		if _, err := c.Write(make([]byte, 64<<10)); err != nil {
			t.Fatal(err)
		}
		waitStarted(t, started)
		reset(c)
		select {
		case err := <-ended:
			wantReset(t, "the target", err)
		case <-time.After(10 * time.Second):
			t.Fatal("the target's connection outlived the client's reset")
		}
	})
	t.Run("the exit is killed mid-download", func(t *testing.T) {
		blaster := newBlaster(t)
		c, err := dialConnect(agentAddr, blaster.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.ReadFull(c, make([]byte, 1<<20)); err != nil {
			t.Fatal(err)
		}
		exit.Kill()
		wantReset(t, "the client", readEnd(c, 10*time.Second))
	})
}
