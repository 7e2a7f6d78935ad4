package awsfake

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"fluidity/internal/awsconfig"
)

const (
	defaultRegion  = "us-east-1"
	defaultAccount = "111122223333"

	// signatureMaxSkew is how far a header-signed request's X-Amz-Date may
	// be from the server's clock at AWS.
	signatureMaxSkew = 5 * time.Minute

	ec2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"
	ec2Version   = "2016-11-15"
)

// Cloud is a fake of ECS, EC2, SSM Parameter Store, Secrets Manager, the
// ECS task metadata endpoint v4 and one Lambda function URL. See the
// package documentation for what it checks and what it does not model.
type Cloud struct {
	// URL is the endpoint of ecs, ec2, ssm and secretsmanager,
	// http://127.0.0.1:PORT. The task metadata endpoint lives under it too.
	URL string
	// FunctionURL is the function URL, http://127.0.0.1:PORT2/, on its own
	// listener, so request paths are "/wake", "/query"…
	FunctionURL string
	// Region and Account are CloudConfig's, defaults filled in.
	Region, Account string

	tb     testing.TB        // immutable after NewCloud
	cfg    CloudConfig       // immutable after NewCloud; defaults filled in
	srv    *httptest.Server  // immutable after NewCloud
	fnSrv  *httptest.Server  // immutable after NewCloud
	regSrv *httptest.Server  // immutable after NewCloud; the registry behind ECR
	client *awsconfig.Client // immutable after NewCloud; Config's, its idle connections closed by Close
	urlID  string            // immutable after NewCloud; the function URL's ID
	vpcID  string            // immutable after NewCloud

	closeOnce sync.Once
	life      context.Context    // immutable after NewCloud; canceled by Close, releasing WaitTasks, watchers and Invoke calls
	endLife   context.CancelFunc // immutable after NewCloud

	// wg counts the goroutines that launch, stop and watch containers.
	// Add is called only with mu held and shut false.
	wg sync.WaitGroup

	mu             sync.Mutex
	shut           bool                    // guarded by mu; set by Close: no goroutine starts and no timer acts after it
	changed        chan struct{}           // guarded by mu; closed and replaced when a task changes
	identities     map[string]identity     // guarded by mu; by access key ID
	clusters       map[string]bool         // guarded by mu; by name
	taskDefs       map[string][]int        // guarded by mu; family → revisions, ascending
	subnets        map[string]int          // guarded by mu; subnet ID → index, its CIDR being 10.0.<index>.0/24
	groups         map[string]bool         // guarded by mu; security group IDs
	tasks          []*task                 // guarded by mu; oldest first
	byID           map[string]*task        // guarded by mu; by task ID
	tokens         map[string]*runToken    // guarded by mu; RunTask client tokens
	enis           map[string]*task        // guarded by mu; attached ENIs by ID
	params         map[string]*parameter   // guarded by mu; by name
	secrets        map[string]*secret      // guarded by mu; by name
	faults         map[string]*fault       // guarded by mu; by operation
	runFailure     string                  // guarded by mu
	startFailure   string                  // guarded by mu
	hold           bool                    // guarded by mu
	repos          map[string]*repository  // guarded by mu; ECR repositories by name
	registryTokens map[string]bool         // guarded by mu; tokens GetAuthorizationToken gave
	stacks         map[string]*stack       // guarded by mu; by name
	functions      map[string]*Function    // guarded by mu; Lambda functions stacks made, by name
	containerDefs  map[string]containerDef // guarded by mu; by family:revision
	failResources  map[string]string       // guarded by mu; stack resources to fail, by logical ID
	calls          []Call                  // guarded by mu
	seq            int                     // guarded by mu; numbers addresses
}

