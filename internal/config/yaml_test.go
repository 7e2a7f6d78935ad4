package config

import (
	"errors"
	"flag"
	"reflect"
	"testing"
	"time"
)

// decodeServer decodes a file named config.yaml into the default server
// configuration.
func decodeServer(t *testing.T, yaml string) (serverConfig, error) {
	t.Helper()
	cfg := defaultServerConfig()
	l := Bind(flag.NewFlagSet("test", flag.ContinueOnError), &cfg)
	err := l.decodeYAML(reflect.ValueOf(&cfg).Elem(), "config.yaml", []byte(yaml))
	return cfg, err
}

func TestYAMLValues(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want func(*serverConfig)
	}{
		{
			name: "an empty file keeps every default",
			yaml: "",
			want: func(*serverConfig) {},
		},
		{
			name: "a file of comments keeps every default",
			yaml: "# nothing here\n",
			want: func(*serverConfig) {},
		},
		{
			name: "a null document keeps every default",
			yaml: "~\n",
			want: func(*serverConfig) {},
		},
		{
			name: "nested sections set nested keys",
			yaml: "listen: :9443\negress:\n  allow_hosts: [a.example]\niam:\n  required: yes\n  sts_endpoint:\n    us-east-1: https://sts.us-east-1.amazonaws.com\nlog:\n  format: json\n",
			want: func(c *serverConfig) {
				c.Listen = ":9443"
				c.Egress.AllowHosts = []string{"a.example"}
				c.IAM.Required = true
				c.IAM.STSEndpoints = map[string]string{"us-east-1": "https://sts.us-east-1.amazonaws.com"}
				c.Log.Format = "json"
			},
		},
		{
			name: "null values keep their defaults",
			yaml: "listen: ~\nhandshake_timeout: null\negress:\n  deny_ports:\nlog:\n",
			want: func(*serverConfig) {},
		},
		{
			name: "a quoted null is a string",
			yaml: "listen: 'null'",
			want: func(c *serverConfig) { c.Listen = "null" },
		},
		{
			name: "a number is accepted as a string",
			yaml: "listen: 8443",
			want: func(c *serverConfig) { c.Listen = "8443" },
		},
		{
			name: "a scalar is a one-item list",
			yaml: "egress:\n  deny_ports: 22",
			want: func(c *serverConfig) { c.Egress.DenyPorts = []string{"22"} },
		},
		{
			name: "aliases are followed",
			yaml: "egress:\n  allow_hosts: &hosts [a, b]\niam:\n  allow: *hosts",
			want: func(c *serverConfig) {
				c.Egress.AllowHosts = []string{"a", "b"}
				c.IAM.Allow = []string{"a", "b"}
			},
		},
		{
			name: "a section may be written in flow style",
			yaml: "log: {level: debug, format: json}",
			want: func(c *serverConfig) {
				c.Log.Level = "debug"
				c.Log.Format = "json"
			},
		},
		{
			name: "durations take Go syntax",
			yaml: "handshake_timeout: 1m30s",
			want: func(c *serverConfig) { c.HandshakeTimeout = 90 * time.Second },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeServer(t, tt.yaml)
			if err != nil {
				t.Fatal(err)
			}
			want := defaultServerConfig()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestYAMLErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want Error // Err is compared with errors.Is
	}{
		{
			name: "an unknown nested key names its full path and the closest key",
			yaml: "listen: :1\negress:\n  alow_hosts: [a]\n",
			want: Error{Line: 3, Key: "egress.alow_hosts", Suggestion: "egress.allow_hosts", Err: ErrUnknownKey},
		},
		{
			name: "an unknown section suggests the section",
			yaml: "egres:\n  allow_hosts: [a]\n",
			want: Error{Line: 1, Key: "egres", Suggestion: "egress", Err: ErrUnknownKey},
		},
		{
			name: "an unknown key far from every key suggests nothing",
			yaml: "completely_different: 1\n",
			want: Error{Line: 1, Key: "completely_different", Err: ErrUnknownKey},
		},
		{
			name: "a dotted key is unknown and points at the nested form",
			yaml: "egress.allow_hosts: [a]\n",
			want: Error{Line: 1, Key: "egress.allow_hosts", Suggestion: "egress.allow_hosts", Err: ErrUnknownKey},
		},
		{
			name: "a key under a leaf is unknown",
			yaml: "log:\n  level:\n    x: 1\n",
			want: Error{Line: 3, Key: "log.level", Err: ErrInvalidValue},
		},
		{
			name: "a duplicate top-level key names both lines",
			yaml: "listen: :1\ncerts: /c\nlisten: :2\n",
			want: Error{Line: 3, Key: "listen", FirstLine: 1, Err: ErrDuplicateKey},
		},
		{
			name: "a duplicate nested key names its path",
			yaml: "log:\n  level: debug\n  level: info\n",
			want: Error{Line: 3, Key: "log.level", FirstLine: 2, Err: ErrDuplicateKey},
		},
		{
			name: "a duplicate section is an error",
			yaml: "log:\n  level: debug\nlog:\n  format: json\n",
			want: Error{Line: 3, Key: "log", FirstLine: 1, Err: ErrDuplicateKey},
		},
		{
			name: "a duplicate map key is an error",
			yaml: "iam:\n  sts_endpoint:\n    us-east-1: a\n    us-east-1: b\n",
			want: Error{Line: 4, Key: "iam.sts_endpoint.us-east-1", FirstLine: 3, Err: ErrDuplicateKey},
		},
		{
			name: "an invalid duration names the key and Go syntax",
			yaml: "listen: :1\n\n\n\nhandshake_timeout: 10 seconds\n",
			want: Error{Line: 5, Key: "handshake_timeout", Err: ErrInvalidValue},
		},
		{
			name: "an invalid bool names the key",
			yaml: "allow_private: maybe\n",
			want: Error{Line: 1, Key: "allow_private", Err: ErrInvalidValue},
		},
		{
			name: "a list for a string names the key",
			yaml: "listen: [a, b]\n",
			want: Error{Line: 1, Key: "listen", Err: ErrInvalidValue},
		},
		{
			name: "a mapping for a list names the key",
			yaml: "egress:\n  allow_hosts: {a: b}\n",
			want: Error{Line: 2, Key: "egress.allow_hosts", Err: ErrInvalidValue},
		},
		{
			name: "a nested list item names the item's line",
			yaml: "egress:\n  allow_hosts:\n    - a\n    - [b]\n",
			want: Error{Line: 4, Key: "egress.allow_hosts", Err: ErrInvalidValue},
		},
		{
			name: "a null list item is an error",
			yaml: "egress:\n  allow_hosts:\n    - a\n    -\n",
			want: Error{Line: 4, Key: "egress.allow_hosts", Err: ErrInvalidValue},
		},
		{
			name: "a list for a map names the key",
			yaml: "iam:\n  sts_endpoint: [a=b]\n",
			want: Error{Line: 2, Key: "iam.sts_endpoint", Err: ErrInvalidValue},
		},
		{
			name: "a list as a map value names the entry",
			yaml: "iam:\n  sts_endpoint:\n    us-east-1: [a]\n",
			want: Error{Line: 3, Key: "iam.sts_endpoint.us-east-1", Err: ErrInvalidValue},
		},
		{
			name: "a scalar for a section names the section",
			yaml: "egress: all\n",
			want: Error{Line: 1, Key: "egress", Err: ErrInvalidValue},
		},
		{
			name: "a list at the top level is an error",
			yaml: "- listen\n",
			want: Error{Line: 1, Err: ErrInvalidValue},
		},
		{
			name: "a merge key is refused",
			yaml: "log:\n  <<: {level: debug}\n",
			want: Error{Line: 2, Key: "log", Err: ErrInvalidValue},
		},
		{
			name: "a complex key is refused",
			yaml: "? [a, b]\n: c\n",
			want: Error{Line: 1, Err: ErrInvalidValue},
		},
		{
			name: "a second document is refused",
			yaml: "listen: :1\n---\nlisten: :2\n",
			want: Error{Line: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeServer(t, tt.yaml)
			var got *Error
			if !errors.As(err, &got) {
				t.Fatalf("err = %v, want an *Error", err)
			}
			if tt.want.Err != nil && !errors.Is(got, tt.want.Err) {
				t.Errorf("err = %v, want it to match %v", got, tt.want.Err)
			}
			if got.File != "config.yaml" || got.Line != tt.want.Line || got.Key != tt.want.Key ||
				got.Suggestion != tt.want.Suggestion || got.FirstLine != tt.want.FirstLine {
				t.Errorf("got  file %q line %d key %q suggestion %q first line %d (%v)\nwant file %q line %d key %q suggestion %q first line %d",
					got.File, got.Line, got.Key, got.Suggestion, got.FirstLine, got,
					"config.yaml", tt.want.Line, tt.want.Key, tt.want.Suggestion, tt.want.FirstLine)
			}
		})
	}
}

