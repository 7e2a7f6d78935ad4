package pki

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzServerConfigFromBundle feeds the bundle parser arbitrary values, as
// an SSM parameter or a secret could hold: it must not panic, must refuse
// anything over MaxBundleSize, and every refusal must wrap one of the
// package's Err values and name the source.
func FuzzServerConfigFromBundle(f *testing.F) {
	dir := initDir(f, InitOptions{})
	good, err := ServerBundle(dir)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("hello"))
	kinds := []error{ErrNotPEM, ErrBundleTooLarge, ErrNoCA, ErrManyCAs, ErrNoCertificate, ErrNoKey, ErrManyKeys, ErrKeyMismatch, ErrWrongUsage, ErrNotCurrent}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ServerConfigFromBundle("fuzz://source", data)
		if err == nil {
			if len(data) > MaxBundleSize || len(cfg.Certificates) != 1 || cfg.ClientCAs == nil {
				t.Fatalf("accepted %d bytes giving %d certificates", len(data), len(cfg.Certificates))
			}
			return
		}
		if !bytes.Contains([]byte(err.Error()), []byte("fuzz://source")) {
			t.Fatalf("error %q does not name the source", err)
		}
		for _, k := range kinds {
			if errors.Is(err, k) {
				return
			}
		}
		t.Fatalf("error %q wraps none of the package's Err values", err)
	})
}
