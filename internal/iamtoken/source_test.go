package iamtoken_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
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
	akid   = "AKIDTOKEN0000001"
	secret = "token-secret"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// provider is a credentials provider a test can block: while gate is set,
// Retrieve announces itself on entered and waits for gate to close. (One
// presign retrieves credentials more than once, so mints are counted by
// blocked entries, not calls.)
type provider struct {
	entered chan struct{} // buffered; receives once per blocked Retrieve
	expires time.Time     // if set, credentials expire then

	mu   sync.Mutex
	gate chan struct{} // guarded by mu
}

func newProvider() *provider { return &provider{entered: make(chan struct{}, 1000)} }

func (p *provider) block() (release func()) {
	g := make(chan struct{})
	p.mu.Lock()
	p.gate = g
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		p.gate = nil
		p.mu.Unlock()
		close(g)
	}
}

func (p *provider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	p.mu.Lock()
	g := p.gate
	p.mu.Unlock()
	if g != nil {
		p.entered <- struct{}{}
		select {
		case <-g:
		case <-ctx.Done():
			return aws.Credentials{}, ctx.Err()
		}
	}
	c := aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret, Source: "test"}
	if !p.expires.IsZero() {
		c.CanExpire, c.Expires = true, p.expires
	}
	return c, nil
}

