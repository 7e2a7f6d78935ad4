// Package ecstask is the exit's view of the ECS task it runs in: it finds
// its own task through the task metadata endpoint (version 4) and keeps a
// lease on it, the tag fluidity:lease-until, which says until when the exit
// expects to be in use. The control plane's sweep reads the lease and stops
// a task whose lease has run out (see package controlplane); the exit itself
// stops when idle, so the lease is the second, independent stop path.
//
// A lease is renewed with ecs:TagResource at start and then once an
// interval (a minute by default), only when its value has changed: an
// exit that is idle, whose lease stays put, makes no calls. Failures are
// logged once per run of failures, with what to fix, and retried at the
// next interval; they never stop the exit.
package ecstask

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/smithy-go"

	"fluidity/internal/awsconfig"
)

// MetadataEnv is the environment variable in which ECS gives a container
// the URI of its task metadata endpoint (version 4). Its presence is how a
// process knows it runs on ECS.
const MetadataEnv = "ECS_CONTAINER_METADATA_URI_V4"

// LeaseTag is the tag on the task that holds the lease: the time, RFC 3339
// in UTC to the second, the exit would go idle.
const LeaseTag = "fluidity:lease-until"

// Defaults of LeaseConfig.
const (
	DefaultInterval = time.Minute
	DefaultTimeout  = 10 * time.Second
)

