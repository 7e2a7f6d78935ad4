package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readPEM reads a file of an Init directory.
func readPEM(t *testing.T, dir, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestServerBundleRoundTrip(t *testing.T) {
	f := newHandshakeFixture(t)
	data, err := ServerBundle(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a bundle of ECDSA P-256 keys from certs init is %d bytes (limit %d)", len(data), MaxBundleSize)
	if len(data) > MaxBundleSize {
		t.Fatalf("bundle is %d bytes, more than SSM's standard tier holds (%d)", len(data), MaxBundleSize)
	}
	for _, want := range [][]byte{readPEM(t, f.dir, CAFile), readPEM(t, f.dir, ServerCertFile), readPEM(t, f.dir, ServerKeyFile)} {
		if !bytes.Contains(data, want) {
			t.Fatalf("bundle lacks\n%s", want)
		}
	}
	cfg, err := ServerConfigFromBundle("ssm://fluidity-exit", data)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != f.server.MinVersion || cfg.ClientAuth != f.server.ClientAuth || cfg.VerifyConnection == nil ||
		!cfg.SessionTicketsDisabled || strings.Join(cfg.NextProtos, ",") != strings.Join(f.server.NextProtos, ",") {
		t.Fatalf("the bundle's config differs from ServerConfig's: %+v", cfg)
	}

	t.Run("an agent of the CA completes a handshake", func(t *testing.T) {
		serverErr, clientErr := serverHandshake(t, cfg, 5*time.Second, false, tlsClient(clientConfig(t, f.dir, "client", f.dir)))
		if serverErr != nil || clientErr != nil {
			t.Fatalf("server %v, client %v", serverErr, clientErr)
		}
	})
	t.Run("a client of another CA is refused", func(t *testing.T) {
		serverErr, _ := serverHandshake(t, cfg, 5*time.Second, false, tlsClient(clientConfig(t, f.otherDir, "client", f.dir)))
		if got := HandshakeFailure(serverErr); got != "unknown certificate authority" {
			t.Fatalf("server error %v (%q), want an unknown authority", serverErr, got)
		}
	})
	t.Run("a client without a certificate is refused", func(t *testing.T) {
		serverErr, _ := serverHandshake(t, cfg, 5*time.Second, false, tlsClient(withCertificate(t, f.dir, nil)))
		if !errors.Is(serverErr, ErrNoClientCertificate) {
			t.Fatalf("server error %v, want ErrNoClientCertificate", serverErr)
		}
	})
}

// TestBundleInAnyOrder reads the blocks in every order, with text around
// them and the key in SEC 1 form.
func TestBundleInAnyOrder(t *testing.T) {
	dir := initDir(t, InitOptions{})
	ca, cert := readPEM(t, dir, CAFile), readPEM(t, dir, ServerCertFile)
	key := readPEM(t, dir, ServerKeyFile)
	block, _ := pem.Decode(key)
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(parsed.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	ecKey := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})
	for _, tc := range []struct {
		name  string
		parts [][]byte
	}{
		{"key, certificate, CA", [][]byte{key, cert, ca}},
		{"certificate, CA, key", [][]byte{cert, ca, key}},
		{"with comments between blocks", [][]byte{[]byte("# exit\n"), ca, []byte("server:\n"), cert, key, []byte("\n\n")}},
		{"with an EC PRIVATE KEY", [][]byte{ca, cert, ecKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ServerConfigFromBundle("test", bytes.Join(tc.parts, nil)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestBundleErrors(t *testing.T) {
	dir := initDir(t, InitOptions{})
	other := initDir(t, InitOptions{})
	ca, cert, key := readPEM(t, dir, CAFile), readPEM(t, dir, ServerCertFile), readPEM(t, dir, ServerKeyFile)
	authority, err := LoadCA(filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	expired, err := authority.IssueServer([]string{DefaultServerName}, nil, past.AddDate(0, -1, 0), past)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})
	ecParams := []byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n")
	const source = "ssm:///fluidity/exit"
	for _, tc := range []struct {
		name   string
		data   []byte
		want   error
		wantIn []string // besides the source
	}{
		{"text that is not PEM", []byte("hello, world\n"), ErrNotPEM, []string{"no PEM blocks"}},
		{"an empty value", nil, ErrNotPEM, []string{"no PEM blocks"}},
		{"a block cut off", append(bytes.Clone(ca), cert[:len(cert)/2]...), ErrNotPEM, []string{"cut off"}},
		{"a certificate block that is not a certificate", append([]byte("-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n"), key...), ErrNotPEM, []string{"block 1", "not a valid certificate"}},
		{"an unknown block", cat(ca, cert, key, []byte("-----BEGIN X509 CRL-----\naGVsbG8=\n-----END X509 CRL-----\n")), ErrNotPEM, []string{`"X509 CRL"`}},
		{"a PKCS #1 RSA key", cat(ca, cert, pkcs1), ErrNotPEM, []string{"PKCS #8", "openssl pkcs8"}},
		{"no CA", cat(cert, key), ErrNoCA, []string{"ca.crt"}},
		{"two CAs", cat(ca, readPEM(t, other, CAFile), cert, key), ErrManyCAs, []string{"2 CA certificates"}},
		{"only a CA and a key", cat(ca, key), ErrNoCertificate, []string{"server.crt"}},
		{"no key", cat(ca, cert, ecParams), ErrNoKey, []string{"server.key"}},
		{"two keys", cat(ca, cert, key, readPEM(t, other, ServerKeyFile)), ErrManyKeys, []string{"more than one private key"}},
		{"another certificate's key", cat(ca, cert, readPEM(t, dir, ClientKeyFile)), ErrKeyMismatch, []string{"does not go with"}},
		{"an expired server certificate", cat(ca, expired.CertPEM, expired.KeyPEM), ErrNotCurrent, []string{"valid only from", "fluidity certs push " + source}},
		{"a client certificate", cat(ca, readPEM(t, dir, ClientCertFile), readPEM(t, dir, ClientKeyFile)), ErrWrongUsage, []string{"not a server certificate", `"fluidity-client"`}},
		{"more than 4096 bytes", cat(ca, cert, key, bytes.Repeat([]byte("#"), MaxBundleSize)), ErrBundleTooLarge, []string{"4096", "P-256"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ServerConfigFromBundle(source, tc.data)
			if err == nil {
				t.Fatalf("ServerConfigFromBundle succeeded (%d certificates)", len(cfg.Certificates))
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error %q does not wrap %q", err, tc.want)
			}
			for _, s := range append([]string{source}, tc.wantIn...) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

// TestFileConfigsShareTheBundleChecks checks that a key pair from files
// fails the shared checks with the same errors as a bundle.
func TestFileConfigsShareTheBundleChecks(t *testing.T) {
	dir := initDir(t, InitOptions{})
	path := func(name string) string { return filepath.Join(dir, name) }
	if _, err := ServerConfig(path(ServerCertFile), path(ClientKeyFile), path(CAFile)); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("another certificate's key: %v, want ErrKeyMismatch", err)
	}
	if _, err := ServerConfig(path(ClientCertFile), path(ClientKeyFile), path(CAFile)); !errors.Is(err, ErrWrongUsage) {
		t.Errorf("a client certificate for a server: %v, want ErrWrongUsage", err)
	}
}

func TestServerBundleRefusesBadFiles(t *testing.T) {
	dir := initDir(t, InitOptions{})
	if err := os.Rename(filepath.Join(dir, ClientKeyFile), filepath.Join(dir, ServerKeyFile)); err != nil {
		t.Fatal(err)
	}
	_, err := ServerBundle(dir)
	if !errors.Is(err, ErrKeyMismatch) || !strings.Contains(err.Error(), filepath.Join(dir, ServerKeyFile)) {
		t.Fatalf("ServerBundle error = %v, want one naming server.key as not matching", err)
	}
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
