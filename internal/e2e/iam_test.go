package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fluidity/internal/awsfake"
	"fluidity/internal/iamauth"
	"fluidity/internal/pki"
	"fluidity/internal/proctest"
)

// The identities of the IAM tests: key A signs as a session of the allowed
// role, key B as a session of a role outside the allowlist.
const (
	iamServerID  = "e2e-exit"
	iamAccount   = "111122223333"
	allowedRole  = "arn:aws:iam::111122223333:role/agent"
	keyAllowed   = "AKIDE2EALLOWED01"
	secretAllow  = "e2e-allowed-secret"
	keyOther     = "AKIDE2EOTHER0001"
	secretOther  = "e2e-other-secret"
	identityLine = "identity=" + allowedRole
)

// newIAMFake starts a fake STS that knows keys A and B.
func newIAMFake(t *testing.T) *awsfake.STS {
	sts := awsfake.NewServer(t)
	sts.AddIdentity(keyAllowed, secretAllow, "arn:aws:sts::111122223333:assumed-role/agent/session", iamAccount, "AROAE2EAGENT:session")
	sts.AddIdentity(keyOther, secretOther, "arn:aws:sts::111122223333:assumed-role/other/session", iamAccount, "AROAE2EOTHER:session")
	return sts
}

// awsEnv is the child environment without the machine's AWS settings (a
// CA bundle, profiles, instance metadata), plus vars.
func awsEnv(vars ...string) []string {
	var env []string
	for _, kv := range proctest.Env() {
		if !strings.HasPrefix(strings.ToUpper(kv), "AWS_") {
			env = append(env, kv)
		}
	}
	env = append(env, "AWS_CONFIG_FILE="+os.DevNull, "AWS_SHARED_CREDENTIALS_FILE="+os.DevNull, "AWS_EC2_METADATA_DISABLED=true")
	return append(env, vars...)
}

// staticCreds is the environment of a process signing with key and secret.
func staticCreds(key, secret string) []string {
	return awsEnv("AWS_ACCESS_KEY_ID="+key, "AWS_SECRET_ACCESS_KEY="+secret, "AWS_REGION=us-east-1")
}

// iamExitArgs are the flags of an exit that requires an IAM identity and
// asks stsURL for us-east-1.
func iamExitArgs(stsURL string, extra ...string) []string {
	return append([]string{"--allow-private", "--iam-required", "--iam-allow", allowedRole,
		"--iam-sts-endpoint", "us-east-1=" + stsURL, "--iam-server-id", iamServerID}, extra...)
}

// startIAMAgent starts an agent with env and extra flags and waits for its link.
func startIAMAgent(t *testing.T, certs, exitAddr string, env []string, extra ...string) (*proctest.Proc, string) {
	t.Helper()
	agent, addr := proctest.Launcher{Env: env}.StartAgent(t, certs, exitAddr, extra...)
	proctest.WaitLinkUp(t, agent, 1, linkWithin)
	return agent, addr
}

// fluidityToken runs 'fluidity token' with env and returns its stdout line.
func fluidityToken(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(proctest.Binary(), append([]string{"token"}, args...)...)
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("fluidity token: %v\n%s", err, stderr.String())
	}
	tok := strings.TrimSuffix(string(out), "\n")
	if !strings.HasPrefix(tok, iamauth.Prefix) || strings.ContainsAny(tok, "\n ") {
		t.Fatalf("fluidity token printed %q, want one token line", out)
	}
	return tok
}