func TestYAMLInvalidValueForEachType(t *testing.T) {
	tests := []struct {
		key, value string
	}{
		{"on", "maybe"},
		{"count", "1.5"},
		{"count", "99999999999999999999"},
		{"big", "ten"},
		{"port", "-1"},
		{"port", "65536"},
		{"ratio", "a half"},
		{"timeout", "30"},
	}
	for _, tt := range tests {
		t.Run(tt.key+" rejects "+tt.value, func(t *testing.T) {
			cfg := defaultAllTypes()
			l := Bind(flag.NewFlagSet("test", flag.ContinueOnError), &cfg)
			err := l.decodeYAML(reflect.ValueOf(&cfg).Elem(), "config.yaml", []byte("\n"+tt.key+": "+tt.value))
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrInvalidValue) || e.Key != tt.key || e.Line != 2 {
				t.Errorf("err = %v, want an invalid value for %q on line 2", err, tt.key)
			}
		})
	}
}

func TestYAMLReportsEveryProblem(t *testing.T) {
	_, err := decodeServer(t, "lisen: a\nlog:\n  levl: b\n")
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 2 {
		t.Fatalf("err = %v, want both unknown keys reported", err)
	}
}

func TestYAMLLimitsTheNumberOfErrors(t *testing.T) {
	var yaml string
	for i := range 50 {
		yaml += "unknown" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ": 1\n"
	}
	_, err := decodeServer(t, yaml)
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != maxFileErrors+1 {
		t.Fatalf("got %d errors, want %d and a note", len(joined.Unwrap()), maxFileErrors)
	}
}

