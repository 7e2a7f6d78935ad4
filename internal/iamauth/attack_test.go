package iamauth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fluidity/internal/awsfake"
	"fluidity/internal/iamauth"
)

// TestAttacks runs one attack per row against a verifier backed by a
// signature-checking fake STS, and checks both the verdict and whether STS
// was asked at all.
func TestAttacks(t *testing.T) {
	now := time.Now().UTC()
	good := func(t *testing.T) string { return mint(t, agentRole, serverID, now) }
	base := "https://" + stsHost + "/?Action=GetCallerIdentity&Version=2011-06-15"

	for _, tc := range []struct {
		name      string
		token     func(t *testing.T) string
		fault     awsfake.Fault
		want      error
		status    int
		stsCalls  int
		stsStatus int // the fake's answer to the one call, when stsCalls is 1
	}{
		{
			name:  "an http URL is refused before STS",
			token: func(t *testing.T) string { return wrap(strings.Replace(unwrap(t, good(t)), "https://", "http://", 1)) },
			want:  iamauth.ErrInvalidToken, status: 407,
		},
		{
			name: "a foreign host is refused before STS",
			token: func(t *testing.T) string {
				return wrap(presign(t, agentRole, "https://evil.example.com/?Action=GetCallerIdentity&Version=2011-06-15", serverHeader, region, now))
			},
			want: iamauth.ErrInvalidToken, status: 407,
		},
		{
			name: "the STS host of a region not accepted is refused",
			token: func(t *testing.T) string {
				return wrap(presign(t, agentRole, "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15", serverHeader, "us-east-1", now))
			},
			want: iamauth.ErrInvalidToken, status: 407,
		},
		{
			name: "a host with a port is refused before STS",
			token: func(t *testing.T) string {
				return wrap(presign(t, agentRole, "https://"+stsHost+":443/?Action=GetCallerIdentity&Version=2011-06-15", serverHeader, region, now))
			},
			want: iamauth.ErrInvalidToken, status: 407,
		},
		{
			name: "Action=AssumeRole is refused before STS",
			token: func(t *testing.T) string {
				return wrap(presign(t, agentRole, "https://"+stsHost+"/?Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::111122223333:role/x", serverHeader, region, now))
			},
			want: iamauth.ErrInvalidToken, status: 407,
		},
		{
			name: "an extra parameter is refused before STS",
			token: func(t *testing.T) string {
				return wrap(presign(t, agentRole, base+"&DurationSeconds=900", serverHeader, region, now))
			},
			want: iamauth.ErrInvalidToken, status: 407,
		},
		{
			name: "a duplicate parameter in another case is refused before STS",
			token: func(t *testing.T) string {
				return wrap(withQuery(unwrap(t, good(t)), "x-amz-credential=AKIDOTHERKEY0001%2F"+now.Format("20060102")+"%2Feu-west-1%2Fsts%2Faws4_request"))
			},
			want: iamauth.ErrInvalidToken, status: 407,
		},
		{
			name:  "a repeated parameter is refused before STS",
			token: func(t *testing.T) string { return wrap(withQuery(unwrap(t, good(t)), "Version=2011-06-15")) },
			want:  iamauth.ErrInvalidToken, status: 407,
		},
		{
			name:  "a token that does not sign the server ID is refused before STS",
			token: func(t *testing.T) string { return wrap(presign(t, agentRole, base, nil, region, now)) },
			want:  iamauth.ErrInvalidToken, status: 407,
		},
		{
			name:  "a token minted for another server ID fails at STS, which gets this exit's own ID",
			token: func(t *testing.T) string { return mint(t, agentRole, "another-exit", now) },
			want:  iamauth.ErrInvalidToken, status: 407,
			stsCalls: 1, stsStatus: http.StatusForbidden,
		},
		{
			name:  "a token older than 5 minutes is refused before STS",
			token: func(t *testing.T) string { return mint(t, agentRole, serverID, now.Add(-5*time.Minute-time.Second)) },
			want:  iamauth.ErrInvalidToken, status: 407,
		},
		{
			name:  "a token dated 2 minutes ahead is refused before STS",
			token: func(t *testing.T) string { return mint(t, agentRole, serverID, now.Add(2*time.Minute)) },
			want:  iamauth.ErrInvalidToken, status: 407,
		},
		{
			name: "a token past its X-Amz-Expires is refused before STS",
			token: func(t *testing.T) string {
				return wrap(presign(t, agentRole, base+"&X-Amz-Expires=60", serverHeader, region, now.Add(-61*time.Second)))
			},
			want: iamauth.ErrInvalidToken, status: 407,
		},
		{
			name:  "a token over 4 KiB is refused before decoding",
			token: func(t *testing.T) string { return iamauth.Prefix + strings.Repeat("A", iamauth.MaxTokenSize) },
			want:  iamauth.ErrInvalidToken, status: 407,
		},
		{
			name:  "a token of another scheme is refused",
			token: func(t *testing.T) string { return "k8s-aws-v1." + strings.TrimPrefix(good(t), iamauth.Prefix) },
			want:  iamauth.ErrInvalidToken, status: 407,
		},
		{
			name: "a tampered signature fails at STS",
			token: func(t *testing.T) string {
				u := unwrap(t, good(t))
				last := u[len(u)-1]
				flip := byte('0')
				if last == '0' {
					flip = '1'
				}
				return wrap(u[:len(u)-1] + string(flip))
			},
			want: iamauth.ErrInvalidToken, status: 407,
			stsCalls: 1, stsStatus: http.StatusForbidden,
		},
		{
			name:  "a wrong content type from STS is refused",
			token: good,
			fault: awsfake.Fault{Kind: awsfake.WrongContentType},
			want:  iamauth.ErrInvalidToken, status: 407,
			stsCalls: 1, stsStatus: http.StatusOK,
		},
		{
			name:  "a response forged inside another element is refused",
			token: good,
			fault: awsfake.Fault{Kind: awsfake.NestedForgery, ForgedARN: "arn:aws:iam::111122223333:role/agent", ForgedAccount: account},
			want:  iamauth.ErrInvalidToken, status: 407,
			stsCalls: 1, stsStatus: http.StatusOK,
		},
		{
			name:  "a response over 64 KiB is refused",
			token: good,
			fault: awsfake.Fault{Kind: awsfake.Oversized},
			want:  iamauth.ErrInvalidToken, status: 407,
			stsCalls: 1, stsStatus: http.StatusOK,
		},
		{
			name:  "an identity outside the allowlist is forbidden",
			token: func(t *testing.T) string { return mint(t, outsider, serverID, now) },
			want:  iamauth.ErrNotAllowed, status: 403,
			stsCalls: 1, stsStatus: http.StatusOK,
		},
		{
			name: "an unknown access key fails at STS",
			token: func(t *testing.T) string {
				return mint(t, principal{"AKIDUNKNOWN00001", "x", "", "", ""}, serverID, now)
			},
			want: iamauth.ErrInvalidToken, status: 407,
			stsCalls: 1, stsStatus: http.StatusForbidden,
		},
		{
			name:  "an STS 500 is reported as STS unavailable",
			token: good,
			fault: awsfake.Fault{Kind: awsfake.InternalError},
			want:  iamauth.ErrSTSUnavailable, status: 503,
			stsCalls: 1, stsStatus: http.StatusInternalServerError,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tok := tc.token(t)
			e.fake.SetFault(tc.fault)
			_, err := e.v.Verify(context.Background(), tok)
			checkErr(t, err, tc.want, tc.status)
			reqs := e.fake.Requests()
			if len(reqs) != tc.stsCalls {
				t.Fatalf("STS got %d requests; want %d", len(reqs), tc.stsCalls)
			}
			for _, r := range reqs {
				if r.Status != tc.stsStatus {
					t.Errorf("STS answered %d; want %d", r.Status, tc.stsStatus)
				}
				if got := r.Header.Values(iamauth.ServerIDHeader); len(got) != 1 || got[0] != serverID {
					t.Errorf("STS got %s %q; want the verifier's own %q", iamauth.ServerIDHeader, got, serverID)
				}
				if r.Host != stsHost || r.Method != http.MethodGet || r.Path != "/" {
					t.Errorf("STS got %s %s%s; want GET %s/", r.Method, r.Host, r.Path, stsHost)
				}
			}
		})
	}
}

