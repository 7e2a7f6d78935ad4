package controlplane

import (
	"context"
	"errors"
	"net/http"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"fluidity/internal/controlapi"
)

// awsError turns an AWS SDK error into the *controlapi.Error an agent
// gets: which call failed, what AWS said, and what to do about it.
func awsError(err error) error {
	var ce *controlapi.Error
	if errors.As(err, &ce) {
		return ce
	}
	call := "AWS"
	var oe *smithy.OperationError
	if errors.As(err, &oe) {
		call = strings.ToLower(oe.ServiceID) + ":" + oe.OperationName
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return controlapi.Errorf(http.StatusGatewayTimeout, controlapi.CodeTimeout, "%s did not answer in time; try again", call)
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return controlapi.Errorf(http.StatusServiceUnavailable, controlapi.CodeUnavailable, "%s could not be reached: %v; try again", call, err)
	}
	said := ae.ErrorCode()
	if m := ae.ErrorMessage(); m != "" {
		said += ": " + m
	}
	switch code := ae.ErrorCode(); {
	case code == "AccessDeniedException" || code == "AccessDenied" || code == "UnauthorizedOperation" ||
		code == "UnauthorizedException" || code == "UnrecognizedClientException" || code == "AuthFailure":
		return controlapi.Errorf(http.StatusBadGateway, controlapi.CodePermission,
			"the control plane may not call %s (%s); its role's policy is missing a permission: run 'fluidity aws deploy' again to restore it", call, said)
	case code == "ThrottlingException" || code == "Throttling" || code == "RequestLimitExceeded" || code == "TooManyRequestsException":
		return controlapi.Errorf(http.StatusTooManyRequests, controlapi.CodeThrottled, "AWS is throttling %s (%s); try again in a moment", call, said)
	case code == "ClusterNotFoundException":
		return controlapi.Errorf(http.StatusBadGateway, controlapi.CodeBadConfig,
			"the exit's ECS cluster does not exist (%s); run 'fluidity aws deploy' to create it", said)
	case code == "InvalidParameterException" || code == "ClientException" || strings.HasPrefix(code, "Invalid"):
		return controlapi.Errorf(http.StatusBadGateway, controlapi.CodeBadConfig,
			"%s refused the deployment's settings (%s); check the subnets, security groups and task definition, or run 'fluidity aws deploy' again", call, said)
	case code == "PlatformUnknownException" || code == "PlatformTaskDefinitionIncompatibilityException" || code == "BlockedException":
		return controlapi.Errorf(http.StatusBadGateway, controlapi.CodeAWS, "%s refused: %s", call, said)
	case ae.ErrorFault() == smithy.FaultServer || isServerStatus(err):
		return controlapi.Errorf(http.StatusServiceUnavailable, controlapi.CodeUnavailable, "%s failed on AWS's side (%s); try again", call, said)
	}
	return controlapi.Errorf(http.StatusBadGateway, controlapi.CodeAWS, "%s refused: %s", call, said)
}

func isServerStatus(err error) bool {
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() >= 500
}
