package ecse2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fluidity/internal/agent"
	"fluidity/internal/awsfake"
	"fluidity/internal/controlplane"
	"fluidity/internal/ecstask"
	"fluidity/internal/lifecycle"
	"fluidity/internal/proctest"
)

// Identities that use exits: two people, each with an agent.
const (
	aliceKey = "AKIDALICE0000001"
	alice    = "arn:aws:iam::111122223333:user/alice"
	bobKey   = "AKIDBOB000000001"
	bob      = "arn:aws:sts::111122223333:assumed-role/dev/bob@example.com"
	bobRole  = "arn:aws:iam::111122223333:role/dev"
)

// deployment is a deployed exit on demand against the fake: the control
// plane's function runs as real bootstrap processes behind the function
// URL, and each task the fake runs is a real exit process on its own
// loopback address (127.0.0.2, 127.0.0.3, …), all on one port.
type deployment struct {
	cloud  *awsfake.Cloud
	rt     *awsfake.RuntimeAPI
	certs  string // the CA, the server's and a client's certificates
	port   string // every exit's port
	origin string // an HTTP server the exits may reach

	mu     sync.Mutex
	exits  map[string]*proctest.Proc // guarded by mu; by task ID
	nextIP int                       // guarded by mu
}

// deployOptions vary a deployment.
type deployOptions struct {
	exitFlags  []string          // more flags for each exit
	lambdaEnv  map[string]string // more FLUIDITY_* settings of the function
	noCerts    bool              // the certificate parameter is never pushed
	cloud      awsfake.CloudConfig
	bootstraps int
}

func deploy(t testing.TB, opts deployOptions) *deployment {
	t.Helper()
	d := &deployment{exits: map[string]*proctest.Proc{}, nextIP: 2}
	var bundle string
	d.certs, bundle = pushBundle(t)
	d.origin = strings.TrimPrefix(newOrigin(t).URL, "http://")
	_, d.port, _ = net.SplitHostPort(proctest.FreeAddr(t))
	d.rt = awsfake.NewRuntimeAPI(t, awsfake.RuntimeConfig{Timeout: time.Minute})
	cfg := opts.cloud
	cfg.Launch = d.launch(t, opts.exitFlags)
	cfg.Invoke = d.rt.Invoke
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 5 * time.Second
	}
	d.cloud = newCloud(t, cfg)
	d.cloud.AddIdentity(aliceKey, "alice-secret", alice)
	d.cloud.AddIdentity(bobKey, "bob-secret", bob)
	if !opts.noCerts {
		d.cloud.PutParameter("/fluidity/exit", bundle, true)
	}

	env := append(proctest.Env(), d.cloud.Env(planeKey)...)
	env = append(env, "AWS_LAMBDA_RUNTIME_API="+d.rt.Addr,
		"FLUIDITY_CLUSTER=fluidity", "FLUIDITY_TASK_DEFINITION=fluidity-exit", "FLUIDITY_SUBNETS=subnet-0a1b2c3d",
		"FLUIDITY_ALLOW=111122223333", "FLUIDITY_EXIT_PORT="+d.port, "FLUIDITY_LOG_FORMAT=text")
	for k, v := range opts.lambdaEnv {
		env = append(env, k+"="+v)
	}
	n := opts.bootstraps
	if n == 0 {
		n = 3 // queries wait; wakes of others must not queue behind them
	}
	// Started as Lambda starts them: a binary named bootstrap, no arguments.
	bootstrap := filepath.Join(t.TempDir(), "bootstrap")
	if err := os.Symlink(proctest.Binary(), bootstrap); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		proctest.Launcher{Env: env, Path: bootstrap}.Start(t, fmt.Sprintf("lambda-%d", i))
	}
	deadline := time.Now().Add(10 * time.Second)
	for d.rt.Pollers() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d bootstraps polling the runtime API", d.rt.Pollers(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return d
}

