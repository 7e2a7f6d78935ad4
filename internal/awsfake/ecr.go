package awsfake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// lambdaAccountSettingsPath is Lambda's GetAccountSettings (REST JSON).
const lambdaAccountSettingsPath = "/2016-08-19/account-settings"

// serveLambdaAccountSettings answers Lambda's GetAccountSettings with the
// Cloud's concurrency limit.
func (c *Cloud) serveLambdaAccountSettings(r *http.Request, body []byte) (Call, reply) {
	call := Call{Op: "lambda:GetAccountSettings"}
	id, res := c.authenticate(r, body, "lambda")
	call.AccessKeyID = res.accessKeyID
	if res.failure != sigOK {
		return call, restError(errorf(403, "UnrecognizedClientException", "The security token included in the request is invalid."))
	}
	call.Caller = id.arn
	if e := c.takeFault(call.Op); e != nil {
		return call, restError(e)
	}
	limit := c.cfg.LambdaConcurrency
	b, _ := json.Marshal(map[string]any{
		"AccountLimit": map[string]any{"TotalCodeSize": 80530636800, "CodeSizeUnzipped": 262144000, "CodeSizeZipped": 52428800,
			"ConcurrentExecutions": limit, "UnreservedConcurrentExecutions": limit},
		"AccountUsage": map[string]any{"TotalCodeSize": 0, "FunctionCount": 0},
	})
	return call, reply{status: http.StatusOK, header: jsonHeader(), body: b}
}

func restError(e *apiError) reply {
	b, _ := json.Marshal(map[string]string{"Type": "User", "message": e.Message})
	h := jsonHeader()
	h.Set("X-Amzn-ErrorType", e.Code)
	return reply{status: e.Status, header: h, body: b}
}

// repository is an ECR repository.
type repository struct {
	name, arn, uri string
	created        time.Time
	policy         string
	lifecycle      string
}

var repoNamePattern = regexp.MustCompile(`^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$`)

