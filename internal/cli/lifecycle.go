package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"fluidity/internal/awsconfig"
	"fluidity/internal/controlapi"
	"fluidity/internal/lifecycle"
)

// onDemand is an agent's exit on demand: the lifecycle that finds and
// wakes it, its backend, and the record of its hours.
type onDemand struct {
	*lifecycle.Exit
	backend lifecycle.Backend
	usage   *lifecycle.Usage
	log     *slog.Logger
}

// newLifecycle builds the exit on demand of a validated agent
// configuration, or returns nil for a static exit. ctx bounds the
// credential check.
func newLifecycle(ctx context.Context, cfg agentConfig, log *slog.Logger) (*onDemand, error) {
	if cfg.Lifecycle != lifecycleAWS {
		return nil, nil
	}
	backend, err := controlBackend(ctx, cfg)
	if err != nil {
		return nil, err
	}
	usage, err := lifecycle.OpenUsage(filepath.Join(stateDir(cfg.StateDir), "usage.json"), log)
	if err != nil {
		return nil, err
	}
	exit, err := lifecycle.New(lifecycle.Config{Backend: backend, WakeTimeout: cfg.WakeTimeout, Usage: usage, Logger: log})
	if err != nil {
		return nil, err
	}
	return &onDemand{Exit: exit, backend: backend, usage: usage, log: log}, nil
}

// controlBackend is the control plane's client for a validated agent
// configuration with lifecycle aws, signing with the agent's AWS identity
// (the iam section's profile and region).
func controlBackend(ctx context.Context, cfg agentConfig) (*lifecycle.AWS, error) {
	ctx, cancel := context.WithTimeout(ctx, sourceTimeout)
	defer cancel()
	d, err := cfg.upstreamDialer()
	if err != nil {
		return nil, err
	}
	// The function URL, and the credential providers that call out, are
	// reached the way the exit is: through the upstream proxy, if any.
	awsCfg, err := awsconfig.LoadVia(ctx, cfg.IAM.Profile, d.DialContext)
	if err != nil {
		return nil, err
	}
	region := cfg.IAM.Region
	if region == "" && lifecycle.URLRegion(cfg.ControlURL) == "" {
		region = awsCfg.Region
	}
	return lifecycle.NewAWS(ctx, lifecycle.AWSConfig{URL: cfg.ControlURL, Region: region, Profile: cfg.IAM.Profile,
		Credentials: awsCfg.Credentials, Client: httpClient(d)})
}

// Close records the hours so far and, with stop, stops the exit.
func (d *onDemand) Close(stop bool) {
	defer d.usage.Flush()
	if !stop {
		return
	}
	st, err := d.stop(context.Background())
	if err != nil {
		d.log.Warn("stopping the exit failed; it stops itself once idle", "err", err)
		return
	}
	d.log.Info("exit stopped (stop_on_exit)", "task", st.Task, "state", st.State)
}

// stop stops the exit, within a minute, and records it.
func (d *onDemand) stop(ctx context.Context) (controlapi.State, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := d.backend.Kill(ctx)
	if err == nil {
		d.usage.Observe(st)
	}
	return st, err
}

// controlConfig is the configuration of 'fluidity wake' and 'fluidity
// stop': the agent's, so they read the same file and flags, of which they
// use the control plane's keys.
type controlConfig struct {
	Agent agentConfig `yaml:",inline"`
}

func (c *controlConfig) Validate() error {
	if c.Agent.ControlURL == "" {
		return errors.New("control_url: required: the control plane's function URL, printed by 'fluidity aws deploy' (--control-url, or the agent's --config file)")
	}
	if c.Agent.WakeTimeout <= 0 {
		return errors.New("wake_timeout: must be positive (example: 3m)")
	}
	return c.Agent.Log.validate()
}

// openControl parses the arguments of 'fluidity wake' or 'fluidity stop'
// and opens the exit on demand they name. Close it when done.
func openControl(ctx context.Context, env Env, fs *flag.FlagSet, args []string) (*onDemand, error) {
	cfg := controlConfig{Agent: defaultAgentConfig()}
	if _, err := parse(env, fs, &cfg, args); err != nil {
		return nil, err
	}
	return newLifecycle(ctx, withAWS(cfg.Agent), cfg.Agent.Log.Base.logger(env.Stderr))
}

func runWake(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "wake", "wake --control-url URL [--aws-profile NAME] (or --config agent.yaml)", `
Wake your exit on AWS by hand and wait until it is ready (at most
--wake-timeout), printing progress; then print its address. The agent
does this by itself at the first connection; this is for checking a
deployment, or for waking the exit ahead of use. It reads the agent's
configuration (--config) for the control plane's URL and AWS profile.
A wake that times out stops the task it started.`)
	d, err := openControl(ctx, env, fs, args)
	if err != nil {
		return err
	}
	defer d.Close(false)
	fmt.Fprintln(env.Stderr, "Waking the exit (a Fargate task takes 30-90 s to start)…")
	addr, err := d.Wake(ctx)
	if err != nil {
		return err
	}
	st := d.Status()
	fmt.Fprintf(env.Stdout, "Exit ready at %s (task %s, woken in %s).\n", addr, shortTask(st.Task), st.LastWake.Round(time.Second))
	return nil
}

func runStop(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "stop", "stop --control-url URL [--aws-profile NAME] (or --config agent.yaml)", `
Stop your exit on AWS now, and print how it ended. Only your own task is
stopped (the one your AWS identity owns). An agent that is running goes to
sleep, and wakes a new exit at its next connection.`)
	d, err := openControl(ctx, env, fs, args)
	if err != nil {
		return err
	}
	defer d.Close(false)
	st, err := d.stop(ctx)
	if err != nil {
		return err
	}
	if st.Task == "" {
		fmt.Fprintf(env.Stdout, "No exit was running (%s).\n", st.Reason)
		return nil
	}
	fmt.Fprintf(env.Stdout, "Exit stopped (task %s): %s.\n", shortTask(st.Task), st.Reason)
	return nil
}

// withAWS is cfg with the aws lifecycle, whatever the file says.
func withAWS(cfg agentConfig) agentConfig {
	cfg.Lifecycle = lifecycleAWS
	return cfg
}

// shortTask is the ID at the end of a task ARN.
func shortTask(arn string) string { return arn[strings.LastIndex(arn, "/")+1:] }
