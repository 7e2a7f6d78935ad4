// Package awsconfig loads the AWS SDK configuration the way every Fluidity
// command that calls AWS does: the standard chain (environment, shared
// files and profiles including SSO, container and instance roles), an
// optional profile, and an HTTP client that keeps clear of a race between
// the SDK and net/http.
//
// # The race
//
// The SDK closes a request's body as soon as the response has arrived.
// net/http, having written a body of known length, then checks it for
// bytes past that length, with WriteTo when the body has it; a body the SDK
// has closed answers WriteTo with an error, and the transport then closes
// the connection under the response, which fails with "use of closed
// network connection" if the response is longer than the transport's read
// buffer (4 KiB: a DescribeTasks of a few tasks). It takes a response that
// arrives before the check, which a network round trip makes unlikely and
// loopback, or a fast link inside a region, does not. Request bodies that
// hide WriteTo are checked with Read, which a closed body answers with a
// clean io.EOF.
package awsconfig

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
)

// Load loads the configuration, from profile if it is not empty (else
// AWS_PROFILE or the default profile). Its error names the profile and the
// fix.
func Load(ctx context.Context, profile string) (aws.Config, error) {
	return load(ctx, profile)
}

// LoadVia is Load with every connection the SDK makes (credentials, SSO,
// STS, the services) dialed by dial, such as an upstream proxy's dialer;
// the environment's proxy settings are then dial's to apply, not the SDK's.
func LoadVia(ctx context.Context, profile string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (aws.Config, error) {
	client := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.Proxy = nil
		tr.DialContext = dial
	})
	return load(ctx, profile, config.WithHTTPClient(client))
}

func load(ctx context.Context, profile string, opts ...func(*config.LoadOptions) error) (aws.Config, error) {
	if profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		if profile != "" {
			return aws.Config{}, fmt.Errorf("load aws profile %q: %w; check the name in ~/.aws/config or pass another --aws-profile", profile, err)
		}
		return aws.Config{}, fmt.Errorf("load aws configuration: %w", err)
	}
	// Wrapped after loading: the SDK configures its own client (a custom
	// CA bundle, AWS_CA_BUNDLE, needs its concrete type).
	cfg.HTTPClient = wrap(cfg.HTTPClient)
	return cfg, nil
}

// Client is an SDK HTTP client with request bodies that hide io.WriterTo
// (see the package comment).
type Client struct{ base aws.HTTPClient }

// HTTPClient returns a new Client over the SDK's default client.
func HTTPClient() *Client { return wrap(nil) }

// wrap returns base, or the SDK's default client if base is nil, as a
// Client.
func wrap(base aws.HTTPClient) *Client {
	if base == nil {
		base = awshttp.NewBuildableClient()
	}
	return &Client{base}
}

// Do sends req as the SDK's client does.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		r := *req
		r.Body = struct{ io.ReadCloser }{req.Body}
		req = &r
	}
	return c.base.Do(req)
}

// CloseIdleConnections closes the client's idle connections.
func (c *Client) CloseIdleConnections() {
	switch b := c.base.(type) {
	case interface{ GetTransport() *http.Transport }:
		b.GetTransport().CloseIdleConnections()
	case interface{ CloseIdleConnections() }:
		b.CloseIdleConnections()
	}
}
