package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"

	"fluidity/internal/sockio"
)

// HandshakeFailure returns a short reason why a server handshake failed, for
// log lines and metrics labels. It returns "" for a nil error and otherwise
// one of:
//
//	no client certificate
//	certificate revoked                     the client's certificate is revoked (ErrRevoked)
//	unknown certificate authority           the client's certificate is from another CA
//	certificate expired or not yet valid    the client's certificate
//	bad certificate                         the client's certificate, for any other reason
//	client rejected server certificate      the client sent a certificate alert
//	not TLS                                 the first bytes were not a TLS record
//	unsupported TLS version                 the client cannot speak TLS 1.3
//	timeout
//	client closed connection
//	handshake failed                        anything else
func HandshakeFailure(err error) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, ErrNoClientCertificate) {
		return "no client certificate"
	}
	if errors.Is(err, ErrRevoked) {
		return "certificate revoked"
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return "unknown certificate authority"
	}
	if e, ok := errors.AsType[x509.CertificateInvalidError](err); ok && e.Reason == x509.Expired {
		// x509 reports a certificate that is not yet valid as Expired too.
		return "certificate expired or not yet valid"
	}
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return "bad certificate"
	}
	if _, ok := errors.AsType[x509.CertificateInvalidError](err); ok {
		return "bad certificate"
	}
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return "not TLS"
	}
	if a, ok := alertFrom(err); ok {
		if isCertificateAlert(a) {
			return "client rejected server certificate"
		}
		return "handshake failed"
	}
	// crypto/tls reports this with a plain error; its text is all there is.
	if strings.Contains(err.Error(), "tls: client offered only unsupported versions") {
		return "unsupported TLS version"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return "timeout"
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || sockio.Reset(err) {
		return "client closed connection"
	}
	return "handshake failed"
}

// alertFrom returns the alert the peer sent, if err reports one. Over TCP,
// crypto/tls reports it as a *net.OpError with Op "remote error" holding a
// value of its unexported alert type, a uint8 like [tls.AlertError]; over
// QUIC it wraps a tls.AlertError.
func alertFrom(err error) (tls.AlertError, bool) {
	if a, ok := errors.AsType[tls.AlertError](err); ok {
		return a, true
	}
	oe, ok := errors.AsType[*net.OpError](err)
	if !ok || oe.Op != "remote error" || oe.Err == nil {
		return 0, false
	}
	if v := reflect.ValueOf(oe.Err); v.Kind() == reflect.Uint8 {
		return tls.AlertError(v.Uint()), true
	}
	return 0, false
}

// isCertificateAlert reports whether a is one of the alerts of RFC 8446
// section 6.2 that reject the peer's certificate.
func isCertificateAlert(a tls.AlertError) bool {
	switch a {
	case 42, // bad_certificate
		43, // unsupported_certificate
		44, // certificate_revoked
		45, // certificate_expired
		46, // certificate_unknown
		48: // unknown_ca
		return true
	}
	return false
}
