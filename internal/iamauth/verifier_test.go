package iamauth_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"fluidity/internal/awsfake"
	"fluidity/internal/iamauth"
)

func TestVerifyReturnsCanonicalIdentity(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC().Truncate(time.Second)
	for _, tc := range []struct {
		name string
		p    principal
		want iamauth.Identity
	}{
		{"an assumed-role session is its role", agentRole,
			iamauth.Identity{ARN: "arn:aws:iam::111122223333:role/agent", Account: account, UserID: agentRole.userID, Expires: now.Add(iamauth.MaxAge)}},
		{"a user keeps its ARN", devUser,
			iamauth.Identity{ARN: devUser.arn, Account: account, UserID: devUser.userID, Expires: now.Add(iamauth.MaxAge)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := e.v.Verify(context.Background(), mint(t, tc.p, serverID, now))
			if err != nil {
				t.Fatal(err)
			}
			if id != tc.want {
				t.Errorf("identity = %+v; want %+v", id, tc.want)
			}
		})
	}
}

func TestCache(t *testing.T) {
	var mu sync.Mutex
	clock := time.Now().UTC().Truncate(time.Second)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	e := newEnv(t, func(c *iamauth.Config) { c.Now = now; c.CacheSize = 2 })
	ctx := context.Background()
	tok := mint(t, agentRole, serverID, now())

	verify := func(tok string, wantCalls int) {
		t.Helper()
		if _, err := e.v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if n := e.fake.RequestCount(); n != wantCalls {
			t.Fatalf("STS got %d requests; want %d", n, wantCalls)
		}
	}
	t.Run("a known token costs no STS call", func(t *testing.T) {
		verify(tok, 1)
		verify(tok, 1)
		advance(4 * time.Minute)
		verify(tok, 1)
	})
	t.Run("an expired token is checked again and refused", func(t *testing.T) {
		advance(time.Minute)
		_, err := e.v.Verify(ctx, tok)
		checkErr(t, err, iamauth.ErrInvalidToken, 407)
		if n := e.fake.RequestCount(); n != 1 {
			t.Fatalf("STS got %d requests; want 1", n)
		}
	})
	t.Run("a full cache drops the token closest to expiry", func(t *testing.T) {
		a := mint(t, agentRole, serverID, now().Add(-3*time.Second))
		b := mint(t, agentRole, serverID, now().Add(-2*time.Second))
		c := mint(t, agentRole, serverID, now().Add(-1*time.Second))
		verify(a, 2)
		verify(b, 3)
		verify(c, 4) // evicts a
		verify(b, 4)
		verify(c, 4)
		verify(a, 5)
	})
}

// TestManyFreshTokensAtOnce verifies 200 different new tokens from 200
// goroutines at once, under the race detector, and then checks that no
// goroutine is left behind.
func TestManyFreshTokensAtOnce(t *testing.T) {
	const n = 200
	fake := awsfake.NewServer(t)
	fake.RequireSignedHeader(iamauth.ServerIDHeader)
	toks := make([]string, n)
	now := time.Now()
	for i := range toks {
		p := principal{fmt.Sprintf("AKIDCONC%08d", i), fmt.Sprint("secret-", i), fmt.Sprintf("arn:aws:sts::111122223333:assumed-role/agent/s-%d", i), account, fmt.Sprint("AROA:s-", i)}
		fake.AddIdentity(p.key, p.secret, p.arn, p.account, p.userID)
		toks[i] = mint(t, p, serverID, now)
	}
	ignore := goleak.IgnoreCurrent()
	// The test is about concurrency, not STS latency: 200 signature checks at
	// once under the race detector on a busy machine can take longer than
	// the default 5s per call. All of them may be in flight at once.
	v, err := iamauth.New(iamauth.Config{ServerID: serverID, Endpoints: map[string]string{region: fake.URL}, Allow: []string{account},
		Timeout: 30 * time.Second, MaxInFlight: n})
	if err != nil {
		t.Fatal(err)
	}

	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, errs[i] = v.Verify(ctx, toks[i])
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("token %d: %v", i, err)
		}
	}
	if got := fake.RequestCount(); got != n {
		t.Errorf("STS got %d requests; want %d", got, n)
	}
	v.Close()
	goleak.VerifyNone(t, ignore)
}

