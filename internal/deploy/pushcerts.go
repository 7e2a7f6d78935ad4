package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"fluidity/internal/certstore"
)

// PushCerts stores data, the exit's certificate bundle, at loc: an SSM
// SecureString (standard tier) or a Secrets Manager secret, unless it
// already holds exactly that. It reports whether it wrote, and a secret's
// ARN (which the exit's role is granted). The exit reads it with package
// certstore; writing is the deployer's, and is here.
func PushCerts(ctx context.Context, cfg aws.Config, loc certstore.Location, data []byte, description string) (changed bool, arn string, err error) {
	if cfg.Region == "" {
		return false, "", fmt.Errorf("%s: no AWS region is configured; pass --region or set AWS_REGION", loc)
	}
	ctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	switch loc.Scheme {
	case certstore.SSM:
		changed, err = pushParameter(ctx, cfg, loc.Name, data, description)
	case certstore.SecretsManager:
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

// pushTimeout bounds storing a bundle, retries included.
const pushTimeout = 30 * time.Second

// explainPush turns an SDK error of PushCerts into one that says what to
// do.
func explainPush(loc certstore.Location, region string, err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && (strings.Contains(apiErr.ErrorCode(), "AccessDenied") || apiErr.ErrorCode() == "KMSAccessDeniedException") {
		need := "ssm:GetParameter and ssm:PutParameter on parameter " + loc.Name
		if loc.Scheme == certstore.SecretsManager {
			need = "secretsmanager:GetSecretValue, secretsmanager:CreateSecret and secretsmanager:PutSecretValue on secret " + loc.Name
		}
		return fmt.Errorf("%s: %w (%s: %s); the AWS identity in use needs %s", loc, certstore.ErrAccessDenied, apiErr.ErrorCode(), apiErr.ErrorMessage(), need)
	}
	return fmt.Errorf("%s: write to region %s: %w", loc, region, err)
}
