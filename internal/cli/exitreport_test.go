package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fluidity/internal/ecstask"
	"fluidity/internal/pki"
)

func TestServerDefaultsOnECS(t *testing.T) {
	dir := t.TempDir()
	ecs := []string{ecstask.MetadataEnv + "=http://169.254.170.2/v4/abc"}
	for _, tc := range []struct {
		name          string
		environ       []string
		args          []string
		idle, unused  time.Duration
		lease         bool
		leaseInterval time.Duration
	}{
		{"elsewhere the exit never stops by itself and keeps no lease", nil, nil, 0, 0, false, time.Minute},
		{"on ECS it stops when idle and keeps a lease", ecs, nil, 5 * time.Minute, 2 * time.Minute, true, time.Minute},
		{"on ECS, flags of 0 turn idle stops off", ecs, []string{"--exit-when-idle", "0", "--exit-when-unused", "0"}, 0, 0, true, time.Minute},
		{"on ECS, the lease can be turned off", ecs, []string{"--lease=false"}, 5 * time.Minute, 2 * time.Minute, false, time.Minute},
		{"the environment sets them too", append([]string{"FLUIDITY_EXIT_WHEN_IDLE=30s", "FLUIDITY_LEASE_INTERVAL=10s"}, ecs...), nil, 30 * time.Second, 2 * time.Minute, true, 10 * time.Second},
		{"elsewhere they can be set", nil, []string{"--exit-when-idle", "1s", "--exit-when-unused", "2s"}, time.Second, 2 * time.Second, false, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseServer(Env{Stderr: io.Discard, Environ: tc.environ}, append([]string{"--certs", dir}, tc.args...))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ExitWhenIdle != tc.idle || cfg.ExitWhenUnused != tc.unused || cfg.Lease != tc.lease || cfg.LeaseInterval != tc.leaseInterval {
				t.Fatalf("exit_when_idle %v, exit_when_unused %v, lease %v every %v; want %v, %v, %v every %v",
					cfg.ExitWhenIdle, cfg.ExitWhenUnused, cfg.Lease, cfg.LeaseInterval, tc.idle, tc.unused, tc.lease, tc.leaseInterval)
			}
		})
	}
}

func TestServerECSConfigurationErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		environ []string
		args    []string
		want    []string
	}{
		{"a certificate store with certificate files", nil,
			[]string{"server", "--certs", "ssm://fluidity-exit", "--key", filepath.Join(dir, "server.key")},
			[]string{"cert, key, ca", "ssm://fluidity-exit", "drop --cert, --key and --ca"}},
		{"an unknown certificate store", nil,
			[]string{"server", "--certs", "s3://bucket/certs"},
			[]string{"certs:", "ssm://NAME", "secretsmanager://NAME"}},
		{"a certificate store without a name", nil,
			[]string{"server", "--certs", "ssm://"},
			[]string{"certs:", "names no ssm"}},
		{"a lease off ECS", nil,
			[]string{"server", "--certs", dir, "--lease"},
			[]string{"lease:", ecstask.MetadataEnv, "drop --lease"}},
		{"a negative idle time", nil,
			[]string{"server", "--certs", dir, "--exit-when-idle", "-1s"},
			[]string{"exit_when_idle", "0 turns them off"}},
		{"a lease interval of 0", []string{ecstask.MetadataEnv + "=http://169.254.170.2/v4/abc"},
			[]string{"server", "--certs", dir, "--lease-interval", "0"},
			[]string{"lease_interval", "positive"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(t, tc.environ, tc.args...)
			if code == 0 {
				t.Fatal("start succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

// TestExitStatus runs 'fluidity server' in this process with an admin
// listener and an idle policy, opens a stream through it, and reads
// /status and 'fluidity status' about it.
func TestExitStatus(t *testing.T) {
	certs := t.TempDir()
	if err := pki.Init(pki.InitOptions{Dir: certs}); err != nil {
		t.Fatal(err)
	}
	echo := startEchoServer(t)
	addr, adminAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, Env{Stdout: io.Discard, Stderr: logs}, []string{"server", "--listen", addr, "--certs", certs,
			"--admin", adminAddr, "--allow-private", "--exit-when-idle", "1m"})
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("server exited %d:\n%s", code, logs)
		}
	})
	eventually(t, "the exit to listen", func() bool { return strings.Contains(logs.String(), "exit server listening") })

	status := func() (exitReport, map[string]any) {
		t.Helper()
		code, body := httpGet(t, "http://"+adminAddr+"/status")
		if code != http.StatusOK {
			t.Fatalf("/status: %d %s", code, body)
		}
		var r exitReport
		var keys map[string]any
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		json.Unmarshal([]byte(body), &keys)
		return r, keys
	}
	r, keys := status()
	for _, k := range []string{"open_streams", "streams_total", "last_activity", "idle_for_seconds", "exit_when_idle", "exit_when_unused", "lease_until", "task"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("/status lacks %q: %v", k, keys)
		}
	}
	if r.OpenStreams != 0 || r.StreamsTotal != 0 || r.ExitWhenIdle != "1m0s" || r.ExitWhenUnused != "0s" || r.LeaseUntil != nil || r.Task != "" {
		t.Fatalf("/status of an exit without streams or lease: %+v", r)
	}

	// A stream through the exit, held open.
	cfg, err := pki.ClientConfig(filepath.Join(certs, pki.ClientCertFile), filepath.Join(certs, pki.ClientKeyFile), filepath.Join(certs, pki.CAFile), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.NextProtos = []string{"http/1.1"}
	tc, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	fmt.Fprintf(tc, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", echo, echo)
	resp, err := http.ReadResponse(bufio.NewReader(tc), &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	if r, _ := status(); r.OpenStreams != 1 || r.StreamsTotal != 1 || r.IdleForSeconds != 0 {
		t.Fatalf("/status with a stream open: %+v", r)
	}
	code, stdout, stderr := run(t, nil, "status", "--admin", adminAddr)
	if code != 0 {
		t.Fatalf("fluidity status: %d %s", code, stderr)
	}
	for _, want := range []string{"an exit server", "1 open, 1 since start", "no (streams open)", "when idle after 1m0s; when unused never"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("fluidity status lacks %q:\n%s", want, stdout)
		}
	}
	tc.Close()
	eventually(t, "the stream to end", func() bool { r, _ := status(); return r.OpenStreams == 0 })
	if r, _ := status(); r.StreamsTotal != 1 || r.LastActivity.IsZero() || r.IdleForSeconds < 0 || r.IdleForSeconds > 10 {
		t.Fatalf("/status after the stream: %+v", r)
	}
}
