package pki

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Revoked is what Revoke did.
type Revoked struct {
	Serial      *big.Int // the certificate's serial number
	Name        string   // its CommonName, when its file was found; else ""
	Fingerprint string   // its SHA-256 fingerprint, when its file was found; else ""
	CRLFile     string   // the CRL written
	Entries     int      // certificates the CRL revokes
	Already     bool     // it was revoked already; nothing was written
}

// Revoke revokes a client certificate issued by the CA in dir. target is
// a client's name, whose certificate is NAME.crt in dir (or client.crt,
// when that is its CommonName), or a serial number in hex. Revoke adds the
// certificate to dir's certificate revocation list, CRLFile, signed by the
// CA (and makes the list if it is missing), with a number one above the
// last. It needs ca.key.
func Revoke(dir, target string, now time.Time) (*Revoked, error) {
	ca, err := LoadCA(filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, err
	}
	res := &Revoked{CRLFile: filepath.Join(dir, CRLFile)}
	cert, err := findClientCert(dir, target)
	if err != nil {
		return nil, err
	}
	if cert != nil {
		if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
			return nil, fmt.Errorf("the certificate of %q was not issued by the CA in %s: %w", target, dir, err)
		}
		res.Serial, res.Name, res.Fingerprint = cert.SerialNumber, cert.Subject.CommonName, Fingerprint(cert)
	} else {
		_, isFP, serial, ok := parseRevokedEntry(target)
		if !ok || isFP {
			return nil, fmt.Errorf("%q is neither a client name with a certificate in %s (NAME.crt) nor a serial number in hex", target, dir)
		}
		res.Serial, _ = new(big.Int).SetString(serial, 16)
	}

	number := big.NewInt(1)
	var entries []x509.RevocationListEntry
	data, err := os.ReadFile(res.CRLFile)
	switch {
	case err == nil:
		old, err := parseCRL(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", res.CRLFile, err)
		}
		if err := old.CheckSignatureFrom(ca.Cert); err != nil {
			return nil, fmt.Errorf("%s is not signed by the CA in %s, so it cannot be extended: %w", res.CRLFile, dir, err)
		}
		entries = old.RevokedCertificateEntries
		if old.Number != nil {
			number.Add(old.Number, big.NewInt(1))
		}
	case !isNotExist(err):
		return nil, err
	}
	if slices.ContainsFunc(entries, func(e x509.RevocationListEntry) bool { return e.SerialNumber.Cmp(res.Serial) == 0 }) {
		res.Already, res.Entries = true, len(entries)
		return res, nil
	}
	entries = append(entries, x509.RevocationListEntry{SerialNumber: res.Serial, RevocationTime: now.UTC()})
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    number,
		ThisUpdate:                now.UTC(),
		NextUpdate:                ca.Cert.NotAfter, // the list is current until the next revocation
		RevokedCertificateEntries: entries,
	}, ca.Cert, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign the revocation list: %w", err)
	}
	if err := writeFile(res.CRLFile, pem.EncodeToMemory(&pem.Block{Type: pemCRL, Bytes: der}), 0o644, true); err != nil {
		return nil, fmt.Errorf("write %s: %w", res.CRLFile, err)
	}
	res.Entries = len(entries)
	return res, nil
}

// findClientCert returns the certificate of the client named name in dir,
// or nil if there is none (name may be a serial number).
func findClientCert(dir, name string) (*x509.Certificate, error) {
	if ValidateClientName(name) != nil {
		return nil, nil
	}
	for i, file := range []string{filepath.Join(dir, name+".crt"), filepath.Join(dir, ClientCertFile)} {
		data, err := os.ReadFile(file)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		certs, err := parseCertificates("client certificate", file, data)
		if err != nil {
			return nil, err
		}
		if i == 1 && certs[0].Subject.CommonName != name { // client.crt by its CommonName
			continue
		}
		return certs[0], nil
	}
	return nil, nil
}
