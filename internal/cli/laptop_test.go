package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fluidity/internal/service"
	"fluidity/internal/sysproxy"
)

func TestAgentListenAndSystemProxyKeys(t *testing.T) {
	certs := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"beyond loopback without an allowlist", []string{"--listen", "0.0.0.0:8080", "--allow-non-loopback"}, "allow_clients: required"},
		{"an allowlist for loopback", []string{"--allow-clients", "10.0.0.0/8"}, "allow_clients: only for a non-loopback"},
		{"a bad allowlist", []string{"--listen", "0.0.0.0:8080", "--allow-non-loopback", "--allow-clients", "wsl"}, "not an address or a CIDR"},
		{"a PAC URL without the system proxy", []string{"--system-proxy-pac", "http://127.0.0.1:8080/proxy.pac"}, "only with --system-proxy"},
		{"a PAC path", []string{"--system-proxy", "--system-proxy-pac", "proxy.pac"}, "not an http, https or file URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"agent", "--server", "exit.example.com:8443", "--certs", certs}, tc.args...)
			code, _, stderr := run(t, nil, args...)
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and %q", code, stderr, tc.want)
			}
		})
	}
}

// fakeProxy is a System in memory, shared by the commands of one test.
type fakeProxy struct{ current string }

func (f *fakeProxy) Name() string { return "fake" }
func (f *fakeProxy) Save(context.Context) (json.RawMessage, error) {
	return json.Marshal(f.current)
}
func (f *fakeProxy) Apply(_ context.Context, s sysproxy.Setting, _ json.RawMessage) error {
	f.current = "fluidity " + s.Server + s.PACURL
	return nil
}
func (f *fakeProxy) Restore(_ context.Context, raw json.RawMessage) error {
	return json.Unmarshal(raw, &f.current)
}
func (f *fakeProxy) Describe(raw json.RawMessage) string {
	var s string
	json.Unmarshal(raw, &s)
	return s
}

// Doctor names a system proxy the agent does not follow, and the flag that
// makes it; one that points at this agent is said to be so; none, nothing.
func TestDoctorNamesTheSystemProxy(t *testing.T) {
	sys := &fakeProxy{}
	systemProxy = func() sysproxy.System { return sys }
	defer func() { systemProxy = sysproxy.Default }()
	own := sysproxy.Setting{Server: "127.0.0.1:8080"}
	for _, tc := range []struct{ current, want string }{
		{"none", ""},
		{"proxy proxy.corp.example:3128", "system proxy (fake): proxy proxy.corp.example:3128; the agent does not follow it: if only that proxy gets out, set --upstream-proxy to it"},
		{"proxy 127.0.0.1:8080", "system proxy (fake): proxy 127.0.0.1:8080, which is this agent"},
	} {
		sys.current = tc.current
		got := strings.Join(systemProxyLine(context.Background(), own), "")
		if got != tc.want {
			t.Errorf("system proxy %q: doctor says %q, want %q", tc.current, got, tc.want)
		}
	}
}

func TestProxyOnAndOff(t *testing.T) {
	sys := &fakeProxy{current: "direct"}
	systemProxy = func() sysproxy.System { return sys }
	defer func() { systemProxy = sysproxy.Default }()
	dir := t.TempDir()
	code, stdout, stderr := run(t, nil, "proxy", "on", "--state-dir", dir, "--proxy", "127.0.0.1:1")
	if code != 0 || sys.current != "fluidity 127.0.0.1:1" {
		t.Fatalf("proxy on: exit %d, setting %q, stderr:\n%s", code, sys.current, stderr)
	}
	if !strings.Contains(stdout, "Nothing answers on 127.0.0.1:1") {
		t.Errorf("proxy on at a port where nothing listens does not say so:\n%s", stdout)
	}
	if _, stdout, _ := run(t, nil, "proxy", "status", "--state-dir", dir); !strings.Contains(stdout, "points at 127.0.0.1:1") {
		t.Errorf("proxy status:\n%s", stdout)
	}
	code, stdout, stderr = run(t, nil, "proxy", "off", "--state-dir", dir)
	if code != 0 || sys.current != "direct" || !strings.Contains(stdout, "put back") {
		t.Fatalf("proxy off: exit %d, setting %q, stdout %s stderr:\n%s", code, sys.current, stdout, stderr)
	}
	if _, stdout, _ := run(t, nil, "proxy", "off", "--state-dir", dir); !strings.Contains(stdout, "Nothing to do") {
		t.Errorf("a second proxy off:\n%s", stdout)
	}
	if code, _, stderr := run(t, nil, "proxy", "on", "--state-dir", dir, "--proxy", "localhost"); code != 1 || !strings.Contains(stderr, "HOST:PORT") {
		t.Errorf("proxy on --proxy localhost: exit %d:\n%s", code, stderr)
	}
}

