// Package iamtoken mints the IAM tokens an agent sends to the exit.
//
// A token is iamauth.Prefix ("fluidity-iam-v1.") followed by the unpadded
// base64url encoding of a presigned STS GetCallerIdentity URL for the
// agent's region, https://sts.REGION.amazonaws.com/?Action=…, whose
// signature covers the iamauth.ServerIDHeader header set to the exit's
// server ID. Whoever holds the token can ask STS who signed it, but only
// with that header value, so an exit with another server ID cannot replay
// it elsewhere. The exit checks it with package iamauth.
//
// Credentials come from the standard AWS chain (environment, shared
// profiles including SSO, container and instance roles); New checks that
// they and a region are present and says how to fix it when not.
//
// # Caching and concurrency
//
// Source.Token returns the current token while it is younger than
// Config.Refresh. After that, the first caller starts minting a new one in
// the background and callers keep receiving the current token until it is
// Config.Lifetime old; only callers with no usable token wait, each bounded
// by its own context. At most one mint runs at a time, and no lock is held
// while it runs: presigning may call the credential provider, which can do
// network I/O (SSO, instance metadata).
package iamtoken
