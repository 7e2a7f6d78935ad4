package sysproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
)

// WinINet is the per-user proxy setting of Windows, the one Edge, Chrome
// and most programs read: values under HKCU\Software\Microsoft\Windows\
// CurrentVersion\Internet Settings, announced to running programs with
// InternetSetOption (settings changed, then refresh), as the Settings app
// does.
type WinINet struct{}

// InternetSettings is the key WinINet reads.
const InternetSettings = `Software\Microsoft\Windows\CurrentVersion\Internet Settings`

// winValueNames are the values saved and restored.
var winValueNames = []string{"ProxyEnable", "ProxyServer", "ProxyOverride", "AutoConfigURL"}

// winValue is one saved registry value; absent ones are not in the map.
type winValue struct {
	DWord  *uint32 `json:"dword,omitempty"`
	String *string `json:"string,omitempty"`
}

func (w WinINet) Name() string { return "Windows (WinINet, per user)" }

func (w WinINet) open(access uint32) (registry.Key, error) {
	k, _, err := registry.CreateKey(registry.CURRENT_USER, InternetSettings, access)
	if err != nil {
		return 0, fmt.Errorf(`open HKCU\%s: %w`, InternetSettings, err)
	}
	return k, nil
}

func (w WinINet) read() (map[string]winValue, error) {
	k, err := w.open(registry.QUERY_VALUE)
	if err != nil {
		return nil, err
	}
	defer k.Close()
	saved := map[string]winValue{}
	for _, name := range winValueNames {
		_, typ, err := k.GetValue(name, nil)
		if errors.Is(err, registry.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		switch typ {
		case registry.DWORD, registry.QWORD:
			n, _, err := k.GetIntegerValue(name)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", name, err)
			}
			d := uint32(n)
			saved[name] = winValue{DWord: &d}
		case registry.SZ, registry.EXPAND_SZ:
			s, _, err := k.GetStringValue(name)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", name, err)
			}
			saved[name] = winValue{String: &s}
		default:
			return nil, fmt.Errorf("read %s: registry type %d, not a number or a string", name, typ)
		}
	}
	return saved, nil
}

func (w WinINet) Save(context.Context) (json.RawMessage, error) {
	saved, err := w.read()
	if err != nil {
		return nil, err
	}
	return json.Marshal(saved)
}

func (w WinINet) Describe(raw json.RawMessage) string {
	var saved map[string]winValue
	if json.Unmarshal(raw, &saved) != nil {
		return "unreadable"
	}
	str := func(name string) string {
		if v := saved[name].String; v != nil {
			return strings.TrimSpace(*v)
		}
		return ""
	}
	var parts []string
	if u := str("AutoConfigURL"); u != "" {
		parts = append(parts, "PAC "+u)
	}
	if v := saved["ProxyEnable"].DWord; v != nil && *v != 0 && str("ProxyServer") != "" {
		parts = append(parts, "proxy "+str("ProxyServer"))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

func (w WinINet) Apply(_ context.Context, s Setting, raw json.RawMessage) error {
	var saved map[string]winValue
	if err := json.Unmarshal(raw, &saved); err != nil {
		return fmt.Errorf("saved WinINet setting: %w", err)
	}
	var user []string
	if v := saved["ProxyOverride"].String; v != nil {
		for _, e := range strings.Split(*v, ";") {
			if e = strings.TrimSpace(e); e != "" {
				user = append(user, e)
			}
		}
	}
	k, err := w.open(registry.SET_VALUE)
	if err != nil {
		return err
	}
	defer k.Close()
	if s.PACURL != "" {
		err = errors.Join(k.SetStringValue("AutoConfigURL", s.PACURL), k.SetDWordValue("ProxyEnable", 0))
	} else {
		// One address for every protocol; the bypass list in WinINet's
		// wildcard spelling.
		override := strings.Join(withLoopback(user, "localhost", "127.*", "[::1]"), ";")
		err = errors.Join(
			k.SetStringValue("ProxyServer", s.Server),
			k.SetStringValue("ProxyOverride", override),
			deleteValue(k, "AutoConfigURL"),
			k.SetDWordValue("ProxyEnable", 1),
		)
	}
	if err != nil {
		return err
	}
	return announce()
}

func (w WinINet) Restore(_ context.Context, raw json.RawMessage) error {
	var saved map[string]winValue
	if err := json.Unmarshal(raw, &saved); err != nil {
		return fmt.Errorf("saved WinINet setting: %w", err)
	}
	k, err := w.open(registry.SET_VALUE)
	if err != nil {
		return err
	}
	defer k.Close()
	var errs []error
	for _, name := range winValueNames {
		v, ok := saved[name]
		switch {
		case !ok:
			errs = append(errs, deleteValue(k, name))
		case v.DWord != nil:
			errs = append(errs, k.SetDWordValue(name, *v.DWord))
		case v.String != nil:
			errs = append(errs, k.SetStringValue(name, *v.String))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return announce()
}

var (
	wininet           = windows.NewLazySystemDLL("wininet.dll")
	internetSetOption = wininet.NewProc("InternetSetOptionW")
)

// InternetSetOption's options that tell running programs the settings
// changed and have them read them again.
const (
	internetOptionSettingsChanged = 39
	internetOptionRefresh         = 37
)

// announce tells running programs that the proxy setting changed. Only the
// first call's failure is an error: the refresh that follows makes
// programs read the settings at once rather than at their next request,
// and Wine answers it with ERROR_INTERNET_INCORRECT_HANDLE_TYPE (12018)
// where Windows takes the NULL handle.
func announce() error {
	if err := internetSetOption.Find(); err != nil {
		return fmt.Errorf("announce the change: %w", err)
	}
	if ok, _, err := internetSetOption.Call(0, internetOptionSettingsChanged, 0, 0); ok == 0 {
		return fmt.Errorf("announce the change: InternetSetOption(INTERNET_OPTION_SETTINGS_CHANGED): %w", err)
	}
	internetSetOption.Call(0, internetOptionRefresh, 0, 0)
	return nil
}

// deleteValue removes a value that may be absent.
func deleteValue(k registry.Key, name string) error {
	if err := k.DeleteValue(name); err != nil && !errors.Is(err, registry.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}
