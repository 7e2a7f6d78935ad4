package awsfake

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

const (
	// runtimeMaxResponse is Lambda's limit on a synchronous invocation's
	// response payload, 6 MB.
	runtimeMaxResponse = 6 * 1024 * 1024

	headerRequestID   = "Lambda-Runtime-Aws-Request-Id"
	headerDeadline    = "Lambda-Runtime-Deadline-Ms"
	headerFunctionARN = "Lambda-Runtime-Invoked-Function-Arn"
	headerTraceID     = "Lambda-Runtime-Trace-Id"
	headerErrorType   = "Lambda-Runtime-Function-Error-Type"
	trailerErrorBody  = "Lambda-Runtime-Function-Error-Body"
)

var errRuntimeClosed = errors.New("awsfake: runtime API closed")

// RuntimeAPI is a fake Lambda Runtime API (2018-06-01) for real bootstrap
// processes (aws-lambda-go with AWS_LAMBDA_RUNTIME_API=Addr). Any number
// of processes may poll it at once; each invocation goes to one of them,
// as Lambda runs concurrent invocations in separate instances.
type RuntimeAPI struct {
	Addr string // 127.0.0.1:PORT

	cfg RuntimeConfig    // immutable after NewRuntimeAPI; defaults filled in
	srv *httptest.Server // immutable after NewRuntimeAPI

	closeOnce sync.Once
	closed    chan struct{} // closed by close; releases pollers and Invoke

	queue    chan *invocation    // never closed; unbuffered, so that each invocation goes to one poller
	initErrs chan *FunctionError // never closed; init errors no Invoke has taken yet

	mu      sync.Mutex
	pollers int                    // guarded by mu; handlers waiting in /next
	running map[string]*invocation // guarded by mu; invocations given to a poller and not answered
}

// RuntimeConfig configures a RuntimeAPI. A zero RuntimeConfig is valid.
type RuntimeConfig struct {
	// FunctionARN is sent as Lambda-Runtime-Invoked-Function-Arn. If
	// empty, arn:aws:lambda:us-east-1:111122223333:function:fluidity is
	// used.
	FunctionARN string
	// Timeout is the function's timeout: how long an invocation may run
	// once a poller took it (Lambda-Runtime-Deadline-Ms) before Invoke
	// gives up. If zero, 60s is used.
	Timeout time.Duration
}

// FunctionError is a function error: the runtime reported an error for
// the invocation, or for its initialisation, or the invocation timed out
// (Type "Sandbox.Timedout").
type FunctionError struct {
	Type, Message string
}

func (e *FunctionError) Error() string {
	return "function error: " + e.Type + ": " + e.Message
}

type invocation struct {
	id      string
	payload []byte
	done    chan invocationResult // buffered; sent to once, by whoever takes the invocation out of running
}

type invocationResult struct {
	payload []byte
	err     *FunctionError
}

// NewRuntimeAPI starts a Runtime API that is closed when tb's test ends:
// pollers waiting in /next are then answered with an error, and Invoke
// calls fail.
func NewRuntimeAPI(tb testing.TB, cfg RuntimeConfig) *RuntimeAPI {
	if cfg.FunctionARN == "" {
		cfg.FunctionARN = "arn:aws:lambda:" + defaultRegion + ":" + defaultAccount + ":function:fluidity"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 60 * time.Second
	}
	r := &RuntimeAPI{
		cfg:      cfg,
		closed:   make(chan struct{}),
		queue:    make(chan *invocation),
		initErrs: make(chan *FunctionError, 16),
		running:  map[string]*invocation{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", r.serveNext)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", r.serveResponse)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", r.serveError)
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", r.serveInitError)
	r.srv = httptest.NewServer(mux)
	r.Addr = r.srv.Listener.Addr().String()
	tb.Cleanup(r.close)
	return r
}

func (r *RuntimeAPI) close() {
	r.closeOnce.Do(func() {
		close(r.closed)
		r.srv.Close()
	})
}

// Pollers is the number of processes waiting in /next now.
func (r *RuntimeAPI) Pollers() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pollers
}

