package sysproxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"

	"fluidity/internal/oscmd"
)

// NetworkSetup is the proxy setting of macOS's network services, changed
// with networksetup. Every enabled service is set (Wi-Fi, Ethernet, a
// dock's adapter): which one is active changes as the laptop moves, and a
// service that is not in use ignores its proxy.
type NetworkSetup struct {
	// Run runs networksetup. If nil, oscmd.Exec.
	Run oscmd.Runner
}

func (n NetworkSetup) Name() string { return "macOS (networksetup)" }

func (n NetworkSetup) run(ctx context.Context, args ...string) (string, error) {
	out, err := n.Run.Run(ctx, "/usr/sbin/networksetup", args...)
	return string(out), err
}

// macProxy is one of a service's proxies as networksetup reports it.
type macProxy struct {
	Enabled bool   `json:"enabled"`
	Server  string `json:"server"`
	Port    string `json:"port"`
}

// macService is one service's saved setting.
type macService struct {
	Web       macProxy `json:"web"`
	SecureWeb macProxy `json:"secure_web"`
	AutoURL   string   `json:"auto_url"` // "" for none
	AutoOn    bool     `json:"auto_on"`
	Bypass    []string `json:"bypass"`
}

// services lists the enabled network services.
func (n NetworkSetup) services(ctx context.Context) ([]string, error) {
	out, err := n.run(ctx, "-listallnetworkservices")
	if err != nil {
		return nil, err
	}
	var list []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		// The first line explains the asterisk that marks disabled ones.
		if line == "" || strings.HasPrefix(line, "*") || strings.HasPrefix(line, "An asterisk") {
			continue
		}
		list = append(list, line)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("networksetup lists no enabled network service")
	}
	return list, nil
}

// fields parses networksetup's "Key: value" lines.
func fields(out string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

func (n NetworkSetup) getProxy(ctx context.Context, verb, service string) (macProxy, error) {
	out, err := n.run(ctx, verb, service)
	if err != nil {
		return macProxy{}, err
	}
	f := fields(out)
	return macProxy{Enabled: f["Enabled"] == "Yes", Server: f["Server"], Port: f["Port"]}, nil
}

func (n NetworkSetup) Describe(raw json.RawMessage) string {
	saved, err := decodeMac(raw)
	if err != nil {
		return "unreadable"
	}
	var parts []string
	for _, name := range sortedKeys(saved) {
		svc := saved[name]
		switch {
		case svc.AutoOn && svc.AutoURL != "":
			parts = append(parts, name+": PAC "+svc.AutoURL)
		case svc.SecureWeb.Enabled:
			parts = append(parts, name+": proxy "+net.JoinHostPort(svc.SecureWeb.Server, svc.SecureWeb.Port))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

func (n NetworkSetup) Save(ctx context.Context) (json.RawMessage, error) {
	list, err := n.services(ctx)
	if err != nil {
		return nil, err
	}
	saved := map[string]macService{}
	for _, svc := range list {
		var s macService
		if s.Web, err = n.getProxy(ctx, "-getwebproxy", svc); err != nil {
			return nil, err
		}
		if s.SecureWeb, err = n.getProxy(ctx, "-getsecurewebproxy", svc); err != nil {
			return nil, err
		}
		out, err := n.run(ctx, "-getautoproxyurl", svc)
		if err != nil {
			return nil, err
		}
		f := fields(out)
		if u := f["URL"]; u != "(null)" {
			s.AutoURL = u
		}
		s.AutoOn = f["Enabled"] == "Yes"
		out, err = n.run(ctx, "-getproxybypassdomains", svc)
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(out, "There aren't any") {
			s.Bypass = strings.Fields(out)
		}
		saved[svc] = s
	}
	return json.Marshal(saved)
}

func decodeMac(raw json.RawMessage) (map[string]macService, error) {
	var saved map[string]macService
	if err := json.Unmarshal(raw, &saved); err != nil {
		return nil, fmt.Errorf("saved macOS setting: %w", err)
	}
	return saved, nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func (n NetworkSetup) Apply(ctx context.Context, s Setting, raw json.RawMessage) error {
	saved, err := decodeMac(raw)
	if err != nil {
		return err
	}
	for _, svc := range sortedKeys(saved) {
		var cmds [][]string
		if s.PACURL != "" {
			cmds = [][]string{
				{"-setautoproxyurl", svc, s.PACURL},
				{"-setautoproxystate", svc, "on"},
				{"-setwebproxystate", svc, "off"},
				{"-setsecurewebproxystate", svc, "off"},
			}
		} else {
			host, port := s.hostPort()
			cmds = [][]string{
				{"-setwebproxy", svc, host, port},
				{"-setsecurewebproxy", svc, host, port},
				{"-setautoproxystate", svc, "off"},
			}
		}
		bypass := withLoopback(saved[svc].Bypass, "localhost", "127.0.0.1", "::1")
		cmds = append(cmds, append([]string{"-setproxybypassdomains", svc}, bypass...))
		for _, c := range cmds {
			if _, err := n.run(ctx, c...); err != nil {
				return err
			}
		}
	}
	return nil
}

// Restore switches each proxy back on or off and sets the addresses that
// were there. An address Fluidity set where there was none stays behind,
// switched off: networksetup has no way to empty it, and off it is inert.
func (n NetworkSetup) Restore(ctx context.Context, raw json.RawMessage) error {
	saved, err := decodeMac(raw)
	if err != nil {
		return err
	}
	for _, svc := range sortedKeys(saved) {
		s := saved[svc]
		var cmds [][]string
		for _, p := range []struct {
			set, state string
			p          macProxy
		}{{"-setwebproxy", "-setwebproxystate", s.Web}, {"-setsecurewebproxy", "-setsecurewebproxystate", s.SecureWeb}} {
			if p.p.Server != "" {
				cmds = append(cmds, []string{p.set, svc, p.p.Server, p.p.Port})
			}
			cmds = append(cmds, []string{p.state, svc, onOff(p.p.Enabled)})
		}
		if s.AutoURL != "" {
			cmds = append(cmds, []string{"-setautoproxyurl", svc, s.AutoURL})
		}
		cmds = append(cmds, []string{"-setautoproxystate", svc, onOff(s.AutoOn)})
		bypass := s.Bypass
		if len(bypass) == 0 {
			bypass = []string{"Empty"} // networksetup's word for none
		}
		cmds = append(cmds, append([]string{"-setproxybypassdomains", svc}, bypass...))
		for _, c := range cmds {
			if _, err := n.run(ctx, c...); err != nil {
				return err
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