// CloudConfig configures a Cloud. A zero CloudConfig is valid.
type CloudConfig struct {
	// Region and Account are where the resources live. If empty,
	// us-east-1 and 111122223333 are used.
	Region, Account string

	// ProvisionTime is how long a new task stays PROVISIONING. If zero,
	// 50ms is used.
	ProvisionTime time.Duration
	// PendingTime is how long a task then stays PENDING before it is
	// RUNNING (plus the time Launch takes). If zero, 50ms is used.
	PendingTime time.Duration
	// StopTime is how long a task stays DEPROVISIONING once its desired
	// status is STOPPED and its container is gone, before it is STOPPED.
	// If zero, 50ms is used.
	StopTime time.Duration
	// StopTimeout is how long StopTask waits for a launched container to
	// exit after Container.Stop before it is considered killed. If zero,
	// 30s is used (ECS's default stopTimeout).
	StopTimeout time.Duration

	// Launch, if set, starts a task's container as the task leaves
	// PENDING (tests start a real server process here). It is called on
	// a goroutine of its own, without locks held, and must return: Close
	// waits for it. The task is RUNNING once Launch returns without error;
	// an error stops the task (stopCode TaskFailedToStart, stoppedReason
	// "CannotStartContainerError: <err>").
	Launch func(t Task) (Container, error)

	// Clock, if set, is the time the Cloud reports for what happens to
	// tasks (created, started, stopped), so a test can move it ahead
	// together with the clock of the code under test. Timers that move
	// tasks along and signature dates use the real time. If nil, time.Now
	// is used.
	Clock func() time.Time

	// StackStepTime is how long CloudFormation takes over each resource
	// of a stack. If zero, 5ms is used.
	StackStepTime time.Duration
	// LambdaConcurrency is the account's Lambda concurrency limit, which
	// GetAccountSettings reports. If zero, 1000 is used.
	LambdaConcurrency int

	// Invoke handles the function URL's invocations: the payload is the
	// JSON of an events.LambdaFunctionURLRequest (aws-lambda-go), the
	// result the function's response payload. An error is a function
	// error. ctx ends with the request or when the Cloud closes.
	// RuntimeAPI.Invoke fits. If nil, the function URL answers 502.
	Invoke func(ctx context.Context, payload []byte) ([]byte, error)
}

// APIError is an error a service answers, rendered in its protocol's
// error format. A zero Status means 400.
type APIError struct {
	Status        int
	Code, Message string
}

// Call is one API call the Cloud received.
type Call struct {
	Op          string // "ecs:RunTask", "lambda:InvokeFunctionUrl" for the function URL
	AccessKeyID string // from the signature, known or not
	Caller      string // ARN of the identity; empty if the signature was refused
	Status      int
	Body        []byte // request body
}

type fault struct {
	left int // calls the fault still applies to; 0 means until ClearFaults
	err  APIError
}

// apiError is an APIError with more members for a JSON error body.
type apiError struct {
	APIError
	extra map[string]any
}

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{APIError: APIError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}}
}

// reply is an HTTP response, built before it is recorded and written.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// NewCloud starts a Cloud that is closed, and its launched containers
// stopped, when tb's test ends.
func NewCloud(tb testing.TB, cfg CloudConfig) *Cloud {
	if cfg.Region == "" {
		cfg.Region = defaultRegion
	}
	if cfg.Account == "" {
		cfg.Account = defaultAccount
	}
	for _, d := range []*time.Duration{&cfg.ProvisionTime, &cfg.PendingTime, &cfg.StopTime} {
		if *d == 0 {
			*d = 50 * time.Millisecond
		}
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 30 * time.Second
	}
	c := &Cloud{
		Region:     cfg.Region,
		Account:    cfg.Account,
		tb:         tb,
		cfg:        cfg,
		client:     awsconfig.HTTPClient(),
		urlID:      randomString("abcdefghijklmnopqrstuvwxyz0123456789", 32),
		vpcID:      "vpc-" + randomHex(17),
		changed:    make(chan struct{}),
		identities: map[string]identity{},
		clusters:   map[string]bool{},
		taskDefs:   map[string][]int{},
		subnets:    map[string]int{},
		groups:     map[string]bool{},
		byID:       map[string]*task{},
		tokens:     map[string]*runToken{},
		enis:       map[string]*task{},
		params:     map[string]*parameter{},
		secrets:    map[string]*secret{},
		faults:     map[string]*fault{},

		repos:          map[string]*repository{},
		registryTokens: map[string]bool{},
		stacks:         map[string]*stack{},
		functions:      map[string]*Function{},
		containerDefs:  map[string]containerDef{},
		failResources:  map[string]string{},
	}
	if cfg.StackStepTime == 0 {
		c.cfg.StackStepTime = 5 * time.Millisecond
	}
	if cfg.LambdaConcurrency == 0 {
		c.cfg.LambdaConcurrency = 1000
	}
	c.life, c.endLife = context.WithCancel(context.Background())
	c.srv = httptest.NewServer(http.HandlerFunc(c.serveHTTP))
	c.fnSrv = httptest.NewServer(http.HandlerFunc(c.serveFunctionURL))
	c.URL = c.srv.URL
	c.FunctionURL = c.fnSrv.URL + "/"
	c.startRegistry()
	tb.Cleanup(c.Close)
	return c
}

// now is the time the Cloud reports for tasks.
func (c *Cloud) now() time.Time {
	if c.cfg.Clock != nil {
		return c.cfg.Clock()
	}
	return time.Now()
}

