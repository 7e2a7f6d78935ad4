package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// InterceptionError says that the certificate that came back when the
// agent dialed the exit was not issued by a Fluidity CA at all: something
// on the network between them (a TLS-inspecting proxy or firewall)
// answered in the exit's place. The handshake was abandoned, so nothing
// was sent through it.
type InterceptionError struct {
	Addr   string // the exit's host:port, to be exempted
	Issuer string // who issued the certificate that came back
	Err    error  // the handshake's error
}

func (e *InterceptionError) Error() string {
	return fmt.Sprintf("the network between you and the exit is intercepting TLS: the certificate that came back for %s was issued by %s, not by your Fluidity CA; ask IT for %s to be exempted from TLS inspection (nothing was sent through it)",
		e.Addr, e.Issuer, e.Addr)
}

func (e *InterceptionError) Unwrap() error { return e.Err }

// WrongCAError says that the exit's certificate is from a Fluidity CA, but
// not the one the agent trusts: the agent's ca.crt belongs to other
// certificates.
type WrongCAError struct {
	Addr   string
	Issuer string
	Err    error
}

func (e *WrongCAError) Error() string {
	return fmt.Sprintf("the exit at %s has a certificate from another CA (issued by %s) than the ca.crt you gave; use the ca.crt made together with the exit's certificate (or issue your client certificate from the exit's CA)",
		e.Addr, e.Issuer)
}

func (e *WrongCAError) Unwrap() error { return e.Err }

// ExplainServerCertificate turns the error of a client handshake with the
// exit at addr into an *InterceptionError or a *WrongCAError when the
// exit's certificate was refused because its issuer is unknown; other
// errors come back as they are. caNames are the CommonNames of the CAs the
// agent trusts: a certificate from an unknown issuer of the same name, or
// of [DefaultCAName], is taken for a Fluidity CA of another installation.
func ExplainServerCertificate(err error, addr string, caNames ...string) error {
	cve, ok := errors.AsType[*tls.CertificateVerificationError](err)
	if !ok || len(cve.UnverifiedCertificates) == 0 {
		return err
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); !ok {
		return err
	}
	leaf := cve.UnverifiedCertificates[0]
	issuer := describeName(leaf.Issuer.CommonName, leaf.Issuer.Organization, leaf.Issuer.String())
	cn := leaf.Issuer.CommonName
	if cn == DefaultCAName || (cn != "" && containsFold(caNames, cn)) {
		return &WrongCAError{Addr: addr, Issuer: issuer, Err: err}
	}
	return &InterceptionError{Addr: addr, Issuer: issuer, Err: err}
}

func describeName(cn string, org []string, full string) string {
	switch {
	case cn != "" && len(org) > 0:
		return fmt.Sprintf("%q (%s)", cn, strings.Join(org, ", "))
	case cn != "":
		return fmt.Sprintf("%q", cn)
	case full != "":
		return fmt.Sprintf("%q", full)
	}
	return "an unnamed issuer"
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
