package awsconfig_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"go.uber.org/goleak"

	"fluidity/internal/awsconfig"
	"fluidity/internal/awsfake"
)

func TestMain(m *testing.M) {
	awsfake.IsolateEnvironment()
	goleak.VerifyTestMain(m)
}

// TestLargeResponsesArriveWhole makes many calls whose answers are longer
// than the transport's read buffer, to a server as quick as loopback: with
// the SDK's own client some fail with "use of closed network connection"
// (most often under -race); with this package's, none may.
func TestLargeResponsesArriveWhole(t *testing.T) {
	c := awsfake.NewCloud(t, awsfake.CloudConfig{})
	c.AddIdentity("AKIDTEST", "secret", "arn:aws:iam::111122223333:user/alice")
	c.AddCluster("c")
	c.AddTaskDefinition("exit:1")
	c.AddSubnet("subnet-1")
	c.SetHold(true) // no task goes anywhere: only the answers matter
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_REGION", c.Region)
	t.Setenv("AWS_ENDPOINT_URL_ECS", c.URL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := awsconfig.Load(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cfg.HTTPClient.(*awsconfig.Client).CloseIdleConnections()
	// No retries: a retry would hide a failed call.
	client := ecs.NewFromConfig(cfg, func(o *ecs.Options) { o.Retryer = aws.NopRetryer{} })
	for i := range 300 {
		out, err := client.RunTask(ctx, &ecs.RunTaskInput{
			Cluster: aws.String("c"), TaskDefinition: aws.String("exit"), LaunchType: types.LaunchTypeFargate, Count: aws.Int32(10),
			NetworkConfiguration: &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{Subnets: []string{"subnet-1"}}},
		})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if len(out.Tasks) != 10 {
			t.Fatalf("call %d: %d tasks", i, len(out.Tasks))
		}
	}
}

func TestAMissingProfileIsNamed(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "config")
	if err := os.WriteFile(conf, []byte("[profile work]\nregion = eu-west-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", conf)
	_, err := awsconfig.Load(context.Background(), "wrok")
	if err == nil || !strings.Contains(err.Error(), `"wrok"`) || !strings.Contains(err.Error(), "--aws-profile") {
		t.Fatalf("Load of a missing profile: %v", err)
	}
	cfg, err := awsconfig.Load(context.Background(), "work")
	if err != nil || cfg.Region != "eu-west-1" {
		t.Fatalf("Load(work): region %q, %v", cfg.Region, err)
	}
}

// TestACustomCABundleIsKept loads with AWS_CA_BUNDLE set, as on corporate
// networks whose proxy re-signs TLS: the SDK configures its own client for
// it, which the race's fix must wrap rather than replace.
func TestACustomCABundleIsKept(t *testing.T) {
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(bundle, []byte(testCA), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CA_BUNDLE", bundle)
	t.Setenv("AWS_REGION", "eu-west-1")
	cfg, err := awsconfig.Load(context.Background(), "")
	if err != nil {
		t.Fatalf("Load with a CA bundle: %v", err)
	}
	if _, ok := cfg.HTTPClient.(*awsconfig.Client); !ok {
		t.Fatalf("HTTP client %T, want the race-safe client", cfg.HTTPClient)
	}
}

// testCA is a self-signed CA certificate, only ever parsed.
const testCA = `-----BEGIN CERTIFICATE-----
MIIBVTCB+6ADAgECAgEBMAoGCCqGSM49BAMCMBIxEDAOBgNVBAMTB3Rlc3QgQ0Ew
HhcNMjYwMTAxMDAwMDAwWhcNNDYwMTAxMDAwMDAwWjASMRAwDgYDVQQDEwd0ZXN0
IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEdS8+pz6iVGe73PjrmldoyU1Y
RTzPB123lBISTBhgKmsh3nKebBGDKa5ecZffuTtDP5KV7tJ3vnYOJUOpv2GCr6NC
MEAwDgYDVR0PAQH/BAQDAgIEMA8GA1UdEwEB/wQFMAMBAf8wHQYDVR0OBBYEFEVG
8Q/jV9Cc9A6VCDViUaAfkvaOMAoGCCqGSM49BAMCA0kAMEYCIQC/GfW8NglZaQ/3
de5wXJd3eBfTXlJSsXAO9Wc5RC4apwIhAJ/qF711AzxkJO1gvOhf8eg9zSvkmFq5
1WCpW+u+LI6Q
-----END CERTIFICATE-----
`
