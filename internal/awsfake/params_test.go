package awsfake_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"fluidity/internal/awsfake"
)

func TestParameterStore(t *testing.T) {
	c := newCloud(t, awsfake.CloudConfig{})
	ctx := ctxT(t)
	ssmC := ssm.NewFromConfig(c.Config(wakeKey))
	c.PutParameter("/fluidity/ca.pem", "-----BEGIN CERTIFICATE-----", false)
	c.PutParameter("/fluidity/exit.key", "-----BEGIN PRIVATE KEY-----", true)

	get := func(name string, decrypt bool) (*ssmtypes.Parameter, error) {
		out, err := ssmC.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(decrypt)})
		if err != nil {
			return nil, err
		}
		return out.Parameter, nil
	}
	t.Run("a String parameter is returned as stored", func(t *testing.T) {
		p, err := get("/fluidity/ca.pem", false)
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(p.Value) != "-----BEGIN CERTIFICATE-----" || p.Type != ssmtypes.ParameterTypeString || p.Version != 1 ||
			aws.ToString(p.ARN) != "arn:aws:ssm:us-east-1:111122223333:parameter/fluidity/ca.pem" || aws.ToString(p.DataType) != "text" || p.LastModifiedDate == nil {
			t.Errorf("parameter = %+v", p)
		}
	})
	t.Run("a SecureString is decrypted only when asked", func(t *testing.T) {
		p, err := get("/fluidity/exit.key", true)
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(p.Value) != "-----BEGIN PRIVATE KEY-----" || p.Type != ssmtypes.ParameterTypeSecureString {
			t.Errorf("decrypted = %+v", p)
		}
		p, err = get("/fluidity/exit.key", false)
		if err != nil {
			t.Fatal(err)
		}
		v := aws.ToString(p.Value)
		if _, err := base64.StdEncoding.DecodeString(v); err != nil || strings.Contains(v, "PRIVATE KEY") {
			t.Errorf("without decryption the value is %q; want opaque base64", v)
		}
	})
	t.Run("a parameter can be named by ARN", func(t *testing.T) {
		if _, err := get("arn:aws:ssm:us-east-1:111122223333:parameter/fluidity/ca.pem", false); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("PutParameter creates, refuses to overwrite, then overwrites", func(t *testing.T) {
		put := func(value string, typ ssmtypes.ParameterType, overwrite bool) (*ssm.PutParameterOutput, error) {
			return ssmC.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/fluidity/client.pem"), Value: aws.String(value), Type: typ, Overwrite: aws.Bool(overwrite)})
		}
		if _, err := put("v1", "", false); !strings.Contains(err.Error(), "type is required") {
			t.Errorf("err = %v; want a type required", err)
		}
		out, err := put("v1", ssmtypes.ParameterTypeSecureString, false)
		if err != nil || out.Version != 1 {
			t.Fatalf("put = %+v, %v", out, err)
		}
		var exists *ssmtypes.ParameterAlreadyExists
		if _, err := put("v2", ssmtypes.ParameterTypeSecureString, false); !errors.As(err, &exists) {
			t.Errorf("err = %v; want ParameterAlreadyExists", err)
		}
		if out, err = put("v2", "", true); err != nil || out.Version != 2 {
			t.Fatalf("overwrite = %+v, %v", out, err)
		}
		p, err := get("/fluidity/client.pem", true)
		if err != nil || aws.ToString(p.Value) != "v2" || p.Type != ssmtypes.ParameterTypeSecureString || p.Version != 2 {
			t.Errorf("after overwrite = %+v, %v", p, err)
		}
	})
	t.Run("a standard parameter holds at most 4096 characters", func(t *testing.T) {
		_, err := ssmC.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/fluidity/big"), Value: aws.String(strings.Repeat("x", 4097)), Type: ssmtypes.ParameterTypeString})
		if apiCode(err) != "ValidationException" {
			t.Errorf("err = %v; want ValidationException", err)
		}
		_, err = ssmC.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/fluidity/big"), Value: aws.String(strings.Repeat("x", 4097)), Type: ssmtypes.ParameterTypeString, Tier: ssmtypes.ParameterTierAdvanced})
		if err != nil {
			t.Errorf("advanced: %v", err)
		}
	})
	t.Run("DeleteParameter removes it", func(t *testing.T) {
		if _, err := ssmC.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("/fluidity/client.pem")}); err != nil {
			t.Fatal(err)
		}
		var nf *ssmtypes.ParameterNotFound
		if _, err := get("/fluidity/client.pem", true); !errors.As(err, &nf) {
			t.Errorf("err = %v; want ParameterNotFound", err)
		}
		if _, err := ssmC.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("/fluidity/client.pem")}); !errors.As(err, &nf) {
			t.Errorf("second delete: err = %v; want ParameterNotFound", err)
		}
	})
}

