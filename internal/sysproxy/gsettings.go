package sysproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"

	"fluidity/internal/oscmd"
)

// GNOME is the proxy setting of GNOME desktops (org.gnome.system.proxy),
// changed with gsettings, which talks to the session's dconf.
type GNOME struct {
	// Run runs gsettings. If nil, oscmd.Exec.
	Run oscmd.Runner
}

// gnomeKeys are the keys saved and restored, in the order they are set
// back: the mode last, so a program never sees the mode with half the
// addresses.
var gnomeKeys = [][2]string{
	{"org.gnome.system.proxy.http", "host"},
	{"org.gnome.system.proxy.http", "port"},
	{"org.gnome.system.proxy.https", "host"},
	{"org.gnome.system.proxy.https", "port"},
	{"org.gnome.system.proxy", "autoconfig-url"},
	{"org.gnome.system.proxy", "ignore-hosts"},
	{"org.gnome.system.proxy", "mode"},
}

func (g GNOME) Name() string { return "GNOME (gsettings)" }

func (g GNOME) run(ctx context.Context, args ...string) (string, error) {
	out, err := g.Run.Run(ctx, "gsettings", args...)
	return strings.TrimSpace(string(out)), err
}

// gnomeSaved is GNOME's saved setting: each key's value in GVariant text,
// as gsettings get prints it and gsettings set takes it.
type gnomeSaved map[string]string

func (g GNOME) Save(ctx context.Context) (json.RawMessage, error) {
	saved := gnomeSaved{}
	for _, k := range gnomeKeys {
		v, err := g.run(ctx, "get", k[0], k[1])
		if err != nil {
			return nil, err
		}
		saved[k[0]+" "+k[1]] = v
	}
	return json.Marshal(saved)
}

func (g GNOME) Describe(raw json.RawMessage) string {
	var saved gnomeSaved
	if json.Unmarshal(raw, &saved) != nil {
		return "unreadable"
	}
	unquote := func(k string) string { return strings.Trim(saved[k], "'") }
	switch unquote("org.gnome.system.proxy mode") {
	case "manual":
		host, port := unquote("org.gnome.system.proxy.https host"), saved["org.gnome.system.proxy.https port"]
		if host == "" {
			return "manual, with no HTTPS proxy"
		}
		return "proxy " + net.JoinHostPort(host, port)
	case "auto":
		if u := unquote("org.gnome.system.proxy autoconfig-url"); u != "" {
			return "PAC " + u
		}
		return "automatic (WPAD)"
	}
	return "none"
}

func (g GNOME) Apply(ctx context.Context, s Setting, raw json.RawMessage) error {
	var saved gnomeSaved
	if err := json.Unmarshal(raw, &saved); err != nil {
		return fmt.Errorf("saved GNOME setting: %w", err)
	}
	user, err := parseStringArray(saved["org.gnome.system.proxy ignore-hosts"])
	if err != nil {
		return fmt.Errorf("ignore-hosts: %w", err)
	}
	ignore := formatStringArray(withLoopback(user, "localhost", "127.0.0.0/8", "::1"))
	var sets [][3]string
	if s.PACURL != "" {
		sets = [][3]string{
			{"org.gnome.system.proxy", "autoconfig-url", quoteGVariant(s.PACURL)},
			{"org.gnome.system.proxy", "ignore-hosts", ignore},
			{"org.gnome.system.proxy", "mode", "'auto'"},
		}
	} else {
		host, port := s.hostPort()
		sets = [][3]string{
			{"org.gnome.system.proxy.http", "host", quoteGVariant(host)},
			{"org.gnome.system.proxy.http", "port", port},
			{"org.gnome.system.proxy.https", "host", quoteGVariant(host)},
			{"org.gnome.system.proxy.https", "port", port},
			{"org.gnome.system.proxy", "ignore-hosts", ignore},
			{"org.gnome.system.proxy", "mode", "'manual'"},
		}
	}
	for _, set := range sets {
		if _, err := g.run(ctx, "set", set[0], set[1], set[2]); err != nil {
			return err
		}
	}
	return nil
}

func (g GNOME) Restore(ctx context.Context, raw json.RawMessage) error {
	var saved gnomeSaved
	if err := json.Unmarshal(raw, &saved); err != nil {
		return fmt.Errorf("saved GNOME setting: %w", err)
	}
	for _, k := range gnomeKeys {
		v, ok := saved[k[0]+" "+k[1]]
		if !ok {
			continue
		}
		if _, err := g.run(ctx, "set", k[0], k[1], v); err != nil {
			return err
		}
	}
	return nil
}

// quoteGVariant spells s as a GVariant string.
func quoteGVariant(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func formatStringArray(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = quoteGVariant(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// parseStringArray reads a GVariant array of strings as gsettings prints
// it: ['a', "b"] or @as [].
func parseStringArray(s string) ([]string, error) {
	s = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "@as"))
	if !strings.HasPrefix(s, "[") || !strings.HasSuffix(s, "]") {
		return nil, fmt.Errorf("%q is not an array of strings", s)
	}
	s = s[1 : len(s)-1]
	var out []string
	for {
		s = strings.TrimSpace(s)
		if s == "" {
			return out, nil
		}
		if s[0] != '\'' && s[0] != '"' {
			return nil, fmt.Errorf("%q: expected a quoted string", s)
		}
		str, rest, err := unquoteGVariant(s)
		if err != nil {
			return nil, err
		}
		out = append(out, str)
		rest = strings.TrimSpace(rest)
		if rest != "" {
			if rest[0] != ',' {
				return nil, fmt.Errorf("%q: expected a comma", rest)
			}
			rest = rest[1:]
		}
		s = rest
	}
}

// unquoteGVariant reads one quoted string from the start of s.
func unquoteGVariant(s string) (str, rest string, err error) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == q:
			return b.String(), s[i+1:], nil
		default:
			b.WriteByte(c)
		}
	}
	return "", "", fmt.Errorf("%s: unterminated string", strconv.Quote(s))
}
