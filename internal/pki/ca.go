package pki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Default validity periods, and how far into the past a certificate's
// NotBefore is set so that a peer whose clock runs slow still accepts it.
const (
	CAValidity     = 10 * 365 * 24 * time.Hour
	ServerValidity = 2 * 365 * 24 * time.Hour
	ClientValidity = 365 * 24 * time.Hour
	Backdate       = time.Hour
)

// DefaultCAName is the CommonName NewCA uses when given none.
const DefaultCAName = "fluidity CA"

// A CA is a certificate authority that can issue server and client
// certificates.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer

	// CertPEM and KeyPEM are Cert and Key in the form they are written to
	// and read from files.
	CertPEM, KeyPEM []byte
}

// Issued is a certificate with its private key, both PEM-encoded.
type Issued struct {
	CertPEM, KeyPEM []byte
}

// NewCA makes a self-signed CA with a new key. An empty commonName means
// [DefaultCAName]; a zero notBefore means [Backdate] before now, and a zero
// notAfter means [CAValidity] from now.
func NewCA(commonName string, notBefore, notAfter time.Time) (*CA, error) {
	if commonName == "" {
		commonName = DefaultCAName
	}
	notBefore, notAfter, err := validity(notBefore, notAfter, CAValidity)
	if err != nil {
		return nil, err
	}
	key, keyPEM, err := newKey()
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // it signs leaves only
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	return &CA{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}),
		KeyPEM:  keyPEM,
	}, nil
}

// LoadCA reads a CA written by [Init]. It checks that the certificate is a CA
// and that the key belongs to it, and refuses a key file that group or others
// can read.
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := readFile("CA certificate", certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readKeyFile("CA key", keyFile)
	if err != nil {
		return nil, err
	}
	certs, err := parseCertificates("CA certificate", certFile, certPEM)
	if err != nil {
		return nil, err
	}
	cert := certs[0]
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%s is not a CA certificate; check the path", certFile)
	}
	key, err := parseKey("CA key", keyFile, keyPEM)
	if err != nil {
		return nil, err
	}
	if !samePublicKey(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("CA key %s does not belong to CA certificate %s", keyFile, certFile)
	}
	return &CA{Cert: cert, Key: key, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// IssueServer issues a certificate for server authentication valid for the
// given names and addresses, at least one of which is required. A zero
// notBefore means [Backdate] before now, a zero notAfter means
// [ServerValidity] from now, and notAfter is cut to the CA's own expiry.
func (ca *CA) IssueServer(dnsNames []string, ips []net.IP, notBefore, notAfter time.Time) (*Issued, error) {
	if len(dnsNames) == 0 && len(ips) == 0 {
		return nil, errors.New("issue server certificate: no DNS name or IP address")
	}
	cn := ""
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    dnsNames,
		IPAddresses: ips,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	issued, err := ca.issue(tmpl, notBefore, notAfter, ServerValidity)
	if err != nil {
		return nil, fmt.Errorf("issue server certificate: %w", err)
	}
	return issued, nil
}

// IssueClient issues a certificate for client authentication whose
// CommonName is name. Zero times mean [Backdate] before now and
// [ClientValidity] from now, and notAfter is cut to the CA's own expiry.
func (ca *CA) IssueClient(name string, notBefore, notAfter time.Time) (*Issued, error) {
	if name == "" {
		return nil, errors.New("issue client certificate: empty name")
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	issued, err := ca.issue(tmpl, notBefore, notAfter, ClientValidity)
	if err != nil {
		return nil, fmt.Errorf("issue client certificate %q: %w", name, err)
	}
	return issued, nil
}

// issue fills in the fields every leaf shares and signs tmpl with a new key.
func (ca *CA) issue(tmpl *x509.Certificate, notBefore, notAfter time.Time, def time.Duration) (*Issued, error) {
	notBefore, notAfter, err := validity(notBefore, notAfter, def)
	if err != nil {
		return nil, err
	}
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	if !notAfter.After(notBefore) {
		return nil, fmt.Errorf("CA expired on %s", ca.Cert.NotAfter.Format(time.DateOnly))
	}
	key, keyPEM, err := newKey()
	if err != nil {
		return nil, err
	}
	if tmpl.SerialNumber, err = newSerial(); err != nil {
		return nil, err
	}
	tmpl.NotBefore, tmpl.NotAfter = notBefore, notAfter
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, err
	}
	return &Issued{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}),
		KeyPEM:  keyPEM,
	}, nil
}

// WriteFiles writes the certificate (mode 0644) and the key (mode 0600).
// Unless force is set it writes neither if either file exists, and the
// error says to pass --force.
func (is *Issued) WriteFiles(certFile, keyFile string, force bool) error {
	if !force {
		if err := refuseExisting(certFile, keyFile); err != nil {
			return err
		}
	}
	// The key goes first: a certificate without its key is the worse leftover.
	if err := writeFile(keyFile, is.KeyPEM, 0o600, force); err != nil {
		return err
	}
	if err := writeFile(certFile, is.CertPEM, 0o644, force); err != nil {
		if !force {
			removeFiles(keyFile)
		}
		return err
	}
	return nil
}

// TLSCertificate returns the pair as a [tls.Certificate].
func (is *Issued) TLSCertificate() (tls.Certificate, error) {
	return tls.X509KeyPair(is.CertPEM, is.KeyPEM)
}

// validity applies the defaults for zero times and checks the order.
func validity(notBefore, notAfter time.Time, def time.Duration) (time.Time, time.Time, error) {
	now := time.Now()
	if notBefore.IsZero() {
		notBefore = now.Add(-Backdate)
	}
	if notAfter.IsZero() {
		notAfter = now.Add(def)
	}
	if !notAfter.After(notBefore) {
		return time.Time{}, time.Time{}, fmt.Errorf("notAfter %s is not after notBefore %s", notAfter, notBefore)
	}
	return notBefore.UTC(), notAfter.UTC(), nil
}

// serialLimit is 2^128: serials are 128 random bits.
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

func newSerial() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return nil, fmt.Errorf("generate serial number: %w", err)
		}
		if n.Sign() > 0 { // RFC 5280 4.1.2.2: positive
			return n, nil
		}
	}
}

func samePublicKey(a, b crypto.PublicKey) bool {
	ader, err := x509.MarshalPKIXPublicKey(a)
	if err != nil {
		return false
	}
	bder, err := x509.MarshalPKIXPublicKey(b)
	return err == nil && bytes.Equal(ader, bder)
}
