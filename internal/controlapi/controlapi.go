// Package controlapi is the control plane's HTTP API, as its function URL
// serves it and the agent calls it: the paths, the bodies, the states of an
// exit task and the error codes.
//
// Every request is signed with SigV4 for the service "lambda" (the function
// URL's AWS_IAM auth); the caller's identity is the one AWS verified, never
// anything in the body.
//
//	POST /wake   {"wake_id": "…"}  → State: the caller's task, started if none runs
//	GET  /query?wait=25s           → State, waiting up to wait while it is starting
//	POST /kill                     → State: the caller's task, stopped
//
// A failure is a JSON ErrorBody with an HTTP status that fits it.
package controlapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Paths of the API.
const (
	PathWake  = "/wake"
	PathQuery = "/query"
	PathKill  = "/kill"
)

// MaxWait is the longest a query waits for a starting task to become ready
// or stop; a longer wait is cut to it. It stays well inside a function
// URL's and an HTTP client's patience.
const MaxWait = 25 * time.Second

// Phase is where an exit task is in its life, for the agent.
type Phase string

const (
	// Starting: the task is being placed, its image pulled, or its
	// container started, and it has no address yet.
	Starting Phase = "starting"
	// Ready: the task runs and State.Address reaches it.
	Ready Phase = "ready"
	// Stopped: no task runs for the caller; State.Reason says why.
	Stopped Phase = "stopped"
)

// WakeRequest is the body of POST /wake.
type WakeRequest struct {
	// WakeID names one logical wake: the agent makes a new one for each
	// wake and sends the same one on each retry of it, so retries and
	// concurrent duplicates start one task.
	WakeID string `json:"wake_id"`
}

// MaxWakeIDLen bounds a wake ID.
const MaxWakeIDLen = 64

// CheckWakeID reports whether id is a valid wake ID: 1 to 64 letters,
// digits, '-' and '_'.
func CheckWakeID(id string) error {
	if id == "" || len(id) > MaxWakeIDLen {
		return fmt.Errorf("wake_id must be 1 to %d characters", MaxWakeIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return errors.New("wake_id may hold only letters, digits, '-' and '_'")
		}
	}
	return nil
}

// State is the caller's exit task, as every call answers it.
type State struct {
	State Phase `json:"state"`
	// Owner is the principal the task belongs to: the caller's canonical
	// ARN (a role session's role).
	Owner string `json:"owner"`
	// Task is the task's ARN; "" when no task was found.
	Task string `json:"task,omitempty"`
	// Status is the task's ECS lastStatus (PROVISIONING, PENDING, RUNNING,
	// …, STOPPED).
	Status string `json:"status,omitempty"`
	// Address is the exit's host:port, when Ready.
	Address string `json:"address,omitempty"`
	// Reason says why the task stopped, when Stopped.
	Reason string `json:"reason,omitempty"`
	// CreatedAt, StartedAt and StoppedAt are the task's ECS times (billing
	// runs from about CreatedAt to StoppedAt).
	CreatedAt *time.Time `json:"created_at,omitempty"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	StoppedAt *time.Time `json:"stopped_at,omitempty"`
	// LeaseUntil is the task's lease, as the exit last renewed it.
	LeaseUntil *time.Time `json:"lease_until,omitempty"`
}

// ErrorBody is the body of every failed call.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// Error is a failed call: a code to branch on and a sentence a person can
// act on.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes.
const (
	CodeBadRequest  = "bad_request" // 400: the request is malformed
	CodeNoIdentity  = "no_identity" // 401: the request carried no verified IAM identity
	CodeNotAllowed  = "not_allowed" // 403: the caller is not in the control plane's allowlist
	CodeNotFound    = "not_found"   // 404: no such path
	CodeMethod      = "method"      // 405: wrong method for the path
	CodeDailyLimit  = "daily_limit" // 429: the caller's exit hours for today are used up
	CodeThrottled   = "throttled"   // 429: AWS throttled the control plane; retry
	CodePermission  = "permission"  // 502: the control plane's role may not do what it must
	CodeBadConfig   = "bad_config"  // 502: the deployment is wrong (cluster, subnet, task definition)
	CodeAWS         = "aws_error"   // 502: AWS refused for another reason
	CodeNoCapacity  = "no_capacity" // 503: Fargate could not place the task now
	CodeUnavailable = "unavailable" // 503: AWS did not answer; retry
	CodeTimeout     = "timeout"     // 504: the control plane ran out of time
)

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// StatusCode is the HTTP status to answer with.
func (e *Error) StatusCode() int { return e.Status }

// Retryable reports whether the same call may succeed if made again soon:
// throttled, or no answer in time.
func (e *Error) Retryable() bool {
	switch e.Code {
	case CodeThrottled, CodeUnavailable, CodeTimeout:
		return true
	}
	return false
}

// Errorf builds an *Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// ParseWait parses the query's wait parameter: a Go duration ("25s"), empty
// for none. A wait over MaxWait is cut to it.
func ParseWait(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d < 0 {
		return 0, Errorf(http.StatusBadRequest, CodeBadRequest, "wait=%q is not a duration such as 25s", s)
	}
	return min(d, MaxWait), nil
}
