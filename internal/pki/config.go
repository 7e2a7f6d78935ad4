package pki

import (
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
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{cert},
		NextProtos:             []string{"h2", "http/1.1"},
		ClientCAs:              pool,
		ClientAuth:             tls.VerifyClientCertIfGiven,
		VerifyConnection:       requireClientCertificate,
		SessionTicketsDisabled: true,
	}, nil
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
	if _, err := parseKey(role+" key", keyFile, keyPEM); err != nil {
		return tls.Certificate{}, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s key %s does not go with certificate %s: %w", role, keyFile, certFile, err)
	}
	leaf := certs[0]
	if len(leaf.ExtKeyUsage) > 0 && !slices.Contains(leaf.ExtKeyUsage, usage) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return tls.Certificate{}, fmt.Errorf("%s is not a %s certificate (it lacks the %s usage); check the path", certFile, role, usageName(usage))
	}
	if now := time.Now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return tls.Certificate{}, fmt.Errorf("%s certificate %s is valid only from %s to %s; issue a new one (%s --force replaces every file)",
			role, certFile, leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339), initHint(certFile))
	}
	return pair, nil
}

// loadCAPool returns a pool holding only the CA certificates in caFile.
func loadCAPool(caFile string) (*x509.CertPool, error) {
	data, err := readFile("CA certificate", caFile)
	if err != nil {
		return nil, err
	}
	certs, err := parseCertificates("CA certificate", caFile, data)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		if !c.IsCA {
			return nil, fmt.Errorf("%s holds a certificate that is not a CA (%q); check the path", caFile, c.Subject.CommonName)
		}
		pool.AddCert(c)
	}
	return pool, nil
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
