package pki

import (
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

var allFiles = []string{CAFile, CAKeyFile, ServerCertFile, ServerKeyFile, ClientCertFile, ClientKeyFile}

func TestInit(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	dir := initDir(t, InitOptions{Now: func() time.Time { return now }})

	t.Run("it writes six files with private keys 0600 in a 0700 directory", func(t *testing.T) {
		if m := mode(t, dir); m != 0o700 {
			t.Errorf("directory mode %04o, want 0700", m)
		}
		for _, f := range allFiles {
			want := os.FileMode(0o644)
			if strings.HasSuffix(f, ".key") {
				want = 0o600
			}
			if m := mode(t, filepath.Join(dir, f)); m != want {
				t.Errorf("%s mode %04o, want %04o", f, m, want)
			}
		}
	})

	ca := parseCertFile(t, filepath.Join(dir, CAFile))
	server := parseCertFile(t, filepath.Join(dir, ServerCertFile))
	client := parseCertFile(t, filepath.Join(dir, ClientCertFile))
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	opts := func(name string, usage x509.ExtKeyUsage) x509.VerifyOptions {
		return x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{usage}, CurrentTime: now}
	}

	t.Run("the server certificate verifies for its default names and addresses", func(t *testing.T) {
		for _, name := range []string{DefaultServerName, "localhost", "127.0.0.1", "::1"} {
			if _, err := server.Verify(opts(name, x509.ExtKeyUsageServerAuth)); err != nil {
				t.Errorf("verify for %s: %v", name, err)
			}
		}
		if _, err := server.Verify(opts(DefaultServerName, x509.ExtKeyUsageClientAuth)); err == nil {
			t.Error("the server certificate verifies as a client certificate")
		}
	})

	t.Run("the client certificate verifies for client authentication only", func(t *testing.T) {
		if client.Subject.CommonName != DefaultClientName {
			t.Errorf("client CommonName = %q, want %q", client.Subject.CommonName, DefaultClientName)
		}
		if _, err := client.Verify(opts("", x509.ExtKeyUsageClientAuth)); err != nil {
			t.Errorf("verify: %v", err)
		}
		if _, err := client.Verify(opts("", x509.ExtKeyUsageServerAuth)); err == nil {
			t.Error("the client certificate verifies as a server certificate")
		}
	})

	t.Run("validity follows Now", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			cert *x509.Certificate
			d    time.Duration
		}{{"CA", ca, CAValidity}, {"server", server, ServerValidity}, {"client", client, ClientValidity}} {
			if !tt.cert.NotBefore.Equal(now.Add(-Backdate)) || !tt.cert.NotAfter.Equal(now.Add(tt.d)) {
				t.Errorf("%s valid %v to %v, want %v to %v", tt.name, tt.cert.NotBefore, tt.cert.NotAfter, now.Add(-Backdate), now.Add(tt.d))
			}
		}
	})
}

func TestInitServerNames(t *testing.T) {
	dir := initDir(t, InitOptions{
		ServerNames: []string{"exit.example.com", DefaultServerName, "10.0.0.1", "EXIT.example.com.", " localhost "},
		ServerIPs:   []net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("2001:db8::1"), net.IPv6loopback, net.ParseIP("127.0.0.1")},
		ClientName:  "laptop",
	})
	server := parseCertFile(t, filepath.Join(dir, ServerCertFile))
	wantDNS := []string{DefaultServerName, "localhost", "exit.example.com"}
	if !slices.Equal(server.DNSNames, wantDNS) {
		t.Errorf("DNS names %q, want %q", server.DNSNames, wantDNS)
	}
	var ips []string
	for _, ip := range server.IPAddresses {
		ips = append(ips, ip.String())
	}
	wantIPs := []string{"127.0.0.1", "::1", "10.0.0.1", "2001:db8::1"}
	if !slices.Equal(ips, wantIPs) {
		t.Errorf("IP addresses %q, want %q", ips, wantIPs)
	}
	if cn := parseCertFile(t, filepath.Join(dir, ClientCertFile)).Subject.CommonName; cn != "laptop" {
		t.Errorf("client CommonName = %q, want laptop", cn)
	}
}

func TestInitRefusesToOverwrite(t *testing.T) {
	for _, existing := range allFiles {
		t.Run("an existing "+existing+" stops it writing anything", func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, existing)
			if err := os.WriteFile(path, []byte("keep"), 0o600); err != nil {
				t.Fatal(err)
			}
			err := Init(InitOptions{Dir: dir})
			if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "--force") {
				t.Fatalf("Init error = %v, want one naming %s and --force", err, path)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("%d files after a refused Init, want 1", len(entries))
			}
			if data, _ := os.ReadFile(path); string(data) != "keep" {
				t.Errorf("%s changed to %q", existing, data)
			}
		})
	}
}

