package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File names in a certificate directory.
const (
	CAFile         = "ca.crt"
	CAKeyFile      = "ca.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
	ClientCertFile = "client.crt"
	ClientKeyFile  = "client.key"
)

// DefaultServerName is the DNS name every server certificate carries and
// that clients verify by default, whatever address they dial.
const DefaultServerName = "fluidity-server"

// DefaultClientName is the CommonName of the client certificate [Init] makes.
const DefaultClientName = "fluidity-client"

// InitOptions configure [Init].
type InitOptions struct {
	// Dir is the directory to write into, created with mode 0700 if needed.
	// If empty, the current directory is used.
	Dir string

	// ServerNames and ServerIPs are added to the server certificate's
	// DNS names (DefaultServerName, localhost) and IP addresses (127.0.0.1,
	// ::1). Duplicates are dropped, and a ServerNames entry that is an IP
	// address is treated as one of ServerIPs.
	ServerNames []string
	ServerIPs   []net.IP

	// ClientName is the client certificate's CommonName. It follows the
	// rules of [ValidateClientName]. If empty, DefaultClientName is used.
	ClientName string

	// Force replaces existing files. Without it Init writes nothing if any
	// of its files exists.
	Force bool

	// Now returns the current time. If nil, time.Now is used.
	Now func() time.Time
}

// Init writes a new CA, a server certificate and a client certificate, with
// their keys, into opts.Dir as ca.crt, ca.key, server.crt, server.key,
// client.crt and client.key. If any of them exists and opts.Force is false,
// it writes nothing and returns an error that names the file, says to pass
// --force, and wraps fs.ErrExist.
func Init(opts InitOptions) error {
	dir := opts.Dir
	if dir == "" {
		dir = "."
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	clientName := opts.ClientName
	if clientName == "" {
		clientName = DefaultClientName
	}
	if err := ValidateClientName(clientName); err != nil {
		return err
	}
	dnsNames, ips, err := serverSANs(opts.ServerNames, opts.ServerIPs)
	if err != nil {
		return err
	}

	path := func(name string) string { return filepath.Join(dir, name) }
	files := []string{CAFile, CAKeyFile, ServerCertFile, ServerKeyFile, ClientCertFile, ClientKeyFile}
	if !opts.Force {
		paths := make([]string, len(files))
		for i, f := range files {
			paths[i] = path(f)
		}
		if err := refuseExisting(paths...); err != nil {
			return err
		}
	}

	t := now()
	notBefore := t.Add(-Backdate)
	ca, err := NewCA(DefaultCAName, notBefore, t.Add(CAValidity))
	if err != nil {
		return err
	}
	server, err := ca.IssueServer(dnsNames, ips, notBefore, t.Add(ServerValidity))
	if err != nil {
		return err
	}
	client, err := ca.IssueClient(clientName, notBefore, t.Add(ClientValidity))
	if err != nil {
		return err
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create certificate directory: %w", err)
	}
	sets := []struct {
		issued            *Issued
		certFile, keyFile string
	}{
		{&Issued{CertPEM: ca.CertPEM, KeyPEM: ca.KeyPEM}, CAFile, CAKeyFile},
		{server, ServerCertFile, ServerKeyFile},
		{client, ClientCertFile, ClientKeyFile},
	}
	var written []string
	for _, s := range sets {
		if err := s.issued.WriteFiles(path(s.certFile), path(s.keyFile), opts.Force); err != nil {
			if !opts.Force {
				// Leave the directory as it was. (Forced files are already
				// replaced; there is nothing to go back to.)
				removeFiles(written...)
			}
			return err
		}
		written = append(written, path(s.certFile), path(s.keyFile))
	}
	return nil
}

// IssueClient issues a client certificate with CommonName name from the CA
// in dir and writes it to dir as name.crt and name.key. Unless force is set
// it refuses to replace either file.
func IssueClient(dir, name string, force bool) (certPath, keyPath string, err error) {
	if err := ValidateClientName(name); err != nil {
		return "", "", err
	}
	ca, err := LoadCA(filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		return "", "", err
	}
	issued, err := ca.IssueClient(name, time.Time{}, time.Time{})
	if err != nil {
		return "", "", err
	}
	certPath = filepath.Join(dir, name+".crt")
	keyPath = filepath.Join(dir, name+".key")
	if err := issued.WriteFiles(certPath, keyPath, force); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// reservedNames would make a client's files replace the CA's or the server's.
var reservedNames = []string{"ca", "server"}

// ValidateClientName reports whether name can name a client certificate and
// its files: 1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-', not
// starting with '.', and not "ca" or "server" in any case.
func ValidateClientName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("client name %q must be 1 to 64 characters long", name)
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("client name %q contains %q; use only letters, digits, '.', '_' and '-'", name, c)
		}
	}
	if name[0] == '.' {
		return fmt.Errorf("client name %q must not start with '.'", name)
	}
	// Case-insensitive, because on macOS and Windows "CA.crt" is ca.crt.
	if slices.Contains(reservedNames, strings.ToLower(name)) {
		return fmt.Errorf("client name %q is reserved: its files would replace %s.crt and %s.key", name, strings.ToLower(name), strings.ToLower(name))
	}
	return nil
}

// serverSANs returns the server certificate's DNS names and IP addresses:
// the defaults, then the extra ones, without duplicates.
func serverSANs(names []string, ips []net.IP) ([]string, []net.IP, error) {
	dnsNames := []string{DefaultServerName, "localhost"}
	addrs := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	addIP := func(ip net.IP) {
		if ip4 := ip.To4(); ip4 != nil {
			ip = ip4
		}
		if !slices.ContainsFunc(addrs, ip.Equal) {
			addrs = append(addrs, ip)
		}
	}
	for _, name := range names {
		name = strings.TrimSpace(name)
		if ip := net.ParseIP(name); ip != nil {
			addIP(ip)
			continue
		}
		if name == "" {
			return nil, nil, errors.New("empty server name")
		}
		name = strings.ToLower(strings.TrimSuffix(name, "."))
		if !slices.Contains(dnsNames, name) {
			dnsNames = append(dnsNames, name)
		}
	}
	for _, ip := range ips {
		if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
			return nil, nil, fmt.Errorf("invalid server IP address %v", ip)
		}
		addIP(ip)
	}
	return dnsNames, addrs, nil
}

// refuseExisting returns an error naming the first of paths that exists.
func refuseExisting(paths ...string) error {
	for _, p := range paths {
		_, err := os.Lstat(p)
		if err == nil {
			return fmt.Errorf("%s already exists; pass --force to replace it: %w", p, fs.ErrExist)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func removeFiles(paths ...string) {
	for _, p := range paths {
		os.Remove(p)
	}
}
