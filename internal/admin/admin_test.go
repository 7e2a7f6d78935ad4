package admin

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"fluidity/internal/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start serves cfg on a loopback port and returns a GET func.
func start(t *testing.T, cfg Config) func(path string) (int, string) {
	t.Helper()
	ln, err := Listen("127.0.0.1:0", false, "--x")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, cfg) }()
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return func(path string) (int, string) {
		resp, err := (&http.Client{Transport: tr}).Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
}

func TestEndpoints(t *testing.T) {
	var down atomic.Bool
	get := start(t, Config{
		Gatherer: metrics.NewRegistry(),
		Ready: func() error {
			if down.Load() {
				return errors.New("tunnel link is down")
			}
			return nil
		},
		Status: func() any { return map[string]string{"state": "up"} },
	})
	t.Run("healthz answers 200", func(t *testing.T) {
		if code, _ := get("/healthz"); code != 200 {
			t.Fatalf("got %d", code)
		}
	})
	t.Run("readyz follows Ready and says why it is not ready", func(t *testing.T) {
		if code, _ := get("/readyz"); code != 200 {
			t.Fatalf("ready: got %d", code)
		}
		down.Store(true)
		code, body := get("/readyz")
		if code != 503 || !strings.Contains(body, "tunnel link is down") || strings.Count(body, "\n") != 1 {
			t.Fatalf("not ready: got %d %q, want 503 and one line with the reason", code, body)
		}
		down.Store(false)
		if code, _ := get("/readyz"); code != 200 {
			t.Fatalf("ready again: got %d", code)
		}
	})
	t.Run("status is JSON", func(t *testing.T) {
		if code, body := get("/status"); code != 200 || !strings.Contains(body, `"state": "up"`) {
			t.Fatalf("got %d %q", code, body)
		}
	})
	t.Run("metrics has the Go and process collectors", func(t *testing.T) {
		code, body := get("/metrics")
		if code != 200 || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_start_time_seconds") {
			t.Fatalf("got %d:\n%s", code, body)
		}
	})
	t.Run("pprof is absent unless enabled", func(t *testing.T) {
		if code, _ := get("/debug/pprof/"); code != 404 {
			t.Fatalf("got %d, want 404", code)
		}
	})
}

func TestPprofWhenEnabled(t *testing.T) {
	get := start(t, Config{Pprof: true})
	if code, body := get("/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("got %d", code)
	}
	if code, _ := get("/debug/pprof/goroutine?debug=1"); code != 200 {
		t.Fatalf("goroutine profile: got %d", code)
	}
	if code, _ := get("/status"); code != 404 {
		t.Fatalf("status without a Status func: got %d, want 404", code)
	}
}

func TestNonLoopbackNeedsConsent(t *testing.T) {
	_, err := Listen("0.0.0.0:0", false, "--admin-allow-non-loopback")
	if err == nil || !strings.Contains(err.Error(), "--admin-allow-non-loopback") {
		t.Fatalf("got %v, want a refusal naming the flag", err)
	}
	ln, err := Listen("0.0.0.0:0", true, "")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}

func TestIsLocalHost(t *testing.T) {
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"localhost", true},
		{"localhost:8081", true},
		{"LOCALHOST.:8081", true},
		{"127.0.0.1:8081", true},
		{"127.1.2.3", true},
		{"[::1]:8081", true},
		{"[::1]", true},
		{"", false},
		{"evil.example.com:8081", false},
		{"localhost.evil.example.com", false},
		{"127.0.0.1.nip.io:8081", false},
		{"10.0.0.5:8081", false},
		{"[::ffff:10.0.0.5]:8081", false},
	} {
		name := "Host " + strconv.Quote(tc.host) + " is local"
		if !tc.want {
			name = "Host " + strconv.Quote(tc.host) + " is not local"
		}
		t.Run(name, func(t *testing.T) {
			if got := LocalHost(tc.host); got != tc.want {
				t.Fatalf("LocalHost(%q) = %v", tc.host, got)
			}
		})
	}
}

// getWithHost fetches path from the admin listener at addr with the Host
// header host.
func getWithHost(t *testing.T, addr, host, path string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	req.Host = host
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestHostCheckOnlyOnLoopback(t *testing.T) {
	cfg := Config{Status: func() any { return "ok" }}
	for _, tc := range []struct {
		name   string
		listen string
		want   int
	}{
		{"a loopback listener refuses a foreign Host", "127.0.0.1:0", http.StatusForbidden},
		{"a listener on every address takes any Host", "0.0.0.0:0", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := Listen(tc.listen, true, "")
			if err != nil {
				t.Fatal(err)
			}
			_, port, _ := net.SplitHostPort(ln.Addr().String())
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- Serve(ctx, ln, cfg) }()
			defer func() {
				cancel()
				<-done
			}()
			addr := net.JoinHostPort("127.0.0.1", port)
			if code := getWithHost(t, addr, "exit-admin.internal:"+port, "/status"); code != tc.want {
				t.Fatalf("Host exit-admin.internal: got %d, want %d", code, tc.want)
			}
			if code := getWithHost(t, addr, "localhost:"+port, "/status"); code != http.StatusOK {
				t.Fatalf("Host localhost: got %d, want 200", code)
			}
		})
	}
}
