package sysproxy

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// memSystem is a System whose setting is a string in memory.
type memSystem struct {
	current  string
	failNext bool // Apply fails after changing the setting
}

func (m *memSystem) Name() string { return "memory" }
func (m *memSystem) Save(context.Context) (json.RawMessage, error) {
	return json.Marshal(m.current)
}
func (m *memSystem) Apply(_ context.Context, s Setting, _ json.RawMessage) error {
	m.current = "fluidity " + s.Server + s.PACURL
	if m.failNext {
		return errors.New("the system refused")
	}
	return nil
}
func (m *memSystem) Restore(_ context.Context, raw json.RawMessage) error {
	return json.Unmarshal(raw, &m.current)
}
func (m *memSystem) Describe(raw json.RawMessage) string {
	var s string
	json.Unmarshal(raw, &s)
	return s
}

func TestOnSavesAndOffRestores(t *testing.T) {
	ctx, dir := context.Background(), t.TempDir()
	sys := &memSystem{current: "the user's corporate proxy"}
	if err := On(ctx, sys, dir, Setting{Server: "127.0.0.1:8080"}); err != nil {
		t.Fatal(err)
	}
	if sys.current != "fluidity 127.0.0.1:8080" {
		t.Fatalf("after On the setting is %q", sys.current)
	}
	if got, err := Applied(dir); err != nil || got.Server != "127.0.0.1:8080" {
		t.Errorf("Applied = %+v, %v; want the agent's address", got, err)
	}
	set, err := Off(ctx, sys, dir)
	if err != nil {
		t.Fatal(err)
	}
	if sys.current != "the user's corporate proxy" || set.Server != "127.0.0.1:8080" {
		t.Errorf("after Off the setting is %q (Off said it undid %+v), want the user's", sys.current, set)
	}
	if _, err := os.Stat(filepath.Join(dir, StateFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the state file is still there after Off: %v", err)
	}
	if _, err := Off(ctx, sys, dir); !errors.Is(err, ErrNothingSaved) {
		t.Errorf("a second Off = %v, want ErrNothingSaved", err)
	}
}

func TestOnAfterACrashKeepsTheUsersSetting(t *testing.T) {
	ctx, dir := context.Background(), t.TempDir()
	sys := &memSystem{current: "direct"}
	if err := On(ctx, sys, dir, Setting{Server: "127.0.0.1:8080"}); err != nil {
		t.Fatal(err)
	}
	// The agent died here without Off; it starts again on another port.
	if err := On(ctx, sys, dir, Setting{Server: "127.0.0.1:9090"}); err != nil {
		t.Fatal(err)
	}
	if sys.current != "fluidity 127.0.0.1:9090" {
		t.Fatalf("after the second On the setting is %q", sys.current)
	}
	if _, err := Off(ctx, sys, dir); err != nil {
		t.Fatal(err)
	}
	if sys.current != "direct" {
		t.Errorf("Off restored %q, want the setting from before the first On", sys.current)
	}
}

func TestAFailedApplyPutsTheSettingBack(t *testing.T) {
	ctx, dir := context.Background(), t.TempDir()
	sys := &memSystem{current: "direct", failNext: true}
	err := On(ctx, sys, dir, Setting{Server: "127.0.0.1:8080"})
	if err == nil || !strings.Contains(err.Error(), "the system refused") {
		t.Fatalf("On = %v, want the system's refusal", err)
	}
	if sys.current != "direct" {
		t.Errorf("after a failed On the setting is %q, want it put back", sys.current)
	}
	if _, err := Applied(dir); !errors.Is(err, ErrNothingSaved) {
		t.Errorf("Applied after a failed On = %v, want nothing saved", err)
	}
}

// racingSystem is memSystem restored by another process too: the agent,
// asked to stop, and the command that stopped it both run Off, and the
// other one removes the state file first.
type racingSystem struct {
	*memSystem
	state string
}

func (r racingSystem) Restore(ctx context.Context, raw json.RawMessage) error {
	os.Remove(r.state)
	return r.memSystem.Restore(ctx, raw)
}

// Two processes putting the same setting back at once both succeed.
func TestOffRacingAnotherOffSucceeds(t *testing.T) {
	ctx, dir := context.Background(), t.TempDir()
	mem := &memSystem{current: "the user's corporate proxy"}
	if err := On(ctx, mem, dir, Setting{Server: "127.0.0.1:8080"}); err != nil {
		t.Fatal(err)
	}
	sys := racingSystem{memSystem: mem, state: filepath.Join(dir, StateFile)}
	set, err := Off(ctx, sys, dir)
	if err != nil || set.Server != "127.0.0.1:8080" {
		t.Fatalf("Off = %+v, %v; want what was set and no error", set, err)
	}
	if mem.current != "the user's corporate proxy" {
		t.Fatalf("after Off the setting is %q", mem.current)
	}
	if _, err := Off(ctx, sys, dir); !errors.Is(err, ErrNothingSaved) {
		t.Fatalf("a second Off = %v, want ErrNothingSaved", err)
	}
}

func TestBadSettingsAreRefusedWithTheFix(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Setting
		want string
	}{
		{"nothing", Setting{}, "nothing to point it at"},
		{"both", Setting{Server: "127.0.0.1:8080", PACURL: "http://127.0.0.1:8080/p.pac"}, "use one"},
		{"no port", Setting{Server: "127.0.0.1"}, "HOST:PORT"},
		{"every address", Setting{Server: "0.0.0.0:8080"}, "use 127.0.0.1"},
		{"a PAC path, not a URL", Setting{PACURL: "/tmp/proxy.pac"}, "not an http, https or file URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := On(context.Background(), &memSystem{}, t.TempDir(), tc.s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("On(%+v) = %v, want an error saying %q", tc.s, err, tc.want)
			}
		})
	}
}

func TestAStateFileOfAnotherSystemIsNotRestored(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, StateFile), []byte(`{"system":"other","saved":"x"}`), 0o600)
	if _, err := Off(context.Background(), &memSystem{}, dir); err == nil || !strings.Contains(err.Error(), "other") {
		t.Errorf("Off = %v, want an error naming the other system", err)
	}
	os.WriteFile(filepath.Join(dir, StateFile), []byte(`not json`), 0o600)
	if _, err := Off(context.Background(), &memSystem{}, dir); err == nil || !strings.Contains(err.Error(), "by hand") {
		t.Errorf("Off of a damaged file = %v, want the fix", err)
	}
}

func TestUnsupportedSaysWhatToDo(t *testing.T) {
	err := On(context.Background(), Unsupported{Reason: "no desktop"}, t.TempDir(), Setting{Server: "127.0.0.1:8080"})
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "https_proxy") {
		t.Errorf("On = %v, want ErrUnsupported with the fix", err)
	}
}
