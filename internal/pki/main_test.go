package pki

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// initDir runs Init in a new temporary directory and returns it.
func initDir(t testing.TB, opts InitOptions) string {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = filepath.Join(t.TempDir(), "certs")
	}
	if err := Init(opts); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return opts.Dir
}

// parseCertFile parses the first certificate in a PEM file.
func parseCertFile(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return parseCertPEM(t, data)
}

func parseCertPEM(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("no CERTIFICATE block in %q", data)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// mode returns a file's permission bits.
func mode(t *testing.T, file string) os.FileMode {
	t.Helper()
	info, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode().Perm()
}

// writeIssued writes an issued pair into dir as name.crt and name.key and
// returns the paths.
func writeIssued(t *testing.T, is *Issued, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile = filepath.Join(dir, name+".crt")
	keyFile = filepath.Join(dir, name+".key")
	if err := is.WriteFiles(certFile, keyFile, false); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

var (
	past   = time.Now().Add(-48 * time.Hour)
	future = time.Now().Add(48 * time.Hour)
)
