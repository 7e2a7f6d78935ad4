package httpproxy_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"
)

func TestConnectRelaysBothWaysWithHalfClose(t *testing.T) {
	tests := []struct {
		name        string
		early, late string // sent with the CONNECT request, and after the 200
	}{
		{"bytes sent after the 200 come back after the client half-closes", "", "hello through the tunnel"},
		{"bytes sent together with the CONNECT request are not lost", "early bytes|", "late bytes"},
		{"a tunnel that carries nothing ends cleanly", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := echoServer(t, true)
			p := startProxy(t, nil)
			res, c, br := p.rawRoundTrip(t, http.MethodConnect,
				"CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n"+tt.early)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", res.StatusCode)
			}
			if _, err := io.WriteString(c, tt.late); err != nil {
				t.Fatal(err)
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			// The echo server answers only after it sees EOF, so this
			// proves the half-close reached it and its answer came back.
			got, err := io.ReadAll(br)
			if err != nil {
				t.Fatalf("read echo: %v", err)
			}
			want := tt.early + tt.late
			if !bytes.Equal(got, []byte(want)) {
				t.Fatalf("echo = %q, want %q", got, want)
			}
			recs := p.logs.wait(t, 1)
			if len(recs) != 1 {
				t.Fatalf("got %d log records, want 1: %v", len(recs), recs)
			}
			checkLog(t, recs[0], map[string]any{
				"msg": "stream", "target": target, "method": "CONNECT", "status": int64(200),
				"up": int64(len(want)), "down": int64(len(want)), "result": "ok",
			})
		})
	}
}

func TestConnectRejectsMalformedTargets(t *testing.T) {
	tests := []struct {
		name, authority string
	}{
		{"a target without a port is refused", "example.com"},
		{"a target with a service name for a port is refused", "example.com:https"},
		{"a target with port 0 is refused", "example.com:0"},
		{"a target with a port above 65535 is refused", "example.com:65536"},
		{"a target without a host is refused", ":443"},
		{"an IPv6 target without brackets is refused", "::1:443"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, nil)
			res, _, _ := p.rawRoundTrip(t, http.MethodConnect,
				"CONNECT "+tt.authority+" HTTP/1.1\r\nHost: "+tt.authority+"\r\n\r\n")
			body := readBody(t, res)
			if res.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %q", res.StatusCode, body)
			}
			if n := p.dials.Load(); n != 0 {
				t.Errorf("Dial called %d times for a malformed target", n)
			}
		})
	}
}
