package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestServerConfig(t *testing.T) {
	dir := initDir(t, InitOptions{})
	cfg, err := ServerConfig(filepath.Join(dir, ServerCertFile), filepath.Join(dir, ServerKeyFile), filepath.Join(dir, CAFile))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS13 {
		t.Errorf("MinVersion = %x, want TLS 1.3", cfg.MinVersion)
	}
	if !slices.Equal(cfg.NextProtos, []string{"h2", "http/1.1"}) {
		t.Errorf("NextProtos = %q", cfg.NextProtos)
	}
	if cfg.ClientAuth != tls.VerifyClientCertIfGiven || cfg.VerifyConnection == nil {
		t.Errorf("ClientAuth = %v with VerifyConnection %v; the client certificate would not be required", cfg.ClientAuth, cfg.VerifyConnection != nil)
	}
	if cfg.ClientCAs == nil || cfg.InsecureSkipVerify {
		t.Errorf("ClientCAs = %v, InsecureSkipVerify = %v", cfg.ClientCAs, cfg.InsecureSkipVerify)
	}
	if len(cfg.Certificates) != 1 {
		t.Errorf("%d certificates, want 1", len(cfg.Certificates))
	}
}

func TestClientConfig(t *testing.T) {
	dir := initDir(t, InitOptions{})
	for _, tt := range []struct{ serverName, want string }{
		{"", DefaultServerName},
		{"exit.example.com", "exit.example.com"},
	} {
		cfg, err := ClientConfig(filepath.Join(dir, ClientCertFile), filepath.Join(dir, ClientKeyFile), filepath.Join(dir, CAFile), tt.serverName)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.ServerName != tt.want {
			t.Errorf("ServerName(%q) = %q, want %q", tt.serverName, cfg.ServerName, tt.want)
		}
		if cfg.MinVersion != tls.VersionTLS13 || !slices.Equal(cfg.NextProtos, []string{"h2"}) || cfg.InsecureSkipVerify {
			t.Errorf("MinVersion %x, NextProtos %q, InsecureSkipVerify %v", cfg.MinVersion, cfg.NextProtos, cfg.InsecureSkipVerify)
		}
		if cfg.RootCAs == nil || len(cfg.Certificates) != 1 {
			t.Errorf("RootCAs %v, %d certificates", cfg.RootCAs, len(cfg.Certificates))
		}
	}
}

// TestClientVerifiesServer dials the server at 127.0.0.1 and checks that the
// client accepts it by the name in its certificate, not by the address, and
// only with a certificate from its own CA.
func TestClientVerifiesServer(t *testing.T) {
	f := newHandshakeFixture(t)
	var state tls.ConnectionState
	recordState := func(cfg *tls.Config) func(net.Conn) error {
		return func(c net.Conn) error {
			tc := tls.Client(c, cfg)
			err := tc.Handshake()
			state = tc.ConnectionState()
			return err
		}
	}

	t.Run("it accepts fluidity-server at 127.0.0.1", func(t *testing.T) {
		_, err := serverHandshake(t, f.server, 5*time.Second, false, recordState(clientConfig(t, f.dir, "client", f.dir)))
		if err != nil {
			t.Fatalf("client handshake: %v", err)
		}
		if state.Version != tls.VersionTLS13 || state.NegotiatedProtocol != "h2" {
			t.Errorf("version %x, protocol %q; want TLS 1.3 and h2", state.Version, state.NegotiatedProtocol)
		}
		if leaf := state.PeerCertificates[0]; !slices.Contains(leaf.DNSNames, DefaultServerName) {
			t.Errorf("server certificate names %q", leaf.DNSNames)
		}
	})

	t.Run("it rejects a server certificate from another CA", func(t *testing.T) {
		_, err := serverHandshake(t, f.server, 5*time.Second, false, recordState(clientConfig(t, f.dir, "client", f.otherDir)))
		if !isType[x509.UnknownAuthorityError](err) {
			t.Fatalf("client handshake error = %v, want an unknown authority", err)
		}
	})

	t.Run("it rejects a server certificate without the name it expects", func(t *testing.T) {
		cfg, err := ClientConfig(filepath.Join(f.dir, ClientCertFile), filepath.Join(f.dir, ClientKeyFile), filepath.Join(f.dir, CAFile), "exit.example.com")
		if err != nil {
			t.Fatal(err)
		}
		_, err = serverHandshake(t, f.server, 5*time.Second, false, recordState(cfg))
		if !isType[x509.HostnameError](err) {
			t.Fatalf("client handshake error = %v, want a hostname mismatch", err)
		}
	})
}