func TestSecretsManager(t *testing.T) {
	c := newCloud(t, awsfake.CloudConfig{})
	ctx := ctxT(t)
	sm := secretsmanager.NewFromConfig(c.Config(wakeKey))
	c.PutSecret("fluidity/exit-key", "key-v1")

	var arn string
	t.Run("a secret is found by name and by ARN", func(t *testing.T) {
		out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("fluidity/exit-key")})
		if err != nil {
			t.Fatal(err)
		}
		arn = aws.ToString(out.ARN)
		if aws.ToString(out.SecretString) != "key-v1" || aws.ToString(out.Name) != "fluidity/exit-key" || out.VersionId == nil ||
			len(out.VersionStages) != 1 || out.VersionStages[0] != "AWSCURRENT" || out.CreatedDate == nil ||
			!strings.HasPrefix(arn, "arn:aws:secretsmanager:us-east-1:111122223333:secret:fluidity/exit-key-") {
			t.Errorf("GetSecretValue = %+v", out)
		}
		byARN, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
		if err != nil || aws.ToString(byARN.SecretString) != "key-v1" {
			t.Errorf("by ARN = %+v, %v", byARN, err)
		}
	})
	t.Run("a missing secret is ResourceNotFoundException", func(t *testing.T) {
		var nf *smtypes.ResourceNotFoundException
		_, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("fluidity/nope")})
		if !errors.As(err, &nf) || nf.ErrorMessage() != "Secrets Manager can't find the specified secret." {
			t.Errorf("err = %v; want ResourceNotFoundException", err)
		}
	})
	t.Run("PutSecretValue makes a new current version, the old one previous", func(t *testing.T) {
		put, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("fluidity/exit-key"), SecretString: aws.String("key-v2")})
		if err != nil {
			t.Fatal(err)
		}
		cur, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
		if err != nil || aws.ToString(cur.SecretString) != "key-v2" || aws.ToString(cur.VersionId) != aws.ToString(put.VersionId) {
			t.Errorf("current = %+v, %v", cur, err)
		}
		prev, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionStage: aws.String("AWSPREVIOUS")})
		if err != nil || aws.ToString(prev.SecretString) != "key-v1" {
			t.Errorf("previous = %+v, %v", prev, err)
		}
	})
	t.Run("CreateSecret refuses an existing name", func(t *testing.T) {
		if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("fluidity/ca"), SecretString: aws.String("pem")}); err != nil {
			t.Fatal(err)
		}
		var exists *smtypes.ResourceExistsException
		if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("fluidity/ca"), SecretString: aws.String("pem")}); !errors.As(err, &exists) {
			t.Errorf("err = %v; want ResourceExistsException", err)
		}
	})
	t.Run("a deleted secret is marked, then gone when forced", func(t *testing.T) {
		if _, err := sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("fluidity/ca")}); err != nil {
			t.Fatal(err)
		}
		var invalid *smtypes.InvalidRequestException
		if _, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("fluidity/ca")}); !errors.As(err, &invalid) {
			t.Errorf("err = %v; want InvalidRequestException", err)
		}
		if _, err := sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("fluidity/ca"), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
			t.Fatal(err)
		}
		var nf *smtypes.ResourceNotFoundException
		if _, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("fluidity/ca")}); !errors.As(err, &nf) {
			t.Errorf("err = %v; want ResourceNotFoundException", err)
		}
	})
}