// Close shuts the servers down, waiting for their requests; stops the
// task timers; waits for Launch calls in progress; asks every launched
// container that has not exited to stop and waits for them to exit, at
// most StopTimeout. It is safe to call more than once.
func (c *Cloud) Close() {
	c.closeOnce.Do(c.close)
}

func (c *Cloud) close() {
	defer c.client.CloseIdleConnections()
	c.endLife()
	c.srv.Close()
	c.fnSrv.Close()
	c.regSrv.Close()

	c.mu.Lock()
	c.shut = true
	for _, t := range c.tasks {
		if t.timer != nil {
			t.timer.Stop()
			t.timer = nil
		}
	}
	c.mu.Unlock()
	c.wg.Wait() // no goroutine starts once shut is set

	var stop []func()
	var exited []<-chan struct{}
	c.mu.Lock()
	for _, t := range c.tasks {
		if t.ctr == nil || t.ctrGone {
			continue
		}
		if !t.stopAsked && t.ctr.Stop != nil {
			t.stopAsked = true
			stop = append(stop, t.ctr.Stop)
		}
		if t.ctr.Exited != nil {
			exited = append(exited, t.ctr.Exited)
		}
	}
	c.mu.Unlock()
	for _, f := range stop {
		f()
	}
	deadline := time.NewTimer(c.cfg.StopTimeout)
	defer deadline.Stop()
	for _, ch := range exited {
		select {
		case <-ch:
		case <-deadline.C:
			c.tb.Errorf("awsfake: a launched container did not exit within %v of Close", c.cfg.StopTimeout)
			return
		}
	}
}

// AddIdentity lets accessKeyID, signing with secretKey, call as arn. The
// account is taken from the ARN; a user ID is made up (AIDA… for a user,
// AROA…:session for an assumed role). Adding a key again replaces it.
func (c *Cloud) AddIdentity(accessKeyID, secretKey, arn string) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" {
		c.tb.Fatalf("awsfake: AddIdentity: %q is not an ARN", arn)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.identities[accessKeyID] = identity{secret: secretKey, arn: arn, account: parts[4], userID: userIDFor(parts[4], parts[5], arn)}
}

// userIDFor makes up the unique ID IAM would give a principal.
func userIDFor(account, resource, arn string) string {
	sum := sha256.Sum256([]byte(arn))
	id := base32.StdEncoding.EncodeToString(sum[:])[:17]
	switch {
	case resource == "root":
		return account
	case strings.HasPrefix(resource, "assumed-role/"):
		return "AROA" + id + ":" + resource[strings.LastIndex(resource, "/")+1:]
	case strings.HasPrefix(resource, "role/"):
		return "AROA" + id
	default:
		return "AIDA" + id
	}
}

// secretOf returns the secret key of accessKeyID, or a placeholder for an
// unknown key, whose calls are then refused as an unknown key's.
func (c *Cloud) secretOf(accessKeyID string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id, ok := c.identities[accessKeyID]; ok {
		return id.secret
	}
	return "unknown-key-secret"
}

// Env returns the environment, as KEY=VALUE, of a child process that
// calls the Cloud as accessKeyID: its credentials, the region, the
// endpoints of ecs, ec2, ssm and secretsmanager, and no shared config or
// instance metadata.
func (c *Cloud) Env(accessKeyID string) []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + accessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + c.secretOf(accessKeyID),
		"AWS_REGION=" + c.Region,
		"AWS_ENDPOINT_URL_ECS=" + c.URL,
		"AWS_ENDPOINT_URL_EC2=" + c.URL,
		"AWS_ENDPOINT_URL_SSM=" + c.URL,
		"AWS_ENDPOINT_URL_SECRETS_MANAGER=" + c.URL,
		"AWS_ENDPOINT_URL_CLOUDFORMATION=" + c.URL,
		"AWS_ENDPOINT_URL_ECR=" + c.URL,
		"AWS_ENDPOINT_URL_STS=" + c.URL,
		"AWS_ENDPOINT_URL_LAMBDA=" + c.URL,
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Config returns an SDK configuration that calls the Cloud as
// accessKeyID: static credentials, the region, BaseEndpoint URL, and no
// retries.
func (c *Cloud) Config(accessKeyID string) aws.Config {
	return aws.Config{
		Region:       c.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(accessKeyID, c.secretOf(accessKeyID), ""),
		BaseEndpoint: aws.String(c.URL),
		HTTPClient:   c.client,
		Retryer:      func() aws.Retryer { return aws.NopRetryer{} },
	}
}