// fakeManager records what the service commands ask of it.
type fakeManager struct {
	dir       string
	spec      *service.Spec
	installed bool
}

func (f *fakeManager) Name() string { return "fake" }
func (f *fakeManager) File() string { return filepath.Join(f.dir, "fake.unit") }
func (f *fakeManager) Install(_ context.Context, s service.Spec) error {
	f.spec, f.installed = &s, true
	return nil
}
func (f *fakeManager) Uninstall(context.Context) error {
	if !f.installed {
		return service.ErrNotInstalled
	}
	f.installed = false
	return nil
}
func (f *fakeManager) Start(context.Context) error { return nil }
func (f *fakeManager) Stop(context.Context) error  { return nil }
func (f *fakeManager) Status(context.Context) (service.Status, error) {
	return service.Status{Installed: f.installed, Running: f.installed, Detail: "fake: active"}, nil
}

func TestServiceInstallChecksTheAgentFlagsAndRecordsThem(t *testing.T) {
	m := &fakeManager{dir: t.TempDir()}
	serviceManager = func(string) (service.Manager, error) { return m, nil }
	defer func() { serviceManager = service.Default }()
	state := t.TempDir()
	if code, _, stderr := run(t, nil, "service", "install", "--state-dir", state); code != 1 || !strings.Contains(stderr, "give them after --") {
		t.Errorf("install without agent flags: exit %d:\n%s", code, stderr)
	}
	if code, _, stderr := run(t, nil, "service", "install", "--state-dir", state, "--", "--server", "nope"); code != 1 || !strings.Contains(stderr, "HOST:PORT") {
		t.Errorf("install with a bad --server: exit %d:\n%s", code, stderr)
	}
	if m.installed {
		t.Fatal("a bad install reached the system")
	}
	// The test binary is in a go-build directory, as one of 'go run' is.
	code, _, stderr := run(t, nil, "service", "install", "--state-dir", state, "--", "--server", "exit.example.com:8443", "--certs", state)
	if code != 1 || !strings.Contains(stderr, "go run") {
		t.Fatalf("install from a go-build binary: exit %d:\n%s", code, stderr)
	}
	executablePath = func() (string, error) { return "/opt/fluidity/fluidity", nil }
	defer func() { executablePath = os.Executable }()
	code, _, stderr = run(t, nil, "service", "install", "--state-dir", state, "--", "--server", "exit.example.com:8443", "--certs", state)
	if code != 0 || m.spec == nil {
		t.Fatalf("install: exit %d:\n%s", code, stderr)
	}
	if m.spec.Executable != "/opt/fluidity/fluidity" {
		t.Errorf("service runs %s", m.spec.Executable)
	}
	want := []string{"service", "run", "--state-dir", state, "--", "--server", "exit.example.com:8443", "--certs", state}
	if strings.Join(m.spec.Args, " ") != strings.Join(want, " ") {
		t.Errorf("service runs %q, want %q", m.spec.Args, want)
	}
	_, stdout, _ := run(t, nil, "service", "status", "--state-dir", state)
	if !strings.Contains(stdout, filepath.Join(state, serviceLogFile)) {
		t.Errorf("service status does not say where the log is:\n%s", stdout)
	}
}

func TestSystemProxyPointsAtThePACFileWithSplitRouting(t *testing.T) {
	for _, tc := range []struct {
		cfg  agentConfig
		want sysproxy.Setting
	}{
		{agentConfig{Listen: "127.0.0.1:8080"}, sysproxy.Setting{Server: "127.0.0.1:8080"}},
		{agentConfig{Listen: "0.0.0.0:9000"}, sysproxy.Setting{Server: "127.0.0.1:9000"}},
		{agentConfig{Listen: "127.0.0.1:8080", Network: NetworkConfig{Direct: []string{".corp.example"}}},
			sysproxy.Setting{PACURL: "http://127.0.0.1:8080/proxy.pac"}},
		{agentConfig{Listen: "127.0.0.1:8080", SystemProxyPAC: "http://pac.example/x.pac", Network: NetworkConfig{Direct: []string{"10.0.0.0/8"}}},
			sysproxy.Setting{PACURL: "http://pac.example/x.pac"}},
	} {
		if got := tc.cfg.systemProxySetting(); got != tc.want {
			t.Errorf("listen %s, direct %q, pac %q: system proxy %+v, want %+v", tc.cfg.Listen, tc.cfg.Network.Direct, tc.cfg.SystemProxyPAC, got, tc.want)
		}
	}
}
