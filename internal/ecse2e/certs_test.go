package ecse2e

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fluidity/internal/awsfake"
	"fluidity/internal/pki"
	"fluidity/internal/proctest"
)

// pushBundle makes a certs init directory and returns it with its bundle.
func pushBundle(t testing.TB) (certs string, bundle string) {
	t.Helper()
	certs = proctest.CertsInit(t)
	b, err := pki.ServerBundle(certs)
	if err != nil {
		t.Fatal(err)
	}
	return certs, string(b)
}

// curlThroughExit fetches url with curl through the exit at exitAddr,
// used directly as an HTTPS proxy with the client certificate in certs.
func curlThroughExit(t testing.TB, certs, exitAddr, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "curl", "-q", "-sS", "--max-time", "20",
		"--proxy", "https://"+exitAddr, "--proxy-cacert", filepath.Join(certs, pki.CAFile),
		"--proxy-cert", filepath.Join(certs, pki.ClientCertFile), "--proxy-key", filepath.Join(certs, pki.ClientKeyFile),
		"-p", url)
	cmd.Env = proctest.Env()
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("curl through the exit: %v: %s", err, stderr)
	}
	return string(out)
}

func newOrigin(t testing.TB) *httptest.Server {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from the origin\n")
	}))
	t.Cleanup(origin.Close)
	return origin
}

// TestExitLoadsCertificatesFromAWS runs exits whose certificates are a
// bundle in SSM Parameter Store or Secrets Manager, and uses each as an
// HTTPS proxy from curl with the client certificate of the same CA.
func TestExitLoadsCertificatesFromAWS(t *testing.T) {
	t.Parallel()
	c := newCloud(t, awsfake.CloudConfig{})
	certs, bundle := pushBundle(t)
	c.PutParameter("/fluidity/exit", bundle, true)
	c.PutSecret("fluidity-exit", bundle)
	origin := newOrigin(t)
	l := proctest.Launcher{Env: exitEnv(c)}
	for _, uri := range []string{"ssm:///fluidity/exit", "secretsmanager://fluidity-exit"} {
		t.Run(uri, func(t *testing.T) {
			exit, exitAddr := l.StartExit(t, uri, "--allow-private")
			if got := curlThroughExit(t, certs, exitAddr, origin.URL+"/"); got != "hello from the origin\n" {
				t.Fatalf("curl got %q", got)
			}
			if !strings.Contains(exit.Stderr(), `msg="certificates loaded" from=`+uri) {
				t.Errorf("the exit did not log where its certificates came from:\n%s", exit.Stderr())
			}
		})
	}
	for _, op := range []string{"ssm:GetParameter", "secretsmanager:GetSecretValue"} {
		for _, call := range c.Calls() {
			if call.Op == op && call.Caller != exitRole {
				t.Errorf("%s called as %q, want the task role", op, call.Caller)
			}
		}
		if c.CallCount(op) != 1 {
			t.Errorf("%s called %d times, want once", op, c.CallCount(op))
		}
	}
}

// TestExitWithoutItsCertificatesFailsAtStart starts exits whose bundle is
// missing or refused: each must end at once, status 1, saying what to do.
func TestExitWithoutItsCertificatesFailsAtStart(t *testing.T) {
	t.Parallel()
	c := newCloud(t, awsfake.CloudConfig{})
	_, bundle := pushBundle(t)
	c.PutParameter("fluidity-exit", bundle, true)
	l := proctest.Launcher{Env: exitEnv(c)}
	for _, tc := range []struct {
		name  string
		uri   string
		fault string
		want  []string
	}{
		{"a missing parameter", "ssm://fluidity-nope", "",
			[]string{`there is no parameter "fluidity-nope" in region us-east-1`, "fluidity certs push ssm://fluidity-nope"}},
		{"a refused parameter", "ssm://fluidity-exit", "ssm:GetParameter",
			[]string{"access denied", "task role needs ssm:GetParameter", "kms:Decrypt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fault != "" {
				c.FailNext(tc.fault, 1, awsfake.APIError{Code: "AccessDeniedException", Message: "User: " + exitRole + " is not authorized to perform: " + tc.fault})
			}
			exit := l.Start(t, "exit", l.ExitArgs(tc.uri, proctest.FreeAddr(t))...)
			if code := exit.WaitExit(t, 15*time.Second); code != 1 {
				t.Fatalf("the exit ended with status %d, want 1:\n%s", code, exit.Stderr())
			}
			t.Logf("the exit said: %s", strings.TrimSpace(exit.Stderr()))
			for _, w := range tc.want {
				if !strings.Contains(exit.Stderr(), w) {
					t.Errorf("the exit's error lacks %q:\n%s", w, exit.Stderr())
				}
			}
			if strings.Contains(exit.Stderr(), proctest.ExitReady) {
				t.Errorf("the exit listened without its certificates:\n%s", exit.Stderr())
			}
		})
	}
}
