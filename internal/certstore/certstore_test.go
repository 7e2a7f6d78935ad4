package certstore_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"go.uber.org/goleak"

	"fluidity/internal/awsfake"
	"fluidity/internal/certstore"
	"fluidity/internal/pki"
)

func TestMain(m *testing.M) {
	awsfake.IsolateEnvironment()
	goleak.VerifyTestMain(m)
}

const (
	exitKey    = "AKIDEXIT00000001"
	exitSecret = "exit-secret"
	exitRole   = "arn:aws:sts::111122223333:assumed-role/fluidity-exit-task/abc123"
)

// fixture is a Cloud, a certs init directory, its bundle and a Store that
// reads the Cloud as the exit's task role.
type fixture struct {
	cloud  *awsfake.Cloud
	dir    string
	bundle []byte
	store  *certstore.Store
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	c := awsfake.NewCloud(t, awsfake.CloudConfig{})
	c.AddIdentity(exitKey, exitSecret, exitRole)
	dir := filepath.Join(t.TempDir(), "certs")
	if err := pki.Init(pki.InitOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	bundle, err := pki.ServerBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{cloud: c, dir: dir, bundle: bundle, store: &certstore.Store{AWS: ptr(c.Config(exitKey))}}
}

// checkServesLeaf checks that the store's TLS configuration for uri
// presents the directory's server certificate.
func (f *fixture) checkServesLeaf(t *testing.T, uri string) {
	t.Helper()
	cfg, err := f.store.ServerConfig(t.Context(), uri)
	if err != nil {
		t.Fatal(err)
	}
	want, err := pki.ServerConfig(filepath.Join(f.dir, pki.ServerCertFile), filepath.Join(f.dir, pki.ServerKeyFile), filepath.Join(f.dir, pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Certificates) != 1 || !bytes.Equal(cfg.Certificates[0].Certificate[0], want.Certificates[0].Certificate[0]) {
		t.Fatalf("the configuration from %s does not present the server certificate of %s", uri, f.dir)
	}
	if cfg.ClientCAs == nil || !cfg.ClientCAs.Equal(want.ClientCAs) {
		t.Fatalf("the configuration from %s does not trust the CA of %s alone", uri, f.dir)
	}
}

func TestLoadsBundles(t *testing.T) {
	f := newFixture(t)

	t.Run("an SSM SecureString, decrypted", func(t *testing.T) {
		f.cloud.PutParameter("fluidity-exit", string(f.bundle), true)
		f.checkServesLeaf(t, "ssm://fluidity-exit")
		calls := f.cloud.Calls()
		last := calls[len(calls)-1]
		if last.Op != "ssm:GetParameter" || last.Caller != exitRole || !bytes.Contains(last.Body, []byte(`"WithDecryption":true`)) {
			t.Fatalf("last call %s as %q with %s, want ssm:GetParameter as the task role with decryption", last.Op, last.Caller, last.Body)
		}
	})
	t.Run("an SSM parameter with a path-style name", func(t *testing.T) {
		f.cloud.PutParameter("/fluidity/exit", string(f.bundle), true)
		f.checkServesLeaf(t, "ssm:///fluidity/exit")
	})
	t.Run("a secret by name", func(t *testing.T) {
		f.cloud.PutSecret("fluidity/exit", string(f.bundle))
		f.checkServesLeaf(t, "secretsmanager://fluidity/exit")
	})
	t.Run("a secret by ARN", func(t *testing.T) {
		out, err := secretsmanager.NewFromConfig(f.cloud.Config(exitKey)).GetSecretValue(t.Context(),
			&secretsmanager.GetSecretValueInput{SecretId: aws.String("fluidity/exit")})
		if err != nil {
			t.Fatal(err)
		}
		f.checkServesLeaf(t, "secretsmanager://"+*out.ARN)
	})
}

func TestLoadErrors(t *testing.T) {
	f := newFixture(t)
	f.cloud.PutParameter("oversized", string(f.bundle)+strings.Repeat("#", pki.MaxBundleSize), true)
	f.cloud.PutParameter("garbage", "hello", true)
	f.cloud.PutSecret("garbage", "-----BEGIN CERTIFICATE-----\nAAAA")
	denied := awsfake.APIError{Code: "AccessDeniedException", Message: "User: " + exitRole + " is not authorized to perform: ssm:GetParameter"}

	for _, tc := range []struct {
		name   string
		uri    string
		fault  string // an operation that fails with AccessDenied once
		want   error
		wantIn []string
	}{
		{"a missing parameter names itself, the region and the fix", "ssm:///fluidity/nope", "", certstore.ErrNotFound,
			[]string{`"/fluidity/nope"`, "us-east-1", "fluidity certs push ssm:///fluidity/nope"}},
		{"a missing secret names itself, the region and the fix", "secretsmanager://nope", "", certstore.ErrNotFound,
			[]string{`"nope"`, "us-east-1", "fluidity certs push secretsmanager://nope"}},
		{"a refused parameter names the permissions", "ssm://oversized", "ssm:GetParameter", certstore.ErrAccessDenied,
			[]string{"AccessDeniedException", "task role needs ssm:GetParameter", "kms:Decrypt"}},
		{"a refused secret names the permissions", "secretsmanager://garbage", "secretsmanager:GetSecretValue", certstore.ErrAccessDenied,
			[]string{"task role needs secretsmanager:GetSecretValue"}},
		{"a value over 4096 bytes is refused", "ssm://oversized", "", pki.ErrBundleTooLarge,
			[]string{"4096"}},
		{"a value that is not PEM is refused", "ssm://garbage", "", pki.ErrNotPEM,
			[]string{"no PEM blocks"}},
		{"a secret cut off is refused", "secretsmanager://garbage", "", pki.ErrNotPEM,
			[]string{"cut off"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fault != "" {
				f.cloud.FailNext(tc.fault, 1, denied)
			}
			_, err := f.store.ServerConfig(t.Context(), tc.uri)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			for _, s := range append([]string{tc.uri}, tc.wantIn...) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

// TestFetchIsBounded points the store at an endpoint that never answers.
func TestFetchIsBounded(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	cfg := awsfake.NewCloud(t, awsfake.CloudConfig{}).Config(exitKey)
	cfg.BaseEndpoint = aws.String(srv.URL)
	cfg.HTTPClient = srv.Client()
	store := &certstore.Store{AWS: &cfg, Timeout: 200 * time.Millisecond}
	start := time.Now()
	_, err := store.Fetch(t.Context(), certstore.Location{Scheme: certstore.SSM, Name: "fluidity-exit"})
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "within 200ms") {
		t.Fatalf("error %v after %v, want a deadline of 200ms", err, took)
	}
	if took > 5*time.Second {
		t.Fatalf("the fetch took %v with a 200ms timeout", took)
	}
}

func TestNoRegion(t *testing.T) {
	store := &certstore.Store{AWS: &aws.Config{}}
	_, err := store.Fetch(t.Context(), certstore.Location{Scheme: certstore.SSM, Name: "x"})
	if err == nil || !strings.Contains(err.Error(), "AWS_REGION") {
		t.Fatalf("error %v, want one saying to set AWS_REGION", err)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		uri     string
		want    certstore.Location
		wantErr string
	}{
		{"ssm://fluidity-exit", certstore.Location{Scheme: "ssm", Name: "fluidity-exit"}, ""},
		{"ssm:///fluidity/exit", certstore.Location{Scheme: "ssm", Name: "/fluidity/exit"}, ""},
		{"secretsmanager://fluidity/exit", certstore.Location{Scheme: "secretsmanager", Name: "fluidity/exit"}, ""},
		{"secretsmanager://arn:aws:secretsmanager:us-east-1:111122223333:secret:fluidity-AbCdEf",
			certstore.Location{Scheme: "secretsmanager", Name: "arn:aws:secretsmanager:us-east-1:111122223333:secret:fluidity-AbCdEf"}, ""},
		{"s3://bucket/certs", certstore.Location{}, "ssm://NAME"},
		{"ssm://", certstore.Location{}, "names no ssm"},
		{"ssm:///", certstore.Location{}, "names no ssm"},
		{"ssm://fluidity exit", certstore.Location{}, "cannot hold"},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			got, err := certstore.Parse(tc.uri)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse = %v, %v; want an error saying %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want || got.String() != tc.uri {
				t.Fatalf("Parse = %+v (%s), %v; want %+v", got, got, err, tc.want)
			}
		})
	}
	if !certstore.IsURI("ssm://x") || certstore.IsURI(filepath.Join(os.TempDir(), "certs")) {
		t.Fatal("IsURI cannot tell a URI from a directory")
	}
}

func ptr[T any](v T) *T { return &v }
