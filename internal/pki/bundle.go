package pki

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
)

// MaxBundleSize is the largest bundle [ServerBundle] makes and
// [ServerConfigFromBundle] reads: the size of an SSM Parameter Store
// parameter in the standard tier. A bundle of ECDSA P-256 keys, as
// [Init] makes them, takes under half of it.
const MaxBundleSize = 4096

// What is wrong with a bundle or a key pair. The errors of
// [ServerConfigFromBundle] (and those of [ServerConfig] and [ClientConfig]
// about a key, a usage or a validity period) wrap one of these, so callers
// can tell them apart with errors.Is; the error's own text names the
// source and says what to do.
var (
	ErrNotPEM         = errors.New("not PEM")
	ErrBundleTooLarge = errors.New("bundle too large")
	ErrNoCA           = errors.New("no CA certificate")
	ErrManyCAs        = errors.New("more than one CA certificate")
	ErrNoCertificate  = errors.New("no server certificate")
	ErrNoKey          = errors.New("no private key")
	ErrManyKeys       = errors.New("more than one private key")
	ErrKeyMismatch    = errors.New("private key does not belong to the certificate")
	ErrWrongUsage     = errors.New("certificate not meant for this use")
	ErrNotCurrent     = errors.New("certificate expired or not yet valid")
)

// problemError is an error whose text says everything and which wraps a
// sentinel above for errors.Is without repeating its text.
type problemError struct {
	msg  string
	kind error
}

func (e *problemError) Error() string { return e.msg }
func (e *problemError) Unwrap() error { return e.kind }

func problem(kind error, format string, args ...any) error {
	return &problemError{msg: fmt.Sprintf(format, args...), kind: kind}
}

// bundleHeader opens a bundle made by ServerBundle. PEM parsers skip text
// outside blocks, so it is a comment.
const bundleHeader = "fluidity exit bundle: the CA that client certificates must chain to, the server certificate, its key\n"

