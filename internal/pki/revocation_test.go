package pki

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// chainOf is the verified chain of the client certificate file, as the
// exit's handshake sees it: the leaf, then the CA of dir.
func chainOf(t *testing.T, dir, certFile string) []*x509.Certificate {
	t.Helper()
	return []*x509.Certificate{parseCertFile(t, certFile), parseCertFile(t, filepath.Join(dir, CAFile))}
}

func TestRevokeWritesACRLThatRevokes(t *testing.T) {
	dir := initDir(t, InitOptions{})
	laptopCert, _, err := IssueClient(dir, "laptop", false)
	if err != nil {
		t.Fatal(err)
	}
	phoneCert, _, err := IssueClient(dir, "phone", false)
	if err != nil {
		t.Fatal(err)
	}
	laptop, phone := chainOf(t, dir, laptopCert), chainOf(t, dir, phoneCert)

	res, err := Revoke(dir, "laptop", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res.Name != "laptop" || res.Serial.Cmp(laptop[0].SerialNumber) != 0 || res.Entries != 1 || res.Already || res.Fingerprint != Fingerprint(laptop[0]) {
		t.Fatalf("Revoke(laptop) = %+v", res)
	}
	r, err := LoadRevocations("", filepath.Join(dir, CRLFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CheckCRLIssuer(laptop[1]); err != nil {
		t.Fatal(err)
	}
	if err := r.Check(laptop); !errors.Is(err, ErrRevoked) || !strings.Contains(err.Error(), `"laptop"`) {
		t.Fatalf("laptop: %v; want ErrRevoked naming it", err)
	}
	if err := r.Check(phone); err != nil {
		t.Fatalf("phone: %v; want not revoked", err)
	}

	t.Run("by serial number, as openssl prints it", func(t *testing.T) {
		serial := FormatSerial(phone[0].SerialNumber)
		var colons []string
		for i := len(serial); i > 0; i -= 2 {
			colons = append([]string{serial[max(0, i-2):i]}, colons...)
		}
		res, err := Revoke(dir, strings.Join(colons, ":"), time.Now())
		if err != nil || res.Entries != 2 || res.Name != "" {
			t.Fatalf("Revoke(serial) = %+v, %v", res, err)
		}
		r, _ := LoadRevocations("", filepath.Join(dir, CRLFile))
		if r.Check(phone) == nil || r.Check(laptop) == nil {
			t.Fatal("after two revocations, both are not revoked")
		}
		if res, err := Revoke(dir, "phone", time.Now()); err != nil || !res.Already {
			t.Fatalf("revoking again: %+v, %v; want Already", res, err)
		}
	})

	t.Run("the client of certs init, by its name", func(t *testing.T) {
		res, err := Revoke(dir, DefaultClientName, time.Now())
		if err != nil || res.Name != DefaultClientName {
			t.Fatalf("Revoke(%s) = %+v, %v", DefaultClientName, res, err)
		}
	})

	t.Run("neither a name nor a serial is refused", func(t *testing.T) {
		if _, err := Revoke(dir, "no-such-client", time.Now()); err == nil || !strings.Contains(err.Error(), "neither") {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("a CRL of another CA revokes nothing here", func(t *testing.T) {
		other := initDir(t, InitOptions{})
		otherCert, _, _ := IssueClient(other, "laptop", false)
		if _, err := Revoke(other, "laptop", time.Now()); err != nil {
			t.Fatal(err)
		}
		foreign, err := LoadRevocations("", filepath.Join(other, CRLFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := foreign.CheckCRLIssuer(laptop[1]); err == nil {
			t.Fatal("a CRL of another CA passed CheckCRLIssuer")
		}
		// A serial our CRL lists, on a certificate of another issuer, is not
		// revoked by it: the CRL's signature must match the issuer.
		if err := r.Check([]*x509.Certificate{laptop[0], parseCertFile(t, filepath.Join(other, CAFile))}); err != nil {
			t.Fatalf("our CRL revoked a certificate of another CA: %v", err)
		}
		if err := foreign.Check(chainOf(t, other, otherCert)); !errors.Is(err, ErrRevoked) {
			t.Fatalf("the other CA's CRL does not revoke its own certificate: %v", err)
		}
	})
}

func TestRevocationListFile(t *testing.T) {
	dir := initDir(t, InitOptions{})
	laptopCert, _, _ := IssueClient(dir, "laptop", false)
	phoneCert, _, _ := IssueClient(dir, "phone", false)
	laptop, phone := chainOf(t, dir, laptopCert), chainOf(t, dir, phoneCert)
	client := chainOf(t, dir, filepath.Join(dir, ClientCertFile))
	list := filepath.Join(t.TempDir(), "revoked.txt")
	write := func(s string) {
		if err := os.WriteFile(list, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	write("# lost 2025-01-07\n" + Fingerprint(laptop[0]) + "  # the laptop\n\nserial=" + FormatSerial(phone[0].SerialNumber) + "\n")
	r, err := LoadRevocations(list, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Check(laptop); !errors.Is(err, ErrRevoked) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("laptop by fingerprint: %v; want ErrRevoked naming line 2", err)
	}
	if err := r.Check(phone); !errors.Is(err, ErrRevoked) || !strings.Contains(err.Error(), "line 4") {
		t.Errorf("phone by serial: %v; want ErrRevoked naming line 4", err)
	}
	if err := r.Check(client); err != nil {
		t.Errorf("a certificate not listed: %v", err)
	}
	if s, f, c := r.Len(); s != 1 || f != 1 || c != 0 {
		t.Errorf("Len = %d, %d, %d", s, f, c)
	}

	for _, bad := range []string{"laptop", "sha256:abcd", "zz:11", strings.Repeat("ab", 21)} {
		write(bad + "\n")
		if _, err := LoadRevocations(list, ""); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("entry %q: %v; want an error naming line 1", bad, err)
		}
	}
	if _, err := LoadRevocations(filepath.Join(dir, "missing.txt"), ""); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing list: %v; want fs.ErrNotExist", err)
	}
}

func TestRevocationWatcherReloads(t *testing.T) {
	dir := initDir(t, InitOptions{})
	laptopCert, _, _ := IssueClient(dir, "laptop", false)
	laptop := chainOf(t, dir, laptopCert)
	var changes atomic.Int32
	logs := &lockedBuffer{}
	w, err := NewRevocationWatcher(RevocationConfig{
		CRL: filepath.Join(dir, CRLFile), CRLOptional: true, CAs: laptop[1:],
		Interval: 10 * time.Millisecond, OnChange: func() { changes.Add(1) },
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatalf("a missing optional CRL: %v", err)
	}
	if err := w.Check(laptop); err != nil {
		t.Fatalf("before any revocation: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	if _, err := Revoke(dir, "laptop", time.Now()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for w.Check(laptop) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the new CRL was not loaded")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if changes.Load() != 1 {
		t.Fatalf("OnChange called %d times; want 1", changes.Load())
	}

	// A broken file keeps the last good set.
	if err := os.WriteFile(filepath.Join(dir, CRLFile), []byte("half a CRL"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "revocation list not reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("a broken CRL was not reported:\n%s", logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if w.Check(laptop) == nil {
		t.Fatal("a broken CRL replaced the last good one")
	}

	// So does a CRL that was read once and is gone.
	before := strings.Count(logs.String(), "revocation list not reloaded")
	if err := os.Remove(filepath.Join(dir, CRLFile)); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for strings.Count(logs.String(), "revocation list not reloaded") == before {
		if time.Now().After(deadline) {
			t.Fatalf("a removed CRL was not reported:\n%s", logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if w.Check(laptop) == nil {
		t.Fatal("removing the CRL lifted the revocation")
	}
}

// lockedBuffer is a log sink safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestRevokedHandshakeFailure(t *testing.T) {
	if got := HandshakeFailure(errors.Join(errors.New("tls: x"), ErrRevoked)); got != "certificate revoked" {
		t.Fatalf("HandshakeFailure = %q", got)
	}
}
