package pki

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrNoClientCertificate is the error a server handshake fails with when the
// client sent no certificate.
var ErrNoClientCertificate = errors.New("client sent no certificate")

// ServerConfig returns the exit's TLS configuration: TLS 1.3 only, ALPN h2
// then http/1.1, presenting the certificate in certFile and accepting only
// clients with a certificate for client authentication from the CA in
// caFile.
//
// A client without a certificate fails the handshake as under
// [tls.RequireAndVerifyClientCert], except that the server's error is
// [ErrNoClientCertificate], so callers can tell why with errors.Is, and the
// client is sent a bad_certificate alert rather than certificate_required.
// Session tickets are off: every connection proves its client certificate
// in full.
func ServerConfig(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := loadKeyPair("server", certFile, keyFile, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	pool, err := loadCAPool(caFile)
	if err != nil {
		return nil, err
	}
	return serverConfig(cert, pool), nil
}

// serverConfig is the exit's TLS configuration around a checked key pair
// and the pool of CAs client certificates must chain to.
func serverConfig(cert tls.Certificate, clientCAs *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{cert},
		NextProtos:             []string{"h2", "http/1.1"},
		ClientCAs:              clientCAs,
		ClientAuth:             tls.VerifyClientCertIfGiven,
		VerifyConnection:       requireClientCertificate,
		SessionTicketsDisabled: true,
	}
}

// requireClientCertificate is the server's VerifyConnection. Any certificate
// the client sent has already been verified against ClientCAs by then.
func requireClientCertificate(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return ErrNoClientCertificate
	}
	return nil
}

// ClientConfig returns the agent's TLS configuration: TLS 1.3 only, ALPN h2,
// presenting the certificate in certFile and accepting only a server
// certificate from the CA in caFile for serverName, whatever address is
// dialed. An empty serverName means [DefaultServerName].
//
// The client presents its certificate even if the server's list of
// acceptable CAs does not name its issuer, so that a server with another CA
// reports the certificate's authority as unknown rather than missing.
func ClientConfig(certFile, keyFile, caFile, serverName string) (*tls.Config, error) {
	if serverName == "" {
		serverName = DefaultServerName
	}
	cert, err := loadKeyPair("client", certFile, keyFile, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	pool, err := loadCAPool(caFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		},
		NextProtos: []string{"h2"},
		RootCAs:    pool,
		ServerName: serverName,
	}, nil
}

// loadKeyPair loads a certificate and its key for role ("server",
// "client"), checking that the key is private, belongs to the certificate,
// and that the certificate is current and meant for usage.
func loadKeyPair(role, certFile, keyFile string, usage x509.ExtKeyUsage) (tls.Certificate, error) {
	certPEM, err := readFile(role+" certificate", certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := readKeyFile(role+" key", keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	certs, err := parseCertificates(role+" certificate", certFile, certPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := parseKey(role+" key", keyFile, keyPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	return checkKeyPair(role, pairSource{
		cert:      role + " certificate " + certFile,
		key:       role + " key " + keyFile,
		leaf:      certFile,
		wrongKind: "check the path",
		renew:     fmt.Sprintf("issue a new one (%s --force replaces every file)", initHint(certFile)),
	}, certs, key, usage)
}

// pairSource says in errors where a key pair came from and what to do.
type pairSource struct {
	cert, key string // name the certificate and the key: "server certificate /d/server.crt", "server key /d/server.key"
	leaf      string // names the leaf certificate as the subject of a sentence
	wrongKind string // what to do about a certificate without the usage
	renew     string // what to do about a certificate that is not current
}

// checkKeyPair checks a certificate chain (leaf first) and its key for
// role: the key belongs to the leaf, the leaf is meant for usage and is
// current. It returns them as a [tls.Certificate].
func checkKeyPair(role string, src pairSource, chain []*x509.Certificate, key crypto.Signer, usage x509.ExtKeyUsage) (tls.Certificate, error) {
	leaf := chain[0]
	if !samePublicKey(leaf.PublicKey, key.Public()) {
		return tls.Certificate{}, problem(ErrKeyMismatch, "%s does not go with %s (it is the key of another certificate)", src.key, src.cert)
	}
	if len(leaf.ExtKeyUsage) > 0 && !slices.Contains(leaf.ExtKeyUsage, usage) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return tls.Certificate{}, problem(ErrWrongUsage, "%s is not a %s certificate (it lacks the %s usage); %s", src.leaf, role, usageName(usage), src.wrongKind)
	}
	if now := time.Now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return tls.Certificate{}, problem(ErrNotCurrent, "%s is valid only from %s to %s; %s",
			src.cert, leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339), src.renew)
	}
	pair := tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range chain {
		pair.Certificate = append(pair.Certificate, c.Raw)
	}
	return pair, nil
}

// loadCAPool returns a pool holding only the CA certificates in caFile.
func loadCAPool(caFile string) (*x509.CertPool, error) {
	certs, err := LoadCACertificates(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// LoadCACertificates returns the CA certificates in caFile, and an error
// if it holds anything else.
func LoadCACertificates(caFile string) ([]*x509.Certificate, error) {
	data, err := readFile("CA certificate", caFile)
	if err != nil {
		return nil, err
	}
	certs, err := parseCertificates("CA certificate", caFile, data)
	if err != nil {
		return nil, err
	}
	for _, c := range certs {
		if !c.IsCA {
			return nil, fmt.Errorf("%s holds a certificate that is not a CA (%q); check the path", caFile, c.Subject.CommonName)
		}
	}
	return certs, nil
}

func usageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageServerAuth:
		return "serverAuth"
	case x509.ExtKeyUsageClientAuth:
		return "clientAuth"
	}
	return fmt.Sprint(u)
}
