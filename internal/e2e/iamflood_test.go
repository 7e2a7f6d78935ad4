package e2e

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"fluidity/internal/awsfake"
	"fluidity/internal/iamauth"
	"fluidity/internal/pki"
	"fluidity/internal/proctest"
)

// badIAMTokens makes n different well-formed tokens for the exit's server
// ID, signed with keys STS does not know: each passes the exit's local
// checks and fails only at STS.
func badIAMTokens(t *testing.T, n int) []string {
	t.Helper()
	now := time.Now().UTC()
	toks := make([]string, n)
	for i := range toks {
		req, _ := http.NewRequest(http.MethodGet, "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15", nil)
		req.Header.Set(iamauth.ServerIDHeader, iamServerID)
		u, _, err := v4.NewSigner().PresignHTTP(context.Background(), aws.Credentials{AccessKeyID: fmt.Sprintf("AKIDFLOOD%07d", i), SecretAccessKey: "x"},
			req, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "sts", "us-east-1", now)
		if err != nil {
			t.Fatal(err)
		}
		toks[i] = iamauth.Prefix + base64.RawURLEncoding.EncodeToString([]byte(u))
	}
	return toks
}

// h2ToExit is an HTTP/2 client of the exit at addr with the client
// certificate in certs: one connection, many streams.
func h2ToExit(t *testing.T, certs, addr string) *http.Transport {
	t.Helper()
	f := func(n string) string { return filepath.Join(certs, n) }
	cfg, err := pki.ClientConfig(f(pki.ClientCertFile), f(pki.ClientKeyFile), f(pki.CAFile), "")
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{
		DialTLSContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&tls.Dialer{Config: cfg}).DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2: true,
		Protocols:         new(http.Protocols),
	}
	tr.Protocols.SetHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// connectStatus sends one CONNECT for target over tr with token and
// returns the exit's status.
func connectStatus(tr *http.Transport, exitAddr, target, token string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodConnect, "https://"+exitAddr, nil)
	req.Host = target
	req.Header.Set("Proxy-Authorization", "Bearer "+token)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestIAMFloodCostsBoundedSTSCalls is an authenticated client that sends
// 2,000 CONNECT streams at once over one HTTP/2 link, each with a different
// token that only STS can refuse, while STS holds every request: the exit
// may ask STS about as many as its per-client bound, answers the rest at
// once with 429, and the same client's good token still gets through
// afterwards.
func TestIAMFloodCostsBoundedSTSCalls(t *testing.T) {
	sts := newIAMFake(t)
	block := make(chan struct{})
	var unblock sync.Once
	release := func() { unblock.Do(func() { close(block) }) }
	t.Cleanup(release)
	sts.SetFault(awsfake.Fault{Block: block})
	certs := proctest.CertsInit(t)
	_, exitAddr := proctest.StartExit(t, certs, iamExitArgs(sts.URL, "--iam-timeout", "30s")...)
	origin := newOrigin(t)
	target := strings.TrimPrefix(origin.URL, "http://")

	const n, perClient = 2000, 4
	toks := badIAMTokens(t, n)
	tr := h2ToExit(t, certs, exitAddr)
	// One stream first, so that all 2,000 share one connection.
	if code, err := connectStatus(tr, exitAddr, target, "not-a-token"); err != nil || code != http.StatusProxyAuthRequired {
		t.Fatalf("a malformed token: %d, %v; want 407", code, err)
	}

	var answered atomic.Int64
	statuses := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, tok := range toks {
		wg.Go(func() {
			statuses[i], errs[i] = connectStatus(tr, exitAddr, target, tok)
			answered.Add(1)
		})
	}
	deadline := time.Now().Add(20 * time.Second)
	for answered.Load() < n-perClient && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	calls := sts.RequestCount()
	t.Logf("%d of %d streams answered while STS held its requests; STS calls: %d", answered.Load(), n, calls)
	if calls > perClient {
		t.Errorf("2,000 concurrent bad tokens from one client caused %d STS calls at once; want at most %d", calls, perClient)
	}
	release()
	wg.Wait()
	byStatus := map[int]int{}
	for i, code := range statuses {
		if errs[i] != nil {
			t.Fatalf("stream %d: %v", i, errs[i])
		}
		byStatus[code]++
	}
	t.Logf("answers by status: %v", byStatus)
	if byStatus[http.StatusProxyAuthRequired] > perClient || byStatus[http.StatusTooManyRequests] < n-perClient {
		t.Errorf("answers %v; want at most %d 407s (the tokens STS refused) and the rest 429", byStatus, perClient)
	}

	good := fluidityToken(t, staticCreds(keyAllowed, secretAllow), "--iam-server-id", iamServerID)
	if code, err := connectStatus(tr, exitAddr, target, good); err != nil || code != http.StatusOK {
		t.Fatalf("the client's good token after the flood: %d, %v; want 200", code, err)
	}
	if calls := sts.RequestCount(); calls > perClient+1 {
		t.Errorf("STS calls in all: %d; want at most %d", calls, perClient+1)
	}
}