func checkErr(t *testing.T, err, want error, status int) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v; want %v", err, want)
	}
	var ie *iamauth.Error
	if !errors.As(err, &ie) || ie.StatusCode() != status {
		t.Fatalf("err = %#v; want an *iamauth.Error with status %d", err, status)
	}
	wantProxy := "http_request_denied"
	if status == http.StatusServiceUnavailable {
		wantProxy = "proxy_internal_error"
	}
	if ie.ProxyStatus() != wantProxy {
		t.Errorf("ProxyStatus = %q; want %q", ie.ProxyStatus(), wantProxy)
	}
}

func TestRedirectFromSTSIsNotFollowed(t *testing.T) {
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/xml")
		w.Write([]byte(`<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::111122223333:role/agent</Arn><UserId>x</UserId><Account>111122223333</Account></GetCallerIdentityResult></GetCallerIdentityResponse>`))
	}))
	defer target.Close()
	e := newEnv(t)
	e.fake.SetFault(awsfake.Fault{Kind: awsfake.Redirect, Location: target.URL + "/"})
	_, err := e.v.Verify(context.Background(), mint(t, agentRole, serverID, time.Now()))
	checkErr(t, err, iamauth.ErrSTSUnavailable, 503)
	if n := hits.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests; want 0", n)
	}
	if n := e.fake.RequestCount(); n != 1 {
		t.Errorf("STS got %d requests; want 1", n)
	}
}

func TestSlowSTSIsUnavailableAfterTimeout(t *testing.T) {
	e := newEnv(t, func(c *iamauth.Config) { c.Timeout = 100 * time.Millisecond })
	block := make(chan struct{})
	defer close(block)
	e.fake.SetFault(awsfake.Fault{Block: block})
	start := time.Now()
	_, err := e.v.Verify(context.Background(), mint(t, agentRole, serverID, time.Now()))
	checkErr(t, err, iamauth.ErrSTSUnavailable, 503)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Verify took %v with a 100ms timeout", d)
	}
}

func TestUnreachableSTSIsUnavailable(t *testing.T) {
	e := newEnv(t, func(c *iamauth.Config) { c.Endpoints = map[string]string{region: "http://127.0.0.1:1"} })
	_, err := e.v.Verify(context.Background(), mint(t, agentRole, serverID, time.Now()))
	checkErr(t, err, iamauth.ErrSTSUnavailable, 503)
}

func TestNoToken(t *testing.T) {
	e := newEnv(t)
	_, err := e.v.Verify(context.Background(), "")
	checkErr(t, err, iamauth.ErrNoToken, 407)
}
