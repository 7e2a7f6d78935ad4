// Package iamauth verifies the IAM tokens agents send on CONNECT, on the
// exit side, and decides whether the identity they prove may pass.
//
// A token (see package iamtoken, which mints them) is Prefix followed by
// the unpadded base64url of a presigned STS GetCallerIdentity URL whose
// signature covers the ServerIDHeader header. The verifier sends that
// request to STS itself, with its own server ID in the header; STS checks
// the signature and says who signed it. This package does not import the
// AWS SDK: it only checks a URL, makes one GET and parses XML.
//
// # Checks, in order, and what each one stops
//
// Before any network I/O (parseToken):
//
//   - Size at most MaxTokenSize (4 KiB), before decoding: memory and CPU
//     abuse.
//   - Prefix and base64url: garbage, and tokens of other schemes.
//   - URL scheme https, no user information, no fragment, no port, path
//     exactly "/": URLs that are not a plain STS request.
//   - Host exactly sts.REGION.amazonaws.com (.amazonaws.com.cn for cn-
//     regions) for an accepted region: tokens naming a host an attacker
//     controls. The verifier never dials the token's host anyway; it dials
//     the configured endpoint of the region and only copies the host into
//     the Host header, so that the signature still matches (SSRF).
//   - Query keys: only Action, Version, X-Amz-Algorithm, X-Amz-Credential,
//     X-Amz-Date, X-Amz-Expires, X-Amz-Security-Token, X-Amz-SignedHeaders
//     and X-Amz-Signature, in that spelling, each once and case-
//     insensitively unique, one value each: extra parameters that make STS
//     run another action or reflect attacker data, and the duplicate-case
//     trick of CVE-2022-2385 (X-Amz-Credential plus x-amz-credential).
//   - Action=GetCallerIdentity, Version=2011-06-15,
//     X-Amz-Algorithm=AWS4-HMAC-SHA256: other STS actions whose answers
//     could be mistaken for an identity (Action=AssumeRole).
//   - X-Amz-Signature is 64 hex digits.
//   - Credential scope KEY/DAY/REGION/sts/aws4_request, DAY equal to
//     X-Amz-Date's day, REGION equal to the host's region: signatures for
//     another service or region.
//   - X-Amz-SignedHeaders exactly "host;x-fluidity-server-id": a token not
//     bound to a server could be replayed against this exit by any service
//     it was given to (cross-service replay). The verifier sends only these
//     headers to STS, so a token signing more could never verify.
//   - X-Amz-Date no more than MaxFutureSkew (1m) ahead and less than
//     MaxAge (5m) old, and not past X-Amz-Expires (1..900 when present):
//     replay of a captured token is limited to minutes, where STS alone
//     would accept it for 15.
//
// At STS (Verifier.ask):
//
//   - GET ENDPOINT/?QUERY where ENDPOINT is the configured endpoint of the
//     token's region and QUERY is the checked parameters re-encoded (what
//     was checked is exactly what is sent: no parser differential), with
//     Host set to the signed host and ServerIDHeader set to this exit's own
//     ServerID, never the client's: a token minted for another server fails
//     STS's signature check.
//   - Redirects are never followed; a time limit (Config.Timeout) bounds
//     the call.
//   - Status 200 is required. 4xx from STS (SignatureDoesNotMatch, expired,
//     unknown key) makes the token invalid, with STS's error code in the
//     reason; 429, 5xx, 3xx, timeouts and network errors are
//     ErrSTSUnavailable (503): the token was not judged.
//   - Content-Type must be text/xml (the verifier sends no Accept header, so
//     STS answers XML), the body is read through a 64 KiB limit and
//     rejected when larger, and it is parsed strictly: the document element
//     must be GetCallerIdentityResponse in the STS namespace, holding
//     exactly one GetCallerIdentityResult with exactly one Arn, UserId and
//     Account, with nothing around it but white space, comments and an XML
//     declaration. A
//     response forged inside another element (the reflected-content attack
//     on Vault, CVE-2020-16250) is rejected. A 200 that fails these checks
//     makes the token invalid rather than STS unavailable: STS never sends
//     such an answer to a real GetCallerIdentity request.
//   - The ARN must have six colon-separated parts, partition aws, aws-cn or
//     aws-us-gov, service iam or sts, a 12-digit account equal to Account.
//     An assumed-role session arn:aws:sts::ACCT:assumed-role/ROLE/SESSION
//     is canonicalized to arn:aws:iam::ACCT:role/ROLE; users, root and
//     federated users keep their ARN.
//
// Then authorization: the canonical identity must match Config.Allow, by
// account ID, by role (partition, account and role name; the role path is
// ignored because session ARNs do not carry it), or by exact ARN for users,
// root and federated users. Failing that is ErrNotAllowed (403).
//
// # Cache
//
// A verified identity is cached under the SHA-256 of its token until the
// token expires (X-Amz-Date plus MaxAge, or earlier per X-Amz-Expires), in
// a cache of Config.CacheSize entries that drops expired entries first and
// then those closest to expiry. A token already verified costs one hash and
// one map lookup; the allowlist is applied on each use, so identities that
// STS confirmed but Allow refuses are cached too and stay refused without
// STS calls. Failures are not cached.
//
// # Concurrency
//
// No lock is held while STS is called. Concurrent Verify calls for the same
// new token share one STS call, run by a goroutine the Verifier owns
// (Close waits for it); each caller waits for it bounded by its own
// context. A slow or blocked STS call therefore never delays tokens in the
// cache nor other new tokens.
//
// # Rate limiting
//
// VerifyFor takes a key naming the client (its certificate name) and
// applies Config.Limiter, a token bucket per key: each ErrInvalidToken or
// ErrNotAllowed failure uses one unit; while none is left, tokens not in
// the cache are refused with ErrTooManyFailures and status 429 Too Many
// Requests (not 407: a client should wait, not mint again) without any
// STS call. Missing tokens cost nothing and are not counted, nor are STS
// outages, which are not the client's fault.
//
// An STS call uses its unit when it starts, not when its answer comes: it
// is given back when STS confirms an allowed identity or cannot be asked.
// Counting after the answer let a client send many bad tokens at once and
// have each of them checked before the first failure was counted (2,000
// concurrent tokens caused 1,347 STS calls); counted at the start, a burst
// costs at most Burst calls.
//
// # Bounds on calls in flight
//
// At most Config.MaxInFlight STS calls (64) are in flight at once, and at
// most Config.MaxInFlightPerClient (4) for one VerifyFor key. A new token
// beyond them is refused at once with ErrBusy: status 429 for the client's
// own bound, 503 for the exit's, both with RetryAfter. An agent sends one
// token at a time, and concurrent callers with the same token share one
// call and count one failure, so neither bound is met in normal use.
package iamauth
