package agent

import (
	"context"
	"net"
	"net/http"

	"fluidity/internal/admin"
)

// dialRouted is the front-ends' Dial: a target the split-routing rules
// send direct is dialed from here, anything else goes through the tunnel.
func (a *Agent) dialRouted(ctx context.Context, network, addr string) (net.Conn, error) {
	if a.routedDirect(addr) {
		a.log.Debug("dialing direct (split routing)", "target", addr)
		if a.cfg.DirectDial != nil {
			return a.cfg.DirectDial(ctx, network, addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return a.Dial(ctx, network, addr)
}

// routedDirect reports whether the split-routing rules send addr
// ("host:port") direct.
func (a *Agent) routedDirect(addr string) bool {
	if a.cfg.Direct == nil {
		return false
	}
	host, _, err := net.SplitHostPort(addr)
	return err == nil && a.cfg.Direct.Direct(host)
}

// PACPath is where the proxy port serves its PAC file.
const PACPath = "/proxy.pac"

// servePAC serves the PAC file for a request to PACPath on the proxy port
// itself (not a proxy request for some site's /proxy.pac), and reports
// whether it did. Like the admin listener, it answers only requests that
// name a loopback host, so a web page cannot read the rules through a
// name it rebinds to 127.0.0.1.
func (a *Agent) servePAC(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Host != "" || r.URL.Path != PACPath || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	if !admin.LocalHost(r.Host) {
		http.Error(w, "the PAC file is served to loopback names only (http://127.0.0.1:PORT/proxy.pac)", http.StatusForbidden)
		return true
	}
	proxy := ""
	if p := a.listenAddr.Load(); p != nil {
		proxy = *p
	}
	w.Header().Set("Content-Type", "application/x-ns-proxy-autoconfig")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(a.cfg.Direct.PAC(proxy))
	return true
}
