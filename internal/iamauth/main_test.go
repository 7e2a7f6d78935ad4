package iamauth_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"go.uber.org/goleak"

	"fluidity/internal/awsfake"
	"fluidity/internal/iamauth"
	"fluidity/internal/iamtoken"
)

func TestMain(m *testing.M) {
	// Keep the machine's AWS settings (a CA bundle, profiles, IMDS) out.
	awsfake.IsolateEnvironment()
	goleak.VerifyTestMain(m)
}

const (
	serverID = "exit-test"
	region   = "eu-west-1"
	stsHost  = "sts.eu-west-1.amazonaws.com"
	account  = "111122223333"
)

// principal is a test identity known to the fake STS.
type principal struct {
	key, secret, arn, account, userID string
}

var (
	agentRole = principal{"AKIDAGENTROLE001", "secret-role", "arn:aws:sts::111122223333:assumed-role/agent/i-0abc", account, "AROAAGENT:i-0abc"}
	devUser   = principal{"AKIDDEVUSER00001", "secret-user", "arn:aws:iam::111122223333:user/team/dev", account, "AIDADEV"}
	outsider  = principal{"AKIDOUTSIDER0001", "secret-out", "arn:aws:sts::444455556666:assumed-role/other/x", "444455556666", "AROAOTHER:x"}
)

// env is a fake STS and a verifier pointed at it.
type env struct {
	fake *awsfake.STS
	v    *iamauth.Verifier
}

func newEnv(t testing.TB, mods ...func(*iamauth.Config)) *env {
	t.Helper()
	fake := awsfake.NewServer(t)
	fake.RequireSignedHeader(iamauth.ServerIDHeader)
	for _, p := range []principal{agentRole, devUser, outsider} {
		fake.AddIdentity(p.key, p.secret, p.arn, p.account, p.userID)
	}
	cfg := iamauth.Config{
		ServerID:  serverID,
		Endpoints: map[string]string{region: fake.URL},
		Allow:     []string{"arn:aws:iam::111122223333:role/agent", "arn:aws:iam::111122223333:user/team/dev"},
	}
	for _, m := range mods {
		m(&cfg)
	}
	v, err := iamauth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return &env{fake: fake, v: v}
}

// mint makes a token with the agent's code, for p, bound to id, signed at.
func mint(t testing.TB, p principal, id string, at time.Time) string {
	t.Helper()
	s, err := iamtoken.New(context.Background(), iamtoken.Config{
		ServerID: id,
		AWS: &aws.Config{Region: region, Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: p.key, SecretAccessKey: p.secret}, nil
		})},
		Now: func() time.Time { return at },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tok, err := s.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// wrap makes a token of a raw URL.
func wrap(rawURL string) string {
	return iamauth.Prefix + base64.RawURLEncoding.EncodeToString([]byte(rawURL))
}

// unwrap returns the URL inside a token.
func unwrap(t testing.TB, tok string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, iamauth.Prefix))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// presign signs an arbitrary URL as a presigned STS request for p, with
// the given headers signed, so that attacks fail on the verifier's checks
// rather than on a bad signature.
func presign(t testing.TB, p principal, rawURL string, headers map[string]string, signRegion string, at time.Time) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	u, _, err := v4.NewSigner().PresignHTTP(context.Background(), aws.Credentials{AccessKeyID: p.key, SecretAccessKey: p.secret},
		req, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "sts", signRegion, at)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// serverHeader is the server-ID header, signed with serverID.
var serverHeader = map[string]string{iamauth.ServerIDHeader: serverID}

func withQuery(rawURL, extra string) string {
	u, _ := url.Parse(rawURL)
	u.RawQuery += "&" + extra
	return u.String()
}
