// Package sysproxy points the operating system's proxy setting at the agent
// and puts the previous setting back.
//
// Each system is a System behind one interface: WinINet's per-user
// settings on Windows (what Edge, Chrome and most programs read),
// networksetup on macOS, GNOME's gsettings on Linux desktops, and
// Unsupported everywhere else. On saves what was set before in a state file
// and then applies the new setting; Off restores what the file holds and
// removes it. Because the file outlives the process, an agent that died
// without restoring is undone by 'fluidity proxy off', and an agent started
// again after a crash keeps the first saved setting (the user's own), not
// its own leftover one.
//
// Loopback is never sent through the proxy, and the exclusions the user had
// are kept.
package sysproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"fluidity/internal/atomicfile"
)

// Setting is what the system proxy is pointed at: an HTTP proxy (Server)
// or a PAC file (PACURL), never both.
type Setting struct {
	// Server is the proxy's HOST:PORT, used for HTTP and HTTPS.
	Server string `json:"server,omitempty"`
	// PACURL is the URL of a proxy auto-configuration file.
	PACURL string `json:"pac_url,omitempty"`
}

// Validate says what is wrong with s, naming the flag that sets it.
func (s Setting) Validate() error {
	switch {
	case s.Server == "" && s.PACURL == "":
		return errors.New("system proxy: nothing to point it at: give the agent's address or a PAC URL")
	case s.Server != "" && s.PACURL != "":
		return errors.New("system proxy: an address and a PAC URL are both given; use one")
	case s.Server != "":
		host, port, err := net.SplitHostPort(s.Server)
		if err != nil || host == "" || port == "" {
			return fmt.Errorf("system proxy: %q is not HOST:PORT (example: 127.0.0.1:8080)", s.Server)
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			return fmt.Errorf("system proxy: %q is every address, which no program can connect to; use 127.0.0.1", s.Server)
		}
	default:
		u, err := url.Parse(s.PACURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") || (u.Host == "" && u.Scheme != "file") {
			return fmt.Errorf("system proxy: PAC URL %q is not an http, https or file URL (example: http://127.0.0.1:8080/proxy.pac)", s.PACURL)
		}
	}
	return nil
}

// hostPort splits a validated Server.
func (s Setting) hostPort() (host, port string) {
	host, port, _ = net.SplitHostPort(s.Server)
	return host, port
}

// System is one operating system's proxy setting.
type System interface {
	// Name names the system's setting, for messages: "WinINet (per-user)".
	Name() string
	// Save returns the current setting, in a form Restore takes back.
	Save(ctx context.Context) (json.RawMessage, error)
	// Apply points the setting at s. saved is what Save returned before;
	// the user's own exclusions are taken from it.
	Apply(ctx context.Context, s Setting, saved json.RawMessage) error
	// Restore puts back what Save returned.
	Restore(ctx context.Context, saved json.RawMessage) error
	// Describe says, in a few words, where what Save returned sends
	// programs: "none", "proxy HOST:PORT", "PAC URL".
	Describe(saved json.RawMessage) string
}

// Current says where the system's proxy setting sends programs now.
func Current(ctx context.Context, sys System) (string, error) {
	saved, err := sys.Save(ctx)
	if err != nil {
		return "", err
	}
	return sys.Describe(saved), nil
}

// ErrUnsupported means this system has no proxy setting Fluidity can set.
var ErrUnsupported = errors.New("this system has no proxy setting fluidity knows how to change")

// Unsupported is the System of a machine without one: every call fails
// with ErrUnsupported and the fix.
type Unsupported struct{ Reason string }

func (u Unsupported) Name() string { return "none" }
func (u Unsupported) err() error {
	return fmt.Errorf("%w (%s): set your programs' proxy by hand, or use the https_proxy environment variable", ErrUnsupported, u.Reason)
}
func (u Unsupported) Save(context.Context) (json.RawMessage, error)         { return nil, u.err() }
func (u Unsupported) Apply(context.Context, Setting, json.RawMessage) error { return u.err() }
func (u Unsupported) Restore(context.Context, json.RawMessage) error        { return u.err() }
func (u Unsupported) Describe(json.RawMessage) string                       { return "none" }