// FailNext makes the next times calls of op ("ecs:RunTask",
// "ec2:DescribeNetworkInterfaces", "ssm:GetParameter",
// "lambda:InvokeFunctionUrl"…) answer e once their signature is verified.
// If times is 0, every call does until ClearFaults.
func (c *Cloud) FailNext(op string, times int, e APIError) {
	if e.Status == 0 {
		e.Status = http.StatusBadRequest
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults[op] = &fault{left: times, err: e}
}

// ClearFaults undoes every FailNext.
func (c *Cloud) ClearFaults() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.faults)
}

func (c *Cloud) takeFault(op string) *apiError {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.faults[op]
	if f == nil {
		return nil
	}
	if f.left > 0 {
		if f.left--; f.left == 0 {
			delete(c.faults, op)
		}
	}
	return &apiError{APIError: f.err}
}

// Calls returns every API call received so far, oldest first.
func (c *Cloud) Calls() []Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Clone(c.calls)
	for i := range out {
		out[i].Body = slices.Clone(out[i].Body)
	}
	return out
}

// CallCount is the number of calls of op received so far.
func (c *Cloud) CallCount(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, call := range c.calls {
		if call.Op == op {
			n++
		}
	}
	return n
}

func (c *Cloud) record(call Call) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, call)
}

// authenticate verifies a request's signature for service in the Cloud's
// region and returns the caller, or why it was refused.
func (c *Cloud) authenticate(r *http.Request, body []byte, service string) (identity, sigResult) {
	var id identity
	res := verifySigV4(r, body, sigRules{
		service: service,
		region:  c.Region,
		maxSkew: signatureMaxSkew,
		now:     time.Now(),
		secret: func(akid string) (string, bool) {
			c.mu.Lock()
			defer c.mu.Unlock()
			found, ok := c.identities[akid]
			id = found
			return found.secret, ok
		},
	})
	return id, res
}

// jsonService is a service speaking awsJson1_1.
type jsonService struct {
	name       string // the signing name, and the prefix of Call.Op
	messageKey string // "message" or "Message" in error bodies
	op         func(c *Cloud, op string) jsonOp
}

// jsonOp handles one operation: it decodes the request body and returns
// the value to encode as the response, or an error.
type jsonOp func(id identity, body []byte) (any, *apiError)

// jsonServices are by X-Amz-Target prefix.
var jsonServices = map[string]jsonService{
	"AmazonEC2ContainerServiceV20141113":   {name: "ecs", messageKey: "message", op: (*Cloud).ecsOp},
	"AmazonSSM":                            {name: "ssm", messageKey: "message", op: (*Cloud).ssmOp},
	"secretsmanager":                       {name: "secretsmanager", messageKey: "Message", op: (*Cloud).secretsOp},
	"AmazonEC2ContainerRegistry_V20150921": {name: "ecr", messageKey: "message", op: (*Cloud).ecrOp},
}

func (c *Cloud) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, metadataPrefix) {
		c.serveMetadata(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return
	}
	var call Call
	var rep reply
	switch target := r.Header.Get("X-Amz-Target"); {
	case len(body) > maxBody:
		rep = reply{status: http.StatusRequestEntityTooLarge}
	case target != "":
		prefix, op, _ := strings.Cut(target, ".")
		svc, ok := jsonServices[prefix]
		if !ok {
			rep = jsonError("message", errorf(400, "UnknownOperationException", ""))
			break
		}
		call, rep = c.serveJSON(svc, op, r, body)
	case r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded"):
		call, rep = c.serveQuery(r, body)
	case strings.HasPrefix(r.URL.Path, lambdaAccountSettingsPath):
		call, rep = c.serveLambdaAccountSettings(r, body)
	default:
		rep = reply{status: http.StatusNotFound}
	}
	if call.Op != "" {
		call.Status, call.Body = rep.status, body
		c.record(call)
	}
	write(w, rep)
}

func write(w http.ResponseWriter, rep reply) {
	for k, vs := range rep.header {
		w.Header()[k] = vs
	}
	w.WriteHeader(rep.status)
	w.Write(rep.body)
}

