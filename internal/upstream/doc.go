// Package upstream dials TCP connections through the HTTP proxy a
// corporate network makes everyone use: a CONNECT request to the proxy,
// answered with the authentication it asks for (Basic, NTLM, or on Windows
// Negotiate and NTLM with the logged-in user's own credentials through
// SSPI), then a plain byte stream to the target.
//
// A Dialer is a seam of one function, DialContext, so the agent's link to
// the exit, and the HTTP clients of the control plane, reach the network
// the same way whether a proxy is in the way or not.
//
// # Errors name the hop
//
// A failure says which hop refused: the proxy could not be reached
// (*DialError), it wants credentials it did not get or refused those it got
// (*AuthError, with the schemes its 407 asked for), or it could not or would
// not reach the target (*RefusedError, with its status line and the gist of
// its error page). What happens past the proxy (the exit's TLS handshake)
// is the caller's to report.
//
// # Credentials
//
// Passwords never appear in an error, a log line or a String: proxies are
// shown as host:port, and user names only where they help to fix a refusal.
package upstream
