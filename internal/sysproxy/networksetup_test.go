package sysproxy

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"fluidity/internal/golden"
)

// fakeNetworkSetup answers as macOS's networksetup does, from the state of
// its services, and records every command.
type fakeNetworkSetup struct {
	order    []string // services as listed; a leading * marks a disabled one
	services map[string]*macService
	log      []string
}

func newFakeNetworkSetup() *fakeNetworkSetup {
	return &fakeNetworkSetup{
		order: []string{"Wi-Fi", "*Bluetooth PAN", "USB 10/100/1000 LAN"},
		services: map[string]*macService{
			"Wi-Fi": {Web: macProxy{Server: "proxy.corp.example", Port: "3128"},
				SecureWeb: macProxy{Enabled: true, Server: "proxy.corp.example", Port: "3128"},
				Bypass:    []string{"*.local", "169.254/16", "intranet.corp.example"}},
			"Bluetooth PAN":       {},
			"USB 10/100/1000 LAN": {AutoURL: "http://wpad.corp.example/wpad.dat", AutoOn: true},
		},
	}
}

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

func (f *fakeNetworkSetup) run(_ context.Context, name string, args ...string) ([]byte, error) {
	f.log = append(f.log, name+" "+strings.Join(quoteAll(args), " "))
	if name != "/usr/sbin/networksetup" || len(args) == 0 {
		return nil, fmt.Errorf("unexpected command %s %q", name, args)
	}
	if args[0] == "-listallnetworkservices" {
		return []byte("An asterisk (*) denotes that a network service is disabled.\n" + strings.Join(f.order, "\n") + "\n"), nil
	}
	if len(args) < 2 {
		return nil, fmt.Errorf("%s: no service", args[0])
	}
	s, ok := f.services[args[1]]
	if !ok {
		return nil, fmt.Errorf("** Error: The parameters were not valid.")
	}
	proxy := func(p *macProxy) []byte {
		port := p.Port
		if port == "" {
			port = "0"
		}
		return fmt.Appendf(nil, "Enabled: %s\nServer: %s\nPort: %s\nAuthenticated Proxy Enabled: 0\n", yesNo(p.Enabled), p.Server, port)
	}
	switch args[0] {
	case "-getwebproxy":
		return proxy(&s.Web), nil
	case "-getsecurewebproxy":
		return proxy(&s.SecureWeb), nil
	case "-getautoproxyurl":
		u := s.AutoURL
		if u == "" {
			u = "(null)"
		}
		return fmt.Appendf(nil, "URL: %s\nEnabled: %s\n", u, yesNo(s.AutoOn)), nil
	case "-getproxybypassdomains":
		if len(s.Bypass) == 0 {
			return fmt.Appendf(nil, "There aren't any bypass domains set on %s.\n", args[1]), nil
		}
		return []byte(strings.Join(s.Bypass, "\n") + "\n"), nil
	case "-setwebproxy", "-setsecurewebproxy":
		p := &s.Web
		if args[0] == "-setsecurewebproxy" {
			p = &s.SecureWeb
		}
		*p = macProxy{Enabled: true, Server: args[2], Port: args[3]}
	case "-setwebproxystate":
		s.Web.Enabled = args[2] == "on"
	case "-setsecurewebproxystate":
		s.SecureWeb.Enabled = args[2] == "on"
	case "-setautoproxyurl":
		s.AutoURL, s.AutoOn = args[2], true
	case "-setautoproxystate":
		s.AutoOn = args[2] == "on"
	case "-setproxybypassdomains":
		s.Bypass = args[2:]
		if len(args) == 3 && args[2] == "Empty" {
			s.Bypass = nil
		}
	default:
		return nil, fmt.Errorf("unexpected networksetup %s", args[0])
	}
	return nil, nil
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if strings.ContainsAny(a, " */") {
			out[i] = "'" + a + "'"
		}
	}
	return out
}

func (f *fakeNetworkSetup) snapshot() map[string]macService {
	m := map[string]macService{}
	for k, v := range f.services {
		m[k] = *v
	}
	return m
}

// effective is what programs act on: an address that is switched off is
// inert, and networksetup cannot empty it, so Off may leave one behind.
func effective(m map[string]macService) map[string]string {
	out := map[string]string{}
	for svc, s := range m {
		p := func(p macProxy) string {
			if !p.Enabled {
				return "off"
			}
			return p.Server + ":" + p.Port
		}
		auto := "off"
		if s.AutoOn {
			auto = s.AutoURL
		}
		out[svc] = fmt.Sprintf("web %s, secure %s, pac %s, bypass %q", p(s.Web), p(s.SecureWeb), auto, s.Bypass)
	}
	return out
}

func TestNetworkSetupSetsEveryEnabledServiceAndRestoresIt(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Setting
	}{
		{"proxy", Setting{Server: "127.0.0.1:8080"}},
		{"pac", Setting{PACURL: "http://127.0.0.1:8080/proxy.pac"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, dir := context.Background(), t.TempDir()
			fake := newFakeNetworkSetup()
			before := fake.snapshot()
			sys := NetworkSetup{Run: fake.run}
			if err := On(ctx, sys, dir, tc.s); err != nil {
				t.Fatal(err)
			}
			on := fake.snapshot()
			want := "USB 10/100/1000 LAN: proxy 127.0.0.1:8080; Wi-Fi: proxy 127.0.0.1:8080"
			if tc.s.PACURL != "" {
				want = "USB 10/100/1000 LAN: PAC " + tc.s.PACURL + "; Wi-Fi: PAC " + tc.s.PACURL
			}
			logged := len(fake.log)
			if got, err := Current(ctx, sys); err != nil || got != want {
				t.Errorf("Current after On = %q, %v; want %q", got, err, want)
			}
			fake.log = fake.log[:logged] // reads only: not part of the golden changes
			for _, svc := range []string{"Wi-Fi", "USB 10/100/1000 LAN"} {
				got := on[svc]
				if tc.s.Server != "" && (!got.Web.Enabled || got.Web.Server != "127.0.0.1" || got.Web.Port != "8080" ||
					!got.SecureWeb.Enabled || got.SecureWeb.Server != "127.0.0.1" || got.AutoOn) {
					t.Errorf("%s after On = %+v, want both web proxies on 127.0.0.1:8080 and no PAC", svc, got)
				}
				if tc.s.PACURL != "" && (got.Web.Enabled || got.SecureWeb.Enabled || !got.AutoOn || got.AutoURL != tc.s.PACURL) {
					t.Errorf("%s after On = %+v, want only the PAC URL", svc, got)
				}
				for _, b := range append(before[svc].Bypass, "localhost", "127.0.0.1", "::1") {
					if !strings.Contains(strings.Join(got.Bypass, " "), b) {
						t.Errorf("%s bypass list %q lacks %q", svc, got.Bypass, b)
					}
				}
			}
			if !reflect.DeepEqual(on["Bluetooth PAN"], before["Bluetooth PAN"]) {
				t.Errorf("the disabled service was changed: %+v", on["Bluetooth PAN"])
			}
			applied := strings.Join(fake.log, "\n") + "\n"
			fake.log = nil
			if _, err := Off(ctx, sys, dir); err != nil {
				t.Fatal(err)
			}
			if after := effective(fake.snapshot()); !reflect.DeepEqual(after, effective(before)) {
				t.Errorf("after Off:\n%+v\nwant what was there before:\n%+v", after, effective(before))
			}
			golden.Check(t, "networksetup-"+tc.name+".golden", "# fluidity proxy on\n"+applied+"# fluidity proxy off\n"+strings.Join(fake.log, "\n")+"\n")
		})
	}
}
