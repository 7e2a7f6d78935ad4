package lifecycle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"fluidity/internal/awsconfig"
	"fluidity/internal/controlapi"
)

// Backend starts, finds and stops an exit.
type Backend interface {
	// Wake returns the exit's state, starting it if it is not running.
	// wakeID names the wake; retries of one wake send the same ID.
	Wake(ctx context.Context, wakeID string) (controlapi.State, error)
	// Query returns the exit's state, waiting up to wait while it is
	// starting.
	Query(ctx context.Context, wait time.Duration) (controlapi.State, error)
	// Kill stops the exit.
	Kill(ctx context.Context) (controlapi.State, error)
}

// AWSConfig configures an AWS backend. URL is required.
type AWSConfig struct {
	// URL is the control plane's function URL,
	// https://ID.lambda-url.REGION.on.aws/.
	URL string
	// Region is the function's region, which requests are signed for. If
	// empty, the region in URL's host name is used, else the AWS
	// configuration's (AWS_REGION, the profile).
	Region string
	// Profile is the shared-configuration profile whose credentials sign
	// the requests. If empty, AWS_PROFILE or the default profile is used.
	Profile string
	// Credentials, if set, are used instead of the standard chain.
	Credentials aws.CredentialsProvider
	// Client sends the requests. If nil, a client with a 60s timeout is
	// used.
	Client *http.Client
}

// AWS is the backend of an exit on AWS: the control plane's function URL.
type AWS struct {
	cfg    AWSConfig // immutable
	base   *url.URL
	signer *v4.Signer
}

// NewAWS checks cfg, loads the AWS configuration unless Credentials are
// given, and returns the backend. It fails, saying how to fix it, when
// there are no usable credentials or no region; ctx bounds the check.
func NewAWS(ctx context.Context, cfg AWSConfig) (*AWS, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return nil, fmt.Errorf("control_url: %q is not the control plane's function URL (https://ID.lambda-url.REGION.on.aws/, printed by 'fluidity aws deploy')", cfg.URL)
	}
	if cfg.Region == "" {
		cfg.Region = urlRegion(u.Hostname())
	}
	if cfg.Credentials == nil {
		awsCfg, err := awsconfig.Load(ctx, cfg.Profile)
		if err != nil {
			return nil, err
		}
		if cfg.Region == "" {
			cfg.Region = awsCfg.Region
		}
		cfg.Credentials = awsCfg.Credentials
	}
	if cfg.Region == "" {
		return nil, errors.New("aws region: unknown; pass --aws-region or set AWS_REGION (the control plane's region)")
	}
	fix := "set AWS_PROFILE or pass --aws-profile, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
	if cfg.Profile != "" {
		fix = "run: aws sso login --profile " + cfg.Profile + " (for SSO profiles), or check the profile's credentials"
	}
	if cfg.Credentials == nil {
		return nil, errors.New("aws credentials: none configured; " + fix)
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return nil, fmt.Errorf("aws credentials: %w; %s", err, fix)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 60 * time.Second}
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &AWS{cfg: cfg, base: u, signer: v4.NewSigner()}, nil
}

// Wake implements Backend.
func (a *AWS) Wake(ctx context.Context, wakeID string) (controlapi.State, error) {
	body, _ := json.Marshal(controlapi.WakeRequest{WakeID: wakeID})
	return a.call(ctx, http.MethodPost, controlapi.PathWake, nil, body)
}

// Query implements Backend.
func (a *AWS) Query(ctx context.Context, wait time.Duration) (controlapi.State, error) {
	var q url.Values
	if wait > 0 {
		q = url.Values{"wait": {wait.Round(time.Millisecond).String()}}
	}
	return a.call(ctx, http.MethodGet, controlapi.PathQuery, q, nil)
}

// Kill implements Backend.
func (a *AWS) Kill(ctx context.Context) (controlapi.State, error) {
	return a.call(ctx, http.MethodPost, controlapi.PathKill, nil, []byte("{}"))
}

// maxAnswer bounds what is read of an answer.
const maxAnswer = 1 << 20

// call sends one SigV4-signed request and decodes the answer.
func (a *AWS) call(ctx context.Context, method, path string, q url.Values, body []byte) (controlapi.State, error) {
	u := *a.base
	u.Path += path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return controlapi.State{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	creds, err := a.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return controlapi.State{}, fmt.Errorf("control plane: no usable AWS credentials: %w; log in again (aws sso login) or check AWS_PROFILE", err)
	}
	sum := sha256.Sum256(body)
	if err := a.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "lambda", a.cfg.Region, time.Now()); err != nil {
		return controlapi.State{}, fmt.Errorf("control plane: signing the request: %w", err)
	}
	resp, err := a.cfg.Client.Do(req)
	if err != nil {
		return controlapi.State{}, &controlapi.Error{Status: http.StatusServiceUnavailable, Code: controlapi.CodeUnavailable,
			Message: fmt.Sprintf("the control plane at %s could not be reached: %v", a.base.Host, err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return controlapi.State{}, &controlapi.Error{Status: http.StatusServiceUnavailable, Code: controlapi.CodeUnavailable,
			Message: fmt.Sprintf("reading the control plane's answer: %v", err)}
	}
	if resp.StatusCode == http.StatusOK {
		var st controlapi.State
		if err := json.Unmarshal(data, &st); err != nil || st.State == "" {
			return controlapi.State{}, fmt.Errorf("control plane: the answer to %s is not an exit's state: %q", path, clip(data))
		}
		return st, nil
	}
	var eb controlapi.ErrorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error != nil && eb.Error.Code != "" {
		eb.Error.Status = resp.StatusCode
		return controlapi.State{}, eb.Error
	}
	// Not the control plane's own answer: the function URL's (its IAM
	// check, a function error) or something else at that address.
	e := &controlapi.Error{Status: resp.StatusCode, Code: "http"}
	switch resp.StatusCode {
	case http.StatusForbidden:
		e.Code = controlapi.CodePermission
		e.Message = fmt.Sprintf("the function URL refused the request (403 %s): the AWS identity in use may not invoke it (it needs lambda:InvokeFunctionUrl on the function), or the signature was refused (check the region, %s, and the clock)", clip(data), a.cfg.Region)
	case http.StatusTooManyRequests:
		e.Code = controlapi.CodeThrottled
		e.Message = "the function URL is throttling requests; try again in a moment"
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		e.Code = controlapi.CodeUnavailable
		e.Message = fmt.Sprintf("the control plane failed (%s: %s); see its log in CloudWatch", resp.Status, clip(data))
	default:
		e.Message = fmt.Sprintf("the control plane answered %s: %s", resp.Status, clip(data))
	}
	return controlapi.State{}, e
}

// urlRegion is the region in a function URL's host name,
// ID.lambda-url.REGION.on.aws, or "".
func urlRegion(host string) string {
	parts := strings.Split(host, ".")
	if len(parts) == 5 && parts[1] == "lambda-url" && parts[3] == "on" && parts[4] == "aws" {
		return parts[2]
	}
	return ""
}

// clip shortens an answer for a message.
func clip(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// URLRegion returns the region in a function URL's host name, or "".
func URLRegion(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return urlRegion(u.Hostname())
}