// startRegistry starts the OCI registry that ECR's repositories live in.
// Pushes and pulls need the token GetAuthorizationToken gives, as Basic
// auth with the user AWS.
func (c *Cloud) startRegistry() {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	c.regSrv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		c.mu.Lock()
		good := ok && user == "AWS" && pass != "" && c.registryTokens[pass]
		c.mu.Unlock()
		if r.URL.Path == "/v2/" && !good {
			w.Header().Set("WWW-Authenticate", `Basic realm="https://`+c.RegistryHost()+`/",service="ecr.amazonaws.com"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		if !good {
			http.Error(w, `{"errors":[{"code":"DENIED","message":"Your authorization token has expired. Reauthenticate and try again."}]}`, http.StatusForbidden)
			return
		}
		reg.ServeHTTP(w, r)
	}))
}

// RegistryHost is the host:port of the registry behind ECR (the host of
// every repository URI).
func (c *Cloud) RegistryHost() string { return strings.TrimPrefix(c.regSrv.URL, "http://") }

type ecrRepositoryOut struct {
	RepositoryArn      string `json:"repositoryArn"`
	RegistryID         string `json:"registryId"`
	RepositoryName     string `json:"repositoryName"`
	RepositoryURI      string `json:"repositoryUri"`
	CreatedAt          *epoch `json:"createdAt"`
	ImageTagMutability string `json:"imageTagMutability"`
	EncryptionConfig   any    `json:"encryptionConfiguration"`
	ScanningConfig     any    `json:"imageScanningConfiguration"`
}

func (c *Cloud) repoOutLocked(r *repository) ecrRepositoryOut {
	return ecrRepositoryOut{
		RepositoryArn: r.arn, RegistryID: c.Account, RepositoryName: r.name, RepositoryURI: r.uri,
		CreatedAt: at(r.created), ImageTagMutability: "MUTABLE",
		EncryptionConfig: map[string]string{"encryptionType": "AES256"},
		ScanningConfig:   map[string]bool{"scanOnPush": false},
	}
}

// ecrOp returns the handler of an ECR operation, or nil.
func (c *Cloud) ecrOp(op string) jsonOp {
	switch op {
	case "CreateRepository":
		return c.ecrCreateRepository
	case "DescribeRepositories":
		return c.ecrDescribeRepositories
	case "DeleteRepository":
		return c.ecrDeleteRepository
	case "GetAuthorizationToken":
		return c.ecrGetAuthorizationToken
	case "SetRepositoryPolicy":
		return c.ecrSetRepositoryPolicy
	case "PutLifecyclePolicy":
		return c.ecrPutLifecyclePolicy
	}
	return nil
}

func repoNotFound(name, account string) *apiError {
	return errorf(400, "RepositoryNotFoundException", "The repository with name '%s' does not exist in the registry with id '%s'", name, account)
}

func (c *Cloud) ecrCreateRepository(_ identity, body []byte) (any, *apiError) {
	var in struct {
		RepositoryName string `json:"repositoryName"`
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	if len(in.RepositoryName) < 2 || len(in.RepositoryName) > 256 || !repoNamePattern.MatchString(in.RepositoryName) {
		return nil, errorf(400, "InvalidParameterException", "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression '%s''", repoNamePattern)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.repos[in.RepositoryName]; ok {
		return nil, errorf(400, "RepositoryAlreadyExistsException", "The repository with name '%s' already exists in the registry with id '%s'", in.RepositoryName, c.Account)
	}
	r := &repository{
		name: in.RepositoryName, created: c.now(),
		arn: fmt.Sprintf("arn:aws:ecr:%s:%s:repository/%s", c.Region, c.Account, in.RepositoryName),
		uri: c.RegistryHost() + "/" + in.RepositoryName,
	}
	c.repos[r.name] = r
	return map[string]any{"repository": c.repoOutLocked(r)}, nil
}

func (c *Cloud) ecrDescribeRepositories(_ identity, body []byte) (any, *apiError) {
	var in struct {
		RepositoryNames []string `json:"repositoryNames"`
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []ecrRepositoryOut{}
	names := in.RepositoryNames
	if len(names) == 0 {
		for n := range c.repos {
			names = append(names, n)
		}
	}
	for _, n := range names {
		r, ok := c.repos[n]
		if !ok {
			return nil, repoNotFound(n, c.Account)
		}
		out = append(out, c.repoOutLocked(r))
	}
	return map[string]any{"repositories": out}, nil
}

func (c *Cloud) ecrDeleteRepository(_ identity, body []byte) (any, *apiError) {
	var in struct {
		RepositoryName string `json:"repositoryName"`
		Force          bool   `json:"force"`
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.repos[in.RepositoryName]
	if !ok {
		return nil, repoNotFound(in.RepositoryName, c.Account)
	}
	delete(c.repos, in.RepositoryName)
	return map[string]any{"repository": c.repoOutLocked(r)}, nil
}

func (c *Cloud) ecrGetAuthorizationToken(_ identity, _ []byte) (any, *apiError) {
	token := randomString("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 64)
	c.mu.Lock()
	c.registryTokens[token] = true
	c.mu.Unlock()
	return map[string]any{"authorizationData": []map[string]any{{
		"authorizationToken": base64.StdEncoding.EncodeToString([]byte("AWS:" + token)),
		"expiresAt":          at(c.now().Add(12 * time.Hour)),
		"proxyEndpoint":      c.regSrv.URL,
	}}}, nil
}

func (c *Cloud) ecrSetRepositoryPolicy(_ identity, body []byte) (any, *apiError) {
	var in struct {
		RepositoryName string `json:"repositoryName"`
		PolicyText     string `json:"policyText"`
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	if !json.Valid([]byte(in.PolicyText)) {
		return nil, errorf(400, "InvalidParameterException", "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy provided'")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.repos[in.RepositoryName]
	if !ok {
		return nil, repoNotFound(in.RepositoryName, c.Account)
	}
	r.policy = in.PolicyText
	return map[string]any{"registryId": c.Account, "repositoryName": r.name, "policyText": r.policy}, nil
}

func (c *Cloud) ecrPutLifecyclePolicy(_ identity, body []byte) (any, *apiError) {
	var in struct {
		RepositoryName      string `json:"repositoryName"`
		LifecyclePolicyText string `json:"lifecyclePolicyText"`
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	if !json.Valid([]byte(in.LifecyclePolicyText)) {
		return nil, errorf(400, "InvalidParameterException", "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure'")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.repos[in.RepositoryName]
	if !ok {
		return nil, repoNotFound(in.RepositoryName, c.Account)
	}
	r.lifecycle = in.LifecyclePolicyText
	return map[string]any{"registryId": c.Account, "repositoryName": r.name, "lifecyclePolicyText": r.lifecycle}, nil
}
