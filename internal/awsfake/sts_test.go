package awsfake_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"go.uber.org/goleak"

	"fluidity/internal/awsfake"
)

func TestMain(m *testing.M) {
	// Keep the machine's AWS settings (a CA bundle, profiles, IMDS) out.
	awsfake.IsolateEnvironment()
	goleak.VerifyTestMain(m)
}

const (
	akid    = "AKIDFAKE00000001"
	secret  = "fake-secret"
	roleARN = "arn:aws:sts::123456789012:assumed-role/agent/i-1"
	account = "123456789012"
	userID  = "AROAFAKE:i-1"
)

func newFake(t *testing.T) *awsfake.STS {
	t.Helper()
	f := awsfake.NewServer(t)
	f.AddIdentity(akid, secret, roleARN, account, userID)
	return f
}

// awsConfig is an SDK configuration that sends every call to the fake.
func awsConfig(t *testing.T, f *awsfake.STS, key, sec string) aws.Config {
	t.Helper()
	httpClient := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(httpClient.CloseIdleConnections)
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion("eu-west-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(key, sec, "")),
		config.WithBaseEndpoint(f.URL),
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestSDKGetCallerIdentity(t *testing.T) {
	f := newFake(t)
	t.Run("a known key gets its identity", func(t *testing.T) {
		out, err := sts.NewFromConfig(awsConfig(t, f, akid, secret)).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.Arn) != roleARN || aws.ToString(out.Account) != account || aws.ToString(out.UserId) != userID {
			t.Errorf("identity = %s %s %s; want %s %s %s", aws.ToString(out.Arn), aws.ToString(out.Account), aws.ToString(out.UserId), roleARN, account, userID)
		}
	})
	for _, tc := range []struct {
		name, key, secret, code string
	}{
		{"a wrong secret is refused", akid, "wrong", "SignatureDoesNotMatch"},
		{"an unknown key is refused", "AKIDUNKNOWN00000", secret, "InvalidClientTokenId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sts.NewFromConfig(awsConfig(t, f, tc.key, tc.secret)).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != tc.code {
				t.Fatalf("err = %v; want API error %s", err, tc.code)
			}
		})
	}
	reqs := f.Requests()
	if len(reqs) != 3 || reqs[0].Method != http.MethodPost || reqs[0].Action != "GetCallerIdentity" {
		t.Errorf("requests = %+v; want 3 POSTs of GetCallerIdentity", reqs)
	}
}

// presign makes a presigned GetCallerIdentity URL the way IAM tokens carry
// it, signing header X-Test-Server-Id.
func presign(t *testing.T, f *awsfake.STS, key, sec, serverID string) string {
	t.Helper()
	c := sts.NewFromConfig(awsConfig(t, f, key, sec), func(o *sts.Options) {
		o.BaseEndpoint = nil // presign for the real host, as agents do
		o.APIOptions = append(o.APIOptions, smithyhttp.SetHeaderValue("X-Test-Server-Id", serverID))
	})
	req, err := sts.NewPresignClient(c).PresignGetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	return req.URL
}

// get sends a presigned URL to the fake the way the verifier does: to the
// fake's address, with the signed host in the Host header.
func get(t *testing.T, f *awsfake.STS, presigned, serverID string) (int, string, http.Header) {
	t.Helper()
	i := strings.Index(presigned, "/?")
	host := strings.TrimPrefix(presigned[:i], "https://")
	req, err := http.NewRequest(http.MethodGet, f.URL+presigned[i:], nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if serverID != "" {
		req.Header.Set("X-Test-Server-Id", serverID)
	}
	client := &http.Client{
		Transport:     &http.Transport{},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func TestPresigned(t *testing.T) {
	f := newFake(t)
	f.RequireSignedHeader("X-Test-Server-Id")
	good := presign(t, f, akid, secret, "exit-1")
	for _, tc := range []struct {
		name     string
		url      string
		serverID string
		status   int
		want     string
	}{
		{"a presigned URL with its signed header verifies", good, "exit-1", 200, "<Arn>" + roleARN + "</Arn>"},
		{"another server-ID value fails the signature", good, "exit-2", 403, "<Code>SignatureDoesNotMatch</Code>"},
		{"a missing signed header is refused", good, "", 403, "<Code>SignatureDoesNotMatch</Code>"},
		{"a tampered parameter fails the signature", strings.Replace(good, "Version=2011-06-15", "Version=2011-06-16", 1), "exit-1", 403, "<Code>SignatureDoesNotMatch</Code>"},
		{"another host fails the signature", strings.Replace(good, "sts.eu-west-1.amazonaws.com", "sts.us-east-1.amazonaws.com", 1), "exit-1", 403, "<Code>SignatureDoesNotMatch</Code>"},
		{"a wrong secret fails the signature", presign(t, f, akid, "wrong", "exit-1"), "exit-1", 403, "<Code>SignatureDoesNotMatch</Code>"},
		{"a URL without the required signed header is refused", presignWithout(t, f), "", 403, "does not cover the x-test-server-id header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, h := get(t, f, tc.url, tc.serverID)
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Errorf("got %d %s; want %d with %s", status, body, tc.status, tc.want)
			}
			if ct := h.Get("Content-Type"); ct != "text/xml" {
				t.Errorf("Content-Type = %q; want text/xml", ct)
			}
		})
	}
}

func presignWithout(t *testing.T, f *awsfake.STS) string {
	c := sts.NewFromConfig(awsConfig(t, f, akid, secret), func(o *sts.Options) { o.BaseEndpoint = nil })
	req, err := sts.NewPresignClient(c).PresignGetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	return req.URL
}

func TestPresignedExpiresAfter15Minutes(t *testing.T) {
	f := newFake(t)
	u := presign(t, f, akid, secret, "exit-1")
	for _, tc := range []struct {
		name   string
		after  time.Duration
		status int
	}{
		{"14 minutes after signing it is accepted", 14 * time.Minute, 200},
		{"16 minutes after signing it is refused", 16 * time.Minute, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.Now = func() time.Time { return time.Now().Add(tc.after) }
			if status, body, _ := get(t, f, u, "exit-1"); status != tc.status {
				t.Errorf("status %d (%s); want %d", status, body, tc.status)
			}
		})
	}
	f.Now = nil
}

