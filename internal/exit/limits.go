package exit

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/net/http2"

	"fluidity/internal/metrics"
)

// linkRefusal says why a connection was refused after its handshake.
type linkRefusal struct {
	reason string // metrics.LinkRefused*
	msg    string // for the client and the log
	status int    // the HTTP/1.1 answer: 503 when the exit is full, 429 when the client is
}

// admitLink counts a new authenticated connection against the link limits.
// It returns the func that releases it, or why it is refused. HTTP/2 links
// count against the per-client limit of links, HTTP/1.1 connections (one
// tunnel each) against the per-client limit of tunnels.
func (s *Server) admitLink(client string, h2 bool) (release func(), refused *linkRefusal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.links >= s.cfg.MaxLinks {
		return nil, &linkRefusal{metrics.LinkRefusedMaxLinks,
			fmt.Sprintf("the exit has %d client connections open, its limit (max_links); try again later", s.cfg.MaxLinks), http.StatusServiceUnavailable}
	}
	if h2 && s.perClient[client] >= s.cfg.MaxLinksPerClient {
		return nil, &linkRefusal{metrics.LinkRefusedMaxPerClient,
			fmt.Sprintf("client %q has %d links open, its limit (max_links_per_client); close other agents that use this certificate, or issue one certificate per machine", client, s.cfg.MaxLinksPerClient), http.StatusTooManyRequests}
	}
	var releaseTunnel func()
	if !h2 {
		if releaseTunnel, refused = s.admitTunnelLocked("cert:"+client, "client certificate "+strconv.Quote(client)); refused != nil {
			return nil, refused
		}
	}
	s.links++
	if h2 {
		s.perClient[client]++
	}
	s.obs.LinkOpened()
	return func() {
		s.mu.Lock()
		s.links--
		if h2 {
			if s.perClient[client]--; s.perClient[client] == 0 {
				delete(s.perClient, client)
			}
		} else {
			releaseTunnel()
		}
		s.mu.Unlock()
		s.obs.LinkClosed()
	}, nil
}

// admitIdentity counts an HTTP/1.1 tunnel against the per-client limit of
// the identity its request proved (an IAM ARN). It returns the func that
// releases it, or why it is refused.
func (s *Server) admitIdentity(identity string) (release func(), refused *linkRefusal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, refused := s.admitTunnelLocked("id:"+identity, "identity "+identity)
	if refused != nil {
		return nil, refused
	}
	return func() {
		s.mu.Lock()
		r()
		s.mu.Unlock()
	}, nil
}

// admitTunnelLocked counts one tunnel of key (described by who) against
// MaxTunnelsPerClient. The func it returns must be called with mu held.
func (s *Server) admitTunnelLocked(key, who string) (releaseLocked func(), refused *linkRefusal) {
	if s.tunnels[key] >= s.cfg.MaxTunnelsPerClient {
		return nil, &linkRefusal{metrics.LinkRefusedMaxTunnels,
			fmt.Sprintf("%s has %d HTTP/1.1 tunnels open, its limit (max_tunnels_per_client); close some, or wait for them to end", who, s.cfg.MaxTunnelsPerClient),
			http.StatusTooManyRequests}
	}
	s.tunnels[key]++
	return func() {
		if s.tunnels[key]--; s.tunnels[key] == 0 {
			delete(s.tunnels, key)
		}
	}, nil
}

// refuseTimeout bounds the refusal of a connection: the answer, and the
// wait for the client to read it before the connection is closed.
const refuseTimeout = time.Second

// refuseLink tells the client why its connection is refused and closes it:
// an HTTP/2 client gets GOAWAY (ENHANCE_YOUR_CALM) with the reason as debug
// data, which the agent logs; an HTTP/1.1 client gets a 503 (the exit is
// full) or 429 (the client is) with a Proxy-Status of
// connection_limit_reached.
func refuseLink(tc *tls.Conn, h2 bool, r *linkRefusal) {
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(refuseTimeout))
	msg := "fluidity exit: link refused: " + r.msg
	if h2 {
		fr := http2.NewFramer(tc, nil)
		if fr.WriteSettings() != nil || fr.WriteGoAway(0, http2.ErrCodeEnhanceYourCalm, []byte(msg)) != nil {
			return
		}
	} else {
		writeHTTP1Error(tc, r.status, nil, "connection_limit_reached", msg)
	}
	// Half-close and read what the client still sends, so that closing
	// does not reset the connection before the client has read the answer.
	tc.CloseWrite()
	io.Copy(io.Discard, io.LimitReader(tc, 64<<10))
}
