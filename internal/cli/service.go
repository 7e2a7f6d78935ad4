package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"fluidity/internal/atomicfile"
	"fluidity/internal/logfile"
	"fluidity/internal/service"
	"fluidity/internal/supervisor"
)

// Files of the service in the state directory.
const (
	serviceLogFile   = "fluidity-agent.log"
	serviceStateFile = "service-state.json"
)

// executablePath is os.Executable; tests replace it.
var executablePath = os.Executable

// serviceManager is the system's manager of login services; tests replace
// it.
var serviceManager = service.Default

type serviceConfig struct {
	StateDir string `yaml:"state_dir" help:"where the log and the service's state are kept (default: fluidity in your config directory)"`
}

func (c *serviceConfig) Validate() error { return nil }

func (c *serviceConfig) dir() string { return stateDir(c.StateDir) }

func runService(ctx context.Context, env Env, args []string) error {
	return runSubcommand(ctx, env, "service", []command{
		{"install", "run the agent at every login, restarted after a crash: service install -- AGENT FLAGS", runServiceInstall},
		{"uninstall", "stop the agent and no longer run it at login", runServiceUninstall},
		{"start", "start the installed agent now", runServiceStart},
		{"stop", "stop the installed agent (it starts again at the next login)", runServiceStop},
		{"status", "say whether the agent is installed and running, its restarts and where its log is", runServiceStatus},
		{"run", "what the login service runs: the agent, supervised, its output in the log", runServiceRun},
	}, args)
}

// splitAgentArgs splits args at "--" into the service's own and the
// agent's.
func splitAgentArgs(args []string) (own, agentArgs []string) {
	for i, a := range args {
		if a == "--" {
			return args[:i], args[i+1:]
		}
	}
	return args, nil
}

func parseService(env Env, name, usage, description string, args []string) (*serviceConfig, error) {
	cfg := &serviceConfig{}
	fs := newFlagSet(env, "service "+name, "service "+usage, description)
	if _, err := parse(env, fs, cfg, args); err != nil {
		return nil, err
	}
	return cfg, nil
}

// openService parses the flags of a subcommand that takes only the state
// directory and opens the system's service manager for it.
func openService(env Env, name, description string, args []string) (service.Manager, string, error) {
	cfg, err := parseService(env, name, name, description, args)
	if err != nil {
		return nil, "", err
	}
	dir := cfg.dir()
	m, err := serviceManager(dir)
	return m, dir, err
}

func runServiceInstall(ctx context.Context, env Env, args []string) error {
	own, agentArgs := splitAgentArgs(args)
	cfg, err := parseService(env, "install", "install [--state-dir DIR] -- AGENT FLAGS", `
Run 'fluidity agent' with the flags after -- at every login of this user,
and now: a systemd user unit on Linux, a LaunchAgent on macOS, a logon task
of Task Scheduler on Windows. The agent is restarted after a crash, and
its log goes to a rotated file in the state directory ('service status'
says where). Relative paths in the flags are taken from this directory.
Example: fluidity service install -- --config agent.yaml --system-proxy`, own)
	if err != nil {
		return err
	}
	if len(agentArgs) == 0 {
		return errors.New("no agent flags: give them after --, as for 'fluidity agent' (example: fluidity service install -- --config agent.yaml)")
	}
	// A mistake is found now, not at the next login.
	acfg := defaultAgentConfig()
	afs := newFlagSet(env, "agent", "agent", "")
	if _, err := parse(Env{Stdout: env.Stdout, Stderr: env.Stderr, Environ: nil}, afs, &acfg, agentArgs); err != nil {
		if errors.Is(err, errUsage) {
			return errors.New("the agent flags after -- are not valid (see above)")
		}
		return fmt.Errorf("the agent flags after --: %w", err)
	}
	exe, err := executable()
	if err != nil {
		return err
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(cfg.dir())
	if err != nil {
		return err
	}
	m, err := serviceManager(dir)
	if err != nil {
		return err
	}
	spec := service.Spec{
		Executable: exe,
		Args:       append([]string{"service", "run", "--state-dir", dir, "--"}, agentArgs...),
		Dir:        wd,
		Log:        filepath.Join(dir, serviceLogFile),
	}
	if err := m.Install(ctx, spec); err != nil {
		return fmt.Errorf("install with %s: %w", m.Name(), err)
	}
	fmt.Fprintf(env.Stdout, "Installed (%s, %s): the agent starts at every login and now.\nLog: %s\nSee it with 'fluidity service status'; remove it with 'fluidity service uninstall'.\n",
		m.Name(), m.File(), spec.Log)
	return nil
}

// executable is this binary's path, refused when it is a temporary one of
// 'go run', which is gone by the next login.
func executable() (string, error) {
	exe, err := executablePath()
	if err != nil {
		return "", fmt.Errorf("find this program: %w", err)
	}
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		exe = p
	}
	if strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return "", fmt.Errorf("this is a temporary binary of 'go run' (%s): build one (go build -o fluidity ./cmd/fluidity) or use a release, and install from it", exe)
	}
	return exe, nil
}