func TestFaults(t *testing.T) {
	f := newFake(t)
	u := presign(t, f, akid, secret, "exit-1")
	for _, tc := range []struct {
		name   string
		fault  awsfake.Fault
		status int
		ctype  string
		check  func(body string, h http.Header) bool
	}{
		{"500 answers InternalFailure", awsfake.Fault{Kind: awsfake.InternalError}, 500, "text/xml",
			func(b string, _ http.Header) bool { return strings.Contains(b, "InternalFailure") }},
		{"redirect points elsewhere", awsfake.Fault{Kind: awsfake.Redirect, Location: "http://elsewhere.invalid/"}, 302, "",
			func(_ string, h http.Header) bool { return h.Get("Location") == "http://elsewhere.invalid/" }},
		{"wrong content type keeps a valid body", awsfake.Fault{Kind: awsfake.WrongContentType}, 200, "text/html",
			func(b string, _ http.Header) bool { return strings.HasPrefix(b, "<GetCallerIdentityResponse") }},
		{"nested forgery wraps a response in an error", awsfake.Fault{Kind: awsfake.NestedForgery}, 200, "text/xml",
			func(b string, _ http.Header) bool {
				return strings.HasPrefix(b, "<ErrorResponse") && strings.Contains(b, "<GetCallerIdentityResponse") && strings.Contains(b, "role/forged")
			}},
		{"oversized pads past 64 KiB", awsfake.Fault{Kind: awsfake.Oversized}, 200, "text/xml",
			func(b string, _ http.Header) bool { return len(b) > 64<<10 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.SetFault(tc.fault)
			defer f.SetFault(awsfake.Fault{})
			status, body, h := get(t, f, u, "exit-1")
			if status != tc.status || !tc.check(body, h) {
				t.Errorf("got %d %.200s", status, body)
			}
			if tc.ctype != "" && h.Get("Content-Type") != tc.ctype {
				t.Errorf("Content-Type = %q; want %q", h.Get("Content-Type"), tc.ctype)
			}
		})
	}
	t.Run("Times clears the fault", func(t *testing.T) {
		f.SetFault(awsfake.Fault{Kind: awsfake.InternalError, Times: 1})
		if s, _, _ := get(t, f, u, "exit-1"); s != 500 {
			t.Errorf("first status %d; want 500", s)
		}
		if s, _, _ := get(t, f, u, "exit-1"); s != 200 {
			t.Errorf("second status %d; want 200", s)
		}
	})
}

func TestBlock(t *testing.T) {
	f := newFake(t)
	u := presign(t, f, akid, secret, "exit-1")
	release := make(chan struct{})
	f.SetFault(awsfake.Fault{Block: release, Times: 1})
	done := make(chan int)
	go func() {
		s, _, _ := get(t, f, u, "exit-1")
		done <- s
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.WaitInFlight(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if s, _, _ := get(t, f, u, "exit-1"); s != 200 {
		t.Errorf("an unblocked request got %d while another was blocked; want 200", s)
	}
	select {
	case s := <-done:
		t.Fatalf("blocked request finished (%d) before release", s)
	default:
	}
	if n := f.InFlight(); n != 1 {
		t.Errorf("InFlight = %d; want 1", n)
	}
	close(release)
	if s := <-done; s != 200 {
		t.Errorf("released request got %d; want 200", s)
	}
	if n := f.RequestCount(); n != 2 {
		t.Errorf("RequestCount = %d; want 2", n)
	}
}

func TestCloseReleasesBlockedRequests(t *testing.T) {
	f := awsfake.New()
	f.AddIdentity(akid, secret, roleARN, account, userID)
	u := presign(t, f, akid, secret, "exit-1")
	f.SetFault(awsfake.Fault{Block: make(chan struct{})})
	done := make(chan struct{})
	go func() {
		defer close(done)
		i := strings.Index(u, "/?")
		req, _ := http.NewRequest(http.MethodGet, f.URL+u[i:], nil)
		c := &http.Client{Transport: &http.Transport{}}
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
		}
		c.CloseIdleConnections()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.WaitInFlight(ctx, 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	<-done
}