func newSource(t *testing.T, p aws.CredentialsProvider, c *clock) *iamtoken.Source {
	t.Helper()
	s, err := iamtoken.New(context.Background(), iamtoken.Config{
		ServerID: "exit-1",
		AWS:      &aws.Config{Region: "eu-west-1", Credentials: p},
		Now:      c.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// decode returns the presigned URL inside a token.
func decode(t *testing.T, tok string) *url.URL {
	t.Helper()
	enc, ok := strings.CutPrefix(tok, iamauth.Prefix)
	if !ok {
		t.Fatalf("token %.40q lacks prefix %q", tok, iamauth.Prefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestNewChecksAtStart(t *testing.T) {
	expired := newProvider()
	expired.expires = time.Now().Add(-time.Hour)
	for _, tc := range []struct {
		name string
		cfg  iamtoken.Config
		want error
	}{
		{"no server ID is refused", iamtoken.Config{AWS: &aws.Config{Region: "eu-west-1", Credentials: newProvider()}}, iamtoken.ErrNoServerID},
		{"no region is refused", iamtoken.Config{ServerID: "x", AWS: &aws.Config{Credentials: newProvider()}}, iamtoken.ErrNoRegion},
		{"no region in the standard chain is refused", iamtoken.Config{ServerID: "x"}, iamtoken.ErrNoRegion},
		{"no credentials are refused", iamtoken.Config{ServerID: "x", AWS: &aws.Config{Region: "eu-west-1"}}, iamtoken.ErrNoCredentials},
		{"no credentials in the standard chain are refused", iamtoken.Config{ServerID: "x", Region: "eu-west-1"}, iamtoken.ErrNoCredentials},
		{"expired credentials are refused", iamtoken.Config{ServerID: "x", AWS: &aws.Config{Region: "eu-west-1", Credentials: expired}}, iamtoken.ErrExpiredCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := iamtoken.New(ctx, tc.cfg)
			if err == nil {
				s.Close()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v; want %v", err, tc.want)
			}
		})
	}
}

func TestNewUsesEnvironmentCredentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", akid)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_REGION", "us-east-2")
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1") // must not leak into tokens
	s, err := iamtoken.New(context.Background(), iamtoken.Config{ServerID: "exit-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tok, err := s.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if u := decode(t, tok); u.Host != "sts.us-east-2.amazonaws.com" || !strings.HasPrefix(u.Query().Get("X-Amz-Credential"), akid+"/") {
		t.Errorf("token URL %s; want host sts.us-east-2.amazonaws.com and key %s", u, akid)
	}
}

func TestTokenFormat(t *testing.T) {
	c := newClock()
	tok, err := newSource(t, newProvider(), c).Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	u := decode(t, tok)
	q := u.Query()
	if u.Scheme != "https" || u.Host != "sts.eu-west-1.amazonaws.com" || u.Path != "/" {
		t.Errorf("URL = %s; want https://sts.eu-west-1.amazonaws.com/", u)
	}
	for k, want := range map[string]string{
		"Action":              "GetCallerIdentity",
		"Version":             "2011-06-15",
		"X-Amz-Algorithm":     "AWS4-HMAC-SHA256",
		"X-Amz-Credential":    akid + "/" + c.Now().Format("20060102") + "/eu-west-1/sts/aws4_request",
		"X-Amz-Date":          c.Now().Format("20060102T150405Z"),
		"X-Amz-SignedHeaders": "host;" + strings.ToLower(iamauth.ServerIDHeader),
	} {
		if got := q.Get(k); got != want {
			t.Errorf("%s = %q; want %q", k, got, want)
		}
	}
	if len(tok) > iamauth.MaxTokenSize {
		t.Errorf("token is %d bytes; exits accept %d", len(tok), iamauth.MaxTokenSize)
	}
}

func TestTokenVerifiesAtSTS(t *testing.T) {
	fake := awsfake.NewServer(t)
	fake.AddIdentity(akid, secret, "arn:aws:iam::123456789012:user/dev", "123456789012", "AIDADEV")
	fake.RequireSignedHeader(iamauth.ServerIDHeader)
	fake.Now = time.Now
	tok, err := newSource(t, newProvider(), &clock{t: time.Now()}).Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	u := decode(t, tok)
	for _, tc := range []struct {
		name     string
		serverID string
		status   int
	}{
		{"the exit it was minted for gets the identity", "exit-1", http.StatusOK},
		{"another exit fails the signature", "exit-2", http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, fake.URL+"/?"+u.RawQuery, nil)
			req.Host = u.Host
			req.Header.Set(iamauth.ServerIDHeader, tc.serverID)
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d; want %d", resp.StatusCode, tc.status)
			}
		})
	}
}

func TestTokenIsReusedThenReplaced(t *testing.T) {
	c := newClock()
	p := newProvider()
	s := newSource(t, p, c)
	ctx := context.Background()
	first, _ := s.Token(ctx)

	c.Advance(3 * time.Minute)
	if tok, _ := s.Token(ctx); tok != first {
		t.Error("a 3-minute-old token was replaced; want it reused")
	}

	c.Advance(70 * time.Second) // 4m10s: past Refresh, within Lifetime
	if tok, _ := s.Token(ctx); tok != first {
		t.Error("past Refresh, Token did not hand out the still-usable token while minting")
	}
	second := waitForNewToken(t, s, first)
	if got := decode(t, second).Query().Get("X-Amz-Date"); got != c.Now().Format("20060102T150405Z") {
		t.Errorf("new token dated %s; want %s", got, c.Now().Format("20060102T150405Z"))
	}

	c.Advance(5 * time.Minute) // past Lifetime: the caller waits for a mint
	third, err := s.Token(ctx)
	if err != nil || third == second {
		t.Errorf("past Lifetime got the old token (err %v); want a new one", err)
	}
}

// waitForNewToken polls Token until the background mint has replaced old.
func waitForNewToken(t *testing.T, s *iamtoken.Source, old string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		tok, err := s.Token(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if tok != old {
			return tok
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("no new token after 5s")
	return ""
}

func TestCallersWithUsableTokenNeverWait(t *testing.T) {
	c := newClock()
	p := newProvider()
	s := newSource(t, p, c)
	first, err := s.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	release := p.block()
	c.Advance(4*time.Minute + 10*time.Second) // due for refresh, still usable

	// Many callers while the one mint is stuck in the credential provider:
	// every one returns the cached token at once.
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			tok, err := s.Token(ctx)
			if err != nil || tok != first {
				t.Errorf("Token = %.20q, %v; want the cached token at once", tok, err)
			}
		}()
	}
	wg.Wait()
	select {
	case <-p.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no mint reached the credential provider")
	}
	if n := len(p.entered); n != 0 {
		t.Errorf("%d more mints reached the credential provider; want 1 mint at a time", n)
	}

	// Past Lifetime a caller must wait, and its context bounds the wait.
	c.Advance(30 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Token(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Token with no usable token and a stuck mint = %v; want DeadlineExceeded", err)
	}
	if n := len(p.entered); n != 0 {
		t.Errorf("%d more mints reached the credential provider; want still 1", n)
	}

	release()
	tok, err := s.Token(context.Background())
	if err != nil || tok == first {
		t.Errorf("after release Token = %v; want a new token", err)
	}
}

func TestConcurrentCallersShareOneMint(t *testing.T) {
	p := newProvider()
	s := newSource(t, p, newClock())
	release := p.block()
	const n = 200
	toks := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var err error
			if toks[i], err = s.Token(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	<-p.entered
	release()
	wg.Wait()
	if got := len(p.entered); got != 0 {
		t.Errorf("%d more mints reached the credential provider for %d concurrent callers; want 1 mint", got, n)
	}
	for i := range toks {
		if toks[i] != toks[0] {
			t.Fatalf("caller %d got a different token", i)
		}
	}
}

func TestCloseEndsAStuckMint(t *testing.T) {
	p := newProvider()
	s, err := iamtoken.New(context.Background(), iamtoken.Config{
		ServerID: "exit-1", AWS: &aws.Config{Region: "eu-west-1", Credentials: p},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.block()()
	done := make(chan error)
	go func() {
		_, err := s.Token(context.Background())
		done <- err
	}()
	<-p.entered
	s.Close() // cancels the mint and waits for it
	if err := <-done; err == nil {
		t.Error("Token during Close succeeded; want an error")
	}
	if _, err := s.Token(context.Background()); !errors.Is(err, iamtoken.ErrClosed) {
		t.Errorf("Token after Close = %v; want ErrClosed", err)
	}
}
