package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNewCA(t *testing.T) {
	before := time.Now()
	ca, err := NewCA("", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Cert
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("IsCA %v, BasicConstraintsValid %v, MaxPathLen %d (zero %v); want a CA for leaves only", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("KeyUsage %b lacks CertSign", c.KeyUsage)
	}
	if c.Subject.CommonName != DefaultCAName {
		t.Errorf("CommonName = %q, want %q", c.Subject.CommonName, DefaultCAName)
	}
	checkP256(t, c)
	checkValidity(t, c, before, CAValidity)
	checkKeyPEM(t, ca.KeyPEM)
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}

	other, err := NewCA("", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if c.SerialNumber.Cmp(other.Cert.SerialNumber) == 0 {
		t.Errorf("two CAs share serial %v", c.SerialNumber)
	}

	if _, err := NewCA("", future, past); err == nil {
		t.Error("NewCA accepted notAfter before notBefore")
	}
}

func TestIssue(t *testing.T) {
	ca, err := NewCA("", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	verify := func(c *x509.Certificate, name string, usage x509.ExtKeyUsage) error {
		_, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{usage}})
		return err
	}

	before := time.Now()
	server, err := ca.IssueServer([]string{"fluidity-server", "exit.example.com"}, []net.IP{net.ParseIP("192.0.2.1")}, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.IssueClient("laptop", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		issued    *Issued
		validity  time.Duration
		usage     x509.ExtKeyUsage // the one it must verify for
		wrong     x509.ExtKeyUsage // the one it must not
		hostnames []string         // that it must verify for
	}{
		{"a server certificate", server, ServerValidity, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth, []string{"fluidity-server", "exit.example.com", "192.0.2.1"}},
		{"a client certificate", client, ClientValidity, x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth, []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" verifies for its own usage only", func(t *testing.T) {
			c := parseCertPEM(t, tt.issued.CertPEM)
			checkP256(t, c)
			checkKeyPEM(t, tt.issued.KeyPEM)
			checkValidity(t, c, before, tt.validity)
			if c.IsCA {
				t.Error("leaf is a CA")
			}
			for _, h := range tt.hostnames {
				if err := verify(c, h, tt.usage); err != nil {
					t.Errorf("verify for %q: %v", h, err)
				}
			}
			err := verify(c, tt.hostnames[0], tt.wrong)
			if e, ok := errors.AsType[x509.CertificateInvalidError](err); !ok || e.Reason != x509.IncompatibleUsage {
				t.Errorf("verify for the wrong usage: %v, want an incompatible usage", err)
			}
			if _, err := tt.issued.TLSCertificate(); err != nil {
				t.Errorf("TLSCertificate: %v", err)
			}
		})
	}

	t.Run("a client certificate is named by its CommonName", func(t *testing.T) {
		if cn := parseCertPEM(t, client.CertPEM).Subject.CommonName; cn != "laptop" {
			t.Errorf("CommonName = %q", cn)
		}
	})
	t.Run("a server certificate needs a name", func(t *testing.T) {
		if _, err := ca.IssueServer(nil, nil, time.Time{}, time.Time{}); err == nil {
			t.Error("IssueServer without names succeeded")
		}
	})
	t.Run("serials differ", func(t *testing.T) {
		a, b := parseCertPEM(t, server.CertPEM).SerialNumber, parseCertPEM(t, client.CertPEM).SerialNumber
		if a.Cmp(b) == 0 {
			t.Errorf("serials equal: %v", a)
		}
	})
}

func TestIssueStopsAtCAExpiry(t *testing.T) {
	soon := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	ca, err := NewCA("", time.Time{}, soon)
	if err != nil {
		t.Fatal(err)
	}
	is, err := ca.IssueClient("laptop", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if got := parseCertPEM(t, is.CertPEM).NotAfter; !got.Equal(soon) {
		t.Errorf("NotAfter = %v, want the CA's %v", got, soon)
	}

	expired, err := NewCA("", past.AddDate(-1, 0, 0), past)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := expired.IssueClient("laptop", time.Time{}, time.Time{}); err == nil {
		t.Error("an expired CA issued a certificate")
	}
}

func TestLoadCA(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA("", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := writeIssued(t, &Issued{CertPEM: ca.CertPEM, KeyPEM: ca.KeyPEM}, dir, "ca")

	loaded, err := LoadCA(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Cert.Equal(ca.Cert) {
		t.Error("loaded a different certificate")
	}
	is, err := loaded.IssueClient("laptop", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := parseCertPEM(t, is.CertPEM).CheckSignatureFrom(ca.Cert); err != nil {
		t.Errorf("certificate issued by the loaded CA: %v", err)
	}

	other, err := NewCA("", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey := writeIssued(t, &Issued{CertPEM: other.CertPEM, KeyPEM: other.KeyPEM}, dir, "other")
	leafCert, leafKey := writeIssued(t, is, dir, "leaf")
	openKey := filepath.Join(dir, "open.key")
	if err := os.WriteFile(openKey, ca.KeyPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(openKey, 0o644)
	certAsKey := filepath.Join(dir, "cert-as.key")
	if err := os.WriteFile(certAsKey, ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, certFile, keyFile, wantIn string
	}{
		{"a key from another CA is refused", certFile, otherKey, "does not belong"},
		{"a certificate that is not a CA is refused", leafCert, leafKey, "not a CA"},
		{"an open key is refused", certFile, openKey, "chmod 600"},
		{"a missing certificate says how to create it", filepath.Join(dir, "none.crt"), keyFile, "fluidity certs init"},
		{"a certificate file given as key is refused", certFile, certAsKey, "no PEM private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadCA(tt.certFile, tt.keyFile)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("LoadCA error = %v, want one mentioning %q", err, tt.wantIn)
			}
		})
	}
}

func TestWriteFiles(t *testing.T) {
	ca, err := NewCA("", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := ca.IssueClient("first", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := ca.IssueClient("second", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("modes are 0644 and 0600", func(t *testing.T) {
		certFile, keyFile := writeIssued(t, first, t.TempDir(), "x")
		if m := mode(t, certFile); m != 0o644 {
			t.Errorf("certificate mode %04o, want 0644", m)
		}
		if m := mode(t, keyFile); m != 0o600 {
			t.Errorf("key mode %04o, want 0600", m)
		}
	})

	t.Run("an existing file is kept without force", func(t *testing.T) {
		for _, existing := range []string{"x.crt", "x.key"} {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, existing), []byte("keep"), 0o600)
			err := first.WriteFiles(filepath.Join(dir, "x.crt"), filepath.Join(dir, "x.key"), false)
			if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "--force") {
				t.Errorf("with %s present: error %v, want one that exists and says --force", existing, err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("with %s present: %d files after a refused write, want 1", existing, len(entries))
			}
			if data, _ := os.ReadFile(filepath.Join(dir, existing)); string(data) != "keep" {
				t.Errorf("%s was changed to %q", existing, data)
			}
		}
	})

	t.Run("force replaces both and tightens an open key", func(t *testing.T) {
		dir := t.TempDir()
		certFile, keyFile := writeIssued(t, first, dir, "x")
		os.Chmod(keyFile, 0o644)
		if err := second.WriteFiles(certFile, keyFile, true); err != nil {
			t.Fatal(err)
		}
		if cn := parseCertFile(t, certFile).Subject.CommonName; cn != "second" {
			t.Errorf("certificate is %q's, want second's", cn)
		}
		if data, _ := os.ReadFile(keyFile); string(data) != string(second.KeyPEM) {
			t.Error("key was not replaced")
		}
		if m := mode(t, keyFile); m != 0o600 {
			t.Errorf("key mode %04o after force, want 0600", m)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 2 {
			t.Errorf("%d files in the directory, want 2 (no temporaries left)", len(entries))
		}
	})
}

func checkP256(t *testing.T, c *x509.Certificate) {
	t.Helper()
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
	}
	if n := c.SerialNumber.BitLen(); c.SerialNumber.Sign() <= 0 || n > 128 || n < 64 {
		t.Errorf("serial %v (%d bits), want a positive random 128-bit number", c.SerialNumber, n)
	}
}

func checkKeyPEM(t *testing.T, keyPEM []byte) {
	t.Helper()
	block, rest := pem.Decode(keyPEM)
	if block == nil || block.Type != "PRIVATE KEY" || len(rest) != 0 {
		t.Fatalf("key PEM is not one PRIVATE KEY block: %q", keyPEM)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := key.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", key)
	}
}

// checkValidity checks that c starts Backdate before the time it was made
// (after before) and lasts d.
func checkValidity(t *testing.T, c *x509.Certificate, before time.Time, d time.Duration) {
	t.Helper()
	after := time.Now()
	lo, hi := before.Add(-Backdate).Truncate(time.Second), after.Add(-Backdate)
	if c.NotBefore.Before(lo) || c.NotBefore.After(hi) {
		t.Errorf("NotBefore %v, want between %v and %v", c.NotBefore, lo, hi)
	}
	if got := c.NotAfter.Sub(c.NotBefore); got < d+Backdate-2*time.Second || got > d+Backdate+2*time.Second {
		t.Errorf("valid for %v, want %v", got, d+Backdate)
	}
}
