package e2e

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"fluidity/internal/proctest"
)

// TestAdminRefusesForeignHostNames asks the agent's admin listener (on
// loopback) for its status under the Host names a DNS-rebinding page would
// send, and under the local ones a user would: only localhost and loopback
// addresses are answered. The exit's admin listener on loopback does the
// same.
func TestAdminRefusesForeignHostNames(t *testing.T) {
	procs := proctest.Launcher{Admin: true, ExitFlags: []string{"--allow-private"}}
	certs := proctest.CertsInit(t)
	exit, exitAddr := procs.StartExit(t, certs)
	agent, _ := procs.StartAgent(t, certs, exitAddr)
	proctest.WaitLinkUp(t, agent, 1, linkWithin)

	for _, p := range []*proctest.Proc{agent, exit} {
		_, port, _ := net.SplitHostPort(p.Admin())
		for _, tc := range []struct {
			host string
			want int
		}{
			{"attacker.example:" + port, http.StatusForbidden},
			{"127.0.0.1.nip.io:" + port, http.StatusForbidden},
			{"attacker.example", http.StatusForbidden},
			{"localhost:" + port, http.StatusOK},
			{"127.0.0.1:" + port, http.StatusOK},
			{"[::1]:" + port, http.StatusOK},
			{"localhost", http.StatusOK},
		} {
			t.Run(p.Name()+" with Host "+tc.host, func(t *testing.T) {
				req, _ := http.NewRequest(http.MethodGet, "http://"+p.Admin()+"/status", nil)
				req.Host = tc.host
				tr := &http.Transport{Proxy: nil}
				defer tr.CloseIdleConnections()
				resp, err := (&http.Client{Transport: tr}).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Fatalf("/status with Host %q: %d %q; want %d", tc.host, resp.StatusCode, body, tc.want)
				}
				if tc.want == http.StatusForbidden && !strings.Contains(string(body), "not localhost or a loopback address") {
					t.Fatalf("the refusal does not say why: %q", body)
				}
			})
		}
	}
}
