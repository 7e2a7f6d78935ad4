package certstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
)

// Push stores data at loc, an SSM SecureString (standard tier) or a
// Secrets Manager secret, unless it already holds exactly that. It reports
// whether it wrote, and a secret's ARN (which the exit's role is granted).
func (s *Store) Push(ctx context.Context, loc Location, data []byte, description string) (changed bool, arn string, err error) {
	cfg, err := s.awsConfig(ctx)
	if err != nil {
		return false, "", fmt.Errorf("%s: %w", loc, err)
	}
	if cfg.Region == "" {
		return false, "", fmt.Errorf("%s: no AWS region is configured; pass --region or set AWS_REGION", loc)
	}
	timeout := s.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch loc.Scheme {
	case SSM:
		changed, err = pushParameter(ctx, cfg, loc.Name, data, description)
	case SecretsManager:
		changed, arn, err = pushSecret(ctx, cfg, loc.Name, data, description)
	default:
		return false, "", fmt.Errorf("%s: unknown scheme %q", loc, loc.Scheme)
	}
	if err != nil {
		return false, "", explainPush(loc, cfg.Region, err)
	}
	return changed, arn, nil
}

func pushParameter(ctx context.Context, cfg aws.Config, name string, data []byte, description string) (bool, error) {
	client := ssm.NewFromConfig(cfg)
	cur, err := client.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	var nf *ssmtypes.ParameterNotFound
	switch {
	case err == nil && cur.Parameter != nil && cur.Parameter.Type == ssmtypes.ParameterTypeSecureString &&
		aws.ToString(cur.Parameter.Value) == string(data):
		return false, nil
	case err != nil && !errors.As(err, &nf):
		return false, err
	}
	_, err = client.PutParameter(ctx, &ssm.PutParameterInput{
		Name:        aws.String(name),
		Value:       aws.String(string(data)),
		Type:        ssmtypes.ParameterTypeSecureString,
		Tier:        ssmtypes.ParameterTierStandard,
		Overwrite:   aws.Bool(true),
		Description: aws.String(description),
	})
	return err == nil, err
}

func pushSecret(ctx context.Context, cfg aws.Config, name string, data []byte, description string) (bool, string, error) {
	client := secretsmanager.NewFromConfig(cfg)
	cur, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	var nf *smtypes.ResourceNotFoundException
	switch {
	case errors.As(err, &nf):
		out, err := client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
			Name: aws.String(name), SecretString: aws.String(string(data)), Description: aws.String(description),
		})
		if err != nil {
			return false, "", err
		}
		return true, aws.ToString(out.ARN), nil
	case err != nil:
		return false, "", err
	case bytes.Equal([]byte(aws.ToString(cur.SecretString)), data):
		return false, aws.ToString(cur.ARN), nil
	}
	out, err := client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String(string(data))})
	if err != nil {
		return false, "", err
	}
	return true, aws.ToString(out.ARN), nil
}

// explainPush turns an SDK error of Push into one that says what to do.
func explainPush(loc Location, region string, err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && isDenied(apiErr.ErrorCode()) {
		need := "ssm:GetParameter and ssm:PutParameter on parameter " + loc.Name
		if loc.Scheme == SecretsManager {
			need = "secretsmanager:GetSecretValue, secretsmanager:CreateSecret and secretsmanager:PutSecretValue on secret " + loc.Name
		}
		return &Error{Location: loc, Kind: ErrAccessDenied, Err: err, msg: fmt.Sprintf(
			"%s: access denied (%s: %s); the AWS identity in use needs %s", loc, apiErr.ErrorCode(), apiErr.ErrorMessage(), need)}
	}
	return &Error{Location: loc, Err: err, msg: fmt.Sprintf("%s: write to region %s: %v", loc, region, err)}
}