// StateFile is the name of the file, in the state directory, that holds
// the saved setting while Fluidity's is applied.
const StateFile = "system-proxy.json"

// state is the state file's content.
type state struct {
	System string          `json:"system"` // System.Name, checked on restore
	Saved  json.RawMessage `json:"saved"`  // what the system had before
	Set    Setting         `json:"set"`    // what Fluidity applied
}

// ErrNothingSaved means Off found no saved setting: Fluidity has not
// changed the system proxy, or has already put it back.
var ErrNothingSaved = errors.New("the system proxy was not set by fluidity (nothing saved to restore)")

// On saves the system's current setting in dir (unless a saved one is
// there already: then the agent died without restoring, and the setting
// saved first is the user's) and applies s.
func On(ctx context.Context, sys System, dir string, s Setting) error {
	if err := s.Validate(); err != nil {
		return err
	}
	path := filepath.Join(dir, StateFile)
	st, err := readState(path)
	switch {
	case errors.Is(err, ErrNothingSaved):
		saved, err := sys.Save(ctx)
		if err != nil {
			return fmt.Errorf("system proxy: read the current setting: %w", err)
		}
		st = &state{System: sys.Name(), Saved: saved}
	case err != nil:
		return err
	default:
		if err := st.of(sys, path); err != nil {
			return err
		}
	}
	st.Set = s
	// Written before the change, so a crash in between leaves the way back.
	if err := writeState(path, st); err != nil {
		return err
	}
	if err := sys.Apply(ctx, s, st.Saved); err != nil {
		if rerr := sys.Restore(ctx, st.Saved); rerr == nil {
			os.Remove(path)
		}
		return fmt.Errorf("system proxy: %s: %w", sys.Name(), err)
	}
	return nil
}

// Off restores the setting saved in dir and removes the file. It returns
// ErrNothingSaved when there is none.
func Off(ctx context.Context, sys System, dir string) (Setting, error) {
	path := filepath.Join(dir, StateFile)
	st, err := readState(path)
	if err != nil {
		return Setting{}, err
	}
	if err := st.of(sys, path); err != nil {
		return Setting{}, err
	}
	if err := sys.Restore(ctx, st.Saved); err != nil {
		return Setting{}, fmt.Errorf("system proxy: restore %s: %w", sys.Name(), err)
	}
	// Gone already: another process (the agent, asked to stop, and the
	// command that stopped it) restored the same setting at the same time.
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Setting{}, fmt.Errorf("system proxy: restored, but %w", err)
	}
	return st.Set, nil
}

// Applied returns what Fluidity set and has not yet restored, or
// ErrNothingSaved.
func Applied(dir string) (Setting, error) {
	st, err := readState(filepath.Join(dir, StateFile))
	if err != nil {
		return Setting{}, err
	}
	return st.Set, nil
}

// of checks that st, read from path, was saved from sys.
func (st *state) of(sys System, path string) error {
	if st.System != sys.Name() {
		return fmt.Errorf("system proxy: %s holds a setting of %s, not %s; remove it if it is stale", path, st.System, sys.Name())
	}
	return nil
}

func readState(path string) (*state, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNothingSaved
	}
	if err != nil {
		return nil, fmt.Errorf("system proxy: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil || st.System == "" {
		return nil, fmt.Errorf("system proxy: %s is not a saved setting (%v); put your proxy setting back by hand and remove the file", path, err)
	}
	return &st, nil
}

func writeState(path string, st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(b, '\n')); err != nil {
		return fmt.Errorf("system proxy: %w", err)
	}
	return nil
}

// withLoopback returns the user's exclusions followed by those of loopback
// they lack, in a system's spelling.
func withLoopback(user []string, loopback ...string) []string {
	out := slices.Clone(user)
	for _, l := range loopback {
		if !slices.ContainsFunc(out, func(u string) bool { return strings.EqualFold(u, l) }) {
			out = append(out, l)
		}
	}
	return out
}
