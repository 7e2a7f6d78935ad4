package cli

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"

	"fluidity/internal/awsfake"
	"fluidity/internal/iamauth"
)

// isolateAWS removes the machine's AWS settings (a CA bundle, profiles,
// instance metadata) for the test and sets env instead.
func isolateAWS(t *testing.T, env ...string) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "") // restored when the test ends
			os.Unsetenv(k)
		}
	}
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

const (
	allowedKey    = "AKIDALLOWED00001"
	allowedSecret = "allowed-secret"
	otherKey      = "AKIDOTHER0000001"
	otherSecret   = "other-secret"
	allowedRole   = "arn:aws:iam::111122223333:role/agent"
)

func newFakeSTS(t *testing.T) *awsfake.STS {
	sts := awsfake.NewServer(t)
	sts.AddIdentity(allowedKey, allowedSecret, "arn:aws:sts::111122223333:assumed-role/agent/laptop", "111122223333", "AROAAGENT:laptop")
	sts.AddIdentity(otherKey, otherSecret, "arn:aws:sts::111122223333:assumed-role/other/laptop", "111122223333", "AROAOTHER:laptop")
	return sts
}

// token mints a token with the agent's code for the given static keys.
func token(t *testing.T, key, secret, serverID string) string {
	t.Helper()
	isolateAWS(t, "AWS_ACCESS_KEY_ID="+key, "AWS_SECRET_ACCESS_KEY="+secret, "AWS_REGION=us-east-1")
	src := agentTokens(context.Background(), agentIAMConfig{Enabled: true, ServerID: serverID}, nil, slog.New(slog.DiscardHandler))
	if src == nil {
		t.Fatal("no token source from static credentials")
	}
	defer src.Close()
	h, err := bearerHeader(src)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tok, ok := iamauth.ParseBearer(h.Get("Proxy-Authorization"))
	if !ok {
		t.Fatalf("header %q is not a bearer token", h.Get("Proxy-Authorization"))
	}
	return tok
}

func TestIAMAuthorizer(t *testing.T) {
	sts := newFakeSTS(t)
	good := token(t, allowedKey, allowedSecret, "exit-1")
	other := token(t, otherKey, otherSecret, "exit-1")
	foreign := token(t, allowedKey, allowedSecret, "exit-2")

	for _, tc := range []struct {
		name     string
		required bool
		header   []string // Proxy-Authorization values
		identity string
		want     error // nil, or the sentinel
		status   int
	}{
		{"a stream without a token passes on its certificate when none is required", false, nil, "", nil, 0},
		{"a stream without a token is asked for one when required", true, nil, "", iamauth.ErrNoToken, 407},
		{"an allowed role passes as its role ARN", true, []string{"Bearer " + good}, allowedRole, nil, 0},
		{"an allowed role passes where tokens are optional", false, []string{"Bearer " + good}, allowedRole, nil, 0},
		{"a role outside the allowlist is refused", true, []string{"Bearer " + other}, "", iamauth.ErrNotAllowed, 403},
		{"a token for another server is refused", true, []string{"Bearer " + foreign}, "", iamauth.ErrInvalidToken, 407},
		{"a bad token is refused even where tokens are optional", false, []string{"Bearer fluidity-iam-v1.garbage"}, "", iamauth.ErrInvalidToken, 407},
		{"basic credentials are refused even where tokens are optional", false, []string{"Basic dXNlcjpwYXNz"}, "", iamauth.ErrInvalidToken, 407},
		{"two Proxy-Authorization fields are refused", true, []string{"Bearer " + good, "Bearer " + good}, "", iamauth.ErrInvalidToken, 407},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultServerIAM()
			cfg.Required = tc.required
			cfg.ServerID = "exit-1"
			cfg.Allow = []string{allowedRole}
			cfg.STSEndpoint = map[string]string{"us-east-1": sts.URL}
			if err := cfg.validate(); err != nil {
				t.Fatal(err)
			}
			v, err := cfg.verifier(&iamauth.FailureLimiter{})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			a := &iamAuthorizer{v: v, required: tc.required}
			h := http.Header{}
			for _, val := range tc.header {
				h.Add("Proxy-Authorization", val)
			}
			id, err := a.authorize(context.Background(), "client", h)
			if id != tc.identity || !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got identity %q, error %v; want %q, %v", id, err, tc.identity, tc.want)
			}
			var ie *iamauth.Error
			if tc.want != nil && (!errors.As(err, &ie) || ie.StatusCode() != tc.status) {
				t.Fatalf("error %v: want status %d", err, tc.status)
			}
		})
	}
}

func TestIAMConfigurationErrorsNameTheKeys(t *testing.T) {
	certs := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"required without an allowlist", []string{"--iam-required"}, []string{"iam.required", "iam.allow", "--iam-allow"}},
		{"an allowlist without regions", []string{"--iam-allow", "111122223333"}, []string{"iam.regions", "--iam-regions"}},
		{"an endpoint for a region not accepted", []string{"--iam-allow", "111122223333", "--iam-regions", "us-east-1", "--iam-sts-endpoint", "eu-west-1=http://127.0.0.1:1"}, []string{"iam.sts_endpoint", "eu-west-1"}},
		{"a malformed allowlist entry", []string{"--iam-allow", "arn:aws:s3:::bucket", "--iam-regions", "us-east-1"}, []string{"iam.allow"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(t, nil, append([]string{"server", "--certs", certs}, tc.args...)...)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr %q", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not name %q", stderr, w)
				}
			}
		})
	}
}

func TestTokenCommand(t *testing.T) {
	t.Run("prints one token from the environment's credentials", func(t *testing.T) {
		isolateAWS(t, "AWS_ACCESS_KEY_ID="+allowedKey, "AWS_SECRET_ACCESS_KEY="+allowedSecret, "AWS_REGION=us-east-1")
		code, stdout, stderr := run(t, nil, "token", "--iam-server-id", "exit-1")
		if code != 0 || !strings.HasPrefix(stdout, iamauth.Prefix) || strings.Count(stdout, "\n") != 1 {
			t.Fatalf("exit %d, stdout %q, stderr %q: want one token line", code, stdout, stderr)
		}
	})
	t.Run("without a region says how to give one", func(t *testing.T) {
		isolateAWS(t, "AWS_ACCESS_KEY_ID="+allowedKey, "AWS_SECRET_ACCESS_KEY="+allowedSecret)
		code, stdout, stderr := run(t, nil, "token")
		if code != 1 || stdout != "" || !strings.Contains(stderr, "--aws-region") {
			t.Fatalf("exit %d, stdout %q, stderr %q: want failure naming --aws-region", code, stdout, stderr)
		}
	})
	t.Run("without credentials says how to give them", func(t *testing.T) {
		isolateAWS(t, "AWS_REGION=us-east-1")
		code, stdout, stderr := run(t, nil, "token")
		if code != 1 || stdout != "" || !strings.Contains(stderr, "AWS_ACCESS_KEY_ID") {
			t.Fatalf("exit %d, stdout %q, stderr %q: want failure saying how to configure credentials", code, stdout, stderr)
		}
	})
}
