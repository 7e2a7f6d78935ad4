package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/smithy-go"
)

// explain turns an SDK error of call into one that says what to do.
func explain(err error, call, hint string) error {
	if hint != "" {
		hint = "; " + hint
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w%s", call, err, hint)
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return fmt.Errorf("%s could not reach AWS: %v; check the region (--region) and the network%s", call, err, hint)
	}
	code, msg := ae.ErrorCode(), ae.ErrorMessage()
	switch {
	case strings.Contains(code, "AccessDenied") || code == "UnauthorizedOperation" || code == "AuthorizationError":
		return fmt.Errorf("the AWS identity in use may not call %s (%s: %s); deploying needs permission to create IAM roles, "+
			"ECS, Lambda, ECR, SSM and CloudFormation resources: use an identity with AdministratorAccess, "+
			"or give it the deployer policy in docs/aws.md%s", call, code, msg, hint)
	case code == "ExpiredToken" || code == "ExpiredTokenException" || code == "RequestExpired":
		return fmt.Errorf("the AWS credentials have expired (%s); log in again (aws sso login) and deploy again%s", msg, hint)
	case code == "InvalidClientTokenId" || code == "UnrecognizedClientException" || code == "SignatureDoesNotMatch":
		return fmt.Errorf("AWS does not recognise the credentials in use (%s: %s); check AWS_PROFILE / --profile%s", code, msg, hint)
	case code == "OptInRequired":
		return fmt.Errorf("the region is not enabled for this account (%s); enable it or choose another with --region%s", msg, hint)
	}
	return fmt.Errorf("%s failed: %s: %s%s", call, code, msg, hint)
}
