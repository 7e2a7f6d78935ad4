package httpproxy_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestDialErrorsAreAnsweredWithTheirReason(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		status  int
		errType string // "" when no Proxy-Status header is expected
		reason  string
	}{
		{
			name:    "a refusal by the exit's policy is answered 403 with the reason",
			err:     fmt.Errorf("dial exit: %w", policyError{"destination 10.0.0.1 is prohibited"}),
			status:  http.StatusForbidden,
			errType: "destination_ip_prohibited",
			reason:  "destination 10.0.0.1 is prohibited",
		},
		{
			name:   "an unavailable tunnel is answered 503",
			err:    statusError{http.StatusServiceUnavailable, "tunnel not available"},
			status: http.StatusServiceUnavailable,
			reason: "tunnel not available",
		},
		{
			name:    "a timeout is answered 504",
			err:     fmt.Errorf("dial exit: open stream: %w", context.DeadlineExceeded),
			status:  http.StatusGatewayTimeout,
			errType: "connection_timeout",
			reason:  "open stream: context deadline exceeded",
		},
		{
			name:   "an exit that wants an IAM token is answered 407 with a challenge",
			err:    statusError{http.StatusProxyAuthRequired, "no IAM token"},
			status: http.StatusProxyAuthRequired,
			reason: "no IAM token",
		},
		{
			name:   "an error that gives no status is answered 502",
			err:    errors.New("something broke"),
			status: http.StatusBadGateway,
			reason: "something broke",
		},
		{
			name:   "a status outside the error range is answered 502",
			err:    statusError{http.StatusOK, "confused dialer"},
			status: http.StatusBadGateway,
			reason: "confused dialer",
		},
	}
	for _, tt := range tests {
		for _, method := range []string{http.MethodConnect, http.MethodGet} {
			t.Run(method+": "+tt.name, func(t *testing.T) {
				p := startProxy(t, failingDial(tt.err))
				var res *http.Response
				if method == http.MethodConnect {
					res, _, _ = p.rawRoundTrip(t, method,
						"CONNECT blocked.example:443 HTTP/1.1\r\nHost: blocked.example:443\r\n\r\n")
				} else {
					var err error
					res, err = p.client(t).Get("http://blocked.example:8081/page")
					if err != nil {
						t.Fatal(err)
					}
				}
				body := readBody(t, res)
				if res.StatusCode != tt.status {
					t.Errorf("status %d, want %d", res.StatusCode, tt.status)
				}
				if !strings.Contains(body, tt.reason) {
					t.Errorf("body %q does not give the reason %q", body, tt.reason)
				}
				if got, want := res.Header.Get("Proxy-Authenticate") != "", tt.status == http.StatusProxyAuthRequired; got != want {
					t.Errorf("Proxy-Authenticate present: %v, want %v", got, want)
				}
				ps := res.Header.Get("Proxy-Status")
				if tt.errType == "" {
					if ps != "" {
						t.Errorf("Proxy-Status %q, want none", ps)
					}
				} else if m := missing(ps, "fluidity; error="+tt.errType+"; details=\"", tt.reason); m != "" {
					t.Errorf("Proxy-Status %q lacks %q", ps, m)
				}
				rec := p.logs.wait(t, 1)[0]
				if r, _ := rec["result"].(string); !strings.Contains(r, tt.reason) {
					t.Errorf("log result %q does not give the reason %q", r, tt.reason)
				}
				checkLog(t, rec, map[string]any{"method": method, "status": int64(tt.status)})
			})
		}
	}
}

func TestProxyStatusDetailsAreEscaped(t *testing.T) {
	p := startProxy(t, failingDial(policyError{`host "x\y" is prohibited ✗`}))
	res, _, _ := p.rawRoundTrip(t, http.MethodConnect, "CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n")
	readBody(t, res)
	want := `fluidity; error=destination_ip_prohibited; details="fluidity: cannot reach x:443: host \"x\\y\" is prohibited ?"`
	if got := res.Header.Get("Proxy-Status"); got != want {
		t.Errorf("Proxy-Status\n got %s\nwant %s", got, want)
	}
}