func TestInitForce(t *testing.T) {
	dir := initDir(t, InitOptions{})
	oldCA := parseCertFile(t, filepath.Join(dir, CAFile))
	os.Chmod(filepath.Join(dir, CAKeyFile), 0o644)

	if err := Init(InitOptions{Dir: dir, Force: true}); err != nil {
		t.Fatal(err)
	}
	newCA := parseCertFile(t, filepath.Join(dir, CAFile))
	if newCA.Equal(oldCA) {
		t.Error("the CA was not replaced")
	}
	if err := parseCertFile(t, filepath.Join(dir, ClientCertFile)).CheckSignatureFrom(newCA); err != nil {
		t.Errorf("the new client certificate is not from the new CA: %v", err)
	}
	if m := mode(t, filepath.Join(dir, CAKeyFile)); m != 0o600 {
		t.Errorf("replaced CA key mode %04o, want 0600", m)
	}
	if _, err := LoadCA(filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)); err != nil {
		t.Errorf("the replaced CA does not load: %v", err)
	}
}

func TestInitRejectsBadClientName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	if err := Init(InitOptions{Dir: dir, ClientName: "../escape"}); err == nil {
		t.Fatal("Init accepted client name ../escape")
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Init created %s after refusing: %v", dir, err)
	}
}

func TestIssueClient(t *testing.T) {
	dir := initDir(t, InitOptions{})
	ca := parseCertFile(t, filepath.Join(dir, CAFile))

	certPath, keyPath, err := IssueClient(dir, "phone", false)
	if err != nil {
		t.Fatal(err)
	}
	if certPath != filepath.Join(dir, "phone.crt") || keyPath != filepath.Join(dir, "phone.key") {
		t.Errorf("paths %s, %s", certPath, keyPath)
	}
	if m := mode(t, keyPath); m != 0o600 {
		t.Errorf("key mode %04o, want 0600", m)
	}
	cert := parseCertFile(t, certPath)
	if cert.Subject.CommonName != "phone" {
		t.Errorf("CommonName = %q, want phone", cert.Subject.CommonName)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("verify: %v", err)
	}
	if _, err := ClientConfig(certPath, keyPath, filepath.Join(dir, CAFile), ""); err != nil {
		t.Errorf("ClientConfig on the issued files: %v", err)
	}

	t.Run("it refuses to replace a client without force", func(t *testing.T) {
		_, _, err := IssueClient(dir, "phone", false)
		if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "--force") {
			t.Errorf("error = %v, want one saying --force", err)
		}
		if !parseCertFile(t, certPath).Equal(cert) {
			t.Error("the certificate was replaced")
		}
	})

	t.Run("it replaces a client with force", func(t *testing.T) {
		if _, _, err := IssueClient(dir, "phone", true); err != nil {
			t.Fatal(err)
		}
		if parseCertFile(t, certPath).Equal(cert) {
			t.Error("the certificate was not replaced")
		}
	})

	t.Run("it needs the CA", func(t *testing.T) {
		empty := t.TempDir()
		_, _, err := IssueClient(empty, "phone", false)
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "fluidity certs init --dir "+empty) {
			t.Errorf("error = %v, want a missing file and how to create it", err)
		}
	})

	t.Run("a reserved name writes nothing", func(t *testing.T) {
		before, _ := os.ReadFile(filepath.Join(dir, CAFile))
		if _, _, err := IssueClient(dir, "CA", true); err == nil {
			t.Fatal("IssueClient accepted CA")
		}
		after, _ := os.ReadFile(filepath.Join(dir, CAFile))
		if string(before) != string(after) {
			t.Error("ca.crt changed")
		}
	})
}

func TestValidateClientName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"laptop", true},
		{"my-phone_2.home", true},
		{"Work.Laptop-01", true},
		{strings.Repeat("x", 64), true},
		{"client", true},
		{"", false},
		{strings.Repeat("x", 65), false},
		{".hidden", false},
		{"..", false},
		{"../escape", false},
		{"a/b", false},
		{`a\b`, false},
		{"two words", false},
		{"café", false},
		{"nul\x00", false},
		{"ca", false},
		{"CA", false},
		{"server", false},
		{"Server", false},
	}
	for _, tt := range tests {
		err := ValidateClientName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateClientName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}