// launch starts a task's exit process, as ECS would its container.
func (d *deployment) launch(t testing.TB, flags []string) func(awsfake.Task) (awsfake.Container, error) {
	return func(task awsfake.Task) (awsfake.Container, error) {
		d.mu.Lock()
		ip := fmt.Sprintf("127.0.0.%d", d.nextIP)
		d.nextIP++
		d.mu.Unlock()
		l := proctest.Launcher{Env: exitEnv(d.cloud, ecstask.MetadataEnv+"="+task.MetadataURI)}
		args := []string{"server", "--listen", net.JoinHostPort(ip, d.port), "--certs", "ssm:///fluidity/exit",
			"--allow-private", "--exit-when-idle", "2s", "--exit-when-unused", "4s", "--lease-interval", "200ms"}
		p := l.Start(t, "exit-"+ip, append(args, flags...)...)
		d.mu.Lock()
		d.exits[task.ID] = p
		d.mu.Unlock()
		return awsfake.Container{
			PublicIP: ip,
			Exited:   p.Done(),
			ExitCode: p.ExitCode,
			Stop: func() {
				if proc, err := os.FindProcess(p.Pid()); err == nil && !p.Exited() {
					proc.Signal(syscall.SIGTERM)
				}
			},
		}, nil
	}
}

func (d *deployment) exit(t testing.TB, task awsfake.Task) *proctest.Proc {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.exits[task.ID]
	if !ok {
		t.Fatalf("no exit process for task %s", task.ID)
	}
	return p
}

// agentEnv is the environment of an agent of the identity with key.
func (d *deployment) agentEnv(key string) []string {
	return append(proctest.Env(), d.cloud.Env(key)...)
}

// anAgent is a running agent: its process, proxy and admin addresses.
type anAgent struct {
	*proctest.Proc
	addr, admin string
}

// startAgent starts an agent with lifecycle aws for the identity with key.
func (d *deployment) startAgent(t testing.TB, key string, extra ...string) anAgent {
	t.Helper()
	l := proctest.Launcher{Env: d.agentEnv(key)}
	state := t.TempDir()
	var admin string
	p, addr := l.StartReady(t, "agent-"+key, proctest.AgentReady, func(addr string) []string {
		admin = proctest.FreeAddr(t)
		return append([]string{"agent", "--listen", addr, "--admin", admin, "--lifecycle", "aws", "--control-url", d.cloud.FunctionURL,
			"--certs", d.certs, "--state-dir", state, "--log-level", "debug"}, extra...)
	})
	return anAgent{p, addr, admin}
}

// fluidity runs a short fluidity command as the identity with key.
func (d *deployment) fluidity(t testing.TB, key string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, proctest.Binary(), append(args, "--control-url", d.cloud.FunctionURL, "--state-dir", t.TempDir())...)
	cmd.Env = d.agentEnv(key)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// curlResult is what curl got through an agent.
type curlResult struct {
	body, stderr string
	code         string        // the HTTP status of the response
	firstByte    time.Duration // curl's time to the first byte
	err          error
}

// curl fetches the origin through the agent, tunnelled with CONNECT so the
// stream ends when curl does.
func (d *deployment) curl(t testing.TB, agentAddr string) curlResult {
	t.Helper()
	return d.curlWith(t, agentAddr, "-p")
}

// curlWith fetches the origin through the agent with curl's extra flags
// (none: a plain proxy request, whose refusal has a body saying why).
func (d *deployment) curlWith(t testing.TB, agentAddr string, flags ...string) curlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	args := append([]string{"-q", "-sS", "--max-time", "80", "-x", "http://" + agentAddr,
		"-w", "\n%{http_code} %{time_starttransfer}"}, flags...)
	cmd := exec.CommandContext(ctx, "curl", append(args, "http://"+d.origin+"/")...)
	cmd.Env = proctest.Env()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := curlResult{stderr: stderr.String(), err: err}
	out := stdout.String()
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		res.body = out[:i]
		if f := strings.Fields(out[i+1:]); len(f) == 2 {
			res.code = f[0]
			s, _ := strconv.ParseFloat(f[1], 64)
			res.firstByte = time.Duration(s * float64(time.Second))
		}
	}
	return res
}

func (d *deployment) mustCurl(t testing.TB, agentAddr string) curlResult {
	t.Helper()
	res := d.curl(t, agentAddr)
	if res.err != nil || res.body != "hello from the origin\n" {
		t.Fatalf("curl through the agent: %v %q %s", res.err, res.body, res.stderr)
	}
	return res
}

