package deploy

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"fluidity/internal/image"
)

// imageTag is the tag the deployment's image is pushed under; stacks name
// the image by digest, so a tag that moves never changes a running task.
const imageTag = "exit"

// lifecyclePolicy keeps the three newest images: storage is billed per GB.
const lifecyclePolicy = `{"rules":[{"rulePriority":1,"description":"keep the three newest images","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":3},"action":{"type":"expire"}}]}`

// pushImage makes sure the deployment's repository exists and holds img,
// and returns the image's reference by digest.
func (c *clients) pushImage(ctx context.Context, o Options, img v1.Image, step func(string, ...any)) (string, error) {
	repo, err := c.ensureRepository(ctx, o, step)
	if err != nil {
		return "", err
	}
	tok, err := c.ecr.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return "", explain(err, "ecr:GetAuthorizationToken", "")
	}
	if len(tok.AuthorizationData) == 0 {
		return "", errors.New("ECR gave no authorization token")
	}
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(tok.AuthorizationData[0].AuthorizationToken))
	user, pass, ok := strings.Cut(string(raw), ":")
	if err != nil || !ok {
		return "", errors.New("ECR gave an authorization token that is not user:password")
	}
	ref, pushed, err := image.Push(ctx, img, repo+":"+imageTag, &authn.Basic{Username: user, Password: pass})
	if err != nil {
		return "", err
	}
	if pushed {
		step("pushed the image %s", ref)
	} else {
		step("the image is already in the repository (%s)", ref)
	}
	return ref, nil
}

// ensureRepository creates the deployment's repository if it does not
// exist, with a policy that lets the deployment's Lambda function pull from
// it and a lifecycle policy that keeps it small, and returns its URI.
func (c *clients) ensureRepository(ctx context.Context, o Options, step func(string, ...any)) (string, error) {
	name := o.repository()
	var uri, arn string
	out, err := c.ecr.CreateRepository(ctx, &ecr.CreateRepositoryInput{
		RepositoryName:     aws.String(name),
		ImageTagMutability: ecrtypes.ImageTagMutabilityMutable,
		// Basic scanning is free, and finds known vulnerabilities in the
		// image's files (there are few: one binary).
		ImageScanningConfiguration: &ecrtypes.ImageScanningConfiguration{ScanOnPush: true},
		Tags:                       []ecrtypes.Tag{{Key: aws.String("fluidity"), Value: aws.String(o.Name)}},
	})
	var exists *ecrtypes.RepositoryAlreadyExistsException
	switch {
	case errors.As(err, &exists):
		d, err := c.ecr.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{name}})
		if err != nil {
			return "", explain(err, "ecr:DescribeRepositories", "")
		}
		if len(d.Repositories) == 0 {
			return "", fmt.Errorf("the ECR repository %s exists but cannot be described", name)
		}
		uri, arn = aws.ToString(d.Repositories[0].RepositoryUri), aws.ToString(d.Repositories[0].RepositoryArn)
	case err != nil:
		return "", explain(err, "ecr:CreateRepository", "")
	default:
		uri, arn = aws.ToString(out.Repository.RepositoryUri), aws.ToString(out.Repository.RepositoryArn)
		step("created the image repository %s", uri)
	}
	account := strings.Split(arn, ":")[4]
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Sid":"LambdaPull","Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},`+
		`"Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"],`+
		`"Condition":{"StringLike":{"aws:sourceArn":"arn:%s:lambda:%s:%s:function:%s"}}}]}`,
		strings.Split(arn, ":")[1], c.region, account, o.Name)
	if _, err := c.ecr.SetRepositoryPolicy(ctx, &ecr.SetRepositoryPolicyInput{RepositoryName: aws.String(name), PolicyText: aws.String(policy)}); err != nil {
		return "", explain(err, "ecr:SetRepositoryPolicy", "")
	}
	if _, err := c.ecr.PutLifecyclePolicy(ctx, &ecr.PutLifecyclePolicyInput{RepositoryName: aws.String(name), LifecyclePolicyText: aws.String(lifecyclePolicy)}); err != nil {
		return "", explain(err, "ecr:PutLifecyclePolicy", "")
	}
	return uri, nil
}
