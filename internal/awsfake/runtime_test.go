package awsfake_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"fluidity/internal/awsfake"
)

// runtimeClient speaks the Runtime API as a bootstrap process does.
type runtimeClient struct {
	base   string
	client *http.Client
}

func newRuntimeClient(t *testing.T, r *awsfake.RuntimeAPI) *runtimeClient {
	rc := &runtimeClient{base: "http://" + r.Addr + "/2018-06-01/runtime/", client: &http.Client{Transport: &http.Transport{}}}
	t.Cleanup(rc.client.CloseIdleConnections)
	return rc
}

type nextInvocation struct {
	status  int
	id      string
	payload string
	header  http.Header
}

// next waits in /next. It returns an error when the request fails.
func (rc *runtimeClient) next(ctx context.Context) (nextInvocation, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rc.base+"invocation/next", nil)
	if err != nil {
		return nextInvocation{}, err
	}
	resp, err := rc.client.Do(req)
	if err != nil {
		return nextInvocation{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return nextInvocation{status: resp.StatusCode, id: resp.Header.Get("Lambda-Runtime-Aws-Request-Id"), payload: string(b), header: resp.Header}, err
}

func (rc *runtimeClient) post(t *testing.T, path, body string, header http.Header, trailer http.Header) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, rc.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if trailer != nil {
		req.Trailer = trailer
		req.ContentLength = -1
	}
	resp, err := rc.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func waitPollers(t *testing.T, r *awsfake.RuntimeAPI, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.Pollers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d pollers; want %d", r.Pollers(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

type invokeResult struct {
	payload []byte
	err     error
}

func invokeAsync(ctx context.Context, r *awsfake.RuntimeAPI, payload string) <-chan invokeResult {
	ch := make(chan invokeResult, 1)
	go func() {
		p, err := r.Invoke(ctx, []byte(payload))
		ch <- invokeResult{p, err}
	}()
	return ch
}

func TestRuntimeAPI(t *testing.T) {
	const arn = "arn:aws:lambda:eu-west-1:123456789012:function:wake"
	r := awsfake.NewRuntimeAPI(t, awsfake.RuntimeConfig{FunctionARN: arn, Timeout: 2 * time.Second})
	rc := newRuntimeClient(t, r)
	ctx := ctxT(t)

	t.Run("a poller gets the invocation and its response is returned", func(t *testing.T) {
		res := invokeAsync(ctx, r, `{"rawPath":"/wake"}`)
		inv, err := rc.next(ctx)
		if err != nil || inv.status != 200 || inv.payload != `{"rawPath":"/wake"}` || inv.id == "" {
			t.Fatalf("next = %+v, %v", inv, err)
		}
		if got := inv.header.Get("Lambda-Runtime-Invoked-Function-Arn"); got != arn {
			t.Errorf("function ARN %q", got)
		}
		ms, err := strconv.ParseInt(inv.header.Get("Lambda-Runtime-Deadline-Ms"), 10, 64)
		if left := time.Until(time.UnixMilli(ms)); err != nil || left < time.Second || left > 2*time.Second {
			t.Errorf("deadline %s is %v away; want the 2s timeout", inv.header.Get("Lambda-Runtime-Deadline-Ms"), left)
		}
		if !strings.HasPrefix(inv.header.Get("Lambda-Runtime-Trace-Id"), "Root=1-") {
			t.Errorf("trace ID %q", inv.header.Get("Lambda-Runtime-Trace-Id"))
		}
		if status := rc.post(t, "invocation/"+inv.id+"/response", `{"statusCode":200}`, nil, nil); status != 202 {
			t.Errorf("response: %d; want 202", status)
		}
		if got := <-res; got.err != nil || string(got.payload) != `{"statusCode":200}` {
			t.Errorf("Invoke = %s, %v", got.payload, got.err)
		}
		if status := rc.post(t, "invocation/"+inv.id+"/response", `{}`, nil, nil); status != 400 {
			t.Errorf("a second response: %d; want 400", status)
		}
	})
	t.Run("an error report is a FunctionError", func(t *testing.T) {
		res := invokeAsync(ctx, r, `{}`)
		inv, _ := rc.next(ctx)
		rc.post(t, "invocation/"+inv.id+"/error", `{"errorMessage":"no capacity","errorType":"errorString"}`,
			http.Header{"Lambda-Runtime-Function-Error-Type": {"Runtime.Unknown"}}, nil)
		var fe *awsfake.FunctionError
		if got := <-res; !errors.As(got.err, &fe) || fe.Type != "errorString" || fe.Message != "no capacity" {
			t.Errorf("Invoke err = %v; want FunctionError errorString", got.err)
		}
	})
	t.Run("the error type may come from the header alone", func(t *testing.T) {
		res := invokeAsync(ctx, r, `{}`)
		inv, _ := rc.next(ctx)
		rc.post(t, "invocation/"+inv.id+"/error", ``, http.Header{"Lambda-Runtime-Function-Error-Type": {"Runtime.ExitError"}}, nil)
		var fe *awsfake.FunctionError
		if got := <-res; !errors.As(got.err, &fe) || fe.Type != "Runtime.ExitError" {
			t.Errorf("Invoke err = %v; want FunctionError Runtime.ExitError", got.err)
		}
	})
	t.Run("an error in the response's trailer is a FunctionError", func(t *testing.T) {
		res := invokeAsync(ctx, r, `{}`)
		inv, _ := rc.next(ctx)
		body := base64.StdEncoding.EncodeToString([]byte(`{"errorMessage":"stream broke","errorType":"errorString"}`))
		trailer := http.Header{"Lambda-Runtime-Function-Error-Type": nil, "Lambda-Runtime-Function-Error-Body": nil}
		req, _ := http.NewRequest(http.MethodPost, rc.base+"invocation/"+inv.id+"/response", &trailerBody{r: strings.NewReader("partial"), trailer: trailer,
			set: http.Header{"Lambda-Runtime-Function-Error-Type": {"errorString"}, "Lambda-Runtime-Function-Error-Body": {body}}})
		req.Trailer = trailer
		resp, err := rc.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var fe *awsfake.FunctionError
		if got := <-res; !errors.As(got.err, &fe) || fe.Type != "errorString" || fe.Message != "stream broke" {
			t.Errorf("Invoke err = %v; want FunctionError from the trailer", got.err)
		}
	})
	t.Run("an unknown request ID is refused", func(t *testing.T) {
		if status := rc.post(t, "invocation/00000000-0000-0000-0000-000000000000/response", `{}`, nil, nil); status != 400 {
			t.Errorf("status %d; want 400", status)
		}
		if status := rc.post(t, "invocation/00000000-0000-0000-0000-000000000000/error", `{}`, nil, nil); status != 400 {
			t.Errorf("status %d; want 400", status)
		}
	})
	t.Run("an init error fails the invocation waiting for a poller", func(t *testing.T) {
		res := invokeAsync(ctx, r, `{}`)
		rc.post(t, "init/error", `{"errorMessage":"missing AWS_REGION","errorType":"Runtime.InitError"}`, nil, nil)
		var fe *awsfake.FunctionError
		if got := <-res; !errors.As(got.err, &fe) || fe.Type != "Runtime.InitError" || fe.Message != "missing AWS_REGION" {
			t.Errorf("Invoke err = %v; want the init error", got.err)
		}
	})
	t.Run("Invoke waiting for a poller ends with its context", func(t *testing.T) {
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if _, err := r.Invoke(short, []byte(`{}`)); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v; want DeadlineExceeded", err)
		}
	})
	t.Run("concurrent pollers each take a different invocation", func(t *testing.T) {
		var wg sync.WaitGroup
		got := make(chan nextInvocation, 2)
		both := make(chan struct{})
		for range 2 {
			wg.Go(func() {
				inv, err := rc.next(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				got <- inv
				<-both // answer only once each poller holds one
				rc.post(t, "invocation/"+inv.id+"/response", "echo "+inv.payload, nil, nil)
			})
		}
		waitPollers(t, r, 2)
		a, b := invokeAsync(ctx, r, "a"), invokeAsync(ctx, r, "b")
		first, second := <-got, <-got
		close(both)
		if first.id == second.id || first.payload == second.payload {
			t.Errorf("pollers got %+v and %+v; want different invocations", first, second)
		}
		if ra, rb := <-a, <-b; string(ra.payload) != "echo a" || string(rb.payload) != "echo b" {
			t.Errorf("Invoke = %q %v, %q %v", ra.payload, ra.err, rb.payload, rb.err)
		}
		wg.Wait()
	})
}

// trailerBody is a request body that sets trailers when it ends, as
// aws-lambda-go does when the handler's response reader fails.
type trailerBody struct {
	r       io.Reader
	trailer http.Header
	set     http.Header
}

func (b *trailerBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		for k, vs := range b.set {
			b.trailer[k] = vs
		}
	}
	return n, err
}

func TestRuntimeAPITimeout(t *testing.T) {
	r := awsfake.NewRuntimeAPI(t, awsfake.RuntimeConfig{Timeout: 100 * time.Millisecond})
	rc := newRuntimeClient(t, r)
	ctx := ctxT(t)
	res := invokeAsync(ctx, r, `{}`)
	inv, err := rc.next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var fe *awsfake.FunctionError
	if got := <-res; !errors.As(got.err, &fe) || fe.Type != "Sandbox.Timedout" || !strings.Contains(fe.Message, "Task timed out after 0.10 seconds") {
		t.Fatalf("Invoke err = %v; want a timeout", got.err)
	}
	if status := rc.post(t, "invocation/"+inv.id+"/response", `{}`, nil, nil); status != 400 {
		t.Errorf("a response after the timeout: %d; want 400", status)
	}
}

func TestRuntimeAPICloseReleasesPollers(t *testing.T) {
	done := make(chan nextInvocation, 1)
	t.Run("poll", func(t *testing.T) {
		r := awsfake.NewRuntimeAPI(t, awsfake.RuntimeConfig{})
		rc := newRuntimeClient(t, r)
		go func() {
			inv, _ := rc.next(context.Background())
			done <- inv
		}()
		waitPollers(t, r, 1)
	}) // its cleanup closes the API
	select {
	case inv := <-done:
		if inv.status != http.StatusInternalServerError {
			t.Errorf("the blocked poller got %d; want 500", inv.status)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the blocked poller was not released")
	}
}

// TestFunctionURLThroughRuntimeAPI joins the two fakes as Lambda does: a
// function URL request becomes an invocation a bootstrap polls.
func TestFunctionURLThroughRuntimeAPI(t *testing.T) {
	r := awsfake.NewRuntimeAPI(t, awsfake.RuntimeConfig{})
	c := newCloud(t, awsfake.CloudConfig{Invoke: r.Invoke})
	rc := newRuntimeClient(t, r)
	ctx := ctxT(t)
	go func() {
		inv, err := rc.next(ctx)
		if err != nil {
			return
		}
		body := `{"statusCode":200,"body":"woke"}`
		if !strings.Contains(inv.payload, `"rawPath":"/wake"`) {
			body = `{"statusCode":500}`
		}
		req, _ := http.NewRequest(http.MethodPost, rc.base+"invocation/"+inv.id+"/response", bytes.NewReader([]byte(body)))
		if resp, err := rc.client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	resp, body := send(t, urlRequest(t, http.MethodPost, c.FunctionURL+"wake", "application/json", []byte("{}"), userKey, userSecret, "lambda", c.Region))
	if resp.StatusCode != 200 || body != "woke" {
		t.Errorf("got %d %q; want 200 woke", resp.StatusCode, body)
	}
}

// TestRealBootstrap runs aws-lambda-go processes against the RuntimeAPI:
// each takes invocations in turn, and closing the API ends them.
func TestRealBootstrap(t *testing.T) {
	goBin, err := exec.LookPath("go") // go test puts GOROOT/bin first on PATH
	if err != nil {
		t.Skip("no go command to build the bootstrap")
	}
	bin := filepath.Join(t.TempDir(), "bootstrap")
	build := exec.Command(goBin, "build", "-o", bin, "./testdata/bootstrap")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	var procs []*exec.Cmd
	exited := make(chan error, 2)
	t.Run("invocations reach the processes", func(t *testing.T) {
		r := awsfake.NewRuntimeAPI(t, awsfake.RuntimeConfig{})
		for range 2 {
			cmd := exec.Command(bin)
			cmd.Env = []string{"AWS_LAMBDA_RUNTIME_API=" + r.Addr, "AWS_LAMBDA_FUNCTION_NAME=fluidity"}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			procs = append(procs, cmd)
			go func() { exited <- cmd.Wait() }()
		}
		waitPollers(t, r, 2)
		ctx := ctxT(t)
		out, err := r.Invoke(ctx, []byte(`{"version":"2.0","rawPath":"/wake"}`))
		if err != nil || !strings.Contains(string(out), `"body":"hello /wake"`) || !strings.Contains(string(out), `"statusCode":200`) {
			t.Errorf("Invoke = %s, %v", out, err)
		}
		_, err = r.Invoke(ctx, []byte(`{"version":"2.0","rawPath":"/fail"}`))
		var fe *awsfake.FunctionError
		if !errors.As(err, &fe) || fe.Message != "asked to fail" || fe.Type != "errorString" {
			t.Errorf("Invoke err = %v; want the function's error", err)
		}
		waitPollers(t, r, 2) // both processes poll again
	}) // its cleanup closes the API
	for range procs {
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			for _, p := range procs {
				p.Process.Kill()
			}
			t.Fatal("a bootstrap did not exit when the runtime API closed")
		}
	}
}
