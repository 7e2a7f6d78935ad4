package awsfake_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"fluidity/internal/awsfake"
)

// recorder is a function that records its events and answers a payload.
type recorder struct {
	mu      sync.Mutex
	events  []events.LambdaFunctionURLRequest
	payload []byte
	err     error
}

func (r *recorder) invoke(_ context.Context, payload []byte) ([]byte, error) {
	var ev events.LambdaFunctionURLRequest
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	return r.payload, r.err
}

func (r *recorder) answer(payload string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.payload, r.err = []byte(payload), err
}

func (r *recorder) last(t *testing.T) events.LambdaFunctionURLRequest {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) == 0 {
		t.Fatal("the function was not invoked")
	}
	return r.events[len(r.events)-1]
}

// urlRequest builds a request to the function URL signed as a client
// signs it: SigV4 for service lambda.
func urlRequest(t *testing.T, method, url, contentType string, body []byte, key, secret, service, region string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		sum := sha256.Sum256(body)
		if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: key, SecretAccessKey: secret}, req, hex.EncodeToString(sum[:]), service, region, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return req
}

func send(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestFunctionURLEvent(t *testing.T) {
	fn := &recorder{payload: []byte(`{"statusCode":202}`)}
	c := newCloud(t, awsfake.CloudConfig{Invoke: fn.invoke})

	body := []byte(`{"user":"alice"}`)
	req := urlRequest(t, http.MethodPost, c.FunctionURL+"wake?user=alice&v=1&v=2", "application/json", body, userKey, userSecret, "lambda", c.Region)
	req.Header.Set("Cookie", "session=abc; theme=dark")
	req.Header.Set("User-Agent", "fluidity-agent/1.0")
	req.Header.Add("X-Fluidity-Hop", "agent")
	req.Header.Add("X-Fluidity-Hop", "relay")
	if resp, got := send(t, req); resp.StatusCode != 202 {
		t.Fatalf("status %d %s; want 202", resp.StatusCode, got)
	}
	ev := fn.last(t)
	if ev.Version != "2.0" || ev.RawPath != "/wake" || ev.RawQueryString != "user=alice&v=1&v=2" {
		t.Errorf("event = %+v", ev)
	}
	if ev.QueryStringParameters["user"] != "alice" || ev.QueryStringParameters["v"] != "1,2" {
		t.Errorf("query = %v", ev.QueryStringParameters)
	}
	if ev.Body != string(body) || ev.IsBase64Encoded {
		t.Errorf("body %q base64 %v", ev.Body, ev.IsBase64Encoded)
	}
	if len(ev.Cookies) != 2 || ev.Cookies[0] != "session=abc" || ev.Cookies[1] != "theme=dark" || ev.Headers["cookie"] != "" {
		t.Errorf("cookies %v, cookie header %q", ev.Cookies, ev.Headers["cookie"])
	}
	if ev.Headers["content-type"] != "application/json" || ev.Headers["user-agent"] != "fluidity-agent/1.0" || ev.Headers["authorization"] == "" || ev.Headers["x-forwarded-proto"] != "https" || ev.Headers["x-fluidity-hop"] != "agent,relay" {
		t.Errorf("headers = %v", ev.Headers)
	}
	rc := ev.RequestContext
	if rc.AccountID != "111122223333" || rc.RequestID == "" || rc.DomainPrefix == "" || rc.DomainName != rc.DomainPrefix+".lambda-url.us-east-1.on.aws" || rc.TimeEpoch == 0 || rc.Time == "" {
		t.Errorf("request context = %+v", rc)
	}
	if rc.HTTP.Method != "POST" || rc.HTTP.Path != "/wake" || rc.HTTP.SourceIP != "127.0.0.1" || rc.HTTP.UserAgent != "fluidity-agent/1.0" || rc.HTTP.Protocol != "HTTP/1.1" {
		t.Errorf("http = %+v", rc.HTTP)
	}
	if rc.Authorizer == nil || rc.Authorizer.IAM == nil {
		t.Fatalf("no IAM authorizer: %+v", rc.Authorizer)
	}
	iam := rc.Authorizer.IAM
	if iam.UserARN != userARN || iam.AccessKey != userKey || iam.AccountID != "444455556666" || !strings.HasPrefix(iam.UserID, "AIDA") || iam.CallerID != iam.UserID {
		t.Errorf("iam = %+v", iam)
	}

	t.Run("an assumed role's user ID carries its session", func(t *testing.T) {
		send(t, urlRequest(t, http.MethodGet, c.FunctionURL+"query", "", nil, wakeKey, wakeSecret, "lambda", c.Region))
		ev := fn.last(t)
		if iam := ev.RequestContext.Authorizer.IAM; iam.UserARN != wakeARN || !strings.HasPrefix(iam.UserID, "AROA") || !strings.HasSuffix(iam.UserID, ":fluidity-wake") {
			t.Errorf("iam = %+v", iam)
		}
		if ev.Body != "" || ev.RequestContext.HTTP.Method != "GET" || ev.QueryStringParameters != nil {
			t.Errorf("event = %+v", ev)
		}
	})
	t.Run("a binary body is base64", func(t *testing.T) {
		bin := []byte{0, 1, 2, 0xff}
		send(t, urlRequest(t, http.MethodPost, c.FunctionURL+"upload", "application/octet-stream", bin, userKey, userSecret, "lambda", c.Region))
		ev := fn.last(t)
		got, err := base64.StdEncoding.DecodeString(ev.Body)
		if !ev.IsBase64Encoded || err != nil || !bytes.Equal(got, bin) {
			t.Errorf("body %q base64 %v", ev.Body, ev.IsBase64Encoded)
		}
	})
	if n := c.CallCount("lambda:InvokeFunctionUrl"); n != 3 {
		t.Errorf("%d calls recorded; want 3", n)
	}
	if calls := c.Calls(); calls[0].Caller != userARN || calls[0].Status != 202 || string(calls[0].Body) != string(body) {
		t.Errorf("call = %+v", calls[0])
	}
}

func TestFunctionURLResponses(t *testing.T) {
	fn := &recorder{}
	c := newCloud(t, awsfake.CloudConfig{Invoke: fn.invoke})
	for _, tc := range []struct {
		name        string
		payload     string
		err         error
		status      int
		contentType string
		body        string
		header      http.Header
	}{
		{"a response object sets status, headers, cookies and body",
			`{"statusCode":201,"headers":{"content-type":"text/plain","x-fluidity":"woken"},"cookies":["a=1","b=2"],"body":"hello"}`, nil,
			201, "text/plain", "hello", http.Header{"X-Fluidity": {"woken"}, "Set-Cookie": {"a=1", "b=2"}}},
		{"a base64 body is decoded",
			`{"statusCode":200,"headers":{"content-type":"application/octet-stream"},"body":"AAEC/w==","isBase64Encoded":true}`, nil,
			200, "application/octet-stream", "\x00\x01\x02\xff", nil},
		{"a response object without a content type is JSON", `{"statusCode":200,"body":"{}"}`, nil, 200, "application/json", "{}", nil},
		{"JSON without statusCode is the body of a 200", `{"state":"RUNNING"}`, nil, 200, "application/json", `{"state":"RUNNING"}`, nil},
		{"a JSON string is the body of a 200", `"woken"`, nil, 200, "application/json", `"woken"`, nil},
		{"an invalid payload is a 502", `not json`, nil, 502, "application/json", `{"Message":"Internal Server Error"}`, nil},
		{"a function error is a 502", `{"errorMessage":"boom"}`, errors.New("boom"), 502, "application/json", `{"Message":"Internal Server Error"}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fn.answer(tc.payload, tc.err)
			resp, body := send(t, urlRequest(t, http.MethodPost, c.FunctionURL+"wake", "application/json", []byte("{}"), userKey, userSecret, "lambda", c.Region))
			if resp.StatusCode != tc.status || body != tc.body || resp.Header.Get("Content-Type") != tc.contentType {
				t.Errorf("got %d %q %q; want %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.status, tc.contentType, body)
			}
			for k, vs := range tc.header {
				if got := resp.Header.Values(k); strings.Join(got, "|") != strings.Join(vs, "|") {
					t.Errorf("header %s = %v; want %v", k, got, vs)
				}
			}
		})
	}
}

func TestFunctionURLRefusals(t *testing.T) {
	fn := &recorder{payload: []byte(`{}`)}
	c := newCloud(t, awsfake.CloudConfig{Invoke: fn.invoke})
	const forbidden = `{"Message":"Forbidden. For troubleshooting Function URL authorization issues, see: https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html"}`
	for _, tc := range []struct {
		name   string
		req    func() *http.Request
		status int
		body   string
	}{
		{"an unsigned request", func() *http.Request {
			return urlRequest(t, http.MethodPost, c.FunctionURL+"wake", "application/json", []byte("{}"), "", "", "", "")
		}, 403, forbidden},
		{"a wrong secret", func() *http.Request {
			return urlRequest(t, http.MethodPost, c.FunctionURL+"wake", "application/json", []byte("{}"), userKey, "wrong", "lambda", c.Region)
		}, 403, forbidden},
		{"an unknown key", func() *http.Request {
			return urlRequest(t, http.MethodPost, c.FunctionURL+"wake", "application/json", []byte("{}"), "AKIDNOBODY000000", userSecret, "lambda", c.Region)
		}, 403, forbidden},
		{"a signature for another service", func() *http.Request {
			return urlRequest(t, http.MethodPost, c.FunctionURL+"wake", "application/json", []byte("{}"), userKey, userSecret, "execute-api", c.Region)
		}, 403, forbidden},
		{"a signature for another region", func() *http.Request {
			return urlRequest(t, http.MethodPost, c.FunctionURL+"wake", "application/json", []byte("{}"), userKey, userSecret, "lambda", "eu-west-1")
		}, 403, forbidden},
		{"a tampered path", func() *http.Request {
			req := urlRequest(t, http.MethodPost, c.FunctionURL+"wake", "application/json", []byte("{}"), userKey, userSecret, "lambda", c.Region)
			req.URL.Path = "/stop"
			return req
		}, 403, forbidden},
		{"a body over 6 MB", func() *http.Request {
			return urlRequest(t, http.MethodPost, c.FunctionURL+"wake", "application/octet-stream", make([]byte, 6*1024*1024+1), userKey, userSecret, "lambda", c.Region)
		}, 413, ""},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			resp, body := send(t, tc.req())
			if resp.StatusCode != tc.status || (tc.body != "" && body != tc.body) {
				t.Errorf("got %d %s; want %d %s", resp.StatusCode, body, tc.status, tc.body)
			}
		})
	}
	fn.mu.Lock()
	n := len(fn.events)
	fn.mu.Unlock()
	if n != 0 {
		t.Errorf("the function ran %d times for refused requests", n)
	}
	t.Run("FailNext answers the injected error", func(t *testing.T) {
		c.FailNext("lambda:InvokeFunctionUrl", 1, awsfake.APIError{Status: 429, Code: "TooManyRequestsException", Message: "Rate Exceeded."})
		resp, body := send(t, urlRequest(t, http.MethodPost, c.FunctionURL+"wake", "application/json", []byte("{}"), userKey, userSecret, "lambda", c.Region))
		if resp.StatusCode != 429 || body != `{"Message":"Rate Exceeded."}` {
			t.Errorf("got %d %s", resp.StatusCode, body)
		}
	})
	t.Run("without Invoke the URL answers 502", func(t *testing.T) {
		c := newCloud(t, awsfake.CloudConfig{})
		resp, _ := send(t, urlRequest(t, http.MethodPost, c.FunctionURL+"wake", "application/json", []byte("{}"), userKey, userSecret, "lambda", c.Region))
		if resp.StatusCode != 502 {
			t.Errorf("status %d; want 502", resp.StatusCode)
		}
	})
}

func TestCloseEndsAnInvocationInProgress(t *testing.T) {
	status := make(chan int, 1)
	t.Run("invoke", func(t *testing.T) {
		entered := make(chan struct{})
		c := newCloud(t, awsfake.CloudConfig{Invoke: func(ctx context.Context, _ []byte) ([]byte, error) {
			close(entered)
			<-ctx.Done() // a function that never answers
			return nil, ctx.Err()
		}})
		req := urlRequest(t, http.MethodPost, c.FunctionURL+"wake", "application/json", []byte("{}"), userKey, userSecret, "lambda", c.Region)
		go func() {
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			resp, err := client.Do(req)
			if err != nil {
				status <- 0
				return
			}
			resp.Body.Close()
			status <- resp.StatusCode
		}()
		<-entered
	}) // its cleanup closes the Cloud
	select {
	case s := <-status:
		if s != http.StatusBadGateway {
			t.Errorf("the pending request got %d; want 502", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the invocation")
	}
}