// TestIAMIdentityOnTheTunnel runs an exit that requires an IAM identity,
// verified through a fake STS that checks the real signatures, and agents
// and curl with and without the identity it allows.
func TestIAMIdentityOnTheTunnel(t *testing.T) {
	sts := newIAMFake(t)
	certs := proctest.CertsInit(t)
	exit, exitAddr := proctest.StartExit(t, certs, iamExitArgs(sts.URL)...)
	origin := newOrigin(t)
	target := strings.TrimPrefix(origin.URL, "http://")

	t.Run("an allowed role gets through and is logged as its role", func(t *testing.T) {
		_, proxy := startIAMAgent(t, certs, exitAddr, staticCreds(keyAllowed, secretAllow), "--iam", "--iam-server-id", iamServerID)
		res := mustCurl(t, curlOpts{}, "-x", "http://"+proxy, origin.URL+"/hello")
		if res.stdout != "hello\n" {
			t.Fatalf("got %q through the agent", res.stdout)
		}
		res = mustCurl(t, curlOpts{}, "-p", "-x", "http://"+proxy, origin.URL+"/hello")
		if res.stdout != "hello\n" {
			t.Fatalf("got %q through a CONNECT tunnel", res.stdout)
		}
		// The forwarded GET's stream stays open for keep-alive; the
		// CONNECT's stream has ended and been logged.
		if !exit.WaitLog(identityLine, 1, 5*time.Second) {
			t.Fatalf("the exit did not log %s", identityLine)
		}

		// Many more streams within the token's life: each is a new CONNECT
		// and a new exit stream, and none costs an STS call.
		const streams = 30
		for range streams {
			c := mustConnect(t, proxy, target)
			c.Close()
		}
		if !exit.WaitLog(identityLine, 1+streams, 5*time.Second) {
			t.Fatalf("the exit logged %d streams of %s, want %d", strings.Count(exit.Stderr(), identityLine), allowedRole, 1+streams)
		}
		if n := sts.RequestCount(); n != 1 {
			t.Fatalf("STS was asked %d times for %d streams with one token, want 1 (verified tokens are cached)", n, 2+streams)
		}
	})

	t.Run("a role outside the allowlist gets 403 with the reason", func(t *testing.T) {
		_, proxy := startIAMAgent(t, certs, exitAddr, staticCreds(keyOther, secretOther), "--iam", "--iam-server-id", iamServerID)
		res := runCurl(t, curlOpts{}, "-x", "http://"+proxy, "-i", origin.URL+"/hello")
		if !strings.HasPrefix(res.stdout, "HTTP/1.1 403") || !strings.Contains(res.stdout, "arn:aws:iam::111122223333:role/other is not in iam.allow") {
			t.Fatalf("got %q, want 403 naming the role and iam.allow", res.stdout)
		}
		if !exit.WaitLog("iam identity not allowed", 1, 5*time.Second) {
			t.Fatal("the exit did not log the refusal")
		}
	})

	t.Run("an agent without an identity gets 407 with the reason", func(t *testing.T) {
		_, proxy := startIAMAgent(t, certs, exitAddr, proctest.Env())
		res := runCurl(t, curlOpts{}, "-x", "http://"+proxy, "-i", origin.URL+"/hello")
		if !strings.HasPrefix(res.stdout, "HTTP/1.1 407") || !strings.Contains(res.stdout, "no IAM token") {
			t.Fatalf("got %q, want 407 saying no IAM token was sent", res.stdout)
		}
		c, resp := dialConnect(t, proxy, target)
		if c != nil || resp.StatusCode != http.StatusProxyAuthRequired {
			t.Fatalf("CONNECT: %s, want 407", resp.Status)
		}
		if ps := resp.Header.Get("Proxy-Status"); !strings.Contains(ps, "fluidity token") {
			t.Fatalf("CONNECT: Proxy-Status %q does not say how to get a token", ps)
		}
	})

	t.Run("an agent whose credentials are missing starts, says the fix, and serves", func(t *testing.T) {
		agent, proxy := startIAMAgent(t, certs, exitAddr, awsEnv("AWS_REGION=us-east-1"), "--iam", "--iam-server-id", iamServerID)
		log := agent.Stderr()
		if !strings.Contains(log, "IAM identity unavailable") || !strings.Contains(log, "AWS_ACCESS_KEY_ID") {
			t.Fatalf("agent log does not say that the identity is missing and how to fix it:\n%s", log)
		}
		res := runCurl(t, curlOpts{}, "-x", "http://"+proxy, "-i", origin.URL+"/hello")
		if !strings.HasPrefix(res.stdout, "HTTP/1.1 407") || !strings.Contains(res.stdout, "no IAM token") {
			t.Fatalf("got %q, want the exit's 407", res.stdout)
		}
	})

	caFile := filepath.Join(certs, pki.CAFile)
	clientCert := []string{"--proxy-cert", filepath.Join(certs, "client.crt"), "--proxy-key", filepath.Join(certs, "client.key")}
	direct := []string{"--proxy", "https://" + exitAddr, "--proxy-cacert", caFile}

	t.Run("curl straight to the exit with a token from fluidity token gets through", func(t *testing.T) {
		tok := fluidityToken(t, staticCreds(keyAllowed, secretAllow), "--iam-server-id", iamServerID)
		args := append(append(append([]string{}, direct...), clientCert...),
			"--proxy-header", "Proxy-Authorization: Bearer "+tok, "-p", origin.URL+"/hello")
		res := mustCurl(t, curlOpts{}, args...)
		if res.stdout != "hello\n" {
			t.Fatalf("got %q", res.stdout)
		}

		args = append(append(append([]string{}, direct...), clientCert...), "-v", "-p", origin.URL+"/hello")
		res = runCurl(t, curlOpts{}, args...)
		if res.code == 0 || !strings.Contains(res.stderr, "< HTTP/1.1 407") || !strings.Contains(res.stderr, `Proxy-Authenticate: Bearer realm="fluidity"`) {
			t.Fatalf("without the token: curl exit %d, stderr %q: want 407 asking for a bearer token", res.code, res.stderr)
		}
	})

	other := proctest.CertsInit(t)
	for _, tc := range []struct {
		name, reason string
		cert         []string
	}{
		{"a valid token without a client certificate never reaches STS", "no client certificate", nil},
		{"a valid token with a certificate from another CA never reaches STS", "unknown certificate authority",
			[]string{"--proxy-cert", filepath.Join(other, "client.crt"), "--proxy-key", filepath.Join(other, "client.key")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := fluidityToken(t, staticCreds(keyAllowed, secretAllow), "--iam-server-id", iamServerID)
			before := sts.RequestCount()
			args := append(append(append([]string{}, direct...), tc.cert...),
				"--proxy-header", "Proxy-Authorization: Bearer "+tok, "-p", origin.URL+"/hello")
			res := runCurl(t, curlOpts{}, args...)
			if res.code == 0 {
				t.Fatalf("curl succeeded (%q) without a valid client certificate", res.stdout)
			}
			if !exit.WaitLog(`reason="`+tc.reason, 1, 5*time.Second) {
				t.Fatalf("curl exit %d (%s); the exit did not log the TLS refusal %q", res.code, strings.TrimSpace(res.stderr), tc.reason)
			}
			if n := sts.RequestCount(); n != before {
				t.Fatalf("STS was asked %d times for a connection without a valid certificate", n-before)
			}
		})
	}
}

