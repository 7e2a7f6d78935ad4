package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"fluidity/internal/golden"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// serverConfig is shaped like the exit server's configuration.
type serverConfig struct {
	Listen           string        `yaml:"listen" help:"address to listen on"`
	Certs            string        `yaml:"certs" flag:"cert-dir" help:"directory with ca.crt, server.crt, server.key"`
	HandshakeTimeout time.Duration `yaml:"handshake_timeout" help:"TLS handshake deadline"`
	AllowPrivate     bool          `yaml:"allow_private" help:"permit loopback and private targets"`
	Egress           struct {
		AllowHosts []string `yaml:"allow_hosts" help:"hosts the exit may reach"`
		DenyPorts  []string `yaml:"deny_ports" help:"ports the exit refuses"`
	} `yaml:"egress"`
	IAM struct {
		Allow        []string          `yaml:"allow" flag:"iam-allow" help:"principals allowed in"`
		STSEndpoints map[string]string `yaml:"sts_endpoint" help:"STS endpoint per region"`
		Required     bool              `yaml:"required" help:"require an IAM identity"`
	} `yaml:"iam"`
	Log struct {
		Level  string `yaml:"level" help:"debug, info, warn or error"`
		Format string `yaml:"format" help:"text or json"`
	} `yaml:"log"`
	Secret string `yaml:"secret" flag:"-" help:"file and environment only"`
	Local  string `yaml:"local" env:"-" help:"file and flag only"`
}

func defaultServerConfig() serverConfig {
	c := serverConfig{Listen: ":8443", HandshakeTimeout: 10 * time.Second}
	c.Egress.DenyPorts = []string{"25"}
	c.Log.Level = "info"
	return c
}

// allTypes has one key of every supported type, each with a non-zero default.
type allTypes struct {
	Name    string            `yaml:"name"`
	On      bool              `yaml:"on"`
	Count   int               `yaml:"count"`
	Big     int64             `yaml:"big"`
	Port    uint16            `yaml:"port"`
	Ratio   float64           `yaml:"ratio"`
	Timeout time.Duration     `yaml:"timeout"`
	Hosts   []string          `yaml:"hosts"`
	Labels  map[string]string `yaml:"labels"`
	Nested  struct {
		Deep struct {
			Value string `yaml:"value"`
		} `yaml:"deep"`
	} `yaml:"nested"`
}

func defaultAllTypes() allTypes {
	c := allTypes{
		Name:    "default",
		On:      true,
		Count:   1,
		Big:     1 << 40,
		Port:    80,
		Ratio:   0.5,
		Timeout: time.Second,
		Hosts:   []string{"default.example"},
		Labels:  map[string]string{"default": "yes"},
	}
	c.Nested.Deep.Value = "default"
	return c
}

// source is everything one Load sees besides the defaults.
type source struct {
	yaml string   // contents of the config file; no file when empty
	env  []string // environ
	args []string // command line
}

// load binds cfg to a fresh flag set and loads it from src.
func load(t *testing.T, cfg any, src source) (*Loader, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	l := Bind(fs, cfg)
	args := src.args
	if src.yaml != "" {
		args = append([]string{"--config", writeFile(t, src.yaml)}, args...)
	}
	if err := fs.Parse(args); err != nil {
		return l, err
	}
	return l, l.Load(src.env)
}

