package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is an output sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func run(t *testing.T, environ []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut syncBuffer
	code = Main(context.Background(), Env{Stdout: &out, Stderr: &errOut, Environ: environ}, args)
	return code, out.String(), errOut.String()
}

func TestEveryCommandHasHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"up", "--help"}, {"agent", "--help"}, {"server", "--help"}, {"token", "--help"},
		{"certs", "--help"}, {"certs", "init", "--help"}, {"certs", "issue-client", "--help"}, {"certs", "revoke", "--help"}, {"version", "--help"},
		{"wake", "--help"}, {"stop", "--help"}, {"lambda", "--help"}, {"status", "--help"},
		{"aws", "--help"}, {"aws", "deploy", "--help"}, {"aws", "destroy", "--help"}, {"certs", "push", "--help"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, _, stderr := run(t, nil, args...)
			if code != 0 || !strings.Contains(stderr, "Usage") {
				t.Fatalf("exit %d, stderr:\n%s", code, stderr)
			}
		})
	}
}

func TestUnknownCommandIsAUsageError(t *testing.T) {
	code, _, stderr := run(t, nil, "serve")
	if code != 2 || !strings.Contains(stderr, `unknown command "serve"`) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := run(t, nil, "version")
	if code != 0 || !strings.HasPrefix(stdout, "fluidity ") {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
}

func TestConfigurationErrorsNameTheKeyAndTheFix(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name    string
		environ []string
		args    []string
		want    []string
	}{
		{"an unknown key in the file", nil,
			[]string{"server", "--config", write("typo.yaml", "listen: \":8443\"\negress:\n  alow_hosts: [a]\n")},
			[]string{"typo.yaml:3", `"egress.alow_hosts"`, `"egress.allow_hosts"`}},
		{"an invalid duration in the file", nil,
			[]string{"server", "--certs", dir, "--config", write("dur.yaml", "handshake_timeout: 10 seconds\n")},
			[]string{`"handshake_timeout"`, "10s"}},
		{"an unknown environment variable", []string{"FLUIDITY_LISTN=:1"},
			[]string{"server", "--certs", dir},
			[]string{"FLUIDITY_LISTN", "FLUIDITY_LISTEN"}},
		{"an agent without an exit", nil,
			[]string{"agent", "--certs", dir},
			[]string{"server: required", "--server"}},
		{"a server without certificates", nil,
			[]string{"server"},
			[]string{"--certs DIR", "certs init"}},
		{"a bad CIDR in the egress policy", nil,
			[]string{"server", "--certs", dir, "--egress-deny-cidrs", "10.0.0/8"},
			[]string{"egress.deny_cidrs", "10.0.0.0/8"}},
		{"a bad log level", nil,
			[]string{"server", "--certs", dir, "--log-level", "loud"},
			[]string{"log.level", "debug, info, warn or error"}},
		{"a negative procs", []string{"FLUIDITY_PROCS=-2"},
			[]string{"agent", "--certs", dir, "--server", "127.0.0.1:1"},
			[]string{"procs", "-2", "0 for one per CPU"}},
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

func TestCertsInitRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := run(t, nil, "certs", "init", "--dir", dir, "--server-ip", "203.0.113.7"); code != 0 {
		t.Fatalf("first init: %s", stderr)
	}
	code, _, stderr := run(t, nil, "certs", "init", "--dir", dir)
	if code == 0 || !strings.Contains(stderr, "--force") {
		t.Fatalf("second init: exit %d, %s", code, stderr)
	}
	if code, _, stderr := run(t, nil, "certs", "issue-client", "--dir", dir, "--name", "laptop"); code != 0 {
		t.Fatalf("issue-client: %s", stderr)
	}
	for _, f := range []string{"laptop.crt", "laptop.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFlagsWinOverEnvironmentAndFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "agent.yaml")
	os.WriteFile(file, []byte("listen: 127.0.0.1:1001\nserver: file:1\n"), 0o600)
	cfg := defaultAgentConfig()
	fs := newFlagSet(Env{Stderr: io.Discard}, "agent", "", "")
	cfg.Certs = dir
	if _, err := parse(Env{Stderr: io.Discard, Environ: []string{"FLUIDITY_SERVER=env:2", "FLUIDITY_LISTEN=127.0.0.1:1002"}},
		fs, &cfg, []string{"--config", file, "--listen", "127.0.0.1:1003"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:1003" || cfg.Server != "env:2" {
		t.Fatalf("listen %q (want the flag's), server %q (want the environment's)", cfg.Listen, cfg.Server)
	}
}

func TestUpServesAndStopsCleanly(t *testing.T) {
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "origin") })}
	oln, _ := net.Listen("tcp", "127.0.0.1:0")
	go origin.Serve(oln)
	defer origin.Close()

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	proxyAddr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	stdout := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, Env{Stdout: stdout, Stderr: io.Discard}, []string{"up", "--state-dir", t.TempDir(), "--listen", proxyAddr, "--allow-private"})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stdout.String(), "Press Ctrl-C") {
		if time.Now().After(deadline) {
			t.Fatalf("up printed %q", stdout.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !regexp.MustCompile(`curl -x http://` + regexp.QuoteMeta(proxyAddr)).MatchString(stdout.String()) {
		t.Errorf("no curl example for the proxy address in %q", stdout.String())
	}
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: proxyAddr})}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + oln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tr.CloseIdleConnections()
	if string(body) != "origin" {
		t.Fatalf("got %q", body)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("up exited %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("up did not stop")
	}
}

