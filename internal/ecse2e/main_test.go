package ecse2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"go.uber.org/goleak"

	"fluidity/internal/awsfake"
	"fluidity/internal/ecstask"
	"fluidity/internal/pki"
	"fluidity/internal/proctest"
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if _, err := exec.LookPath("curl"); err != nil {
		fmt.Println("ecse2e: skipping: curl is not installed (the tests drive the exit with curl)")
		return 0
	}
	if _, err := exec.LookPath("go"); err != nil {
		fmt.Println("ecse2e: skipping: the go command is not on PATH, so the fluidity binary cannot be built")
		return 0
	}
	awsfake.IsolateEnvironment()
	os.Unsetenv(ecstask.MetadataEnv)
	dir, err := os.MkdirTemp("", "fluidity-ecse2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "ecse2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := proctest.Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "ecse2e:", err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "ecse2e: goroutines leaked by the tests:", err)
			return 1
		}
	}
	return code
}

// Identities in the Cloud: the control plane that runs tasks, and the
// exit's task role.
const (
	planeKey = "AKIDPLANE0000001"
	exitKey  = "AKIDEXIT00000001"
	exitRole = "arn:aws:sts::111122223333:assumed-role/fluidity-exit-task/0123456789abcdef"
)

// newCloud starts a Cloud with the two identities, a cluster, the exit's
// task definition and a subnet.
func newCloud(t testing.TB, cfg awsfake.CloudConfig) *awsfake.Cloud {
	t.Helper()
	c := awsfake.NewCloud(t, cfg)
	c.AddIdentity(planeKey, "plane-secret", "arn:aws:sts::111122223333:assumed-role/fluidity-plane/fn")
	c.AddIdentity(exitKey, "exit-secret", exitRole)
	c.AddCluster("fluidity")
	c.AddTaskDefinition("fluidity-exit:1")
	c.AddSubnet("subnet-0a1b2c3d")
	return c
}

// exitEnv is the environment of an exit that calls c as the task role,
// plus extra.
func exitEnv(c *awsfake.Cloud, extra ...string) []string {
	return append(append(proctest.Env(), c.Env(exitKey)...), extra...)
}

// logLine matches a text log line's time and message.
var logLine = regexp.MustCompile(`(?m)^time=(\S+) level=\S+ msg=(?:"((?:[^"\\]|\\.)*)"|(\S*))`)

// logTime returns the time of the first line with message msg in p's log.
func logTime(t testing.TB, p *proctest.Proc, msg string) time.Time {
	t.Helper()
	for _, m := range logLine.FindAllStringSubmatch(p.Stderr(), -1) {
		if m[2] == msg || m[3] == msg {
			at, err := time.Parse(time.RFC3339Nano, m[1])
			if err != nil {
				t.Fatalf("log time %q: %v", m[1], err)
			}
			return at
		}
	}
	t.Fatalf("%s did not log %q:\n%s", p.Name(), msg, p.Stderr())
	return time.Time{}
}

// openTunnel opens an HTTP/1.1 CONNECT tunnel to target through the exit
// at exitAddr with the client certificate in certs, as curl would.
func openTunnel(t testing.TB, certs, exitAddr, target string) net.Conn {
	t.Helper()
	file := func(name string) string { return filepath.Join(certs, name) }
	cfg, err := pki.ClientConfig(file(pki.ClientCertFile), file(pki.ClientKeyFile), file(pki.CAFile), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.NextProtos = []string{"http/1.1"}
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", exitAddr, cfg)
	if err != nil {
		t.Fatalf("dial exit: %v", err)
	}
	t.Cleanup(func() { tc.Close() })
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(tc, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(tc)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT %s: %v %v", target, resp, err)
	}
	tc.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		t.Fatalf("the exit sent %d bytes after its answer", br.Buffered())
	}
	return tc
}

// silentTarget is a TCP server that reads what it gets and says nothing.
func silentTarget(t testing.TB) *proctest.Target {
	return proctest.NewTarget(t, func(c net.Conn) {
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	})
}

// ctxFor is a context bounded by d and the test.
func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
