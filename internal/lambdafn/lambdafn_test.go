package lambdafn

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"go.uber.org/goleak"

	"fluidity/internal/awsfake"
	"fluidity/internal/controlapi"
	"fluidity/internal/controlplane"
)

func TestMain(m *testing.M) {
	awsfake.IsolateEnvironment()
	goleak.VerifyTestMain(m)
}

// recordingPlane answers every call with the caller it was given, and
// records the calls.
type recordingPlane struct {
	mu    sync.Mutex
	calls []string
	wait  time.Duration
}

func (p *recordingPlane) record(s string) {
	p.mu.Lock()
	p.calls = append(p.calls, s)
	p.mu.Unlock()
}

func (p *recordingPlane) Wake(ctx context.Context, caller, wakeID string) (controlapi.State, error) {
	p.record("wake " + caller + " " + wakeID)
	return controlapi.State{State: controlapi.Starting, Owner: caller, Task: "t"}, nil
}

func (p *recordingPlane) Query(ctx context.Context, caller string, wait time.Duration) (controlapi.State, error) {
	p.record("query " + caller)
	p.mu.Lock()
	p.wait = wait
	p.mu.Unlock()
	return controlapi.State{State: controlapi.Ready, Owner: caller, Address: "203.0.113.7:8443"}, nil
}

func (p *recordingPlane) Kill(ctx context.Context, caller string) (controlapi.State, error) {
	p.record("kill " + caller)
	if caller == "arn:aws:iam::111122223333:user/denied" {
		return controlapi.State{}, controlapi.Errorf(http.StatusForbidden, controlapi.CodeNotAllowed, "no")
	}
	return controlapi.State{State: controlapi.Stopped, Owner: caller}, nil
}

func (p *recordingPlane) Sweep(ctx context.Context) (controlplane.SweepReport, error) {
	p.record("sweep")
	return controlplane.SweepReport{Checked: 3, Stopped: 1}, nil
}

func urlRequest(method, path, caller, body string) *events.LambdaFunctionURLRequest {
	req := &events.LambdaFunctionURLRequest{Version: "2.0", RawPath: path, Body: body}
	req.RequestContext.HTTP.Method = method
	req.RequestContext.HTTP.Path = path
	if caller != "" {
		req.RequestContext.Authorizer = &events.LambdaFunctionURLRequestContextAuthorizerDescription{
			IAM: &events.LambdaFunctionURLRequestContextAuthorizerIAMDescription{UserARN: caller, AccountID: "111122223333"},
		}
	}
	return req
}

const alice = "arn:aws:iam::111122223333:user/alice"

func TestRoutesReachThePlaneWithTheVerifiedCaller(t *testing.T) {
	p := &recordingPlane{}
	h := &Handler{Plane: p}
	for _, tc := range []struct {
		req    *events.LambdaFunctionURLRequest
		status int
		call   string
		code   string
	}{
		{urlRequest("POST", "/wake", alice, `{"wake_id":"w-1"}`), 200, "wake " + alice + " w-1", ""},
		{urlRequest("GET", "/query", alice, ""), 200, "query " + alice, ""},
		{urlRequest("POST", "/kill", alice, ""), 200, "kill " + alice, ""},
		{urlRequest("POST", "/kill", "arn:aws:iam::111122223333:user/denied", ""), 403, "kill arn:aws:iam::111122223333:user/denied", controlapi.CodeNotAllowed},
		{urlRequest("GET", "/wake", alice, ""), 405, "", controlapi.CodeMethod},
		{urlRequest("POST", "/query", alice, ""), 405, "", controlapi.CodeMethod},
		{urlRequest("POST", "/admin", alice, ""), 404, "", controlapi.CodeNotFound},
		{urlRequest("POST", "/wake", alice, `{"wake_id":`), 400, "", controlapi.CodeBadRequest},
		{urlRequest("POST", "/wake", alice, strings.Repeat(" ", maxBody+1)), 400, "", controlapi.CodeBadRequest},
		// The identity is the one AWS verified, never the body's.
		{urlRequest("POST", "/wake", "", `{"wake_id":"w","caller":"`+alice+`"}`), 200, "wake  w", ""},
	} {
		t.Run(tc.req.RequestContext.HTTP.Method+" "+tc.req.RawPath, func(t *testing.T) {
			p.calls = nil
			resp := h.ServeURL(context.Background(), tc.req)
			if resp.StatusCode != tc.status || resp.Headers["Content-Type"] != "application/json" {
				t.Fatalf("status %d (%s), want %d: %s", resp.StatusCode, resp.Headers["Content-Type"], tc.status, resp.Body)
			}
			if got := strings.Join(p.calls, ";"); got != tc.call {
				t.Fatalf("plane calls %q, want %q", got, tc.call)
			}
			if tc.code != "" {
				var eb controlapi.ErrorBody
				if err := json.Unmarshal([]byte(resp.Body), &eb); err != nil || eb.Error == nil || eb.Error.Code != tc.code || eb.Error.Message == "" {
					t.Fatalf("error body %s, want code %s", resp.Body, tc.code)
				}
			} else {
				var st controlapi.State
				if err := json.Unmarshal([]byte(resp.Body), &st); err != nil || st.State == "" {
					t.Fatalf("body %s is not a state", resp.Body)
				}
			}
		})
	}
}