// TaskARN asks the task metadata endpoint at uri (the value of MetadataEnv)
// for the ARN of the task the caller runs in. client may be nil.
func TaskARN(ctx context.Context, client *http.Client, uri string) (string, error) {
	if client == nil {
		client = metadataClient
	}
	url := strings.TrimSuffix(uri, "/") + "/task"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("task metadata endpoint %q: %w", uri, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("task metadata endpoint: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("task metadata endpoint: GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("task metadata endpoint: GET %s: %s", url, resp.Status)
	}
	var task struct {
		TaskARN string `json:"TaskARN"`
	}
	if err := json.Unmarshal(body, &task); err != nil {
		return "", fmt.Errorf("task metadata endpoint: GET %s: %w", url, err)
	}
	if !strings.HasPrefix(task.TaskARN, "arn:") {
		return "", fmt.Errorf("task metadata endpoint: GET %s: no TaskARN in the answer", url)
	}
	return task.TaskARN, nil
}

// metadataClient reaches the link-local metadata endpoint directly: an
// HTTP proxy in the environment must not see it. It is asked once per
// process, so it keeps no connection open.
var metadataClient = &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

// LeaseConfig configures a Lease. MetadataURI and Until are required.
type LeaseConfig struct {
	// MetadataURI is the task metadata endpoint, the value of MetadataEnv.
	MetadataURI string
	// AWS is the SDK configuration for ECS. If nil, the SDK's default chain
	// is loaded (awsconfig.Load: the environment, shared files, the task
	// role), in which AWS_ENDPOINT_URL_ECS redirects the calls.
	AWS *aws.Config
	// Until returns the lease as of now: when the exit would go idle.
	Until func(now time.Time) time.Time
	// Interval is how often the lease is renewed. If zero,
	// DefaultInterval is used.
	Interval time.Duration
	// Timeout bounds each call to the metadata endpoint and to ECS. If
	// zero, DefaultTimeout is used.
	Timeout time.Duration
	// HTTPClient reaches the metadata endpoint. If nil, a client that
	// ignores proxy settings is used.
	HTTPClient *http.Client
	// Logger receives the lease's news: the task found, renewals (at debug
	// level), the first failure of a run of them with its fix, recovery.
	// Nil discards.
	Logger *slog.Logger
}

// A Lease keeps the lease tag on the caller's own task.
type Lease struct {
	cfg LeaseConfig // immutable after NewLease; defaults filled in
	ecs *ecs.Client // immutable after NewLease
	log *slog.Logger

	failures int // owned by Run: consecutive failed renewals

	mu      sync.Mutex
	task    string    // guarded by mu; the task's ARN, once known
	written string    // guarded by mu; the tag's value as last written
	until   time.Time // guarded by mu; the lease last written
}

// NewLease checks cfg and returns a Lease. It makes no call to AWS; Run
// does.
func NewLease(ctx context.Context, cfg LeaseConfig) (*Lease, error) {
	if cfg.MetadataURI == "" {
		return nil, fmt.Errorf("ecstask: no task metadata endpoint (%s is not set: not on ECS?)", MetadataEnv)
	}
	if cfg.Until == nil {
		return nil, errors.New("ecstask: LeaseConfig.Until is required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = metadataClient
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var awsCfg aws.Config
	if cfg.AWS != nil {
		awsCfg = *cfg.AWS
	} else {
		var err error
		if awsCfg, err = awsconfig.Load(ctx, ""); err != nil {
			return nil, fmt.Errorf("ecstask: %w", err)
		}
	}
	return &Lease{cfg: cfg, ecs: ecs.NewFromConfig(awsCfg), log: cfg.Logger}, nil
}

// State returns the task's ARN ("" until found) and the lease as last
// written (zero until written).
func (l *Lease) State() (task string, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.task, l.until
}

// Run renews the lease at once and then every Interval until ctx ends.
func (l *Lease) Run(ctx context.Context) {
	tick := time.NewTicker(l.cfg.Interval)
	defer tick.Stop()
	for {
		l.step(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// step renews the lease once and logs the outcome.
func (l *Lease) step(ctx context.Context) {
	err := l.renew(ctx)
	if ctx.Err() != nil {
		return // stopping: whatever failed is of no interest
	}
	if err == nil {
		if l.failures > 0 {
			l.log.Info("lease: renewed again", "task", l.taskARN(), "failures", l.failures)
		}
		l.failures = 0
		return
	}
	if l.failures++; l.failures == 1 {
		l.log.Warn("lease: cannot renew it; retrying every interval (the exit keeps running, but the control plane's sweep may stop this task when its lease runs out)",
			"interval", l.cfg.Interval, "err", err)
	} else {
		l.log.Debug("lease: still cannot renew it", "failures", l.failures, "err", err)
	}
}

func (l *Lease) taskARN() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.task
}

// renew finds the task if it is not known yet and writes the lease if it
// has changed.
func (l *Lease) renew(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	defer cancel()
	task := l.taskARN()
	if task == "" {
		arn, err := TaskARN(ctx, l.cfg.HTTPClient, l.cfg.MetadataURI)
		if err != nil {
			return fmt.Errorf("find this task: %w (%s=%s; ECS sets it in every container of a task)", err, MetadataEnv, l.cfg.MetadataURI)
		}
		l.mu.Lock()
		l.task = arn
		l.mu.Unlock()
		task = arn
		l.log.Info("lease: this exit runs in ECS task", "task", arn)
	}
	until := ceilSecond(l.cfg.Until(time.Now())).UTC()
	value := until.Format(time.RFC3339)
	l.mu.Lock()
	unchanged := value == l.written
	l.mu.Unlock()
	if unchanged {
		return nil
	}
	_, err := l.ecs.TagResource(ctx, &ecs.TagResourceInput{
		ResourceArn: aws.String(task),
		Tags:        []types.Tag{{Key: aws.String(LeaseTag), Value: aws.String(value)}},
	})
	if err != nil {
		return explain(task, err)
	}
	l.mu.Lock()
	l.written, l.until = value, until
	l.mu.Unlock()
	l.log.Debug("lease: renewed", "task", task, "until", value)
	return nil
}

// explain says what to do about a failed TagResource.
func explain(task string, err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "AccessDeniedException", "AccessDenied", "UnauthorizedOperation":
			return &tagError{err: err, msg: fmt.Sprintf("tag task %s: access denied (%s: %s); the exit's task role needs ecs:TagResource on its own task (resource arn:aws:ecs:REGION:ACCOUNT:task/CLUSTER/*)",
				task, ae.ErrorCode(), ae.ErrorMessage())}
		case "InvalidParameterException":
			return &tagError{err: err, msg: fmt.Sprintf("tag task %s: %s: %s (tagging a task needs the long ARN format for tasks in the account)",
				task, ae.ErrorCode(), ae.ErrorMessage())}
		}
	}
	return fmt.Errorf("tag task %s: %w", task, err)
}

// tagError is a failed TagResource explained: its text says what to do
// instead of repeating the SDK's error, which it wraps.
type tagError struct {
	msg string
	err error
}

func (e *tagError) Error() string { return e.msg }
func (e *tagError) Unwrap() error { return e.err }

// ceilSecond rounds t up to a whole second, so the lease is never earlier
// than the time the exit would go idle.
func ceilSecond(t time.Time) time.Time {
	r := t.Truncate(time.Second)
	if r.Before(t) {
		r = r.Add(time.Second)
	}
	return r
}
