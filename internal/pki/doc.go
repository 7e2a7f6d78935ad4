// Package pki makes the certificates fluidity needs and builds the TLS
// configurations that use them.
//
// Fluidity runs its own private certificate authority. The agent and the exit
// trust only that CA: the exit accepts a client only with a certificate the CA
// issued for client authentication, and the agent accepts the exit only with a
// certificate the CA issued for the stable name [DefaultServerName], whatever
// address it dialed. Nothing in this package can turn verification off.
//
// # Files
//
// [Init] writes a complete set into one directory:
//
//	ca.crt      the CA certificate, given to both sides
//	ca.key      the CA private key, needed only to issue more certificates
//	server.crt  the exit's certificate (DNS fluidity-server, localhost; IP 127.0.0.1, ::1)
//	server.key
//	client.crt  the agent's certificate (CommonName fluidity-client)
//	client.key
//
// [IssueClient] adds NAME.crt and NAME.key for another client, and [Revoke]
// revokes one in revoked.crl ([CRLFile]), a certificate revocation list
// signed by the CA. Keys are ECDSA
// P-256 in PEM "PRIVATE KEY" (PKCS #8) files of mode 0600 in directories of
// mode 0700; certificates are PEM files of mode 0644. Nothing is overwritten
// unless the caller forces it, and a key file that group or others can read
// is refused when loaded. Errors name the file at fault and say what to do;
// one about a missing file wraps fs.ErrNotExist, one about a file that
// would be overwritten wraps fs.ErrExist.
//
// # Bundle
//
// An exit that runs in the cloud reads its certificates from one value (an
// SSM parameter, a secret) rather than from files: a bundle. [ServerBundle]
// makes one from an [Init] directory, and [ServerConfigFromBundle] reads
// one. A bundle is PEM text holding, in any order:
//
//   - exactly one CA certificate (basic constraints CA:TRUE): the CA that
//     client certificates must chain to;
//   - the server certificate chain: the certificates that are not CAs, the
//     leaf (with the serverAuth usage) first among them;
//   - exactly one private key, PKCS #8 ("PRIVATE KEY") or SEC 1 ("EC
//     PRIVATE KEY"), belonging to the leaf.
//
// Text outside the PEM blocks is ignored, as are "EC PARAMETERS" blocks;
// any other block is an error. A bundle is at most [MaxBundleSize] bytes
// (4096, an SSM standard-tier parameter); one of ECDSA P-256 keys is about
// 1.6 KB. ServerBundle writes a comment line, then ca.crt, server.crt and
// server.key.
//
// # TLS
//
// [ServerConfig], [ServerConfigFromBundle] and [ClientConfig] speak TLS 1.3
// only; the two server configurations are the same for the same
// certificates. A server handshake
// that fails can be summarised for logs and metrics with [HandshakeFailure];
// a client that sent no certificate fails with [ErrNoClientCertificate].
//
// # Revocation
//
// [Revocations] is a set of revoked client certificates, read from a
// revocation list file (serial numbers and SHA-256 fingerprints, one a
// line) and a CRL; [RevocationWatcher] keeps one current with its files,
// reloading them when their size or modification time changes. A
// handshake refused because the client's certificate is revoked fails with
// an error wrapping [ErrRevoked].
package pki
