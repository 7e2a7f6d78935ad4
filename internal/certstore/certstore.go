// Package certstore loads the exit's certificate bundle (see package pki)
// from where a cloud deployment keeps it: an SSM Parameter Store parameter,
// ssm://NAME, or a Secrets Manager secret, secretsmanager://NAME.
//
// NAME is everything after the scheme, taken as it is: ssm://fluidity-exit
// names the parameter fluidity-exit and ssm:///fluidity/exit the
// path-style parameter /fluidity/exit; a secret may be named by its name or
// its ARN. A parameter is read with decryption, so it may (and should) be a
// SecureString.
//
// Errors say what happened and what to do: a missing value names itself
// and the region and wraps [ErrNotFound]; a refusal says which permission
// the caller (the exit's task role) lacks and wraps [ErrAccessDenied].
package certstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"fluidity/internal/awsconfig"
	"fluidity/internal/pki"
)

// The schemes of a Location.
const (
	SSM            = "ssm"
	SecretsManager = "secretsmanager"
)

var (
	// ErrNotFound means the parameter or secret does not exist (in that
	// region, for that account).
	ErrNotFound = errors.New("not found")
	// ErrAccessDenied means the caller may not read the value or decrypt
	// it.
	ErrAccessDenied = errors.New("access denied")
)

// DefaultTimeout bounds a fetch when Store.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// IsURI reports whether s names a location of a store ("scheme://…")
// rather than a directory.
func IsURI(s string) bool { return strings.Contains(s, "://") }

// A Location is where a bundle is kept.
type Location struct {
	Scheme string // SSM or SecretsManager
	Name   string // the parameter's name, or the secret's name or ARN
}

// String is the location as a URI, as Parse reads it.
func (l Location) String() string { return l.Scheme + "://" + l.Name }

// Parse reads ssm://NAME or secretsmanager://NAME.
func Parse(uri string) (Location, error) {
	scheme, name, ok := strings.Cut(uri, "://")
	if !ok || scheme != SSM && scheme != SecretsManager {
		return Location{}, fmt.Errorf("%q is not a place certificates can be loaded from; use a directory, ssm://NAME (an SSM parameter) or secretsmanager://NAME (a secret)", uri)
	}
	if name == "" || strings.TrimLeft(name, "/") == "" {
		return Location{}, fmt.Errorf("%q names no %s; write %s://NAME (example: %s://fluidity-exit)", uri, scheme, scheme, scheme)
	}
	if i := strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }); i >= 0 {
		return Location{}, fmt.Errorf("%q: a name cannot hold %q", uri, name[i])
	}
	return Location{Scheme: scheme, Name: name}, nil
}

// A Store reads bundles from SSM and Secrets Manager with the real SDK.
type Store struct {
	// AWS is the SDK configuration: credentials, region and endpoints. If
	// nil, the SDK's default chain is loaded (awsconfig.Load: the
	// environment, shared files, the task role), in which
	// AWS_ENDPOINT_URL_SSM and AWS_ENDPOINT_URL_SECRETS_MANAGER redirect
	// the calls.
	AWS *aws.Config
	// Timeout bounds one fetch, retries included. If zero,
	// DefaultTimeout is used.
	Timeout time.Duration
}

// ServerConfig fetches the bundle at uri and returns the exit's TLS
// configuration from it (pki.ServerConfigFromBundle, whose errors name uri).
func (s *Store) ServerConfig(ctx context.Context, uri string) (*tls.Config, error) {
	loc, err := Parse(uri)
	if err != nil {
		return nil, err
	}
	data, err := s.Fetch(ctx, loc)
	if err != nil {
		return nil, err
	}
	return pki.ServerConfigFromBundle(loc.String(), data)
}

// Fetch returns the value at loc.
func (s *Store) Fetch(ctx context.Context, loc Location) ([]byte, error) {
	cfg, err := s.awsConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", loc, err)
	}
	if cfg.Region == "" {
		return nil, fmt.Errorf("%s: no AWS region is configured; set AWS_REGION (ECS sets it in every task)", loc)
	}
	timeout := s.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var data []byte
	switch loc.Scheme {
	case SSM:
		data, err = fetchParameter(ctx, cfg, loc.Name)
	case SecretsManager:
		data, err = fetchSecret(ctx, cfg, loc.Name)
	default:
		return nil, fmt.Errorf("%s: unknown scheme %q", loc, loc.Scheme)
	}
	if err != nil {
		return nil, explain(loc, cfg.Region, timeout, err)
	}
	return data, nil
}

