package pki

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"strings"
	"sync"
)

// CRLFile is the certificate revocation list that [Revoke] keeps in a
// certificate directory, and that an exit reads from its certificate
// directory unless told another file.
const CRLFile = "revoked.crl"

const pemCRL = "X509 CRL"

// ErrRevoked is the error a server handshake fails with, wrapped, when the
// client's certificate is revoked.
var ErrRevoked = errors.New("certificate revoked")

// Revocations is a set of revoked client certificates: the serial numbers
// and SHA-256 fingerprints of a revocation list file, and the entries of a
// CRL. A zero or nil Revocations revokes nothing. It is immutable, and safe
// for concurrent use.
//
// A serial number from the list file revokes the certificate of that
// serial from any issuer (fluidity's CA is the only one the exit trusts); a
// CRL entry revokes it only when the CRL is signed by the certificate's
// issuer, as RFC 5280 has it.
type Revocations struct {
	serials      map[string]string   // normalized serial → where it is listed
	fingerprints map[[32]byte]string // SHA-256 of the certificate → where it is listed
	crl          *x509.RevocationList
	crlFile      string
	crlSerials   map[string]bool // normalized serials of crl's entries

	mu       sync.Mutex
	verified map[string]error // guarded by mu; crl's signature checked against an issuer, by the issuer's raw certificate
}

// LoadRevocations reads the revocation list file listFile and the CRL
// crlFile; either may be empty, meaning none. A file that does not exist is
// an error wrapping fs.ErrNotExist.
//
// The list file holds one entry a line: a serial number in hex ("serial="
// as openssl prints it, colons and case do not matter) or a SHA-256
// fingerprint ("sha256:" and 64 hex digits, or 64 hex digits alone).
// Blank lines and text after '#' are ignored. The CRL is PEM ("X509 CRL")
// or DER, as [Revoke] writes it.
func LoadRevocations(listFile, crlFile string) (*Revocations, error) {
	r := &Revocations{serials: map[string]string{}, fingerprints: map[[32]byte]string{}, crlSerials: map[string]bool{}}
	if listFile != "" {
		data, err := os.ReadFile(listFile)
		if err != nil {
			return nil, fmt.Errorf("revocation list: %w", err)
		}
		if err := r.parseList(listFile, data); err != nil {
			return nil, err
		}
	}
	if crlFile != "" {
		data, err := os.ReadFile(crlFile)
		if err != nil {
			return nil, fmt.Errorf("CRL: %w", err)
		}
		crl, err := parseCRL(data)
		if err != nil {
			return nil, fmt.Errorf("CRL %s: %w", crlFile, err)
		}
		r.crl, r.crlFile = crl, crlFile
		for _, e := range crl.RevokedCertificateEntries {
			r.crlSerials[serialKey(e.SerialNumber)] = true
		}
	}
	return r, nil
}

// parseCRL parses a certificate revocation list in PEM or DER.
func parseCRL(data []byte) (*x509.RevocationList, error) {
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != pemCRL {
			return nil, fmt.Errorf("holds a PEM %q block, not %q", block.Type, pemCRL)
		}
		data = block.Bytes
	}
	crl, err := x509.ParseRevocationList(data)
	if err != nil {
		return nil, fmt.Errorf("not a certificate revocation list: %w", err)
	}
	return crl, nil
}

func (r *Revocations) parseList(file string, data []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		for _, tok := range strings.Fields(line) {
			where := fmt.Sprintf("%s line %d", file, n)
			fp, isFP, serial, ok := parseRevokedEntry(tok)
			switch {
			case !ok:
				return fmt.Errorf("%s: %q is neither a certificate serial number in hex nor a SHA-256 fingerprint (sha256: and 64 hex digits)", where, tok)
			case isFP:
				r.fingerprints[fp] = where
			default:
				r.serials[serial] = where
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("revocation list %s: %w", file, err)
	}
	return nil
}

// parseRevokedEntry reads one entry of a revocation list file.
func parseRevokedEntry(tok string) (fp [32]byte, isFP bool, serial string, ok bool) {
	s := strings.ToLower(tok)
	s, prefixed := strings.CutPrefix(s, "sha256:")
	s = strings.TrimPrefix(s, "serial=")
	s = strings.ReplaceAll(s, ":", "")
	if s == "" {
		return fp, false, "", false
	}
	if _, err := hex.DecodeString(strings.Repeat("0", len(s)%2) + s); err != nil {
		return fp, false, "", false
	}
	if len(s) == 64 {
		hex.Decode(fp[:], []byte(s))
		return fp, true, "", true
	}
	if prefixed || len(s) > 40 { // RFC 5280: serials are at most 20 octets
		return fp, false, "", false
	}
	n, _ := new(big.Int).SetString(s, 16)
	return fp, false, serialKey(n), true
}

// serialKey is the form serial numbers are compared in.
func serialKey(n *big.Int) string { return n.Text(16) }

// FormatSerial formats a certificate serial number as Revoke and the
// revocation list file take it: upper-case hex.
func FormatSerial(n *big.Int) string { return strings.ToUpper(n.Text(16)) }

// Fingerprint is the SHA-256 fingerprint of a certificate in the form the
// revocation list file takes it: "sha256:" and 64 hex digits.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Len is the number of entries: serials and fingerprints of the list
// file, and the CRL's entries.
func (r *Revocations) Len() (serials, fingerprints, crlEntries int) {
	if r == nil {
		return 0, 0, 0
	}
	return len(r.serials), len(r.fingerprints), len(r.crlSerials)
}

// CheckCRLIssuer checks that the CRL, if any, is signed by one of cas.
func (r *Revocations) CheckCRLIssuer(cas ...*x509.Certificate) error {
	if r == nil || r.crl == nil {
		return nil
	}
	var err error
	for _, ca := range cas {
		if err = r.crl.CheckSignatureFrom(ca); err == nil {
			return nil
		}
	}
	return fmt.Errorf("CRL %s is not signed by the CA that client certificates must chain to; make it with 'fluidity certs revoke' in that CA's directory: %w", r.crlFile, err)
}

// Check returns an error wrapping ErrRevoked, saying where it is listed,
// when the client certificate chain[0] is revoked; chain is a verified
// chain, its issuer next.
func (r *Revocations) Check(chain []*x509.Certificate) error {
	if r == nil || len(chain) == 0 {
		return nil
	}
	leaf := chain[0]
	revoked := func(where string) error {
		return fmt.Errorf("client certificate %q (serial %s) is revoked in %s: %w", leaf.Subject.CommonName, FormatSerial(leaf.SerialNumber), where, ErrRevoked)
	}
	if where, ok := r.fingerprints[sha256.Sum256(leaf.Raw)]; ok {
		return revoked(where)
	}
	serial := serialKey(leaf.SerialNumber)
	if where, ok := r.serials[serial]; ok {
		return revoked(where)
	}
	if r.crlSerials[serial] && len(chain) > 1 && r.signedBy(chain[1]) {
		return revoked(r.crlFile)
	}
	return nil
}

// signedBy reports whether the CRL is signed by issuer, checking each
// issuer once.
func (r *Revocations) signedBy(issuer *x509.Certificate) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	err, ok := r.verified[string(issuer.Raw)]
	if !ok {
		err = r.crl.CheckSignatureFrom(issuer)
		if r.verified == nil {
			r.verified = map[string]error{}
		}
		r.verified[string(issuer.Raw)] = err
	}
	return err == nil
}

// isNotExist reports whether err says a file does not exist.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