// TestIAMWhenSTSFails checks that a stream whose token cannot be checked
// gets 503 with the reason within the STS deadline, both when STS refuses
// connections and when it accepts them and never answers.
func TestIAMWhenSTSFails(t *testing.T) {
	certs := proctest.CertsInit(t)
	origin := newOrigin(t)
	hung := newIAMFake(t)
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	hung.SetFault(awsfake.Fault{Block: block})

	for _, tc := range []struct {
		name, endpoint, reason string
	}{
		{"unreachable", "http://" + proctest.FreeAddr(t), "STS unreachable"},
		{"silent", hung.URL, "STS did not answer within 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, exitAddr := proctest.StartExit(t, certs, iamExitArgs(tc.endpoint, "--iam-timeout", "1s")...)
			_, proxy := startIAMAgent(t, certs, exitAddr, staticCreds(keyAllowed, secretAllow), "--iam", "--iam-server-id", iamServerID)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res := runCurlCtx(ctx, t, curlOpts{}, "-x", "http://"+proxy, "-i", origin.URL+"/hello")
			if !strings.HasPrefix(res.stdout, "HTTP/1.1 503") || !strings.Contains(res.stdout, tc.reason) {
				t.Fatalf("got %q after %v, want 503 saying %q", res.stdout, res.duration, tc.reason)
			}
			if res.duration > 3*time.Second {
				t.Fatalf("503 took %v, want it within the 1s STS deadline", res.duration)
			}
			t.Logf("503 after %v", res.duration.Round(time.Millisecond))
		})
	}
}
