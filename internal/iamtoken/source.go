package iamtoken

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"fluidity/internal/awsconfig"
	"fluidity/internal/iamauth"
)

// Errors New wraps, to branch on with errors.Is. Their messages say the fix.
var (
	ErrNoServerID         = errors.New("no IAM server ID")
	ErrNoRegion           = errors.New("no AWS region")
	ErrNoCredentials      = errors.New("no usable AWS credentials")
	ErrExpiredCredentials = errors.New("AWS credentials expired")
	ErrClosed             = errors.New("iam token source closed") // from Token after Close
)

// Config configures a Source. ServerID is required; a region must come
// from Region or the AWS configuration.
type Config struct {
	// Region is the STS region to presign for. If empty, the AWS
	// configuration's region (AWS_REGION, the profile) is used.
	Region string

	// Profile is the shared-configuration profile to load. If empty,
	// AWS_PROFILE or the default profile is used.
	Profile string

	// ServerID is the exit's configured server ID (its iam.server_id).
	ServerID string

	// AWS, if set, is used instead of loading the standard configuration
	// (Profile is then ignored). Tests use it to inject static credentials.
	AWS *aws.Config

	// Refresh is the age after which a new token is minted. If zero, 4m.
	Refresh time.Duration

	// Lifetime is the age after which a token is no longer handed out. If
	// zero, 4m30s. It must not exceed iamauth.MaxAge (5m), the age at
	// which exits refuse it.
	Lifetime time.Duration

	// MintTimeout bounds one mint, credential refresh included. If zero, 30s.
	MintTimeout time.Duration

	// Now is the clock, used both as the signing time and for the token's
	// age. If nil, time.Now is used.
	Now func() time.Time
}

// Source mints and caches tokens. It is safe for concurrent use.
type Source struct {
	// Immutable after New.
	presign     *sts.PresignClient
	host        string // the STS host tokens must name
	refresh     time.Duration
	lifetime    time.Duration
	mintTimeout time.Duration
	now         func() time.Time

	ctx    context.Context // ends a mint in progress; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the mint in progress

	mu     sync.Mutex
	token  string    // guarded by mu; the current token, or ""
	signed time.Time // guarded by mu; the current token's signing time
	flight *flight   // guarded by mu; the mint in progress, or nil
	closed bool      // guarded by mu
}

// flight is one mint, shared by every caller waiting for it.
type flight struct {
	done  chan struct{} // closed by mint when token and err are set
	token string
	err   error
}