// report is the agent's status.
func report(t testing.TB, a anAgent) agent.Report {
	t.Helper()
	resp, err := http.Get("http://" + a.admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r agent.Report
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Lifecycle == nil {
		t.Fatalf("agent status: %+v, %v", r, err)
	}
	return r
}

// waitReport waits until the agent's status satisfies cond.
func waitReport(t testing.TB, a anAgent, what string, cond func(agent.Report) bool) agent.Report {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := report(t, a)
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not get to %s; its status: %+v, lifecycle %+v\n%s", what, r, *r.Lifecycle, a.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func asleep(r agent.Report) bool {
	return r.State == "asleep" && r.Lifecycle.State == lifecycle.StateAsleep
}

// live is the tasks whose desired status is RUNNING.
func (d *deployment) live() []awsfake.Task {
	return slices.DeleteFunc(d.cloud.Tasks(), func(t awsfake.Task) bool { return t.DesiredStatus != "RUNNING" })
}

// waitStopped waits until the task has stopped.
func (d *deployment) waitStopped(t testing.TB, id string) awsfake.Task {
	t.Helper()
	ts, err := d.cloud.WaitTasks(ctxFor(t, 20*time.Second), func(ts []awsfake.Task) bool {
		for _, task := range ts {
			if task.ID == id {
				return task.LastStatus == "STOPPED"
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("task %s did not stop: %v", id, err)
	}
	for _, task := range ts {
		if task.ID == id {
			return task
		}
	}
	return awsfake.Task{}
}

// sweep runs the control plane's scheduled sweep once, as EventBridge
// would invoke it.
func (d *deployment) sweep(t testing.TB) controlplane.SweepReport {
	t.Helper()
	event := `{"version":"0","id":"1","detail-type":"Scheduled Event","source":"aws.events","account":"111122223333",` +
		`"time":"` + time.Now().UTC().Format(time.RFC3339) + `","region":"us-east-1","resources":[],"detail":{}}`
	out, err := d.rt.Invoke(ctxFor(t, time.Minute), []byte(event))
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	var rep controlplane.SweepReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("sweep answered %s: %v", out, err)
	}
	return rep
}

func invocations(d *deployment) int { return d.cloud.CallCount("lambda:InvokeFunctionUrl") }

// TestExitOnDemand follows one person's exit through its life: the first
// connection wakes it and is held until it is ready; idle, it stops and
// the agent sleeps without waking anything; the next connection wakes a
// new one; a task replaced by another is found.
func TestExitOnDemand(t *testing.T) {
	t.Parallel()
	// An exit woken but not yet used waits longer than the agent takes to
	// notice a hung exit (below) before it stops itself.
	d := deploy(t, deployOptions{exitFlags: []string{"--exit-when-unused", "20s"}})
	// Pings notice a hung exit within 6 s (below), time enough for its
	// replacement to be started first.
	a := d.startAgent(t, aliceKey, "--ping-interval", "1s", "--ping-timeout", "5s")
	addr := a.addr
	if r := report(t, a); !asleep(r) || len(d.cloud.Tasks()) != 0 {
		t.Fatalf("a new agent: %+v %+v, %d tasks; want asleep and none", r, *r.Lifecycle, len(d.cloud.Tasks()))
	}

	// The first connection wakes the exit and is held, not refused.
	first := d.mustCurl(t, addr)
	tasks := d.cloud.Tasks()
	if len(tasks) != 1 || tasks[0].Tags["fluidity:owner"] != alice || tasks[0].PublicIP != "127.0.0.2" {
		t.Fatalf("tasks after the first connection: %+v", tasks)
	}
	one := tasks[0]
	overhead := first.firstByte - one.StartedAt.Sub(one.CreatedAt)
	t.Logf("first byte through a woken exit after %v; the task took %v to start; overhead %v",
		first.firstByte.Round(time.Millisecond), one.StartedAt.Sub(one.CreatedAt).Round(time.Millisecond), overhead.Round(time.Millisecond))
	r := report(t, a)
	if r.State != "up" || r.Lifecycle.State != lifecycle.StateReady || r.Lifecycle.Task != one.ARN || r.Exit != "127.0.0.2:"+d.port {
		t.Fatalf("status after the wake: %+v, lifecycle %+v", r, *r.Lifecycle)
	}
	if !strings.Contains(a.Stderr(), "waking the exit") || !strings.Contains(a.Stderr(), "exit ready") {
		t.Fatalf("the agent's log does not show the wake:\n%s", a.Stderr())
	}

	// Idle, the exit stops itself; the agent goes to sleep and stays so.
	closed := time.Now()
	stopped := d.waitStopped(t, one.ID)
	t.Logf("last stream closed → exit gone in %v (exit_when_idle 2s)", stopped.StoppingAt.Sub(closed).Round(time.Millisecond))
	if stopped.StopCode != "EssentialContainerExited" || stopped.StoppingAt.Sub(closed) > 4*time.Second {
		t.Fatalf("the exit stopped %v after its last stream with %s (%s)", stopped.StoppingAt.Sub(closed), stopped.StopCode, stopped.StoppedReason)
	}
	waitReport(t, a, "asleep", asleep)
	calls := invocations(d)
	time.Sleep(1500 * time.Millisecond) // a reconnect loop would show in this time
	if n := invocations(d); n != calls || len(d.live()) != 0 {
		t.Fatalf("asleep, the agent made %d calls and %d tasks run", n-calls, len(d.live()))
	}

	// The next connection wakes a new exit.
	d.mustCurl(t, addr)
	tasks = d.cloud.Tasks()
	if len(tasks) != 2 || tasks[1].PublicIP != "127.0.0.3" {
		t.Fatalf("tasks after the second wake: %+v", tasks)
	}
	two := tasks[1]

	// The exit hangs and is replaced under the running agent: stopped and
	// woken again from elsewhere (fluidity stop, fluidity wake), at a new
	// address. The agent's link to the hung exit dies by its pings; the
	// agent asks where the exit is and follows it to the new address by
	// itself, without a client connection and without a wake of its own.
	hung := d.exit(t, two)
	hung.Freeze(t)
	t.Cleanup(hung.Kill)
	if out, err := d.fluidity(t, aliceKey, "stop"); err != nil || !strings.Contains(out, "Exit stopped (task "+two.ID+")") {
		t.Fatalf("fluidity stop: %v\n%s", err, out)
	}
	out, err := d.fluidity(t, aliceKey, "wake")
	if err != nil || !strings.Contains(out, "Exit ready at 127.0.0.4:"+d.port) {
		t.Fatalf("fluidity wake: %v\n%s", err, out)
	}
	waitReport(t, a, "the replacement", func(r agent.Report) bool { return r.Exit == "127.0.0.4:"+d.port && r.State == "up" })
	if n := a.LogCount("waking the exit"); n != 2 {
		t.Fatalf("the agent woke the exit %d times; the replacement must be found, not woken", n)
	}
	d.mustCurl(t, addr)
	if n := len(d.cloud.Tasks()); n != 3 {
		t.Fatalf("%d tasks; the agent must have used the replacement, not started a fourth", n)
	}
	r = waitReport(t, a, "the new exit", func(r agent.Report) bool { return r.Exit == "127.0.0.4:"+d.port && r.State == "up" })
	if u := r.Lifecycle.Usage; u == nil || u.Tasks != 3 || u.Hours <= 0 || u.CostUSD <= 0 {
		t.Fatalf("usage %+v; want three tasks' hours and their cost", u)
	}

	// fluidity status shows it for a person.
	st := exec.Command(proctest.Binary(), "status", "--admin", a.admin)
	st.Env = proctest.Env()
	text, err := st.CombinedOutput()
	if err != nil || !strings.Contains(string(text), "On demand:") || !strings.Contains(string(text), "This month:") {
		t.Fatalf("fluidity status: %v\n%s", err, text)
	}
}

// TestEachIdentityHasItsOwnExit runs two people's agents: two tasks; one
// person's stop leaves the other's exit running; ten connections at once
// wake one exit.
func TestEachIdentityHasItsOwnExit(t *testing.T) {
	t.Parallel()
	d := deploy(t, deployOptions{})
	aliceAddr := d.startAgent(t, aliceKey).addr
	bobAddr := d.startAgent(t, bobKey).addr

	var wg sync.WaitGroup
	results := make([]curlResult, 10)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = d.curl(t, aliceAddr)
		}()
	}
	wg.Wait()
	for i, res := range results {
		if res.err != nil || res.body != "hello from the origin\n" {
			t.Fatalf("connection %d of ten at once: %v %q %s", i, res.err, res.body, res.stderr)
		}
	}
	if n := len(d.cloud.Tasks()); n != 1 {
		t.Fatalf("ten connections at once started %d tasks", n)
	}
	d.mustCurl(t, bobAddr)
	live := d.live()
	if len(live) != 2 || live[1].Tags["fluidity:owner"] != bobRole {
		t.Fatalf("live tasks %+v; want alice's and bob's role's", live)
	}

	out, err := d.fluidity(t, aliceKey, "stop")
	if err != nil || !strings.Contains(out, "Exit stopped (task "+live[0].ID+")") {
		t.Fatalf("fluidity stop: %v\n%s", err, out)
	}
	live = d.live()
	if len(live) != 1 || live[0].Tags["fluidity:owner"] != bobRole {
		t.Fatalf("after alice's stop, live tasks %+v; want bob's alone", live)
	}
	d.mustCurl(t, bobAddr)
}

// TestFailedWakesLeaveNothingRunning refuses, fails or stalls the wake in
// each way the control plane can meet, and checks the client's answer and
// that no task is left running.
func TestFailedWakesLeaveNothingRunning(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		opts   deployOptions
		setup  func(d *deployment)
		agent  []string
		want   []string // in curl's answer
		status string   // the stop reason of the task, if one was started
	}{
		{name: "RunTask refused", setup: func(d *deployment) {
			d.cloud.FailNext("ecs:RunTask", 0, awsfake.APIError{Code: "AccessDeniedException",
				Message: "User: arn:aws:sts::111122223333:assumed-role/fluidity-plane/fn is not authorized to perform: ecs:RunTask"})
		}, want: []string{"503", "may not call ecs:RunTask", "fluidity aws deploy"}},
		{name: "no capacity", setup: func(d *deployment) {
			d.cloud.SetRunFailure("Capacity is unavailable at this time. Please try again later or in a different availability zone")
		}, want: []string{"503", "Capacity is unavailable"}},
		{name: "the task stops while starting", setup: func(d *deployment) {
			d.cloud.SetStartFailure("CannotPullContainerError: pull access denied")
		}, want: []string{"503", "stopped while starting", "CannotPullContainerError"}},
		{name: "the exit's certificates are missing", opts: deployOptions{noCerts: true},
			want: []string{"503", "stopped while starting", "Essential container in task exited (exit code 1", "log"}},
		{name: "the task never becomes ready", setup: func(d *deployment) { d.cloud.SetHold(true) },
			agent: []string{"--wake-timeout", "3s"}, want: []string{"503", "did not become ready within 3s", "stopped it"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := deploy(t, tc.opts)
			if tc.setup != nil {
				tc.setup(d)
			}
			res := d.curlWith(t, d.startAgent(t, aliceKey, tc.agent...).addr)
			answer := res.code + " " + res.body
			t.Logf("the client saw: %s", strings.TrimSpace(answer))
			for _, w := range tc.want {
				if !strings.Contains(answer, w) {
					t.Errorf("curl's answer does not say %q: %s", w, answer)
				}
			}
			if live := d.live(); len(live) != 0 {
				t.Fatalf("a failed wake left %d tasks running: %+v", len(live), live)
			}
		})
	}
}

