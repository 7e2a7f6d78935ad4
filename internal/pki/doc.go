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
// [IssueClient] adds NAME.crt and NAME.key for another client. Keys are ECDSA
// P-256 in PEM "PRIVATE KEY" (PKCS #8) files of mode 0600 in directories of
// mode 0700; certificates are PEM files of mode 0644. Nothing is overwritten
// unless the caller forces it, and a key file that group or others can read
// is refused when loaded. Errors name the file at fault and say what to do;
// one about a missing file wraps fs.ErrNotExist, one about a file that
// would be overwritten wraps fs.ErrExist.
//
// # TLS
//
// [ServerConfig] and [ClientConfig] speak TLS 1.3 only. A server handshake
// that fails can be summarised for logs and metrics with [HandshakeFailure];
// a client that sent no certificate fails with [ErrNoClientCertificate].
package pki
