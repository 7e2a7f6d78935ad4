// Package httpproxy is the agent's HTTP proxy front-end: the part of the local
// port that browsers and tools talk to when they are configured with
// "http://127.0.0.1:8080" as their HTTP or HTTPS proxy.
//
// A [Handler] serves three kinds of request, and every outbound connection it
// makes goes through its Dial func, so each one is a tunnel stream to the exit:
//
//   - CONNECT host:port: the handler dials the target, answers
//     "200 Connection established", takes over the client connection and
//     relays bytes both ways with half-close. This carries HTTPS and any
//     other TCP protocol.
//   - Absolute-URI requests ("GET http://example.com/ HTTP/1.1", any method,
//     http and https URLs): the handler forwards them with an
//     [httputil.ReverseProxy] whose transport dials through Dial. Bodies
//     stream both ways without being buffered whole, chunked encoding and
//     trailers pass through, redirects go back to the client, and WebSocket
//     and other protocol upgrades (101 Switching Protocols) are relayed.
//     Upstream connections are kept alive for reuse, and so is the client's
//     connection.
//   - Anything else (a request in origin form such as "GET / HTTP/1.1", a
//     request for the proxy's own address, or a URL scheme other than http
//     and https) is answered 400 with a short page that says how to use the
//     proxy.
//
// # Privacy
//
// Hop-by-hop headers (Connection and the headers it names, Keep-Alive, TE
// other than "trailers", Transfer-Encoding, Upgrade unless upgrading) and
// every header whose name starts with "Proxy-" never reach the target. The
// handler adds no Via, Forwarded or X-Forwarded-* header and removes those the
// client sent, so the target learns nothing about the client's address. The
// client's Host is kept, and bodies are never re-encoded.
//
// # Errors
//
// When Dial or the upstream exchange fails, the client gets a short plain-text
// answer that gives the reason. The status comes from the error when it has a
// StatusCode() int method (403 refused by the exit's policy, 502 unreachable,
// 503 tunnel not available, 504 timeout); otherwise timeouts get 504 and
// everything else 502. When the error type is known (from a ProxyStatus()
// string method, or recognized locally, such as dns_error), the answer
// carries an RFC 9209 header:
//
//	Proxy-Status: fluidity; error=destination_ip_prohibited; details="..."
//
// # Logging
//
// Each CONNECT tunnel logs one "stream" line when it ends and each forwarded
// request one "request" line when it ends, with the attributes client,
// target, method, status, up and down (bytes sent to and received from the
// target), duration and result ("ok" or the reason it failed), and a
// "reason" class when the Handler's Hooks return one.
//
// # Cancellation
//
// The request's context bounds dialing and forwarding. [Handler.Close] ends
// the handler's lifetime: it ends the tunnels and upgraded connections the
// handler took over from the HTTP server (which no longer tracks them),
// waits for them, and releases idle upstream connections.
package httpproxy