func writeFile(t *testing.T, contents string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(contents), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPrecedence(t *testing.T) {
	tests := []struct {
		name string
		get  func(*allTypes) any
		// Each source sets the key; want lists the value after the default,
		// after the file, after the file and env, and after all three.
		yaml string
		env  string
		args []string
		want [4]any
	}{
		{
			name: "a string",
			get:  func(c *allTypes) any { return c.Name },
			yaml: "name: file", env: "FLUIDITY_NAME=env", args: []string{"--name", "flag"},
			want: [4]any{"default", "file", "env", "flag"},
		},
		{
			name: "a bool",
			get:  func(c *allTypes) any { return c.On },
			yaml: "on: false", env: "FLUIDITY_ON=yes", args: []string{"--on=0"},
			want: [4]any{true, false, true, false},
		},
		{
			name: "an int",
			get:  func(c *allTypes) any { return c.Count },
			yaml: "count: 2", env: "FLUIDITY_COUNT=3", args: []string{"--count", "-4"},
			want: [4]any{1, 2, 3, -4},
		},
		{
			name: "an int64",
			get:  func(c *allTypes) any { return c.Big },
			yaml: "big: 9000000000", env: "FLUIDITY_BIG=9000000001", args: []string{"--big", "9000000002"},
			want: [4]any{int64(1 << 40), int64(9000000000), int64(9000000001), int64(9000000002)},
		},
		{
			name: "a uint16",
			get:  func(c *allTypes) any { return c.Port },
			yaml: "port: 443", env: "FLUIDITY_PORT=8443", args: []string{"--port", "65535"},
			want: [4]any{uint16(80), uint16(443), uint16(8443), uint16(65535)},
		},
		{
			name: "a float64",
			get:  func(c *allTypes) any { return c.Ratio },
			yaml: "ratio: 0.25", env: "FLUIDITY_RATIO=2", args: []string{"--ratio", "1e-3"},
			want: [4]any{0.5, 0.25, 2.0, 0.001},
		},
		{
			name: "a duration",
			get:  func(c *allTypes) any { return c.Timeout },
			yaml: "timeout: 1m30s", env: "FLUIDITY_TIMEOUT=250ms", args: []string{"--timeout", "2h"},
			want: [4]any{time.Second, 90 * time.Second, 250 * time.Millisecond, 2 * time.Hour},
		},
		{
			name: "a list",
			get:  func(c *allTypes) any { return c.Hosts },
			yaml: "hosts: [a.example, b.example]", env: "FLUIDITY_HOSTS=c.example", args: []string{"--hosts", "d.example,e.example"},
			want: [4]any{
				[]string{"default.example"},
				[]string{"a.example", "b.example"},
				[]string{"c.example"},
				[]string{"d.example", "e.example"},
			},
		},
		{
			name: "a map",
			get:  func(c *allTypes) any { return c.Labels },
			yaml: "labels: {a: '1', b: '2'}", env: "FLUIDITY_LABELS=c=3", args: []string{"--labels", "d=4"},
			want: [4]any{
				map[string]string{"default": "yes"},
				map[string]string{"a": "1", "b": "2"},
				map[string]string{"c": "3"},
				map[string]string{"d": "4"},
			},
		},
		{
			name: "a deeply nested string",
			get:  func(c *allTypes) any { return c.Nested.Deep.Value },
			yaml: "nested:\n  deep:\n    value: file", env: "FLUIDITY_NESTED_DEEP_VALUE=env", args: []string{"--nested-deep-value", "flag"},
			want: [4]any{"default", "file", "env", "flag"},
		},
	}
	for _, tt := range tests {
		stages := []struct {
			name string
			src  source
		}{
			{"keeps its default when no source sets it", source{}},
			{"takes the file over the default", source{yaml: tt.yaml}},
			{"takes the environment over the file", source{yaml: tt.yaml, env: []string{tt.env}}},
			{"takes the flag over the environment", source{yaml: tt.yaml, env: []string{tt.env}, args: tt.args}},
		}
		for i, stage := range stages {
			t.Run(tt.name+" "+stage.name, func(t *testing.T) {
				cfg := defaultAllTypes()
				if _, err := load(t, &cfg, stage.src); err != nil {
					t.Fatal(err)
				}
				if got := tt.get(&cfg); !reflect.DeepEqual(got, tt.want[i]) {
					t.Errorf("got %#v, want %#v", got, tt.want[i])
				}
			})
		}
	}
}

func TestListsAndMaps(t *testing.T) {
	tests := []struct {
		name       string
		src        source
		wantHosts  []string
		wantLabels map[string]string
	}{
		{
			name:       "a repeated list flag collects every occurrence",
			src:        source{args: []string{"--hosts", "a", "--hosts", "b,c", "--hosts=d"}},
			wantHosts:  []string{"a", "b", "c", "d"},
			wantLabels: map[string]string{"default": "yes"},
		},
		{
			name:       "comma lists drop spaces and empty items",
			src:        source{env: []string{"FLUIDITY_HOSTS= a , ,b,"}},
			wantHosts:  []string{"a", "b"},
			wantLabels: map[string]string{"default": "yes"},
		},
		{
			name:       "an empty environment variable empties a list",
			src:        source{env: []string{"FLUIDITY_HOSTS="}},
			wantHosts:  []string{},
			wantLabels: map[string]string{"default": "yes"},
		},
		{
			name:       "an empty flag empties a list",
			src:        source{args: []string{"--hosts="}},
			wantHosts:  []string{},
			wantLabels: map[string]string{"default": "yes"},
		},
		{
			name:       "an empty YAML list empties a list",
			src:        source{yaml: "hosts: []\nlabels: {}"},
			wantHosts:  []string{},
			wantLabels: map[string]string{},
		},
		{
			name:       "a single YAML value is a one-item list",
			src:        source{yaml: "hosts: only.example"},
			wantHosts:  []string{"only.example"},
			wantLabels: map[string]string{"default": "yes"},
		},
		{
			name:       "a YAML value keeps its commas",
			src:        source{yaml: "hosts: [\"a,b\"]"},
			wantHosts:  []string{"a,b"},
			wantLabels: map[string]string{"default": "yes"},
		},
		{
			name:       "a file list replaces the default rather than adding to it",
			src:        source{yaml: "hosts:\n  - x\nlabels:\n  k: v"},
			wantHosts:  []string{"x"},
			wantLabels: map[string]string{"k": "v"},
		},
		{
			name:       "a flag list replaces the environment list",
			src:        source{env: []string{"FLUIDITY_HOSTS=e1,e2", "FLUIDITY_LABELS=e=1"}, args: []string{"--hosts", "f", "--labels", "f=2"}},
			wantHosts:  []string{"f"},
			wantLabels: map[string]string{"f": "2"},
		},
		{
			name:       "repeated and comma-separated map items combine",
			src:        source{args: []string{"--labels", "a=1,b=2", "--labels", "c=3", "--labels", "a=4"}},
			wantHosts:  []string{"default.example"},
			wantLabels: map[string]string{"a": "4", "b": "2", "c": "3"},
		},
		{
			name:       "a map value may hold an equals sign or be empty",
			src:        source{env: []string{"FLUIDITY_LABELS=q=a=b,empty="}},
			wantHosts:  []string{"default.example"},
			wantLabels: map[string]string{"q": "a=b", "empty": ""},
		},
		{
			name:       "a map of endpoints takes URLs",
			src:        source{args: []string{"--labels", "us-east-1=https://sts.us-east-1.amazonaws.com"}},
			wantHosts:  []string{"default.example"},
			wantLabels: map[string]string{"us-east-1": "https://sts.us-east-1.amazonaws.com"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultAllTypes()
			if _, err := load(t, &cfg, tt.src); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Hosts, tt.wantHosts) {
				t.Errorf("hosts = %#v, want %#v", cfg.Hosts, tt.wantHosts)
			}
			if !reflect.DeepEqual(cfg.Labels, tt.wantLabels) {
				t.Errorf("labels = %#v, want %#v", cfg.Labels, tt.wantLabels)
			}
		})
	}
}