// TestNoLockAcrossSTS blocks STS for a new token and checks that a cached
// token and another new token are verified meanwhile.
func TestNoLockAcrossSTS(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	cached := mint(t, agentRole, serverID, now)
	if _, err := e.v.Verify(context.Background(), cached); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	e.fake.SetFault(awsfake.Fault{Block: release, Times: 1})

	blocked := make(chan error, 1)
	go func() {
		_, err := e.v.Verify(context.Background(), mint(t, devUser, serverID, now))
		blocked <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.fake.WaitInFlight(ctx, 1); err != nil {
		t.Fatal(err)
	}

	quick, cancelQuick := context.WithTimeout(context.Background(), time.Second)
	defer cancelQuick()
	if _, err := e.v.Verify(quick, cached); err != nil {
		t.Fatalf("a cached token while STS is blocked: %v", err)
	}
	if _, err := e.v.Verify(quick, mint(t, agentRole, serverID, now.Add(-time.Second))); err != nil {
		t.Fatalf("another new token while STS is blocked for one: %v", err)
	}
	select {
	case err := <-blocked:
		t.Fatalf("the blocked verification returned early: %v", err)
	default:
	}
	close(release)
	if err := <-blocked; err != nil {
		t.Errorf("the blocked verification after release: %v", err)
	}
}

// TestSameNewTokenSharesOneCall verifies one new token from many
// goroutines while STS is blocked; STS must see one request.
func TestSameNewTokenSharesOneCall(t *testing.T) {
	e := newEnv(t)
	tok := mint(t, agentRole, serverID, time.Now())
	release := make(chan struct{})
	e.fake.SetFault(awsfake.Fault{Block: release})
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.v.Verify(context.Background(), tok)
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.fake.WaitInFlight(ctx, 1); err != nil {
		t.Fatal(err)
	}
	close(release)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := e.fake.RequestCount(); got != 1 {
		t.Errorf("STS got %d requests for one token; want 1", got)
	}
}

// TestWaiterHonoursContext gives up on a blocked STS call by its context,
// and the call, once released, still fills the cache.
func TestWaiterHonoursContext(t *testing.T) {
	e := newEnv(t)
	tok := mint(t, agentRole, serverID, time.Now())
	release := make(chan struct{})
	e.fake.SetFault(awsfake.Fault{Block: release, Times: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := e.v.Verify(ctx, tok)
	checkErr(t, err, iamauth.ErrSTSUnavailable, 503)
	close(release)
	// This call joins the released one or finds its result cached: either
	// way STS is not asked again.
	if _, err := e.v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.RequestCount(); n != 1 {
		t.Fatalf("STS got %d requests; want 1", n)
	}
}

func TestCloseEndsBlockedCalls(t *testing.T) {
	e := newEnv(t)
	e.fake.SetFault(awsfake.Fault{Block: make(chan struct{})})
	done := make(chan error)
	go func() {
		_, err := e.v.Verify(context.Background(), mint(t, agentRole, serverID, time.Now()))
		done <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.fake.WaitInFlight(ctx, 1); err != nil {
		t.Fatal(err)
	}
	e.v.Close()
	if err := <-done; !errors.Is(err, iamauth.ErrClosed) {
		t.Errorf("Verify during Close = %v; want ErrClosed", err)
	}
}

func TestVerifyForLimitsRepeatedFailures(t *testing.T) {
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	lim := &iamauth.FailureLimiter{Burst: 3, Interval: time.Minute, Now: now}
	e := newEnv(t, func(c *iamauth.Config) { c.Limiter = lim })
	ctx := context.Background()
	good := mint(t, agentRole, serverID, time.Now())
	if _, err := e.v.VerifyFor(ctx, "client-a", good); err != nil {
		t.Fatal(err)
	}
	bad := mint(t, agentRole, "another-exit", time.Now()) // fails at STS

	for i := range 3 {
		_, err := e.v.VerifyFor(ctx, "client-a", bad)
		if !errors.Is(err, iamauth.ErrInvalidToken) {
			t.Fatalf("failure %d: %v; want ErrInvalidToken", i+1, err)
		}
	}
	calls := e.fake.RequestCount()
	_, err := e.v.VerifyFor(ctx, "client-a", bad)
	checkErr(t, err, iamauth.ErrTooManyFailures, 429)
	var ie *iamauth.Error
	if errors.As(err, &ie) && (ie.RetryAfter <= 0 || ie.RetryAfter > time.Minute+time.Second) {
		t.Errorf("RetryAfter = %v; want within a minute", ie.RetryAfter)
	}
	if n := e.fake.RequestCount(); n != calls {
		t.Errorf("a limited client caused %d STS calls; want none", n-calls)
	}
	if _, err := e.v.VerifyFor(ctx, "client-a", good); err != nil {
		t.Errorf("a limited client's cached valid token: %v; want it accepted", err)
	}
	if _, err := e.v.VerifyFor(ctx, "client-b", bad); !errors.Is(err, iamauth.ErrInvalidToken) {
		t.Errorf("another client: %v; want ErrInvalidToken, not limited", err)
	}
	if _, err := e.v.VerifyFor(ctx, "client-a", ""); !errors.Is(err, iamauth.ErrNoToken) {
		t.Errorf("a limited client without a token: %v; want ErrNoToken", err)
	}
	mu.Lock()
	clock = clock.Add(time.Minute)
	mu.Unlock()
	if _, err := e.v.VerifyFor(ctx, "client-a", bad); !errors.Is(err, iamauth.ErrInvalidToken) {
		t.Errorf("a minute later: %v; want ErrInvalidToken (allowed to try again)", err)
	}
}

// BenchmarkVerify compares verifying a cached token with the least any
// per-token lookup costs: hashing the token.
func BenchmarkVerify(b *testing.B) {
	e := newEnv(b)
	tok := mint(b, agentRole, serverID, time.Now())
	ctx := context.Background()
	if _, err := e.v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.v.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-sha256", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = sha256.Sum256([]byte(tok))
		}
	})
	b.Run("cached-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := e.v.Verify(ctx, tok); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