// ServerBundle reads the exit's files in dir, a directory made by
// 'fluidity certs init' ([CAFile], [ServerCertFile] and [ServerKeyFile]),
// checks them as [ServerConfig] does, and returns them as one bundle: the
// CA certificate, the server certificate chain and the server key, in
// that order. See the package documentation for the format.
func ServerBundle(dir string) ([]byte, error) {
	caFile := filepath.Join(dir, CAFile)
	certFile := filepath.Join(dir, ServerCertFile)
	keyFile := filepath.Join(dir, ServerKeyFile)
	if _, err := ServerConfig(certFile, keyFile, caFile); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(bundleHeader)
	for _, f := range []struct{ what, file string }{{"CA certificate", caFile}, {"server certificate", certFile}, {"server key", keyFile}} {
		data, err := readFile(f.what, f.file)
		if err != nil {
			return nil, err
		}
		// Only the PEM blocks: comments in the files would only take room.
		for rest := data; ; {
			var block *pem.Block
			if block, rest = pem.Decode(rest); block == nil {
				break
			}
			pem.Encode(&b, &pem.Block{Type: block.Type, Bytes: block.Bytes})
		}
	}
	if _, err := ServerConfigFromBundle(dir, b.Bytes()); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ServerConfigFromBundle returns the exit's TLS configuration, the same as
// [ServerConfig] gives, from a bundle: the CA, the server certificate chain
// and its key in one PEM text (see the package documentation). source names
// where the bundle came from ("ssm://fluidity-exit") in errors, which say
// what is wrong and what to do, and wrap one of the Err values of this
// package.
func ServerConfigFromBundle(source string, data []byte) (*tls.Config, error) {
	b, err := parseBundle(source, data)
	if err != nil {
		return nil, err
	}
	pushHint := fmt.Sprintf("make a new set with 'fluidity certs init --dir DIR --force' and push it with 'fluidity certs push %s'", source)
	cert, err := checkKeyPair("server", pairSource{
		cert:      fmt.Sprintf("the server certificate %q in %s", b.chain[0].Subject.CommonName, source),
		key:       "the private key in " + source,
		leaf:      fmt.Sprintf("the first certificate in %s that is not a CA (%q)", source, b.chain[0].Subject.CommonName),
		wrongKind: "put the exit's server certificate (server.crt of 'fluidity certs init') in the bundle",
		renew:     pushHint,
	}, b.chain, b.key, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(b.ca)
	return serverConfig(cert, pool), nil
}

// bundle is a parsed bundle.
type bundle struct {
	ca    *x509.Certificate
	chain []*x509.Certificate // the certificates that are not CAs, in order
	key   crypto.Signer
}

// parseBundle decodes a bundle and checks its shape: PEM only, one CA,
// at least one other certificate, one key.
func parseBundle(source string, data []byte) (*bundle, error) {
	const fix = "it must hold the CA certificate, the server certificate and the server key in PEM, as 'fluidity certs push' writes them"
	if len(data) > MaxBundleSize {
		return nil, problem(ErrBundleTooLarge, "%s holds %d bytes, more than a bundle may (%d, an SSM standard-tier parameter); use ECDSA P-256 keys, as 'fluidity certs init' makes them",
			source, len(data), MaxBundleSize)
	}
	var b bundle
	var cas []*x509.Certificate
	keys := 0
	rest := data
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case pemCertificate:
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, problem(ErrNotPEM, "%s: PEM block %d is not a valid certificate (%v); %s", source, n, err, fix)
			}
			if c.IsCA {
				cas = append(cas, c)
			} else {
				b.chain = append(b.chain, c)
			}
		case pemPrivateKey, pemECPrivateKey:
			if keys++; keys > 1 {
				return nil, problem(ErrManyKeys, "%s holds more than one private key; keep only the server's (server.key)", source)
			}
			key, err := parseKeyBlock(block)
			if err != nil {
				return nil, problem(ErrNotPEM, "%s: PEM block %d is not a valid private key (%v); %s", source, n, err, fix)
			}
			b.key = key
		case "EC PARAMETERS":
			// What 'openssl ecparam -genkey' writes ahead of the key.
		case "RSA PRIVATE KEY":
			return nil, problem(ErrNotPEM, "%s holds an RSA PRIVATE KEY (PKCS #1); convert it to PKCS #8 with 'openssl pkcs8 -topk8 -nocrypt', or use the ECDSA keys 'fluidity certs init' makes", source)
		default:
			return nil, problem(ErrNotPEM, "%s: PEM block %d is a %q, which a bundle does not hold; %s", source, n, block.Type, fix)
		}
	}
	if bytes.Contains(rest, []byte("-----BEGIN")) {
		return nil, problem(ErrNotPEM, "%s holds a PEM block that is cut off or damaged; %s", source, fix)
	}
	switch {
	case len(cas) == 0 && len(b.chain) == 0 && keys == 0:
		return nil, problem(ErrNotPEM, "%s holds no PEM blocks; %s", source, fix)
	case len(cas) == 0:
		return nil, problem(ErrNoCA, "%s holds no CA certificate; add the CA that client certificates must chain to (ca.crt of 'fluidity certs init')", source)
	case len(cas) > 1:
		return nil, problem(ErrManyCAs, "%s holds %d CA certificates (%s); keep only the one that issued the client certificates (ca.crt)", source, len(cas), commonNames(cas))
	case len(b.chain) == 0:
		return nil, problem(ErrNoCertificate, "%s holds no server certificate, only the CA %q; add the exit's certificate (server.crt of 'fluidity certs init')", source, cas[0].Subject.CommonName)
	case keys == 0:
		return nil, problem(ErrNoKey, "%s holds no private key; add the server's key (server.key of 'fluidity certs init')", source)
	}
	b.ca = cas[0]
	return &b, nil
}

func commonNames(certs []*x509.Certificate) string {
	var b bytes.Buffer
	for i, c := range certs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", c.Subject.CommonName)
	}
	return b.String()
}
