// Package lambdafn is the control plane's AWS Lambda function: a thin
// adapter that turns function URL requests into calls of the control plane
// (package controlplane) and its scheduled events into sweeps. It holds no
// logic of its own beyond routing, reading the caller's verified identity
// from the request context and writing the answer.
package lambdafn

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"fluidity/internal/awsconfig"
	"fluidity/internal/controlapi"
	"fluidity/internal/controlplane"
)

// Plane is what the function calls: *controlplane.Plane.
type Plane interface {
	Wake(ctx context.Context, caller, wakeID string) (controlapi.State, error)
	Query(ctx context.Context, caller string, wait time.Duration) (controlapi.State, error)
	Kill(ctx context.Context, caller string) (controlapi.State, error)
	Sweep(ctx context.Context) (controlplane.SweepReport, error)
}

// Handler is the function. It implements aws-lambda-go's lambda.Handler.
type Handler struct {
	Plane  Plane
	Logger *slog.Logger // nil discards
}

// maxBody bounds a request body: a wake request is a few dozen bytes.
const maxBody = 4 << 10

// deadlineMargin is kept free before the invocation's deadline, so a
// waiting query answers before Lambda cuts it off.
const deadlineMargin = 2 * time.Second

// event is what tells the two kinds of invocation apart.
type event struct {
	RequestContext *struct {
		HTTP *struct {
			Method string `json:"method"`
		} `json:"http"`
	} `json:"requestContext"`
	Source     string `json:"source"`
	DetailType string `json:"detail-type"`
}

// Invoke handles one invocation: a function URL request or a scheduled
// (EventBridge) event.
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var ev event
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, fmt.Errorf("the invocation is not a JSON event: %w", err)
	}
	switch {
	case ev.RequestContext != nil && ev.RequestContext.HTTP != nil:
		var req events.LambdaFunctionURLRequest
		if err := json.Unmarshal(payload, &req); err != nil {
			return nil, fmt.Errorf("the invocation is not a function URL request: %w", err)
		}
		return json.Marshal(h.ServeURL(ctx, &req))
	case ev.Source == "aws.events" && ev.DetailType == "Scheduled Event":
		rep, err := h.Plane.Sweep(ctx)
		if err != nil {
			h.logger().Error("sweep failed", "err", err)
			return nil, err
		}
		return json.Marshal(rep)
	}
	return nil, errors.New("unrecognised invocation: neither a function URL request nor a scheduled event")
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Logger
}

// ServeURL answers one function URL request.
func (h *Handler) ServeURL(ctx context.Context, req *events.LambdaFunctionURLRequest) events.LambdaFunctionURLResponse {
	start := time.Now()
	caller := callerARN(req)
	st, err := h.route(ctx, req, caller)
	status, body := http.StatusOK, any(st)
	if err != nil {
		var ce *controlapi.Error
		if !errors.As(err, &ce) {
			ce = controlapi.Errorf(http.StatusInternalServerError, "internal", "%v", err)
		}
		status, body = ce.Status, controlapi.ErrorBody{Error: ce}
	}
	out, _ := json.Marshal(body)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelWarn
	}
	h.logger().Log(ctx, level, "request", "method", req.RequestContext.HTTP.Method, "path", req.RawPath,
		"caller", caller, "status", status, "state", st.State, "task", st.Task, "err", errString(err),
		"duration", time.Since(start).Round(time.Millisecond))
	return events.LambdaFunctionURLResponse{
		StatusCode: status,
		Headers:    map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"},
		Body:       string(out),
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// callerARN is the identity AWS verified for the request (AWS_IAM auth),
// or "" if there is none.
func callerARN(req *events.LambdaFunctionURLRequest) string {
	if a := req.RequestContext.Authorizer; a != nil && a.IAM != nil {
		return a.IAM.UserARN
	}
	return ""
}

func (h *Handler) route(ctx context.Context, req *events.LambdaFunctionURLRequest, caller string) (controlapi.State, error) {
	method := req.RequestContext.HTTP.Method
	want := http.MethodPost
	if req.RawPath == controlapi.PathQuery {
		want = http.MethodGet
	}
	switch req.RawPath {
	case controlapi.PathWake, controlapi.PathQuery, controlapi.PathKill:
	default:
		return controlapi.State{}, controlapi.Errorf(http.StatusNotFound, controlapi.CodeNotFound,
			"no such path %q; the paths are %s, %s and %s", req.RawPath, controlapi.PathWake, controlapi.PathQuery, controlapi.PathKill)
	}
	if method != want {
		return controlapi.State{}, controlapi.Errorf(http.StatusMethodNotAllowed, controlapi.CodeMethod, "%s takes %s, not %s", req.RawPath, want, method)
	}
	switch req.RawPath {
	case controlapi.PathWake:
		var w controlapi.WakeRequest
		if err := decodeBody(req, &w); err != nil {
			return controlapi.State{}, err
		}
		return h.Plane.Wake(ctx, caller, w.WakeID)
	case controlapi.PathQuery:
		wait, err := controlapi.ParseWait(req.QueryStringParameters["wait"])
		if err != nil {
			return controlapi.State{}, err
		}
		if dl, ok := ctx.Deadline(); ok {
			wait = max(0, min(wait, time.Until(dl)-deadlineMargin))
		}
		return h.Plane.Query(ctx, caller, wait)
	default:
		return h.Plane.Kill(ctx, caller)
	}
}

// decodeBody reads a JSON request body, base64-encoded or not.
func decodeBody(req *events.LambdaFunctionURLRequest, v any) error {
	body := []byte(req.Body)
	if req.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(req.Body); err != nil {
			return controlapi.Errorf(http.StatusBadRequest, controlapi.CodeBadRequest, "the body is not valid base64")
		}
	}
	if len(body) > maxBody {
		return controlapi.Errorf(http.StatusBadRequest, controlapi.CodeBadRequest, "the body is over %d bytes", maxBody)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return controlapi.Errorf(http.StatusBadRequest, controlapi.CodeBadRequest, "the body is not the JSON expected: %v", err)
	}
	return nil
}

// Run serves invocations from the Lambda Runtime API with a control plane
// built from cfg and the function's AWS credentials (its execution role),
// until the process is stopped. cfg needs no ECS or EC2 clients: Run makes
// them. It returns only on an error; outside Lambda (no
// AWS_LAMBDA_RUNTIME_API) it says so.
func Run(ctx context.Context, cfg controlplane.Config, log *slog.Logger) error {
	if os.Getenv("AWS_LAMBDA_RUNTIME_API") == "" {
		return errors.New("not running in AWS Lambda (AWS_LAMBDA_RUNTIME_API is not set): this command is the control plane's function, which 'fluidity aws deploy' installs")
	}
	awsCfg, err := awsconfig.Load(ctx, "")
	if err != nil {
		return err
	}
	cfg.ECS = ecs.NewFromConfig(awsCfg)
	cfg.EC2 = ec2.NewFromConfig(awsCfg)
	if cfg.DailyLimit > 0 {
		cfg.SSM = ssm.NewFromConfig(awsCfg)
	}
	cfg.Logger = log
	plane, err := controlplane.New(cfg)
	if err != nil {
		return err
	}
	log.Info("control plane ready", "cluster", cfg.Cluster, "task_definition", cfg.TaskDefinition, "allow", len(cfg.Allow))
	lambda.StartWithOptions(&Handler{Plane: plane, Logger: log}, lambda.WithContext(ctx))
	return errors.New("the Lambda runtime loop ended")
}