func (c *Cloud) serveJSON(svc jsonService, op string, r *http.Request, body []byte) (Call, reply) {
	call := Call{Op: svc.name + ":" + op}
	id, res := c.authenticate(r, body, svc.name)
	call.AccessKeyID = res.accessKeyID
	switch res.failure {
	case sigMissing:
		return call, jsonError(svc.messageKey, errorf(400, "MissingAuthenticationTokenException", "Missing Authentication Token"))
	case sigMalformed:
		return call, jsonError(svc.messageKey, errorf(400, "IncompleteSignatureException", "%s", res.message))
	case sigUnknownKey:
		return call, jsonError(svc.messageKey, errorf(400, "UnrecognizedClientException", "The security token included in the request is invalid."))
	case sigMismatch:
		return call, jsonError(svc.messageKey, errorf(400, "InvalidSignatureException", "%s", res.message))
	}
	call.Caller = id.arn
	handle := svc.op(c, op)
	if handle == nil {
		return call, jsonError(svc.messageKey, errorf(400, "UnknownOperationException", ""))
	}
	if e := c.takeFault(call.Op); e != nil {
		return call, jsonError(svc.messageKey, e)
	}
	out, e := handle(id, body)
	if e != nil {
		return call, jsonError(svc.messageKey, e)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return call, jsonError(svc.messageKey, errorf(500, "InternalFailure", "%v", err))
	}
	h := jsonHeader()
	return call, reply{status: http.StatusOK, header: h, body: b}
}

func jsonHeader() http.Header {
	return http.Header{
		"Content-Type":     {"application/x-amz-json-1.1"},
		"X-Amzn-Requestid": {newUUID()},
	}
}

func jsonError(messageKey string, e *apiError) reply {
	m := map[string]any{"__type": e.Code, messageKey: e.Message}
	for k, v := range e.extra {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	status := e.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	return reply{status: status, header: jsonHeader(), body: b}
}

// decode unmarshals a JSON request body into v.
func decode(body []byte, v any) *apiError {
	if len(body) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errorf(400, "SerializationException", "%v", err)
	}
	return nil
}

func (c *Cloud) serveEC2(r *http.Request, body []byte) (Call, reply) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return Call{}, ec2Error(errorf(400, "MalformedQueryString", "%v", err))
	}
	action := form.Get("Action")
	call := Call{Op: "ec2:" + action}
	id, res := c.authenticate(r, body, "ec2")
	call.AccessKeyID = res.accessKeyID
	switch res.failure {
	case sigMissing:
		return call, ec2Error(errorf(401, "MissingAuthenticationToken", "The request must contain either a valid (registered) AWS access key ID or X.509 certificate."))
	case sigMalformed:
		return call, ec2Error(errorf(400, "IncompleteSignature", "%s", res.message))
	case sigUnknownKey:
		return call, ec2Error(errorf(401, "AuthFailure", "AWS was not able to validate the provided access credentials"))
	case sigMismatch:
		return call, ec2Error(errorf(403, "SignatureDoesNotMatch", "%s", res.message))
	}
	call.Caller = id.arn
	if form.Get("Version") != ec2Version {
		return call, ec2Error(errorf(400, "InvalidAction", "The action %s is not valid for this web service.", action))
	}
	var handle func(form url.Values) (any, *apiError)
	switch action {
	case "DescribeNetworkInterfaces":
		handle = c.ec2DescribeNetworkInterfaces
	default:
		return call, ec2Error(errorf(400, "InvalidAction", "The action %s is not valid for this web service.", action))
	}
	if e := c.takeFault(call.Op); e != nil {
		return call, ec2Error(e)
	}
	out, e := handle(form)
	if e != nil {
		return call, ec2Error(e)
	}
	b, err := xml.Marshal(out)
	if err != nil {
		return call, ec2Error(errorf(500, "InternalError", "%v", err))
	}
	return call, reply{status: http.StatusOK, header: http.Header{"Content-Type": {"text/xml;charset=UTF-8"}}, body: append([]byte(xml.Header), b...)}
}

func ec2Error(e *apiError) reply {
	status := e.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	body := `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<Response><Errors><Error><Code>` + esc(e.Code) + `</Code><Message>` + esc(e.Message) +
		`</Message></Error></Errors><RequestID>` + newUUID() + `</RequestID></Response>`
	return reply{status: status, header: http.Header{"Content-Type": {"text/xml;charset=UTF-8"}}, body: []byte(body)}
}

// WaitTasks waits until cond holds for every task ever run, oldest first,
// and returns them; cond is called again each time a task changes. It
// fails when ctx ends or the Cloud closes.
func (c *Cloud) WaitTasks(ctx context.Context, cond func([]Task) bool) ([]Task, error) {
	for {
		c.mu.Lock()
		ts, ch := c.snapshotLocked(), c.changed
		c.mu.Unlock()
		if cond(ts) {
			return ts, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ts, fmt.Errorf("awsfake: wait for tasks: %w", ctx.Err())
		case <-c.life.Done():
			return ts, errors.New("awsfake: wait for tasks: cloud closed")
		}
	}
}

// changedLocked wakes WaitTasks.
func (c *Cloud) changedLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func randomHex(n int) string { return randomString("0123456789abcdef", n) }

func randomString(alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return string(b)
}

func newUUID() string {
	h := randomHex(32)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