func TestConfigFileErrors(t *testing.T) {
	dir := initDir(t, InitOptions{})
	ca, err := LoadCA(filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	path := func(name string) string { return filepath.Join(dir, name) }
	write := func(name string, data []byte, perm os.FileMode) string {
		t.Helper()
		if err := os.WriteFile(path(name), data, perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path(name), perm); err != nil {
			t.Fatal(err)
		}
		return path(name)
	}
	serverKey, err := os.ReadFile(path(ServerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	expired, err := ca.IssueClient("old", past.AddDate(-1, 0, 0), past)
	if err != nil {
		t.Fatal(err)
	}
	oldCert, oldKey := writeIssued(t, expired, dir, "old")

	tests := []struct {
		name            string
		files           [3]string // cert, key, CA
		wantIn          []string  // the message names the file and the fix
		wantErrNotExist bool
	}{
		{
			name:            "a missing certificate says how to create it",
			files:           [3]string{path("nope.crt"), path(ClientKeyFile), path(CAFile)},
			wantIn:          []string{path("nope.crt"), "fluidity certs init --dir " + dir},
			wantErrNotExist: true,
		},
		{
			name:            "a missing CA says how to create it",
			files:           [3]string{path(ClientCertFile), path(ClientKeyFile), path("nope.crt")},
			wantIn:          []string{path("nope.crt"), "fluidity certs init --dir " + dir},
			wantErrNotExist: true,
		},
		{
			name:   "a key readable by others must be chmodded",
			files:  [3]string{path(ClientCertFile), write("open.key", serverKey, 0o644), path(CAFile)},
			wantIn: []string{path("open.key"), "chmod 600 " + path("open.key")},
		},
		{
			name:   "a certificate file without a certificate is named",
			files:  [3]string{write("garbage.crt", []byte("hello\n"), 0o644), path(ClientKeyFile), path(CAFile)},
			wantIn: []string{path("garbage.crt"), "no PEM certificate"},
		},
		{
			name:   "a key file without a key is named",
			files:  [3]string{path(ClientCertFile), write("garbage.key", []byte("hello\n"), 0o600), path(CAFile)},
			wantIn: []string{path("garbage.key"), "no PEM private key"},
		},
		{
			name:   "a key that belongs to another certificate is refused",
			files:  [3]string{path(ClientCertFile), path(ServerKeyFile), path(CAFile)},
			wantIn: []string{path(ServerKeyFile), path(ClientCertFile), "does not go with"},
		},
		{
			name:   "a server certificate is not a client certificate",
			files:  [3]string{path(ServerCertFile), path(ServerKeyFile), path(CAFile)},
			wantIn: []string{path(ServerCertFile), "not a client certificate"},
		},
		{
			name:   "an expired certificate is refused at load",
			files:  [3]string{oldCert, oldKey, path(CAFile)},
			wantIn: []string{oldCert, "valid only from", "--force"},
		},
		{
			name:   "a CA file must hold a CA",
			files:  [3]string{path(ClientCertFile), path(ClientKeyFile), path(ServerCertFile)},
			wantIn: []string{path(ServerCertFile), "not a CA"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ClientConfig(tt.files[0], tt.files[1], tt.files[2], "")
			if err == nil {
				t.Fatal("ClientConfig succeeded")
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if got := errors.Is(err, fs.ErrNotExist); got != tt.wantErrNotExist {
				t.Errorf("errors.Is(err, fs.ErrNotExist) = %v, want %v", got, tt.wantErrNotExist)
			}
		})
	}

	t.Run("the server refuses an open key too", func(t *testing.T) {
		_, err := ServerConfig(path(ServerCertFile), write("open-server.key", serverKey, 0o640), path(CAFile))
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("ServerConfig error = %v, want one saying to chmod 600", err)
		}
	})
}
