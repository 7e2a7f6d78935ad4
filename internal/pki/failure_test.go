package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// handshakeFixture is a server configured from one Init directory plus
// clients with every kind of credential a server must tell apart.
type handshakeFixture struct {
	dir, otherDir string // ours, and another CA's with the same name
	server        *tls.Config
}

func newHandshakeFixture(t *testing.T) *handshakeFixture {
	t.Helper()
	f := &handshakeFixture{
		dir:      initDir(t, InitOptions{}),
		otherDir: initDir(t, InitOptions{}),
	}
	var err error
	f.server, err = ServerConfig(filepath.Join(f.dir, ServerCertFile), filepath.Join(f.dir, ServerKeyFile), filepath.Join(f.dir, CAFile))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *handshakeFixture) ca(t *testing.T) *CA {
	t.Helper()
	ca, err := LoadCA(filepath.Join(f.dir, CAFile), filepath.Join(f.dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// clientConfig is ClientConfig on files in dir, trusting the CA in caDir.
func clientConfig(t *testing.T, dir, name, caDir string) *tls.Config {
	t.Helper()
	cfg, err := ClientConfig(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"), filepath.Join(caDir, CAFile), "")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// withCertificate returns a client config trusting the CA in caDir and
// presenting is, which ClientConfig might refuse to load (expired, wrong
// usage). Nil is presents no certificate.
func withCertificate(t *testing.T, caDir string, is *Issued) *tls.Config {
	t.Helper()
	pool, err := loadCAPool(filepath.Join(caDir, CAFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: DefaultServerName, NextProtos: []string{"h2"}}
	if is != nil {
		cert, err := is.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	return cfg
}

// tlsClient handshakes as a TLS client and then reads, to learn whether the
// server accepted it: a TLS 1.3 server judges the client's certificate after
// the client's handshake has finished. A clean close after the handshake
// counts as success.
func tlsClient(cfg *tls.Config) func(net.Conn) error {
	return func(c net.Conn) error {
		tc := tls.Client(c, cfg)
		if err := tc.Handshake(); err != nil {
			return err
		}
		if _, err := tc.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			return err
		}
		return nil
	}
}

// serverHandshake accepts one loopback TCP connection, runs a server
// handshake with cfg bounded by timeout (a context, or with useDeadline a
// connection deadline), and closes it. client runs on the dialed connection
// meanwhile. It returns the server's and the client's errors.
func serverHandshake(t *testing.T, cfg *tls.Config, timeout time.Duration, useDeadline bool, client func(net.Conn) error) (serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	errc := make(chan error, 1) // never closed
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		ctx := context.Background()
		if useDeadline {
			c.SetDeadline(time.Now().Add(timeout))
		} else {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		tc := tls.Server(c, cfg)
		err = tc.HandshakeContext(ctx)
		if err == nil {
			err = tc.Close()
		}
		errc <- err
	}()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	clientErr = client(c)
	return <-errc, clientErr
}

func TestHandshakeFailure(t *testing.T) {
	f := newHandshakeFixture(t)
	ca := f.ca(t)
	issueClient := func(notBefore, notAfter time.Time) *Issued {
		is, err := ca.IssueClient("someone", notBefore, notAfter)
		if err != nil {
			t.Fatal(err)
		}
		return is
	}
	serverAsClient, err := ca.IssueServer([]string{"someone"}, nil, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	renamedDir := filepath.Join(t.TempDir(), "renamed")
	otherCA, err := NewCA("some other CA", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	renamedClient, err := otherCA.IssueClient("someone", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	os.Mkdir(renamedDir, 0o700)
	writeIssued(t, renamedClient, renamedDir, "someone")

	const quick = 200 * time.Millisecond
	tests := []struct {
		name        string
		client      func(net.Conn) error
		timeout     time.Duration // if zero, 5s
		useDeadline bool
		want        string
		checkServer func(error) bool // how the server error is recognised by type
		wantClient  bool             // whether the client sees an error
	}{
		{
			name:   "a client with a certificate from the CA succeeds",
			client: tlsClient(clientConfig(t, f.dir, "client", f.dir)),
			want:   "",
		},
		{
			name:        "a client without a certificate is refused",
			client:      tlsClient(withCertificate(t, f.dir, nil)),
			want:        "no client certificate",
			checkServer: func(err error) bool { return errors.Is(err, ErrNoClientCertificate) },
			wantClient:  true,
		},
		{
			name:        "a client certificate from another CA of the same name is refused",
			client:      tlsClient(clientConfig(t, f.otherDir, "client", f.dir)),
			want:        "unknown certificate authority",
			checkServer: isType[x509.UnknownAuthorityError],
			wantClient:  true,
		},
		{
			name:        "a client certificate from a differently named CA is refused as unknown, not missing",
			client:      tlsClient(clientConfig(t, renamedDir, "someone", f.dir)),
			want:        "unknown certificate authority",
			checkServer: isType[x509.UnknownAuthorityError],
			wantClient:  true,
		},
		{
			name:        "an expired client certificate is refused",
			client:      tlsClient(withCertificate(t, f.dir, issueClient(past.AddDate(-1, 0, 0), past))),
			want:        "certificate expired or not yet valid",
			checkServer: hasInvalidReason(x509.Expired),
			wantClient:  true,
		},
		{
			name:        "a client certificate that is not yet valid is refused",
			client:      tlsClient(withCertificate(t, f.dir, issueClient(future, future.AddDate(1, 0, 0)))),
			want:        "certificate expired or not yet valid",
			checkServer: hasInvalidReason(x509.Expired),
			wantClient:  true,
		},
		{
			name:        "a server certificate presented by a client is refused",
			client:      tlsClient(withCertificate(t, f.dir, serverAsClient)),
			want:        "bad certificate",
			checkServer: hasInvalidReason(x509.IncompatibleUsage),
			wantClient:  true,
		},
		{
			name:        "a client that rejects the server's certificate is reported",
			client:      tlsClient(clientConfig(t, f.dir, "client", f.otherDir)),
			want:        "client rejected server certificate",
			checkServer: isType[*net.OpError],
			wantClient:  true,
		},
		{
			name: "plain text is not TLS",
			client: func(c net.Conn) error {
				_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: fluidity-server\r\n\r\n")
				return err
			},
			want:        "not TLS",
			checkServer: isType[tls.RecordHeaderError],
		},
		{
			name: "a TLS 1.2 client is refused",
			client: func(c net.Conn) error {
				cfg := clientConfig(t, f.dir, "client", f.dir)
				cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
				return tlsClient(cfg)(c)
			},
			want:       "unsupported TLS version",
			wantClient: true,
		},
		{
			name:        "a silent client times out (context)",
			client:      func(net.Conn) error { return nil },
			timeout:     quick,
			want:        "timeout",
			checkServer: func(err error) bool { return errors.Is(err, context.DeadlineExceeded) },
		},
		{
			name:        "a silent client times out (deadline)",
			client:      func(net.Conn) error { return nil },
			timeout:     quick,
			useDeadline: true,
			want:        "timeout",
			checkServer: func(err error) bool { ne, ok := errors.AsType[net.Error](err); return ok && ne.Timeout() },
		},
		{
			name:        "a client that closes at once",
			client:      func(c net.Conn) error { return c.Close() },
			want:        "client closed connection",
			checkServer: func(err error) bool { return errors.Is(err, io.EOF) },
		},
		{
			name: "a client that resets the connection",
			client: func(c net.Conn) error {
				c.(*net.TCPConn).SetLinger(0)
				return c.Close()
			},
			want:        "client closed connection",
			checkServer: func(err error) bool { return errors.Is(err, syscall.ECONNRESET) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			serverErr, clientErr := serverHandshake(t, f.server, timeout, tt.useDeadline, tt.client)
			t.Logf("server: %v (%T)", serverErr, serverErr)
			t.Logf("client: %v", clientErr)
			if got := HandshakeFailure(serverErr); got != tt.want {
				t.Errorf("HandshakeFailure(%v) = %q, want %q", serverErr, got, tt.want)
			}
			if tt.checkServer != nil && !tt.checkServer(serverErr) {
				t.Errorf("server error %v (%T) is not of the expected type", serverErr, serverErr)
			}
			if (clientErr != nil) != tt.wantClient {
				t.Errorf("client error = %v, want error: %v", clientErr, tt.wantClient)
			}
		})
	}
}

func isType[E error](err error) bool {
	_, ok := errors.AsType[E](err)
	return ok
}

func hasInvalidReason(r x509.InvalidReason) func(error) bool {
	return func(err error) bool {
		e, ok := errors.AsType[x509.CertificateInvalidError](err)
		return ok && e.Reason == r
	}
}

func TestHandshakeFailureOfOtherErrors(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("something else"), "handshake failed"},
		{fmt.Errorf("wrapped: %w", ErrNoClientCertificate), "no client certificate"},
		{context.Canceled, "handshake failed"},
		{tls.AlertError(48), "client rejected server certificate"},
		{tls.AlertError(40), "handshake failed"},
		{io.ErrUnexpectedEOF, "client closed connection"},
	}
	for _, tt := range tests {
		if got := HandshakeFailure(tt.err); got != tt.want {
			t.Errorf("HandshakeFailure(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
