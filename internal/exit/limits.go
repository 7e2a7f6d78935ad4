package exit

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"time"

	"golang.org/x/net/http2"

	"fluidity/internal/metrics"
)

// linkRefusal says why a connection was refused after its handshake.
type linkRefusal struct {
	reason string // metrics.LinkRefused*
	msg    string // for the client and the log
}

// admitLink counts a new authenticated connection against the link limits.
// It returns the func that releases it, or why it is refused. Only HTTP/2
// links count against the per-client limit: an HTTP/1.1 connection carries
// one tunnel, and a client may open many.
func (s *Server) admitLink(client string, h2 bool) (release func(), refused *linkRefusal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.links >= s.cfg.MaxLinks {
		return nil, &linkRefusal{metrics.LinkRefusedMaxLinks,
			fmt.Sprintf("the exit has %d client connections open, its limit (max_links); try again later", s.cfg.MaxLinks)}
	}
	if h2 && s.perClient[client] >= s.cfg.MaxLinksPerClient {
		return nil, &linkRefusal{metrics.LinkRefusedMaxPerClient,
			fmt.Sprintf("client %q has %d links open, its limit (max_links_per_client); close other agents that use this certificate, or issue one certificate per machine", client, s.cfg.MaxLinksPerClient)}
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
		}
		s.mu.Unlock()
		s.obs.LinkClosed()
	}, nil
}

// refuseTimeout bounds the refusal of a connection: the answer, and the
// wait for the client to read it before the connection is closed.
const refuseTimeout = time.Second

// refuseLink tells the client why its connection is refused and closes it:
// an HTTP/2 client gets GOAWAY (ENHANCE_YOUR_CALM) with the reason as debug
// data, which the agent logs; an HTTP/1.1 client gets a 503 with a
// Proxy-Status of connection_limit_reached.
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
		writeHTTP1Error(tc, http.StatusServiceUnavailable, nil, "connection_limit_reached", msg)
	}
	// Half-close and read what the client still sends, so that closing
	// does not reset the connection before the client has read the answer.
	tc.CloseWrite()
	io.Copy(io.Discard, io.LimitReader(tc, 64<<10))
}
