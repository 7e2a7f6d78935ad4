package httpproxy_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"fluidity/internal/httpproxy"
)

func TestNonProxyRequestsAreAnsweredWithInstructions(t *testing.T) {
	p := startProxy(t, nil)
	_, port, _ := net.SplitHostPort(p.addr)
	tests := []struct {
		name, request string
		want          []string
	}{
		{
			name:    "a request in origin form explains how to configure the proxy",
			request: "GET / HTTP/1.1\r\nHost: " + p.addr + "\r\n\r\n",
			want:    []string{"Fluidity proxy", "configure it as an HTTP proxy", "curl -x http://" + p.addr + " https://example.com"},
		},
		{
			name:    "a request for the proxy's own address explains how to configure the proxy",
			request: "GET http://" + p.addr + "/ HTTP/1.1\r\nHost: " + p.addr + "\r\n\r\n",
			want:    []string{"configure it as an HTTP proxy"},
		},
		{
			name:    "a request for the proxy's own port on localhost explains how to configure the proxy",
			request: "GET http://localhost:" + port + "/x HTTP/1.1\r\nHost: localhost:" + port + "\r\n\r\n",
			want:    []string{"configure it as an HTTP proxy"},
		},
		{
			name:    "an ftp URL is refused",
			request: "GET ftp://example.com/file HTTP/1.1\r\nHost: example.com\r\n\r\n",
			want:    []string{"cannot proxy ftp URLs"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, _, _ := p.rawRoundTrip(t, http.MethodGet, tt.request)
			body := readBody(t, res)
			if res.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400", res.StatusCode)
			}
			if m := missing(body, tt.want...); m != "" {
				t.Errorf("body %q lacks %q", body, m)
			}
		})
	}
	if n := p.dials.Load(); n != 0 {
		t.Errorf("Dial called %d times", n)
	}
}

func TestCloseEndsTunnelsAndRefusesNewRequests(t *testing.T) {
	target := echoServer(t, false)
	p := startProxy(t, nil)
	res, c, br := p.rawRoundTrip(t, http.MethodConnect, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	io.WriteString(c, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q, %v", buf, err)
	}

	if err := p.h.Close(); err != nil {
		t.Fatal(err)
	}
	t.Run("an open tunnel ends", func(t *testing.T) {
		if b, err := io.ReadAll(br); len(b) != 0 {
			t.Errorf("read %q, %v after Close; want the end of the stream", b, err)
		}
		rec := p.logs.wait(t, 1)[0]
		checkLog(t, rec, map[string]any{"msg": "stream", "up": int64(4), "down": int64(4), "result": "the proxy is shutting down"})
	})
	t.Run("a new CONNECT is answered 503", func(t *testing.T) {
		res, _, _ := p.rawRoundTrip(t, http.MethodConnect, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
		if body := readBody(t, res); res.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("status %d %q, want 503", res.StatusCode, body)
		}
	})
	t.Run("a new plain request is answered 503", func(t *testing.T) {
		res, err := p.client(t).Get("http://" + target + "/")
		if err != nil {
			t.Fatal(err)
		}
		if body := readBody(t, res); res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
			t.Errorf("status %d %q, want 503", res.StatusCode, body)
		}
	})
	if n := p.dials.Load(); n != 1 {
		t.Errorf("Dial called %d times after Close", n-1)
	}
}

func TestHandlerWithoutDialNeverDialsDirectly(t *testing.T) {
	h := &httpproxy.Handler{}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		h.Close()
	})
	var reached atomic.Bool
	origin := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Store(true) }))
	t.Cleanup(origin.Close)
	proxyURL, _ := url.Parse(srv.URL)
	tr := &http.Transport{Proxy: http.ProxyURL(proxyURL)}
	t.Cleanup(tr.CloseIdleConnections)
	res, err := (&http.Client{Transport: tr}).Get(origin.URL)
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, res); res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "no dialer") {
		t.Errorf("got %d %q, want 503 saying there is no dialer", res.StatusCode, body)
	}
	if reached.Load() {
		t.Error("the origin was reached without a tunnel")
	}
}
