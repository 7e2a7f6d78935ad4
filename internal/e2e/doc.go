// Package e2e tests fluidity from the outside: it builds the fluidity
// binary, runs the exit server, the agent and 'fluidity up' as separate
// processes on loopback, and drives them with real clients — curl where curl
// can speak the protocol, and small hand-written Go clients for WebSocket,
// raw CONNECT and SOCKS5 streams.
//
// The package holds tests only. They need curl on PATH and skip with a
// message when it is missing. With -short the tests that move 100 MB bodies
// are skipped and the others move smaller bodies.
//
// Every origin the processes reach (plain HTTP, HTTPS, WebSocket and raw TCP
// targets) runs inside the test process on 127.0.0.1, so each exit is started
// with --allow-private unless a test is about the egress policy itself.
//
// The IAM tests run a fake STS (package awsfake, which checks SigV4
// signatures with the AWS SDK's signer) in the test process too: exits reach
// it through --iam-sts-endpoint, and agents and 'fluidity token' sign with
// static keys given in their environment, from which the machine's own AWS
// settings are removed.
package e2e
