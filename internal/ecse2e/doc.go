// Package ecse2e tests, from the outside, the exit server's life as an ECS
// task: it builds the fluidity binary and runs 'fluidity server' as a
// process that stops by itself when idle, loads its certificates from SSM
// Parameter Store or Secrets Manager, and keeps the lease on its task.
//
// The AWS side is awsfake.Cloud in the test process: the exit's real SDK
// clients reach it through the AWS_ENDPOINT_URL_* variables of its
// environment, and its task metadata endpoint through
// ECS_CONTAINER_METADATA_URI_V4, as on ECS. The machine's own AWS settings
// are removed first. Clients are curl (which needs to be on PATH; the tests
// skip with a message without it) and small Go clients that hold streams
// open.
//
// The package holds tests only.
package ecse2e
