// Package awsfake holds in-process fakes of the AWS services Fluidity
// uses, in the spirit of net/http/httptest: the real aws-sdk-go-v2 clients,
// real processes and the IAM token verifier talk to them over loopback
// HTTP, with endpoints redirected by BaseEndpoint or the SDK's
// AWS_ENDPOINT_URL_<SERVICE> variables. They aim to be faithful enough
// that code passing against them works against AWS: the wire shapes the
// SDK parses, the documented error codes, SigV4 verified per signing name,
// and state that moves over time.
//
// There are three fakes:
//
//   - STS answers GetCallerIdentity, presigned or header-signed.
//   - Cloud fakes ECS, EC2, SSM Parameter Store, Secrets Manager, the ECS
//     task metadata endpoint v4 and one Lambda function URL.
//   - RuntimeAPI fakes the Lambda Runtime API for real bootstrap processes.
//
// # Signatures
//
// Every request's SigV4 signature is recomputed with the SDK's own signer
// (github.com/aws/aws-sdk-go-v2/aws/signer/v4) from the secret key of the
// identity named in the credential, using the request's Host header and
// only the headers it says it signed. A tampered parameter, header, body,
// host or date fails as it does at AWS, and so does a signature for
// another signing name (sts, ecs, ec2, ssm, secretsmanager, lambda) or,
// for the Cloud, another region. Session tokens (X-Amz-Security-Token)
// are accepted as signed, not checked against the key. A client must sign
// the headers the SDK's signer signs; one that also signs User-Agent, for
// instance, is refused.
//
// Refusals take each protocol's shape: STS answers 403
// InvalidClientTokenId or SignatureDoesNotMatch in XML; ECS, SSM and
// Secrets Manager answer 400 UnrecognizedClientException or
// InvalidSignatureException in JSON, as those services do; EC2 answers 401
// AuthFailure or 403 SignatureDoesNotMatch in XML; the function URL
// answers 403 with Lambda's {"Message":"Forbidden. …"} body.
//
// # STS
//
// Responses are the awsQuery XML STS sends, with Content-Type text/xml.
// The fake always answers XML, even to Accept: application/json (STS
// would answer JSON then); the verifier and the SDK both read XML.
// Requests are refused 15 minutes after their X-Amz-Date, as presigned
// requests are at STS, whatever X-Amz-Expires says.
//
// SetFault switches on an error or attack mode: a blocked or delayed
// answer, 500, a 302 redirect, a wrong content type, a GetCallerIdentity
// response forged inside another element, or an oversized body. Requests
// lists what was asked, for assertions such as "STS was called once";
// InFlight and WaitInFlight let a test synchronise with blocked requests.
//
// # Cloud
//
// One listener (Cloud.URL) routes on the wire protocol: awsJson1_1 by
// X-Amz-Target for ECS (camelCase, timestamps as epoch seconds), SSM and
// Secrets Manager (PascalCase); ec2Query form bodies for EC2, answered in
// XML; and plain GETs under /ecs-metadata/v4/ for the task metadata
// endpoint, which needs no signature, as on ECS. The function URL has its
// own listener (Cloud.FunctionURL), with AWS_IAM auth.
//
// The operations are ECS RunTask, DescribeTasks, ListTasks, StopTask,
// TagResource, UntagResource and ListTagsForResource; EC2
// DescribeNetworkInterfaces; SSM GetParameter, PutParameter and
// DeleteParameter; Secrets Manager GetSecretValue, CreateSecret,
// PutSecretValue and DeleteSecret. Other operations answer
// UnknownOperationException (JSON) or InvalidAction (EC2). Every call is
// recorded with its caller in Calls.
//
// Requests are checked as the API reference documents: RunTask's cluster,
// task definition (family, family:revision or ARN), subnets and security
// groups must exist, with ECS's messages when they do not; Fargate needs
// an awsvpc network configuration and FARGATE or a FARGATE/FARGATE_SPOT
// capacity provider strategy; count, startedBy, clientToken, tags, reason,
// maxResults and the DescribeTasks list have ECS's limits. A repeated
// clientToken returns the tasks it started and starts nothing; with other
// parameters it is a ConflictException naming them. ListTasks pages at
// maxResults (100 by default), so callers must follow nextToken.
//
// Tasks move on timers, without polling: PROVISIONING (ProvisionTime),
// PENDING with the ENI attached (PendingTime, then Launch if set),
// RUNNING. StopTask sets the desired status at once, asks a launched
// container to stop, and the task is STOPPING until the container exits
// or StopTimeout passes, then DEPROVISIONING for StopTime, then STOPPED,
// its ENI deleted. A container exiting on its own stops its task
// (EssentialContainerExited). WaitTasks wakes on each change. SetHold,
// SetStartFailure, SetRunFailure, StopTaskAs and FailNext inject the
// failures a control plane must survive.
//
// # What the Cloud does not model
//
//   - IAM policies are not evaluated: any known identity may call
//     anything. Permission failures are injected with FailNext.
//   - There is no eventual consistency: each call sees every earlier one.
//     There is no throttling unless injected.
//   - ECS: Fargate only. A task definition is a name with one container,
//     "exit", of 256 CPU units and 512 MiB; there are no services,
//     container instances, placement or exec. A task uses its first
//     subnet, in availability zone <region>a. Stopped tasks stay listed
//     for the Cloud's lifetime (ECS forgets them after about an hour),
//     client tokens never expire, and only tasks can be tagged. With
//     Launch, an ENI has no public IP until the container is launched
//     (at AWS it has one once attached); with assignPublicIp DISABLED it
//     has none, whatever Container.PublicIP says.
//   - EC2: DescribeNetworkInterfaces only, of task ENIs, with a few
//     filters, in one page.
//   - SSM: no version history, labels or selectors, no KMS keys; a
//     SecureString read without decryption shows an opaque stand-in for
//     its ciphertext.
//   - Secrets Manager: SecretString only; no binary secrets, rotation or
//     replication. A secret is found by name or full ARN.
//   - Task metadata: the container and task documents only, no stats.
//   - Function URL: AWS_IAM auth and the BUFFERED invoke mode only; no
//     CORS, no response streaming. The domain name in the event is made
//     up; the host header is the one sent.
//
// # RuntimeAPI
//
// The RuntimeAPI serves /2018-06-01/runtime/invocation/next, …/{id}/response,
// …/{id}/error and /2018-06-01/runtime/init/error to any number of
// pollers; each Invoke goes to exactly one of them. Invoke returns the
// response payload, or a *FunctionError for an error report (also one
// sent as a response trailer, as aws-lambda-go does), for an
// initialisation error reported while no poller was free, and for a
// timeout (Type "Sandbox.Timedout"). The timeout counts from when a poller
// takes the invocation; a late answer is refused with 400, which ends an
// aws-lambda-go process much as Lambda resets a timed-out sandbox.
// Closing the RuntimeAPI answers pollers waiting in /next with 500, so
// their processes exit. There are no extensions or telemetry APIs and no
// response streaming.
package awsfake
