// Package socks5 is the server side of SOCKS version 5 (RFC 1928) for the
// agent's local proxy port.
//
// It supports what a local proxy needs and nothing more: no authentication
// (method 0x00) and the CONNECT command, to IPv4, IPv6 and domain-name
// targets. BIND and UDP ASSOCIATE are answered with "command not supported":
// UDP is not carried by this proxy.
//
// Domain names are never resolved here. A request for a name becomes the
// target "name:port", passed as is to the Server's Dial, so the exit server
// resolves it and the client's network sees no DNS query for it (no DNS
// leak). IPv6 targets are written with brackets, "[2001:db8::1]:443".
//
// # Untrusted input
//
// Requests come from any local process and are parsed strictly: a wrong
// version, a non-zero reserved byte, an empty method list, an empty domain
// name or one holding characters that cannot be a host name, and port 0 are
// all refused. Reads are exact and bounded: every length on the wire is one
// byte, so a request never makes the server read or allocate more than 255
// bytes at a time, and nothing is read beyond the request, so bytes the
// client sends early are relayed, not lost.
//
// # Cancellation
//
// [Server.ServeConn] owns its connection. The negotiation has a deadline
// (HandshakeTimeout); once the target is connected the deadline is cleared
// and the connection lives until both directions end. Cancelling the ctx
// passed to ServeConn closes the client connection and so ends the relay.
package socks5
