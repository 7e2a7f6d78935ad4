// Package cli implements the fluidity command: it parses each subcommand's
// configuration (file, environment, flags), builds the pieces and runs them.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"fluidity/internal/config"
)

// version and commit are set at build time by 'make dist':
// -ldflags "-X fluidity/internal/cli.version=v1.2.3 -X fluidity/internal/cli.commit=HASH".
var version, commit = "", ""

// Env is what a command sees of the outside world.
type Env struct {
	Stdin          io.Reader // nil means os.Stdin
	Stdout, Stderr io.Writer
	Environ        []string // os.Environ() form
	// SetProcs sets the number of threads running Go code at once
	// (runtime.GOMAXPROCS). If nil, the long-running commands leave it
	// alone, as tests running them in-process need.
	SetProcs func(int) int
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env Env, args []string) error
}

func commands() []command {
	return []command{
		{"up", "run an exit server and an agent on this machine (the local default)", runUp},
		{"agent", "run the local proxy, connected to an exit server", runAgent},
		{"server", "run the exit server", runServer},
		{"status", "ask the running agent how its link is", runStatus},
		{"doctor", "check step by step what stands between this machine and a working tunnel", runDoctor},
		{"wake", "wake your exit on AWS and wait until it is ready", runWake},
		{"stop", "stop your exit on AWS", runStop},
		{"certs", "create a private CA and certificates, revoke them (certs init, certs issue-client, certs revoke, certs push)", runCerts},
		{"aws", "set up your exit on demand in AWS, or remove it (aws deploy, aws destroy)", runAWS},
		{"service", "run the agent at login, restarted after a crash (service install, uninstall, start, stop, status)", runService},
		{"proxy", "point this user's system proxy at the agent, or put it back (proxy on, proxy off, proxy status)", runProxy},
		{"token", "print a fresh IAM token for an exit that checks AWS identities", runToken},
		{"lambda", "the control plane's AWS Lambda function (run as its bootstrap)", runLambda},
		{"version", "print the version", runVersion},
	}
}

// runSubcommand runs the subcommand args[0] of the command name, one of
// subs, or prints the command's usage: its subcommands with their
// summaries.
func runSubcommand(ctx context.Context, env Env, name string, subs []command, args []string) error {
	usage := func() {
		names := make([]string, len(subs))
		for i, c := range subs {
			names[i] = c.name
		}
		fmt.Fprintf(env.Stderr, "Usage: fluidity %s <%s> [flags]\n\n", name, strings.Join(names, "|"))
		for _, c := range subs {
			writeWrapped(env.Stderr, fmt.Sprintf("  %-13s ", c.name), c.summary)
		}
		fmt.Fprintf(env.Stderr, "\nRun 'fluidity %s <subcommand> --help' for its flags.\n", name)
	}
	if len(args) == 0 {
		usage()
		return errUsage
	}
	for _, c := range subs {
		if c.name == args[0] {
			return c.run(ctx, env, args[1:])
		}
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		return flag.ErrHelp
	}
	fmt.Fprintf(env.Stderr, "fluidity %s: unknown subcommand %q\n\n", name, args[0])
	usage()
	return errUsage
}

// errUsage means the usage has been printed; exit with status 2.
var errUsage = errors.New("usage")

// Main runs the command line args (without the program name) and returns
// the process exit status.
func Main(ctx context.Context, env Env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(env.Stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, env, args[1:])
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			case errors.Is(err, errUsage):
				return 2
			}
			fmt.Fprintf(env.Stderr, "fluidity %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(env.Stderr, "fluidity: unknown command %q\n\n", args[0])
	printUsage(env.Stderr)
	return 2
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "Fluidity carries your connections through an exit server you own.\n\nUsage: fluidity <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		writeWrapped(w, fmt.Sprintf("  %-8s ", c.name), c.summary)
	}
	fmt.Fprintf(w, "\nRun 'fluidity <command> --help' for a command's flags.\n")
}

// newFlagSet returns a flag set that prints a usage with the command's
// description and reports errors through its return values only.
func newFlagSet(env Env, name, usage, description string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage: fluidity %s\n\n%s\n\nFlags:\n", usage, strings.TrimSpace(description))
		printFlags(env.Stderr, fs)
	}
	return fs
}

// helpWidth is the width help text fits in: a terminal of 100 columns,
// PowerShell's default window included.
const helpWidth = 100

// printFlags is flag.PrintDefaults with each description wrapped to
// helpWidth.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		head := "  --" + f.Name
		if typ != "" {
			head += " " + typ
		}
		switch f.DefValue {
		case "", "false", "0", "0s", "[]":
		default:
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintln(w, head)
		writeWrapped(w, "      ", usage)
	})
}

// writeWrapped writes text after prefix, wrapped at word boundaries to
// helpWidth, continuation lines indented as far as prefix is long. A word
// longer than a line (a URL) gets a line of its own.
func writeWrapped(w io.Writer, prefix, text string) {
	indent := strings.Repeat(" ", len(prefix))
	line := prefix
	empty := true
	for _, word := range strings.Fields(text) {
		if !empty && len(line)+1+len(word) > helpWidth {
			fmt.Fprintln(w, line)
			line, empty = indent, true
		}
		if !empty {
			line += " "
		}
		line += word
		empty = false
	}
	fmt.Fprintln(w, line)
}

// parse binds cfg to fs, parses args and loads file, environment and flags.
func parse(env Env, fs *flag.FlagSet, cfg any, args []string) (*config.Loader, error) {
	l := config.Bind(fs, cfg)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "fluidity %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return nil, errUsage
	}
	if err := l.Load(env.Environ); err != nil {
		return nil, err
	}
	return l, nil
}

func runVersion(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "version", "version", "Print the version of this binary.")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	fmt.Fprintf(env.Stdout, "fluidity %s (commit %s, %s/%s, %s)\n", Version(), Commit(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	return nil
}

// Commit is the VCS revision the binary was built from: the -X value, else
// the one the Go toolchain recorded, else "unknown".
func Commit() string {
	if commit != "" {
		return commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// Version is the build's version: the -X value, else the module version or
// VCS revision recorded by the Go toolchain.
func Version() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if settings["vcs.modified"] == "true" {
			rev += "-dirty"
		}
		return "devel-" + rev
	}
	return "devel"
}