// New loads and checks the AWS configuration. It fails, saying how to fix
// it, when there is no region, no credentials, or expired credentials.
// ctx bounds the loading and the credential check.
func New(ctx context.Context, cfg Config) (*Source, error) {
	if cfg.ServerID == "" {
		return nil, fmt.Errorf("iam: %w; set iam.server_id to the exit's configured server ID", ErrNoServerID)
	}
	s := &Source{
		refresh:     cfg.Refresh,
		lifetime:    cfg.Lifetime,
		mintTimeout: cfg.MintTimeout,
		now:         cfg.Now,
	}
	if s.refresh == 0 {
		s.refresh = 4 * time.Minute
	}
	if s.lifetime == 0 {
		s.lifetime = 4*time.Minute + 30*time.Second
	}
	if s.mintTimeout == 0 {
		s.mintTimeout = 30 * time.Second
	}
	if s.refresh <= 0 || s.lifetime < s.refresh || s.lifetime > iamauth.MaxAge {
		return nil, fmt.Errorf("iam: token refresh %v and lifetime %v must satisfy 0 < refresh ≤ lifetime ≤ %v", s.refresh, s.lifetime, iamauth.MaxAge)
	}
	if s.now == nil {
		s.now = time.Now
	}

	var awsCfg aws.Config
	if cfg.AWS != nil {
		awsCfg = cfg.AWS.Copy()
	} else {
		var err error
		if awsCfg, err = awsconfig.Load(ctx, cfg.Profile); err != nil {
			return nil, fmt.Errorf("iam: %w", err)
		}
	}
	if cfg.Region != "" {
		awsCfg.Region = cfg.Region
	}
	if awsCfg.Region == "" {
		return nil, fmt.Errorf("iam: %w; pass --aws-region or set AWS_REGION", ErrNoRegion)
	}
	if err := checkCredentials(ctx, awsCfg, cfg.Profile, s.now()); err != nil {
		return nil, err
	}

	client := sts.NewFromConfig(awsCfg, func(o *sts.Options) {
		// The token must name the regional STS host, whatever endpoint
		// overrides (AWS_ENDPOINT_URL*, FIPS, dual-stack) say.
		o.BaseEndpoint = nil
		o.EndpointOptions.UseFIPSEndpoint = aws.FIPSEndpointStateDisabled
		o.EndpointOptions.UseDualStackEndpoint = aws.DualStackEndpointStateDisabled
		o.APIOptions = append(o.APIOptions, smithyhttp.SetHeaderValue(iamauth.ServerIDHeader, cfg.ServerID))
	})
	s.presign = sts.NewPresignClient(client, func(po *sts.PresignOptions) {
		po.Presigner = clockPresigner{signer: v4.NewSigner(), now: s.now}
	})
	s.host = "sts." + awsCfg.Region + ".amazonaws.com"
	if len(awsCfg.Region) > 3 && awsCfg.Region[:3] == "cn-" {
		s.host += ".cn"
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// checkCredentials retrieves the credentials once, so that a missing or
// expired login is reported at start with its fix.
func checkCredentials(ctx context.Context, awsCfg aws.Config, profile string, now time.Time) error {
	fix := "set AWS_PROFILE or pass --aws-profile, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
	if profile != "" {
		fix = "run: aws sso login --profile " + profile + " (for SSO profiles), or check the profile's credentials"
	}
	if awsCfg.Credentials == nil {
		return fmt.Errorf("iam: %w: none configured; %s", ErrNoCredentials, fix)
	}
	creds, err := awsCfg.Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("iam: %w: %w; %s", ErrNoCredentials, err, fix)
	}
	if !creds.HasKeys() {
		return fmt.Errorf("iam: %w: no access key; %s", ErrNoCredentials, fix)
	}
	if creds.CanExpire && !creds.Expires.After(now) {
		return fmt.Errorf("iam: %w: those from %s at %s; %s", ErrExpiredCredentials, creds.Source, creds.Expires.Format(time.RFC3339), fix)
	}
	return nil
}

// clockPresigner signs at the Source's clock rather than the SDK's, so a
// token's X-Amz-Date and its age agree.
type clockPresigner struct {
	signer *v4.Signer
	now    func() time.Time
}

func (p clockPresigner) PresignHTTP(ctx context.Context, creds aws.Credentials, r *http.Request, payloadHash, service, region string, _ time.Time, optFns ...func(*v4.SignerOptions)) (string, http.Header, error) {
	return p.signer.PresignHTTP(ctx, creds, r, payloadHash, service, region, p.now(), optFns...)
}

// Close ends a mint in progress and waits for it. Token then fails with
// ErrClosed.
func (s *Source) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

// Token returns a token for the exit. It never waits while a usable token
// is cached; otherwise it waits, bounded by ctx, for the one mint in
// progress.
func (s *Source) Token(ctx context.Context) (string, error) {
	now := s.now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return "", ErrClosed
	}
	tok, age := s.token, now.Sub(s.signed)
	usable := tok != "" && age >= -time.Minute && age < s.lifetime
	if usable && age < s.refresh {
		s.mu.Unlock()
		return tok, nil
	}
	f := s.flight
	if f == nil {
		f = &flight{done: make(chan struct{})}
		s.flight = f
		s.wg.Add(1)
		go s.mint(f)
	}
	s.mu.Unlock()

	if usable {
		return tok, nil
	}
	select {
	case <-f.done:
		return f.token, f.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// mint presigns one token and publishes it to f's waiters and the cache.
func (s *Source) mint(f *flight) {
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(s.ctx, s.mintTimeout)
	tok, signed, err := s.presignToken(ctx)
	cancel()

	s.mu.Lock()
	if err == nil {
		s.token, s.signed = tok, signed
	}
	s.flight = nil
	s.mu.Unlock()
	f.token, f.err = tok, err
	close(f.done)
}

func (s *Source) presignToken(ctx context.Context) (string, time.Time, error) {
	req, err := s.presign.PresignGetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("iam: presign GetCallerIdentity: %w", err)
	}
	u, err := url.Parse(req.URL)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("iam: presigned URL: %w", err)
	}
	if u.Scheme != "https" || u.Host != s.host {
		return "", time.Time{}, fmt.Errorf("iam: presigned URL names %s://%s, not https://%s", u.Scheme, u.Host, s.host)
	}
	signed, err := time.Parse("20060102T150405Z", u.Query().Get("X-Amz-Date"))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("iam: presigned URL has no valid X-Amz-Date")
	}
	tok := iamauth.Prefix + base64.RawURLEncoding.EncodeToString([]byte(req.URL))
	if len(tok) > iamauth.MaxTokenSize {
		return "", time.Time{}, fmt.Errorf("iam: token is %d bytes, more than exits accept (%d); the session token is too long", len(tok), iamauth.MaxTokenSize)
	}
	return tok, signed, nil
}