// TestSweepStopsWhatTheAgentAndTheExitLeft kills an agent in the middle of
// a wake and freezes an exit so it stops renewing its lease: the sweep
// stops both tasks.
func TestSweepStopsWhatTheAgentAndTheExitLeft(t *testing.T) {
	t.Parallel()
	d := deploy(t, deployOptions{lambdaEnv: map[string]string{
		"FLUIDITY_START_TIMEOUT": "2s", "FLUIDITY_LEASE_GRACE": "2s", "FLUIDITY_LEASE_SLACK": "1s"}})

	// An agent killed while its exit wakes leaves a task that never runs.
	d.cloud.SetHold(true)
	a := d.startAgent(t, aliceKey)
	go d.curl(t, a.addr)
	if _, err := d.cloud.WaitTasks(ctxFor(t, 20*time.Second), func(ts []awsfake.Task) bool { return len(ts) == 1 }); err != nil {
		t.Fatal(err)
	}
	a.Kill()
	stuck := d.cloud.Tasks()[0]
	time.Sleep(2100 * time.Millisecond) // past start_timeout
	rep := d.sweep(t)
	if rep.Stopped != 1 || !strings.Contains(rep.Decisions[0].Reason, "not running") {
		t.Fatalf("sweep of a task that never started: %+v", rep)
	}
	d.waitStopped(t, stuck.ID)
	d.cloud.SetHold(false)

	// An exit that hangs stops renewing its lease, and does not stop
	// itself either.
	d.mustCurl(t, d.startAgent(t, bobKey).addr)
	var hung awsfake.Task
	for _, task := range d.live() {
		hung = task
	}
	exit := d.exit(t, hung)
	if !exit.WaitLog("lease", 1, 5*time.Second) {
		t.Fatalf("the exit never renewed its lease:\n%s", exit.Stderr())
	}
	exit.Freeze(t)
	t.Cleanup(func() { exit.Kill() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		rep = d.sweep(t)
		if rep.Stopped > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if rep.Stopped != 1 || rep.Decisions[0].Task != hung.ARN || !strings.Contains(rep.Decisions[0].Reason, "lease expired") {
		t.Fatalf("sweep of a hung exit: %+v", rep)
	}
}
