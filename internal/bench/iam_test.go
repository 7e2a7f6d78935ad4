package bench

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"fluidity/internal/awsfake"
)

// The IAM identity of the benchmark's agent: a session of the role the
// exit allows, signed with static keys the fake STS knows.
const (
	iamKey      = "AKIDBENCH0000001"
	iamSecret   = "bench-secret"
	iamRole     = "arn:aws:iam::111122223333:role/bench"
	iamServerID = "bench-exit"
)

// iamStack starts a stack whose exit requires an IAM identity, verified
// through a fake STS run by this process, and whose agent proves one with
// static credentials. It returns the fake so that its calls can be counted.
func iamStack(tb testing.TB) (*stack, *awsfake.STS) {
	tb.Helper()
	sts := awsfake.NewServer(tb)
	sts.AddIdentity(iamKey, iamSecret, "arn:aws:sts::111122223333:assumed-role/bench/session", "111122223333", "AROABENCH:session")
	var env []string
	for _, kv := range cleanEnv() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv) // the machine's AWS settings stay out
		}
	}
	env = append(env, "AWS_ACCESS_KEY_ID="+iamKey, "AWS_SECRET_ACCESS_KEY="+iamSecret, "AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE="+os.DevNull, "AWS_SHARED_CREDENTIALS_FILE="+os.DevNull, "AWS_EC2_METADATA_DISABLED=true")
	s := newStackWith(tb, stackOptions{
		exitArgs: []string{"--iam-required", "--iam-allow", iamRole, "--iam-server-id", iamServerID,
			"--iam-sts-endpoint", "us-east-1=" + sts.URL},
		agentArgs: []string{"--iam", "--iam-server-id", iamServerID},
		agentEnv:  env,
	})
	return s, sts
}

// setupIAMFigures is what one SetupIAM run measured: the medians of its
// rounds' p50 and p99, with IAM off and on.
type setupIAMFigures struct {
	offP50, offP99, onP50, onP99 float64 // ms
	rounds                       int     // CONNECTs per mode, all rounds
	stsCalls                     int     // STS calls the IAM exit made, warm-up included
}

// runSetupIAM alternates rounds of the Setup scenario through a stack
// without IAM and one that requires it, each with a fresh process set
// started before the first round.
func runSetupIAM(tb testing.TB, sz sizes) setupIAMFigures {
	off := newStack(tb)
	on, sts := iamStack(tb)
	const rounds = 3
	n := max(sz.setupRounds/2, 1)
	var f setupIAMFigures
	var offP50, offP99, onP50, onP99 []float64
	for range rounds {
		for _, m := range []struct {
			s        *stack
			p50, p99 *[]float64
		}{{off, &offP50, &offP99}, {on, &onP50, &onP99}} {
			var r latencyResult
			runClient(tb, &r, "client-setup", "-mode", "connect", "-origin", m.s.origin.HTTP, "-proxy", m.s.agentAddr, "-n", strconv.Itoa(n))
			*m.p50, *m.p99 = append(*m.p50, r.P50ms), append(*m.p99, r.P99ms)
			if m.s == on {
				f.rounds += r.Requests
			}
		}
	}
	f.offP50, f.offP99, f.onP50, f.onP99 = median(offP50), median(offP99), median(onP50), median(onP99)
	f.stsCalls = sts.RequestCount()
	return f
}

// BenchmarkSetupIAM is the Setup scenario (a new CONNECT tunnel plus one
// small GET, in sequence) through an exit that requires an IAM identity,
// against the same through an exit without IAM, in the same run. The
// agent's token is verified once and then answered from the exit's cache.
func BenchmarkSetupIAM(b *testing.B) {
	var m metrics
	var calls, rounds int
	for range b.N {
		f := runSetupIAM(b, full)
		m.n++
		m.add("p50-ms-iam-off", f.offP50)
		m.add("p99-ms-iam-off", f.offP99)
		m.add("p50-ms-iam-on", f.onP50)
		m.add("p99-ms-iam-on", f.onP99)
		m.add("p50-ms-diff", f.onP50-f.offP50)
		calls, rounds = f.stsCalls, f.rounds
	}
	m.report(b)
	// Negligible: within 0.1 ms or 10 % of the p50 without IAM, whichever
	// is larger (run-to-run noise on a shared machine is about that).
	diff, limit := m.mean("p50-ms-diff"), max(0.1, 0.1*m.mean("p50-ms-iam-off"))
	b.Logf("setup with IAM (cached token): p50 %.3f ms, p99 %.3f ms; without IAM: p50 %.3f ms, p99 %.3f ms; p50 difference %+.3f ms (target: negligible, < %.2f ms: %s); %d STS call(s) for %d timed streams and the warm-up",
		m.mean("p50-ms-iam-on"), m.mean("p99-ms-iam-on"), m.mean("p50-ms-iam-off"), m.mean("p99-ms-iam-off"),
		diff, limit, verdict(diff < limit), calls, rounds)
}
