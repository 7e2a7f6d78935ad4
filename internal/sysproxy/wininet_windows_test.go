package sysproxy

import (
	"context"
	"errors"
	"testing"

	"golang.org/x/sys/windows/registry"

	"fluidity/internal/winetest"
)

// TestWinINetSetsReadsBackAndRestores changes this user's real proxy
// setting, so it runs only under Wine, in the test prefix.
func TestWinINetSetsReadsBackAndRestores(t *testing.T) {
	if !winetest.Running() {
		t.Skip("changes this user's proxy setting: runs only under Wine (see internal/winetest)")
	}
	k, _, err := registry.CreateKey(registry.CURRENT_USER, InternetSettings, registry.ALL_ACCESS)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	str := func(name string) (string, bool) {
		v, _, err := k.GetStringValue(name)
		if errors.Is(err, registry.ErrNotExist) {
			return "", false
		}
		if err != nil {
			t.Fatal(err)
		}
		return v, true
	}
	num := func(name string) uint64 {
		v, _, err := k.GetIntegerValue(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return v
	}
	// The user's own: a PAC file, a bypass list, no proxy server.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(k.SetDWordValue("ProxyEnable", 0))
	must(k.SetStringValue("ProxyOverride", "*.corp.example;<local>"))
	must(k.SetStringValue("AutoConfigURL", "http://wpad.corp.example/wpad.dat"))
	must(deleteValue(k, "ProxyServer"))

	ctx, dir := context.Background(), t.TempDir()
	for _, tc := range []struct {
		name string
		s    Setting
		want func()
	}{
		{"proxy", Setting{Server: "127.0.0.1:8080"}, func() {
			if v := num("ProxyEnable"); v != 1 {
				t.Errorf("ProxyEnable = %d, want 1", v)
			}
			if v, _ := str("ProxyServer"); v != "127.0.0.1:8080" {
				t.Errorf("ProxyServer = %q", v)
			}
			if v, _ := str("ProxyOverride"); v != "*.corp.example;<local>;localhost;127.*;[::1]" {
				t.Errorf("ProxyOverride = %q, want the user's entries and loopback", v)
			}
			if v, ok := str("AutoConfigURL"); ok {
				t.Errorf("AutoConfigURL = %q, want none while the proxy is set", v)
			}
		}},
		{"pac", Setting{PACURL: "http://127.0.0.1:8080/proxy.pac"}, func() {
			if v := num("ProxyEnable"); v != 0 {
				t.Errorf("ProxyEnable = %d, want 0", v)
			}
			if v, _ := str("AutoConfigURL"); v != "http://127.0.0.1:8080/proxy.pac" {
				t.Errorf("AutoConfigURL = %q", v)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := Current(ctx, WinINet{}); err != nil || got != "PAC http://wpad.corp.example/wpad.dat" {
				t.Errorf("Current before On = %q, %v; want the user's PAC file", got, err)
			}
			if err := On(ctx, WinINet{}, dir, tc.s); err != nil {
				t.Fatal(err)
			}
			tc.want()
			want := "proxy " + tc.s.Server
			if tc.s.PACURL != "" {
				want = "PAC " + tc.s.PACURL
			}
			if got, err := Current(ctx, WinINet{}); err != nil || got != want {
				t.Errorf("Current after On = %q, %v; want %q", got, err, want)
			}
			if _, err := Off(ctx, WinINet{}, dir); err != nil {
				t.Fatal(err)
			}
			if v := num("ProxyEnable"); v != 0 {
				t.Errorf("ProxyEnable after Off = %d, want 0", v)
			}
			if v, ok := str("ProxyServer"); ok {
				t.Errorf("ProxyServer after Off = %q, want none, as before", v)
			}
			if v, _ := str("ProxyOverride"); v != "*.corp.example;<local>" {
				t.Errorf("ProxyOverride after Off = %q", v)
			}
			if v, _ := str("AutoConfigURL"); v != "http://wpad.corp.example/wpad.dat" {
				t.Errorf("AutoConfigURL after Off = %q", v)
			}
		})
	}
}