func TestYAMLSyntaxError(t *testing.T) {
	_, err := decodeServer(t, "listen: [unclosed\n")
	if err == nil {
		t.Fatal("decode succeeded, want a syntax error")
	}
	var e *Error
	if errors.As(err, &e) {
		t.Errorf("a syntax error is reported as a key error: %v", err)
	}
}

// TestErrorMessages pins the wording users see, which the documentation quotes.
func TestErrorMessages(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  []string
		want string
	}{
		{
			name: "an unknown key with a near miss",
			yaml: "listen: :1\n\negress:\n  alow_hosts: [a]\n",
			want: `config.yaml:4: unknown key "egress.alow_hosts" (did you mean "egress.allow_hosts"?)`,
		},
		{
			name: "a dotted key",
			yaml: "egress.allow_hosts: [a]\n",
			want: `config.yaml:1: unknown key "egress.allow_hosts" (dotted paths are not keys; nest them: egress: {allow_hosts: …})`,
		},
		{
			name: "an invalid duration",
			yaml: "listen: :1\n\n\n\nhandshake_timeout: 10 seconds\n",
			want: `config.yaml:5: key "handshake_timeout": invalid duration "10 seconds" (use Go syntax such as 10s or 1m30s)`,
		},
		{
			name: "a duplicate key",
			yaml: "log:\n  level: debug\n  level: info\n",
			want: `config.yaml:3: duplicate key "log.level" (first set on line 2)`,
		},
		{
			name: "a wrong shape",
			yaml: "listen: [a, b]\n",
			want: `config.yaml:1: key "listen": got a list; want a single string`,
		},
		{
			name: "an unknown environment variable",
			env:  []string{"FLUIDITY_LOG_LEVL=debug"},
			want: `unknown environment variable FLUIDITY_LOG_LEVL (did you mean FLUIDITY_LOG_LEVEL?)`,
		},
		{
			name: "an invalid environment value",
			env:  []string{"FLUIDITY_HANDSHAKE_TIMEOUT=soon"},
			want: `environment variable FLUIDITY_HANDSHAKE_TIMEOUT: invalid duration "soon" (use Go syntax such as 10s or 1m30s)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultServerConfig()
			l := Bind(flag.NewFlagSet("test", flag.ContinueOnError), &cfg)
			var err error
			if tt.yaml != "" {
				err = l.decodeYAML(reflect.ValueOf(&cfg).Elem(), "config.yaml", []byte(tt.yaml))
			} else {
				err = l.applyEnv(reflect.ValueOf(&cfg).Elem(), fluidityEnv(tt.env))
			}
			if err == nil || err.Error() != tt.want {
				t.Errorf("got  %v\nwant %s", err, tt.want)
			}
		})
	}
}
