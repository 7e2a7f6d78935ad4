// Package awsfake is an in-process fake of AWS STS for tests, in the spirit
// of net/http/httptest: the real AWS SDK and the IAM token verifier talk to
// it over loopback HTTP.
//
// It answers GetCallerIdentity for the identities a test adds, both as a
// presigned GET (the query-signed form IAM tokens carry) and as the
// header-signed POST the SDK sends by default. Every request's SigV4
// signature is recomputed with the SDK's own signer
// (github.com/aws/aws-sdk-go-v2/aws/signer/v4) from the secret key of the
// identity named in the credential, using the request's Host header, so a
// tampered parameter, header, host or date fails exactly as at STS: 403
// with an STS XML error body.
//
// # Wire shape
//
// Responses are the awsQuery XML STS sends, with Content-Type text/xml.
// The fake always answers XML, even to Accept: application/json (STS
// would answer JSON then); the verifier and the SDK both read XML.
// Presigned requests are refused 15 minutes after their X-Amz-Date, as at
// STS, whatever X-Amz-Expires says. Session tokens
// (X-Amz-Security-Token) are accepted as signed, not checked against the
// access key.
//
// # Faults
//
// SetFault switches on an error or attack mode: a blocked or delayed
// answer, 500, a 302 redirect, a wrong content type, a GetCallerIdentity
// response forged inside another element, or an oversized body. Requests
// lists what was asked, for assertions such as "STS was called once";
// InFlight and WaitInFlight let a test synchronise with blocked requests.
package awsfake
