// Package deploy sets up, updates and removes a Fluidity exit on demand in
// an AWS account, from the binary alone: no Docker, no AWS CLI.
//
// Deploy, in order: makes certificates if there are none; builds the exit's
// container image in-process (package image) and pushes it to an ECR
// repository it creates; stores the exit's CA, certificate and key as one
// SSM SecureString (or a Secrets Manager secret); creates or updates two
// CloudFormation stacks from the templates embedded here, waiting for each
// with progress — NAME-exit (network, cluster, task definition, roles, log
// group) and NAME-control (the Lambda function, its URL, the sweep
// schedule, the agent's policy); and writes the agent's configuration.
// Running it again changes only what changed: the image is pushed only if
// the registry lacks it, the parameter is written only if it differs, and
// an unchanged stack is reported as such.
//
// The control plane's Lambda function runs the same image as the exit (a
// container-image function, command "lambda"): one artifact to build and
// push, no bucket and no zip, and the function and the exit can never run
// different versions.
//
// Destroy removes what Deploy made, after a confirmation, and says what it
// left and why.
package deploy