func TestBase64BodyAndWaitAreDecoded(t *testing.T) {
	p := &recordingPlane{}
	h := &Handler{Plane: p}
	req := urlRequest("POST", "/wake", alice, base64.StdEncoding.EncodeToString([]byte(`{"wake_id":"b64"}`)))
	req.IsBase64Encoded = true
	if resp := h.ServeURL(context.Background(), req); resp.StatusCode != 200 || p.calls[0] != "wake "+alice+" b64" {
		t.Fatalf("%d %v", resp.StatusCode, p.calls)
	}
	q := urlRequest("GET", "/query", alice, "")
	q.QueryStringParameters = map[string]string{"wait": "2h"}
	// The invocation's deadline bounds the wait, whatever was asked.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if resp := h.ServeURL(ctx, q); resp.StatusCode != 200 {
		t.Fatal(resp.Body)
	}
	if p.wait > 8*time.Second || p.wait < 7*time.Second {
		t.Fatalf("query waited %v with 10s left; want the deadline less the margin", p.wait)
	}
	q.QueryStringParameters = map[string]string{"wait": "soon"}
	if resp := h.ServeURL(ctx, q); resp.StatusCode != 400 {
		t.Fatalf("wait=soon: %d", resp.StatusCode)
	}
}

func TestInvokeTellsRequestsFromTheSchedule(t *testing.T) {
	p := &recordingPlane{}
	h := &Handler{Plane: p}
	scheduled := `{"version":"0","id":"89f0","detail-type":"Scheduled Event","source":"aws.events","account":"111122223333","time":"2026-12-06T10:00:00Z","region":"us-east-1","resources":["arn:aws:events:us-east-1:111122223333:rule/fluidity-sweep"],"detail":{}}`
	out, err := h.Invoke(context.Background(), []byte(scheduled))
	if err != nil {
		t.Fatal(err)
	}
	var rep controlplane.SweepReport
	if json.Unmarshal(out, &rep) != nil || rep.Checked != 3 || p.calls[0] != "sweep" {
		t.Fatalf("sweep answer %s, calls %v", out, p.calls)
	}
	payload, _ := json.Marshal(urlRequest("GET", "/query", alice, ""))
	out, err = h.Invoke(context.Background(), payload)
	var resp events.LambdaFunctionURLResponse
	if err != nil || json.Unmarshal(out, &resp) != nil || resp.StatusCode != 200 {
		t.Fatalf("URL request: %s, %v", out, err)
	}
	for _, bad := range []string{`{"source":"aws.s3"}`, `[]`, `not json`} {
		if _, err := h.Invoke(context.Background(), []byte(bad)); err == nil {
			t.Errorf("Invoke(%s) succeeded", bad)
		}
	}
	if len(p.calls) != 2 {
		t.Fatalf("plane calls %v after unrecognised events", p.calls)
	}
}

// FuzzServeURL sends the handler whatever a caller could put in a request:
// it must answer every one with a JSON body and a status, and reach the
// plane only for a well-formed call.
func FuzzServeURL(f *testing.F) {
	f.Add("POST", "/wake", `{"wake_id":"w"}`, "", false)
	f.Add("GET", "/query", "", "25s", false)
	f.Add("POST", "/kill", "e30=", "", true)
	f.Add("PUT", "/../wake", "\x00", "-1s", true)
	f.Fuzz(func(t *testing.T, method, path, body, wait string, b64 bool) {
		p := &recordingPlane{}
		h := &Handler{Plane: p}
		req := urlRequest(method, path, alice, body)
		req.IsBase64Encoded = b64
		req.QueryStringParameters = map[string]string{"wait": wait}
		resp := h.ServeURL(context.Background(), req)
		if resp.StatusCode < 200 || resp.StatusCode > 599 || !json.Valid([]byte(resp.Body)) {
			t.Fatalf("answer %d %q", resp.StatusCode, resp.Body)
		}
		if resp.StatusCode == 200 && len(p.calls) != 1 {
			t.Fatalf("200 with plane calls %v", p.calls)
		}
		if p.wait > controlapi.MaxWait {
			t.Fatalf("a query waited %v", p.wait)
		}
	})
}
