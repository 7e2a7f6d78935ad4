package config

import (
	"errors"
	"flag"
	"reflect"
	"testing"
)

// FuzzLoadYAML decodes arbitrary files against the server configuration.
// Errors are expected; a panic, or a key error without a line, is a bug.
func FuzzLoadYAML(f *testing.F) {
	for _, seed := range []string{
		"",
		"listen: :8443\nhandshake_timeout: 10s\nallow_private: true\n",
		"egress:\n  allow_hosts: [a.example, b.example]\n  deny_ports: 25\n",
		"iam:\n  allow: [arn:aws:iam::1:role/x]\n  sts_endpoint:\n    us-east-1: https://sts.us-east-1.amazonaws.com\n",
		"log: {level: debug, format: json}\n",
		"egress:\n  alow_hosts: [a]\n",
		"listen: :1\nlisten: :2\n",
		"a: &a {b: *a}\nlog: *a\n",
		"log: &l\n  level: *l\n",
		"egress: &e\n  allow_hosts: *e\n",
		"? [a]\n: b\n",
		"log:\n  <<: {level: debug}\n",
		"--- a\n--- b\n",
		"listen: !!binary aGVsbG8=\n",
		"iam:\n  sts_endpoint:\n    ~: x\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := defaultServerConfig()
		l := Bind(flag.NewFlagSet("fuzz", flag.ContinueOnError), &cfg)
		err := l.decodeYAML(reflect.ValueOf(&cfg).Elem(), "fuzz.yaml", data)
		var e *Error
		if errors.As(err, &e) && (e.File != "fuzz.yaml" || e.Line < 1) {
			t.Errorf("error without a position: %#v", e)
		}
	})
}
