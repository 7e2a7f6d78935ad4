package config

import (
	"errors"
	"flag"
	"io"
	"reflect"
	"testing"
)

func TestEnvironment(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		ignore  []string
		want    func(*serverConfig)
		wantErr *Error // Err compared with errors.Is; nil for success
	}{
		{
			name:    "variables without the FLUIDITY_ prefix are not looked at",
			environ: []string{"HOME=/root", "FLUIDITYX=1", "fluidity_listen=:1", "PATH"},
			want:    func(*serverConfig) {},
		},
		{
			name:    "nested keys take their path in upper case",
			environ: []string{"FLUIDITY_EGRESS_ALLOW_HOSTS=a,b", "FLUIDITY_IAM_STS_ENDPOINT=us-east-1=https://sts", "FLUIDITY_LOG_LEVEL=debug"},
			want: func(c *serverConfig) {
				c.Egress.AllowHosts = []string{"a", "b"}
				c.IAM.STSEndpoints = map[string]string{"us-east-1": "https://sts"}
				c.Log.Level = "debug"
			},
		},
		{
			name:    "a key with a flag tag keeps the variable of its path",
			environ: []string{"FLUIDITY_CERTS=/etc/fluidity"},
			want:    func(c *serverConfig) { c.Certs = "/etc/fluidity" },
		},
		{
			name:    "the last of repeated variables wins",
			environ: []string{"FLUIDITY_LISTEN=:1", "FLUIDITY_LISTEN=:2"},
			want:    func(c *serverConfig) { c.Listen = ":2" },
		},
		{
			name:    "an empty string variable sets the empty string",
			environ: []string{"FLUIDITY_LISTEN="},
			want:    func(c *serverConfig) { c.Listen = "" },
		},
		{
			name:    "an unknown variable is an error naming the closest one",
			environ: []string{"FLUIDITY_LOG_LEVL=debug"},
			wantErr: &Error{Key: "FLUIDITY_LOG_LEVL", Suggestion: "FLUIDITY_LOG_LEVEL", Err: ErrUnknownKey},
		},
		{
			name:    "an unknown variable far from every key suggests nothing",
			environ: []string{"FLUIDITY_STATE_DIR=/var/lib/fluidity"},
			wantErr: &Error{Key: "FLUIDITY_STATE_DIR", Err: ErrUnknownKey},
		},
		{
			name:    "an ignored variable is accepted and changes nothing",
			environ: []string{"FLUIDITY_STATE_DIR=/var/lib/fluidity", "FLUIDITY_LISTEN=:1"},
			ignore:  []string{"FLUIDITY_STATE_DIR"},
			want:    func(c *serverConfig) { c.Listen = ":1" },
		},
		{
			name:    "a variable without a value is an empty value",
			environ: []string{"FLUIDITY_ALLOW_PRIVATE"},
			wantErr: &Error{Key: "FLUIDITY_ALLOW_PRIVATE", Err: ErrInvalidValue},
		},
		{
			name:    "an invalid bool names the variable",
			environ: []string{"FLUIDITY_IAM_REQUIRED=sometimes"},
			wantErr: &Error{Key: "FLUIDITY_IAM_REQUIRED", Err: ErrInvalidValue},
		},
		{
			name:    "an invalid duration names the variable",
			environ: []string{"FLUIDITY_HANDSHAKE_TIMEOUT=10"},
			wantErr: &Error{Key: "FLUIDITY_HANDSHAKE_TIMEOUT", Err: ErrInvalidValue},
		},
		{
			name:    "an invalid map item names the variable",
			environ: []string{"FLUIDITY_IAM_STS_ENDPOINT=us-east-1"},
			wantErr: &Error{Key: "FLUIDITY_IAM_STS_ENDPOINT", Err: ErrInvalidValue},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultServerConfig()
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			l := Bind(fs, &cfg)
			l.IgnoreEnv(tt.ignore...)
			if err := fs.Parse(nil); err != nil {
				t.Fatal(err)
			}
			err := l.Load(tt.environ)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				want := defaultServerConfig()
				tt.want(&want)
				if !reflect.DeepEqual(cfg, want) {
					t.Errorf("got  %+v\nwant %+v", cfg, want)
				}
				return
			}
			var got *Error
			if !errors.As(err, &got) || !errors.Is(err, tt.wantErr.Err) {
				t.Fatalf("err = %v, want an *Error matching %v", err, tt.wantErr.Err)
			}
			if got.File != "" || got.Line != 0 || got.Key != tt.wantErr.Key || got.Suggestion != tt.wantErr.Suggestion {
				t.Errorf("got file %q line %d key %q suggestion %q, want no file, key %q suggestion %q",
					got.File, got.Line, got.Key, got.Suggestion, tt.wantErr.Key, tt.wantErr.Suggestion)
			}
		})
	}
}

func TestIgnoreEnvPanicsForAKeyVariable(t *testing.T) {
	cfg := defaultServerConfig()
	l := Bind(flag.NewFlagSet("test", flag.ContinueOnError), &cfg)
	defer func() {
		if recover() == nil {
			t.Error("IgnoreEnv(FLUIDITY_LISTEN) did not panic, want a panic: the variable sets a key")
		}
	}()
	l.IgnoreEnv("FLUIDITY_LISTEN")
}