// Invoke waits for a poller, gives it the invocation and returns the
// function's response payload. A function error, an initialisation error
// (reported while no other poller was free) and a timeout are returned as
// *FunctionError. ctx bounds both the wait for a poller and the
// invocation.
func (r *RuntimeAPI) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("awsfake: invoke: %w", err)
	}
	inv := &invocation{id: newUUID(), payload: bytes.Clone(payload), done: make(chan invocationResult, 1)}
	select {
	case r.queue <- inv: // a free poller is preferred to a pending init error
	default:
		select {
		case r.queue <- inv:
		case fe := <-r.initErrs:
			return nil, fe
		case <-ctx.Done():
			return nil, fmt.Errorf("awsfake: invoke: waiting for a poller: %w", ctx.Err())
		case <-r.closed:
			return nil, errRuntimeClosed
		}
	}
	timer := time.NewTimer(r.cfg.Timeout)
	defer timer.Stop()
	select {
	case res := <-inv.done:
		if res.err != nil {
			return nil, res.err
		}
		return res.payload, nil
	case <-timer.C:
		r.forget(inv.id)
		return nil, &FunctionError{Type: "Sandbox.Timedout", Message: fmt.Sprintf("Task timed out after %.2f seconds", r.cfg.Timeout.Seconds())}
	case <-ctx.Done():
		r.forget(inv.id)
		return nil, fmt.Errorf("awsfake: invoke: %w", ctx.Err())
	case <-r.closed:
		return nil, errRuntimeClosed
	}
}

func (r *RuntimeAPI) forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.running, id)
}

// take removes an invocation from running, so that it is answered once.
func (r *RuntimeAPI) take(id string) *invocation {
	r.mu.Lock()
	defer r.mu.Unlock()
	inv := r.running[id]
	delete(r.running, id)
	return inv
}

func runtimeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"errorMessage": msg, "errorType": typ})
}

func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"status":"OK"}`)
}

func (r *RuntimeAPI) serveNext(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.pollers++
	r.mu.Unlock()
	var inv *invocation
	select {
	case inv = <-r.queue:
	case <-req.Context().Done():
	case <-r.closed:
	}
	r.mu.Lock()
	r.pollers--
	if inv != nil {
		r.running[inv.id] = inv
	}
	r.mu.Unlock()
	if inv == nil {
		runtimeError(w, http.StatusInternalServerError, "ServiceException", "The runtime API is shutting down.")
		return
	}
	now := time.Now()
	w.Header().Set(headerRequestID, inv.id)
	w.Header().Set(headerDeadline, strconv.FormatInt(now.Add(r.cfg.Timeout).UnixMilli(), 10))
	w.Header().Set(headerFunctionARN, r.cfg.FunctionARN)
	w.Header().Set(headerTraceID, fmt.Sprintf("Root=1-%08x-%s;Parent=%s;Sampled=0", now.Unix(), randomHex(24), randomHex(16)))
	w.Header().Set("Content-Type", "application/json")
	w.Write(inv.payload)
}

func (r *RuntimeAPI) serveResponse(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, runtimeMaxResponse+1))
	if err != nil {
		return
	}
	inv := r.take(req.PathValue("id"))
	if inv == nil {
		runtimeError(w, http.StatusBadRequest, "InvalidRequestID", "Invalid request ID")
		return
	}
	var res invocationResult
	switch {
	case req.Trailer.Get(headerErrorType) != "":
		// The runtime failed while streaming the response.
		res.err = &FunctionError{Type: req.Trailer.Get(headerErrorType)}
		if b, err := base64.StdEncoding.DecodeString(req.Trailer.Get(trailerErrorBody)); err == nil {
			if fe := parseFunctionError(b, ""); fe.Message != "" {
				res.err.Message = fe.Message
			}
		}
	case len(body) > runtimeMaxResponse:
		res.err = &FunctionError{Type: "Function.ResponseSizeTooLarge", Message: fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", runtimeMaxResponse)}
	default:
		res.payload = body
	}
	inv.done <- res
	if res.err != nil && res.err.Type == "Function.ResponseSizeTooLarge" {
		runtimeError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", res.err.Message)
		return
	}
	accepted(w)
}

// parseFunctionError reads an error the runtime reports: a JSON
// errorMessage and errorType, the type also in a header.
func parseFunctionError(body []byte, headerType string) *FunctionError {
	var e struct {
		Message string `json:"errorMessage"`
		Type    string `json:"errorType"`
	}
	json.Unmarshal(body, &e)
	fe := &FunctionError{Type: e.Type, Message: e.Message}
	if fe.Type == "" {
		fe.Type = headerType
	}
	if fe.Type == "" {
		fe.Type = "Unhandled"
	}
	return fe
}

func (r *RuntimeAPI) serveError(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, runtimeMaxResponse))
	if err != nil {
		return
	}
	inv := r.take(req.PathValue("id"))
	if inv == nil {
		runtimeError(w, http.StatusBadRequest, "InvalidRequestID", "Invalid request ID")
		return
	}
	inv.done <- invocationResult{err: parseFunctionError(body, req.Header.Get(headerErrorType))}
	accepted(w)
}

func (r *RuntimeAPI) serveInitError(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, runtimeMaxResponse))
	if err != nil {
		return
	}
	select {
	case r.initErrs <- parseFunctionError(body, req.Header.Get(headerErrorType)):
	default: // plenty are pending already
	}
	accepted(w)
}
