//go:build unix

package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// squid is a Squid proxy, from the system's packages, run by a test on
// loopback with a configuration of its own.
type squid struct {
	addr string
	dir  string
	cmd  *exec.Cmd
}

// squidAuth says how a test Squid signs users in.
type squidAuth struct {
	scheme   string // "basic" or "ntlm"
	user     string // basic: the one user and password it knows
	password string
}

// squidBinary returns Squid's path, skipping the test when it is not
// installed (outside CI, which installs it).
func squidBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"squid", "/usr/sbin/squid"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("squid is not installed; .ci/run installs it (apt-get install squid)")
	}
	t.Skip("squid is not installed (apt-get install squid): the upstream-proxy tests need a real proxy")
	return ""
}

// squidHelper returns the path of one of Squid's helper programs.
func squidHelper(t *testing.T, name string) string {
	t.Helper()
	for _, dir := range []string{"/usr/lib/squid", "/usr/lib64/squid", "/usr/libexec/squid"} {
		if p := filepath.Join(dir, name); fileExists(p) {
			return p
		}
	}
	t.Fatalf("squid's helper %s was not found (dpkg -L squid | grep %s)", name, name)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// startSquid starts Squid on a free loopback port, allowing CONNECT only to
// allowedPort and, with auth, only for signed-in users.
func startSquid(t *testing.T, allowedPort string, auth *squidAuth) *squid {
	t.Helper()
	bin := squidBinary(t)
	dir, err := os.MkdirTemp("", "fluidity-squid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// Run as root, Squid drops to its own user, which must be able to
	// write its logs and read the password file.
	os.Chmod(dir, 0o755)
	var lines []string
	add := func(format string, a ...any) { lines = append(lines, fmt.Sprintf(format, a...)) }
	addr := freeLoopbackAddr(t)
	add("http_port %s", addr)
	add("pid_filename none")
	add("cache_log %s", filepath.Join(dir, "cache.log"))
	add("access_log stdio:%s", filepath.Join(dir, "access.log"))
	add("cache deny all")
	add("cache_mem 8 MB")
	add("coredump_dir %s", dir)
	add("pinger_enable off")
	add("shutdown_lifetime 0 seconds")
	add("acl exitport port %s", allowedPort)
	add("acl CONNECT method CONNECT")
	add("http_access deny CONNECT !exitport")
	if os.Geteuid() == 0 {
		add("cache_effective_user proxy")
	}
	if auth != nil {
		switch auth.scheme {
		case "basic":
			passwd := filepath.Join(dir, "passwd")
			out, err := exec.Command("openssl", "passwd", "-apr1", auth.password).Output()
			if err != nil {
				t.Fatalf("openssl passwd (to write Squid's password file): %v", err)
			}
			writeFile(t, passwd, auth.user+":"+strings.TrimSpace(string(out))+"\n")
			add("auth_param basic program %s %s", squidHelper(t, "basic_ncsa_auth"), passwd)
			add("auth_param basic realm Fluidity test proxy")
		case "ntlm":
			add("auth_param ntlm program %s", squidHelper(t, "ntlm_fake_auth"))
			add("auth_param ntlm children 2")
		}
		add("acl authed proxy_auth REQUIRED")
		add("http_access allow authed")
	} else {
		add("http_access allow all")
	}
	add("http_access deny all")
	conf := filepath.Join(dir, "squid.conf")
	writeFile(t, conf, strings.Join(lines, "\n")+"\n")
	for _, f := range []string{"cache.log", "access.log"} {
		writeFile(t, filepath.Join(dir, f), "")
	}
	if os.Geteuid() == 0 {
		if u, err := user.Lookup("proxy"); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { return os.Chown(p, uid, gid) })
		}
	}
	cmd := exec.Command(bin, "-N", "-f", conf)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start squid: %v", err)
	}
	s := &squid{addr: addr, dir: dir, cmd: cmd}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		// Squid's own process group: it forks helpers.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if t.Failed() {
			t.Logf("squid's cache.log:\n%s", readFile(filepath.Join(dir, "cache.log")))
			t.Logf("squid's access.log:\n%s", readFile(filepath.Join(dir, "access.log")))
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return s
		}
		select {
		case <-done:
			t.Fatalf("squid exited: %s\n%s", out.String(), readFile(filepath.Join(dir, "cache.log")))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("squid did not listen on %s within 20s:\n%s", addr, readFile(filepath.Join(dir, "cache.log")))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeFile(t *testing.T, name, s string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(name string) string {
	b, _ := os.ReadFile(name)
	return string(b)
}

// waitAccessLog waits up to d until Squid has logged a request with all of
// parts.
func (s *squid) waitAccessLog(d time.Duration, parts ...string) bool {
	for end := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		if s.accessLogHas(parts...) {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// accessLogHas reports whether Squid logged a request with all of parts.
func (s *squid) accessLogHas(parts ...string) bool {
	for _, line := range strings.Split(readFile(filepath.Join(s.dir, "access.log")), "\n") {
		ok := line != ""
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return true
		}
	}
	return false
}