func TestLoadDoesNotShareListsWithTheFlag(t *testing.T) {
	cfg := defaultAllTypes()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	l := Bind(fs, &cfg)
	if err := fs.Parse([]string{"--hosts", "a"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Load(nil); err != nil {
		t.Fatal(err)
	}
	cfg.Hosts[0] = "changed"
	if err := l.Load(nil); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a"}; !reflect.DeepEqual(cfg.Hosts, want) {
		t.Errorf("hosts after a second Load = %q, want %q", cfg.Hosts, want)
	}
}

func TestBoolFlag(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want bool
	}{
		{"a bare flag means true", []string{"--allow-private"}, true},
		{"yes means true", []string{"--allow-private=yes"}, true},
		{"1 means true", []string{"--allow-private=1"}, true},
		{"TRUE means true", []string{"--allow-private=TRUE"}, true},
		{"no means false", []string{"--allow-private=no"}, false},
		{"0 means false", []string{"--allow-private=0"}, false},
		{"an absent flag keeps the default", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultServerConfig()
			if _, err := load(t, &cfg, source{args: tt.args}); err != nil {
				t.Fatal(err)
			}
			if cfg.AllowPrivate != tt.want {
				t.Errorf("allow_private = %v, want %v", cfg.AllowPrivate, tt.want)
			}
		})
	}
}