func runServiceUninstall(ctx context.Context, env Env, args []string) error {
	m, dir, err := openService(env, "uninstall", "Stop the agent and no longer start it at login. The log stays.", args)
	if err != nil {
		return err
	}
	if err := m.Uninstall(ctx); err != nil {
		return err
	}
	restoreLeftoverProxy(ctx, env, dir)
	fmt.Fprintf(env.Stdout, "Uninstalled (%s). The log stays in %s.\n", m.Name(), filepath.Join(dir, serviceLogFile))
	return nil
}

func runServiceStart(ctx context.Context, env Env, args []string) error {
	m, _, err := openService(env, "start", "Start the installed agent now.", args)
	if err != nil {
		return err
	}
	if err := m.Start(ctx); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Started (%s).\n", m.Name())
	return nil
}

func runServiceStop(ctx context.Context, env Env, args []string) error {
	m, dir, err := openService(env, "stop", "Stop the installed agent; it starts again at the next login.", args)
	if err != nil {
		return err
	}
	if err := m.Stop(ctx); err != nil {
		return err
	}
	restoreLeftoverProxy(ctx, env, dir)
	fmt.Fprintf(env.Stdout, "Stopped (%s); it starts again at the next login.\n", m.Name())
	return nil
}

// restoreLeftoverProxy puts back a system proxy setting the agent left:
// on Windows, Task Scheduler ends it at once, with no chance to.
func restoreLeftoverProxy(ctx context.Context, env Env, dir string) {
	sys := systemProxy()
	switch restored, err := restoreSystemProxy(ctx, sys, dir); {
	case err != nil:
		fmt.Fprintf(env.Stderr, "The system proxy is still set: %v\n", err)
	case restored:
		fmt.Fprintf(env.Stdout, "System proxy (%s) put back as it was.\n", sys.Name())
	}
}

func runServiceStatus(ctx context.Context, env Env, args []string) error {
	m, dir, err := openService(env, "status", "Say whether the agent is installed and running, its restarts and where its log is.", args)
	if err != nil {
		return err
	}
	st, err := m.Status(ctx)
	if err != nil {
		return err
	}
	if !st.Installed {
		fmt.Fprintf(env.Stdout, "Not installed (%s): 'fluidity service install -- AGENT FLAGS' runs the agent at login.\n", m.Name())
	} else {
		running := "not running"
		if st.Running {
			running = "running"
		}
		fmt.Fprintf(env.Stdout, "Installed (%s): %s.\n%s\n", m.File(), running, st.Detail)
	}
	if sup, err := readSupervisorState(dir); err == nil {
		fmt.Fprintln(env.Stdout, describeSupervisor(sup, time.Now()))
	}
	fmt.Fprintf(env.Stdout, "Log: %s\n", filepath.Join(dir, serviceLogFile))
	return nil
}

func readSupervisorState(dir string) (supervisor.State, error) {
	var st supervisor.State
	b, err := os.ReadFile(filepath.Join(dir, serviceStateFile))
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

func describeSupervisor(st supervisor.State, now time.Time) string {
	var b strings.Builder
	if st.PID != 0 {
		fmt.Fprintf(&b, "Agent: pid %d, up %s", st.PID, now.Sub(st.Started).Round(time.Second))
	} else {
		b.WriteString("Agent: not running")
		if !st.NextStart.IsZero() {
			fmt.Fprintf(&b, " (starts again in %s)", st.NextStart.Sub(now).Round(time.Second))
		}
	}
	fmt.Fprintf(&b, "; restarts after a crash: %d", st.Restarts)
	if st.LastExit != "" {
		fmt.Fprintf(&b, "; last exit: %s, %s ago", st.LastExit, now.Sub(st.LastExitAt).Round(time.Second))
	}
	return b.String() + "."
}

func runServiceRun(ctx context.Context, env Env, args []string) error {
	own, agentArgs := splitAgentArgs(args)
	cfg, err := parseService(env, "run", "run [--state-dir DIR] -- AGENT FLAGS", `
Run 'fluidity agent' with the flags after --, start it again after a crash
(with growing pauses), and write its output to a log file in the state
directory, rotated at 10 MiB (three kept). This is what 'service install'
has the system run at login; it runs in a terminal too.`, own)
	if err != nil {
		return err
	}
	dir := cfg.dir()
	logPath := filepath.Join(dir, serviceLogFile)
	lf, err := logfile.Open(logPath, logfile.Options{})
	if err != nil {
		return err
	}
	defer lf.Close()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(lf, nil)).With("side", "service")
	fmt.Fprintf(env.Stderr, "fluidity service run: the agent's log is %s\n", logPath)
	statePath := filepath.Join(dir, serviceStateFile)
	err = supervisor.Run(ctx, supervisor.Config{
		Path:   exe,
		Args:   append([]string{"agent"}, agentArgs...),
		Output: lf,
		Logger: log,
		OnChange: func(st supervisor.State) {
			// Whole, for a 'service status' reading it now.
			if b, err := json.Marshal(st); err == nil {
				atomicfile.Write(statePath, b)
			}
		},
	})
	// The agent puts the system proxy back when asked to stop; one killed
	// (on Windows, ended at once) could not.
	if _, rerr := restoreSystemProxy(ctx, systemProxy(), dir); rerr != nil {
		log.Error("system proxy not restored", "err", rerr)
	}
	return err
}
