// Command bootstrap is a Lambda function for the RuntimeAPI's tests: it
// answers a function URL event with its path, and fails for /fail.
package main

import (
	"context"
	"errors"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

func handle(_ context.Context, ev events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error) {
	if ev.RawPath == "/fail" {
		return events.LambdaFunctionURLResponse{}, errors.New("asked to fail")
	}
	return events.LambdaFunctionURLResponse{StatusCode: 200, Body: "hello " + ev.RawPath}, nil
}

func main() { lambda.Start(handle) }
