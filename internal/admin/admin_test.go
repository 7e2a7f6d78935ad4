package admin

import (
	"context"
	"errors"
	"io"
	"net/http"
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