func TestInvalidFlagValues(t *testing.T) {
	tests := []struct {
		name string
		arg  string
		// The flag package composes the message from the flag name and the
		// error of our Set, so the message is what we can check.
		wantInMessage []string
	}{
		{"a bad bool names the flag and the choices", "--on=maybe", []string{"-on", `"maybe"`, "true or false"}},
		{"a bad int names the flag", "--count=ten", []string{"-count", `"ten"`, "whole number"}},
		{"a bad int64 names the flag", "--big=1.5", []string{"-big", "whole number"}},
		{"an out-of-range uint16 gives the range", "--port=70000", []string{"-port", "0 to 65535"}},
		{"a bad float names the flag", "--ratio=half", []string{"-ratio", "decimal number"}},
		{"a bad duration shows Go syntax", "--timeout=10 seconds", []string{"-timeout", "10s or 1m30s"}},
		{"a bad map item asks for KEY=VALUE", "--labels=novalue", []string{"-labels", `"novalue"`, "KEY=VALUE"}},
		{"a map item without a key asks for KEY=VALUE", "--labels==v", []string{"-labels", "KEY=VALUE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultAllTypes()
			_, err := load(t, &cfg, source{args: []string{tt.arg}})
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, want := range tt.wantInMessage {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestFlagValueSetErrorsMatchErrInvalidValue(t *testing.T) {
	cfg := defaultAllTypes()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	Bind(fs, &cfg)
	for _, name := range []string{"on", "count", "big", "port", "ratio", "timeout", "labels"} {
		if err := fs.Lookup(name).Value.Set("x"); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("--%s=x: err = %v, want ErrInvalidValue", name, err)
		}
	}
}

func TestFlagTags(t *testing.T) {
	tests := []struct {
		name     string
		flag     string
		wantFlag bool
	}{
		{"a derived flag name turns dots and underscores into dashes", "egress-allow-hosts", true},
		{"a flag tag replaces the derived name", "cert-dir", true},
		{"the derived name is not registered when a flag tag replaces it", "certs", false},
		{"a flag tag may repeat the derived name", "iam-allow", true},
		{"a flag tag of dash registers no flag", "secret", false},
		{"a key without a flag tag of dash still has its flag", "local", true},
		{"every loader has --config", "config", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultServerConfig()
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			Bind(fs, &cfg)
			if got := fs.Lookup(tt.flag) != nil; got != tt.wantFlag {
				t.Errorf("flag --%s registered = %v, want %v", tt.flag, got, tt.wantFlag)
			}
		})
	}
}

func TestFlagAndEnvDashTags(t *testing.T) {
	cfg := defaultServerConfig()
	_, err := load(t, &cfg, source{env: []string{"FLUIDITY_SECRET=s"}, args: []string{"--local", "l", "--iam-allow", "a,b"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Secret != "s" || cfg.Local != "l" || !reflect.DeepEqual(cfg.IAM.Allow, []string{"a", "b"}) {
		t.Errorf("secret, local, iam.allow = %q, %q, %q; want s, l, [a b]", cfg.Secret, cfg.Local, cfg.IAM.Allow)
	}

	cfg = defaultServerConfig()
	_, err = load(t, &cfg, source{env: []string{"FLUIDITY_LOCAL=l"}})
	var e *Error
	if !errors.As(err, &e) || e.Err != ErrUnknownKey || e.Key != "FLUIDITY_LOCAL" {
		t.Errorf("FLUIDITY_LOCAL for a key tagged env:\"-\": err = %v, want an unknown variable", err)
	}
}

func TestKeys(t *testing.T) {
	cfg := defaultServerConfig()
	cfg.IAM.STSEndpoints = map[string]string{"us-east-1": "https://sts.us-east-1.amazonaws.com", "eu-west-1": "https://sts.eu-west-1.amazonaws.com"}
	l := Bind(flag.NewFlagSet("test", flag.ContinueOnError), &cfg)
	want := []Key{
		{Path: "listen", Flag: "listen", Env: "FLUIDITY_LISTEN", Type: "string", Help: "address to listen on", Default: ":8443"},
		{Path: "certs", Flag: "cert-dir", Env: "FLUIDITY_CERTS", Type: "string", Help: "directory with ca.crt, server.crt, server.key"},
		{Path: "handshake_timeout", Flag: "handshake-timeout", Env: "FLUIDITY_HANDSHAKE_TIMEOUT", Type: "duration", Help: "TLS handshake deadline", Default: "10s"},
		{Path: "allow_private", Flag: "allow-private", Env: "FLUIDITY_ALLOW_PRIVATE", Type: "bool", Help: "permit loopback and private targets"},
		{Path: "egress.allow_hosts", Flag: "egress-allow-hosts", Env: "FLUIDITY_EGRESS_ALLOW_HOSTS", Type: "list", Help: "hosts the exit may reach"},
		{Path: "egress.deny_ports", Flag: "egress-deny-ports", Env: "FLUIDITY_EGRESS_DENY_PORTS", Type: "list", Help: "ports the exit refuses", Default: "25"},
		{Path: "iam.allow", Flag: "iam-allow", Env: "FLUIDITY_IAM_ALLOW", Type: "list", Help: "principals allowed in"},
		{Path: "iam.sts_endpoint", Flag: "iam-sts-endpoint", Env: "FLUIDITY_IAM_STS_ENDPOINT", Type: "map", Help: "STS endpoint per region",
			Default: "eu-west-1=https://sts.eu-west-1.amazonaws.com,us-east-1=https://sts.us-east-1.amazonaws.com"},
		{Path: "iam.required", Flag: "iam-required", Env: "FLUIDITY_IAM_REQUIRED", Type: "bool", Help: "require an IAM identity"},
		{Path: "log.level", Flag: "log-level", Env: "FLUIDITY_LOG_LEVEL", Type: "string", Help: "debug, info, warn or error", Default: "info"},
		{Path: "log.format", Flag: "log-format", Env: "FLUIDITY_LOG_FORMAT", Type: "string", Help: "text or json"},
		{Path: "secret", Env: "FLUIDITY_SECRET", Type: "string", Help: "file and environment only"},
		{Path: "local", Flag: "local", Type: "string", Help: "file and flag only"},
	}
	got := l.Keys()
	if len(got) != len(want) {
		t.Fatalf("Keys() returned %d keys, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Keys()[%d]:\n got  %+v\n want %+v", i, got[i], want[i])
		}
	}
}

func TestNaming(t *testing.T) {
	tests := []struct {
		path, flag, env string
	}{
		{"listen", "listen", "FLUIDITY_LISTEN"},
		{"allow_private", "allow-private", "FLUIDITY_ALLOW_PRIVATE"},
		{"egress.allow_hosts", "egress-allow-hosts", "FLUIDITY_EGRESS_ALLOW_HOSTS"},
		{"iam.sts_endpoint", "iam-sts-endpoint", "FLUIDITY_IAM_STS_ENDPOINT"},
		{"lifecycle.idle-timeout", "lifecycle-idle-timeout", "FLUIDITY_LIFECYCLE_IDLE_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.path+" is --"+tt.flag+" and "+tt.env, func(t *testing.T) {
			if got := FlagName(tt.path); got != tt.flag {
				t.Errorf("FlagName(%q) = %q, want %q", tt.path, got, tt.flag)
			}
			if got := EnvName(tt.path); got != tt.env {
				t.Errorf("EnvName(%q) = %q, want %q", tt.path, got, tt.env)
			}
		})
	}
}

// TestUsage checks the flag help, defaults included, against
// testdata/usage.golden; run with -update to rewrite it.
func TestUsage(t *testing.T) {
	cfg := defaultServerConfig()
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	Bind(fs, &cfg)
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	fs.PrintDefaults()

	golden.Check(t, "usage.golden", buf.String())
}

type validated struct {
	Mode string `yaml:"mode"`
	Peer string `yaml:"peer"`
	seen *validated
}

var errPeerRequired = errors.New(`key "peer" is required when mode is client; set --peer`)

func (v *validated) Validate() error {
	if v.seen != nil {
		*v.seen = *v
	}
	if v.Mode == "client" && v.Peer == "" {
		return errPeerRequired
	}
	return nil
}

func TestValidate(t *testing.T) {
	t.Run("Validate sees the merged values and its error is returned unchanged", func(t *testing.T) {
		var seen validated
		cfg := validated{Mode: "server", Peer: "default", seen: &seen}
		_, err := load(t, &cfg, source{yaml: "peer: ~", env: []string{"FLUIDITY_MODE=client", "FLUIDITY_PEER="}})
		if err != errPeerRequired {
			t.Fatalf("err = %v, want errPeerRequired itself", err)
		}
		if seen.Mode != "client" || seen.Peer != "" {
			t.Errorf("Validate saw mode=%q peer=%q, want client and empty", seen.Mode, seen.Peer)
		}
		if cfg.Mode != "server" || cfg.Peer != "default" {
			t.Errorf("after a failed Load cfg is mode=%q peer=%q, want the defaults kept", cfg.Mode, cfg.Peer)
		}
	})
	t.Run("a valid configuration loads", func(t *testing.T) {
		cfg := validated{Mode: "server"}
		if _, err := load(t, &cfg, source{args: []string{"--mode", "client", "--peer", "p"}}); err != nil {
			t.Fatal(err)
		}
		if cfg.Mode != "client" || cfg.Peer != "p" {
			t.Errorf("mode=%q peer=%q, want client and p", cfg.Mode, cfg.Peer)
		}
	})
}

func TestFailedLoadLeavesConfigAlone(t *testing.T) {
	cfg := defaultAllTypes()
	_, err := load(t, &cfg, source{yaml: "name: file\ncount: x"})
	if err == nil {
		t.Fatal("Load succeeded, want an error")
	}
	if !reflect.DeepEqual(cfg, defaultAllTypes()) {
		t.Errorf("cfg changed by a failed Load: %+v", cfg)
	}
}

func TestConfigFile(t *testing.T) {
	path := writeFile(t, "listen: :1\n")
	tests := []struct {
		name       string
		args       []string
		env        []string
		wantFile   string
		wantListen string
	}{
		{"no file is read when none is named", nil, nil, "", ":8443"},
		{"--config names the file", []string{"--config", path}, nil, path, ":1"},
		{"FLUIDITY_CONFIG names the file", nil, []string{"FLUIDITY_CONFIG=" + path}, path, ":1"},
		{"--config wins over FLUIDITY_CONFIG", []string{"--config", path}, []string{"FLUIDITY_CONFIG=/nonexistent"}, path, ":1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultServerConfig()
			l, err := load(t, &cfg, source{env: tt.env, args: tt.args})
			if err != nil {
				t.Fatal(err)
			}
			if l.ConfigFile() != tt.wantFile || cfg.Listen != tt.wantListen {
				t.Errorf("file %q, listen %q; want %q, %q", l.ConfigFile(), cfg.Listen, tt.wantFile, tt.wantListen)
			}
		})
	}
	t.Run("a missing file is an error that wraps the open error", func(t *testing.T) {
		cfg := defaultServerConfig()
		_, err := load(t, &cfg, source{args: []string{"--config", filepath.Join(t.TempDir(), "missing.yaml")}})
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err = %v, want os.ErrNotExist", err)
		}
	})
}

func TestLoadBeforeParse(t *testing.T) {
	cfg := defaultServerConfig()
	l := Bind(flag.NewFlagSet("test", flag.ContinueOnError), &cfg)
	if err := l.Load(nil); err == nil {
		t.Error("Load before Parse succeeded, want an error")
	}
}

func TestBindPanics(t *testing.T) {
	type inner struct{ X string }
	tests := []struct {
		name string
		cfg  any
		want string // the panic message names this
	}{
		{"an int8 field is rejected", &struct {
			N int8 `yaml:"n"`
		}{}, `"n"`},
		{"a pointer field is rejected", &struct {
			P *string `yaml:"p"`
		}{}, `"p"`},
		{"a pointer to a struct is rejected", &struct {
			S *inner `yaml:"s"`
		}{}, `"s"`},
		{"a list of ints is rejected", &struct {
			L []int `yaml:"ports"`
		}{}, `"ports"`},
		{"a map to ints is rejected", &struct {
			M map[string]int `yaml:"m"`
		}{}, `"m"`},
		{"a nested unsupported field names its full path", &struct {
			E struct {
				U uint32 `yaml:"u"`
			} `yaml:"egress"`
		}{}, `"egress.u"`},
		{"a struct without keys such as time.Time is rejected", &struct {
			T time.Time `yaml:"t"`
		}{}, `"t"`},
		{"a non-pointer is rejected", struct{}{}, "pointer"},
		{"two keys with one flag are rejected", &struct {
			A string `yaml:"a_b"`
			B string `yaml:"a-b" env:"-"`
		}{}, "--a-b"},
		{"two keys with one variable are rejected", &struct {
			A string `yaml:"a_b"`
			B string `yaml:"a-b" flag:"other"`
		}{}, "FLUIDITY_A_B"},
		{"a key named config is rejected", &struct {
			C string `yaml:"config"`
		}{}, "names the config file"},
		{"an env tag other than dash is rejected", &struct {
			C string `yaml:"c" env:"OTHER"`
		}{}, "OTHER"},
		{"a dotted yaml name is rejected", &struct {
			C string `yaml:"a.b"`
		}{}, `"a.b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				msg, _ := r.(string)
				if r == nil || !strings.Contains(msg, tt.want) {
					t.Errorf("panic %v, want a message naming %s", r, tt.want)
				}
			}()
			Bind(flag.NewFlagSet("test", flag.ContinueOnError), tt.cfg)
		})
	}
}

func TestInlineStruct(t *testing.T) {
	type Common struct {
		Level string `yaml:"level"`
	}
	var cfg struct {
		Common `yaml:",inline"`
		Name   string `yaml:"name"`
	}
	_, err := load(t, &cfg, source{yaml: "level: debug", args: []string{"--name", "n"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Level != "debug" || cfg.Name != "n" {
		t.Errorf("level %q name %q, want debug and n", cfg.Level, cfg.Name)
	}
}