func (s *Store) awsConfig(ctx context.Context) (aws.Config, error) {
	if s.AWS != nil {
		return *s.AWS, nil
	}
	return awsconfig.Load(ctx, "")
}

func fetchParameter(ctx context.Context, cfg aws.Config, name string) ([]byte, error) {
	out, err := ssm.NewFromConfig(cfg).GetParameter(ctx, &ssm.GetParameterInput{
		Name:           aws.String(name),
		WithDecryption: aws.Bool(true),
	})
	if err != nil {
		return nil, err
	}
	if out.Parameter == nil || out.Parameter.Value == nil {
		return nil, errors.New("the answer holds no value")
	}
	return []byte(*out.Parameter.Value), nil
}

func fetchSecret(ctx context.Context, cfg aws.Config, id string) ([]byte, error) {
	out, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId: aws.String(id),
	})
	if err != nil {
		return nil, err
	}
	switch {
	case out.SecretString != nil:
		return []byte(*out.SecretString), nil
	case out.SecretBinary != nil:
		return out.SecretBinary, nil
	}
	return nil, errors.New("the answer holds no value")
}

// explain turns an SDK error into one that says what to do.
func explain(loc Location, region string, timeout time.Duration, err error) error {
	var (
		notFoundParam  *ssmtypes.ParameterNotFound
		notFoundSecret *smtypes.ResourceNotFoundException
		apiErr         smithy.APIError
	)
	switch {
	case errors.As(err, &notFoundParam), errors.As(err, &notFoundSecret):
		what := "parameter"
		if loc.Scheme == SecretsManager {
			what = "secret"
		}
		return &Error{Location: loc, Kind: ErrNotFound, Err: err, msg: fmt.Sprintf(
			"%s: there is no %s %q in region %s; push the exit's certificates with 'fluidity certs push %s'",
			loc, what, loc.Name, region, loc)}
	case errors.As(err, &apiErr) && isDenied(apiErr.ErrorCode()):
		var need string
		if loc.Scheme == SSM {
			need = fmt.Sprintf("ssm:GetParameter on parameter %q and, for a SecureString under a customer managed KMS key, kms:Decrypt on that key", loc.Name)
		} else {
			need = fmt.Sprintf("secretsmanager:GetSecretValue on secret %q and, under a customer managed KMS key, kms:Decrypt on that key", loc.Name)
		}
		return &Error{Location: loc, Kind: ErrAccessDenied, Err: err, msg: fmt.Sprintf(
			"%s: access denied (%s: %s); the exit's task role needs %s", loc, apiErr.ErrorCode(), apiErr.ErrorMessage(), need)}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Location: loc, Err: err, msg: fmt.Sprintf(
			"%s: no answer from AWS in region %s within %v; check that the exit can reach the %s endpoint (a public IP or a VPC endpoint): %v",
			loc, region, timeout, loc.Scheme, err)}
	}
	return &Error{Location: loc, Err: err, msg: fmt.Sprintf("%s: read from region %s: %v", loc, region, err)}
}

// isDenied reports whether an AWS error code refuses the caller the value
// or the key that decrypts it.
func isDenied(code string) bool {
	switch code {
	case "AccessDeniedException", "AccessDenied", "UnauthorizedOperation",
		"DecryptionFailure", "KMSAccessDeniedException", "InvalidKeyId":
		return true
	}
	return false
}

// Error is an error of Fetch. errors.Is matches its Kind (ErrNotFound,
// ErrAccessDenied) as well as the SDK's error it wraps.
type Error struct {
	Location Location
	Kind     error // ErrNotFound, ErrAccessDenied or nil
	Err      error // the SDK's error
	msg      string
}

func (e *Error) Error() string { return e.msg }

func (e *Error) Unwrap() []error {
	if e.Kind == nil {
		return []error{e.Err}
	}
	return []error{e.Kind, e.Err}
}
