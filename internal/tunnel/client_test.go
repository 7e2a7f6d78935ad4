package tunnel

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"fluidity/internal/pki"
)

// tlsPair makes server and client TLS configs from a fresh private CA.
func tlsPair(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	if err := pki.Init(pki.InitOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	f := func(n string) string { return filepath.Join(dir, n) }
	server, err := pki.ServerConfig(f(pki.ServerCertFile), f(pki.ServerKeyFile), f(pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	client, err = pki.ClientConfig(f(pki.ClientCertFile), f(pki.ClientKeyFile), f(pki.CAFile), "")
	if err != nil {
		t.Fatal(err)
	}
	return server, client
}

func TestReconnectAfterEachLossIsPrompt(t *testing.T) {
	srvTLS, cliTLS := tlsPair(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The exit: serves each link until the test drops it.
	links := make(chan net.Conn, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			links <- raw
			wg.Add(1)
			go func() {
				defer wg.Done()
				tc := tls.Server(raw, srvTLS)
				if tc.Handshake() != nil {
					raw.Close()
					return
				}
				Serve(context.Background(), tc, Config{}, func(ctx context.Context, req *Request, s *Stream) {
					s.Reject(403, "http_request_denied", "test")
				})
			}()
		}
	}()
	defer wg.Wait()
	defer ln.Close()

	c, err := NewClient(ClientConfig{Addr: ln.Addr().String(), TLS: cliTLS, BackoffMin: 200 * time.Millisecond, BackoffMax: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitUp := func() {
		t.Helper()
		waitFor(t, "the link to come up", func() bool { return c.Status().State == StateUp })
	}
	for i := range 5 {
		raw := <-links
		waitUp()
		time.Sleep(flapThreshold + 100*time.Millisecond) // a healthy link, then it is lost
		lost := time.Now()
		raw.Close()
		waitFor(t, "the loss to be noticed", func() bool { return c.Status().State != StateUp })
		waitUp()
		// With the backoff reset after each healthy link, every reconnect
		// takes about BackoffMin; escalating, the fifth would take 3.2s.
		if d := time.Since(lost); d > 1500*time.Millisecond {
			t.Fatalf("reconnect %d took %v", i+1, d)
		}
	}
}

func TestRefusingGoAwayIsReportedAndBackedOff(t *testing.T) {
	srvTLS, cliTLS := tlsPair(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// An exit that refuses every link as the exit does over a limit:
	// SETTINGS, then GOAWAY ENHANCE_YOUR_CALM with the reason, then close.
	var served sync.WaitGroup
	var attempts atomic.Int32
	served.Add(1)
	go func() {
		defer served.Done()
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			attempts.Add(1)
			tc := tls.Server(raw, srvTLS)
			if tc.Handshake() == nil {
				fr := http2.NewFramer(tc, nil)
				fr.WriteSettings()
				fr.WriteGoAway(0, http2.ErrCodeEnhanceYourCalm, []byte("too many links for this client"))
				// As the exit does: half-close and read what the client
				// still sends, so that the close does not reset the
				// connection before the client has read the GOAWAY.
				tc.SetDeadline(time.Now().Add(time.Second))
				tc.CloseWrite()
				io.Copy(io.Discard, tc)
			}
			tc.Close()
		}
	}()
	c, err := NewClient(ClientConfig{Addr: ln.Addr().String(), TLS: cliTLS, BackoffMin: 100 * time.Millisecond, BackoffMax: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	time.Sleep(2 * time.Second)
	st := c.Status()
	cancel()
	<-done
	ln.Close()
	served.Wait()
	if !strings.Contains(st.LastError, "too many links for this client") {
		t.Fatalf("last error %q does not give the exit's reason", st.LastError)
	}
	// Backing off from 100ms, doubling: a handful of attempts in 2s.
	if n := attempts.Load(); n > 8 {
		t.Fatalf("%d link attempts in 2s: refused links are not backed off", n)
	}
}