func TestOnDemandSettingsAreCheckedAtStart(t *testing.T) {
	certs := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"an agent with lifecycle aws needs the control plane's URL", []string{"agent", "--lifecycle", "aws", "--certs", certs}, "control_url: required"},
		{"an agent with lifecycle aws takes no --server", []string{"agent", "--lifecycle", "aws", "--control-url", "https://x.lambda-url.eu-west-1.on.aws/", "--server", "a:1", "--certs", certs}, "server: not used with lifecycle aws"},
		{"an unknown lifecycle is named", []string{"agent", "--lifecycle", "gcp", "--certs", certs}, `lifecycle: "gcp" is not static or aws`},
		{"wake needs the control plane's URL", []string{"wake"}, "control_url: required"},
		{"stop needs the control plane's URL", []string{"stop"}, "control_url: required"},
		{"the function needs its cluster", []string{"lambda"}, "cluster: required"},
		{"the function needs an allowlist", []string{"lambda", "--cluster", "c", "--task-definition", "t", "--subnets", "s"}, "allow: empty"},
		{"the function runs only in Lambda", []string{"lambda", "--cluster", "c", "--task-definition", "t", "--subnets", "s", "--allow", "111122223333"}, "not running in AWS Lambda"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(t, []string{"AWS_CONFIG_FILE=" + os.DevNull}, tc.args...)
			if code == 0 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want a failure saying %q", code, stderr, tc.want)
			}
		})
	}
}

func TestCertsRevokeTakesTheNameBeforeOrAfterTheFlags(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := run(t, nil, "certs", "init", "--dir", dir); code != 0 {
		t.Fatalf("init: %s", stderr)
	}
	for _, name := range []string{"laptop", "phone"} {
		if code, _, stderr := run(t, nil, "certs", "issue-client", "--dir", dir, "--name", name); code != 0 {
			t.Fatalf("issue-client: %s", stderr)
		}
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"after the flags", []string{"--dir", dir, "laptop"}, "Revoked laptop"},
		{"before the flags", []string{"phone", "--dir", dir}, "Revoked phone"},
		{"again", []string{"--dir=" + dir, "phone"}, "already revoked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, nil, append([]string{"certs", "revoke"}, tc.args...)...)
			if code != 0 || !strings.Contains(stdout, tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %q", code, stdout, stderr, tc.want)
			}
		})
	}
	if code, _, stderr := run(t, nil, "certs", "revoke", "--dir", dir); code != 2 || !strings.Contains(stderr, "which certificate") {
		t.Fatalf("without a name: exit %d, %q; want a usage error", code, stderr)
	}
}
