package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

const (
	pemCertificate  = "CERTIFICATE"
	pemPrivateKey   = "PRIVATE KEY"
	pemECPrivateKey = "EC PRIVATE KEY"
)

// newKey returns a fresh ECDSA P-256 key and its PEM "PRIVATE KEY" encoding.
func newKey() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// initHint is the command that creates every file a config refers to.
func initHint(file string) string {
	return fmt.Sprintf("run `fluidity certs init --dir %s`", filepath.Dir(file))
}

// readFile reads a certificate or key file. what names it in errors
// ("CA certificate"), and a missing file's error says how to create one.
func readFile(what, file string) ([]byte, error) {
	data, err := os.ReadFile(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s %s does not exist (%s to create it): %w", what, file, initHint(file), fs.ErrNotExist)
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return data, nil
}

// readKeyFile is readFile for a private key: it also refuses a key that
// group or others may read, as ssh does.
func readKeyFile(what, file string) ([]byte, error) {
	data, err := readFile(what, file)
	if err != nil {
		return nil, err
	}
	if runtime.GOOS == "windows" { // permission bits mean nothing there
		return data, nil
	}
	info, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s %s is readable by group or others (mode %04o); run `chmod 600 %s`", what, file, perm, file)
	}
	return data, nil
}

// parseCertificates decodes every CERTIFICATE block in data, which must hold
// at least one.
func parseCertificates(what, file string, data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != pemCertificate {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s %s is not a valid certificate (%s --force to replace it): %w", what, file, initHint(file), err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s %s holds no PEM certificate; check the path, or %s --force to replace it", what, file, initHint(file))
	}
	return certs, nil
}

// parseKey decodes the first PRIVATE KEY (PKCS #8) or EC PRIVATE KEY block in data.
func parseKey(what, file string, data []byte) (crypto.Signer, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("%s %s holds no PEM private key; check the path, or %s --force to replace it", what, file, initHint(file))
		}
		if block.Type != pemPrivateKey && block.Type != pemECPrivateKey {
			continue
		}
		signer, err := parseKeyBlock(block)
		if err != nil {
			return nil, fmt.Errorf("%s %s is not a valid private key: %w", what, file, err)
		}
		return signer, nil
	}
}

// parseKeyBlock decodes a PRIVATE KEY (PKCS #8) or EC PRIVATE KEY block.
func parseKeyBlock(block *pem.Block) (crypto.Signer, error) {
	var key any
	var err error
	if block.Type == pemPrivateKey {
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	} else {
		key, err = x509.ParseECPrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a %T cannot sign", key)
	}
	return signer, nil
}

// writeFile writes data to path with exactly mode perm. Without force it
// fails if path exists; with force it replaces path atomically, so a key
// that was left with a wider mode does not keep it.
func writeFile(path string, data []byte, perm fs.FileMode, force bool) error {
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists; pass --force to replace it: %w", path, fs.ErrExist)
		}
		if err != nil {
			return err
		}
		if err := finishFile(f, data, perm); err != nil {
			os.Remove(path)
			return err
		}
		return nil
	}

	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	err = finishFile(f, data, perm)
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// finishFile sets f's mode (independent of the umask), writes data, syncs and
// closes f.
func finishFile(f *os.File, data []byte, perm fs.FileMode) error {
	err := f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
