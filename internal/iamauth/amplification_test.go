package iamauth_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"fluidity/internal/awsfake"
	"fluidity/internal/iamauth"
)

// badTokens makes n different well-formed tokens signed with keys STS does
// not know: each passes every local check and fails only at STS.
func badTokens(t *testing.T, n int) []string {
	t.Helper()
	now := time.Now().UTC()
	base := "https://" + stsHost + "/?Action=GetCallerIdentity&Version=2011-06-15"
	toks := make([]string, n)
	for i := range toks {
		toks[i] = wrap(presign(t, principal{key: fmt.Sprintf("AKIDBAD%09d", i), secret: "x"}, base, serverHeader, region, now))
	}
	return toks
}

// attack verifies toks[i] for keys[i%len(keys)] all at once while STS holds
// every request, waits until only the calls in flight are left unanswered,
// checks that STS got at most inFlight of them, then lets STS answer and
// returns every result.
func attack(t *testing.T, e *env, keys, toks []string, inFlight int) []error {
	t.Helper()
	block := make(chan struct{})
	e.fake.SetFault(awsfake.Fault{Block: block})
	errs := make([]error, len(toks))
	var answered sync.WaitGroup
	answered.Add(len(toks) - inFlight)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, tok := range toks {
		wg.Go(func() {
			_, err := e.v.VerifyFor(context.Background(), keys[i%len(keys)], tok)
			mu.Lock()
			errs[i] = err
			mu.Unlock()
			if !errors.Is(err, iamauth.ErrInvalidToken) {
				answered.Done()
			}
		})
	}
	answered.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.fake.WaitInFlight(ctx, inFlight); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.RequestCount(); n != inFlight {
		t.Errorf("with STS holding every request, %d concurrent bad tokens caused %d STS calls; want %d", len(toks), n, inFlight)
	}
	close(block)
	wg.Wait()
	e.fake.SetFault(awsfake.Fault{})
	return errs
}

// waitWaiting waits until n goroutines wait in a select in fn, for up to
// 10s.
func waitWaiting(t *testing.T, fn string, n int) {
	t.Helper()
	buf := make([]byte, 64<<20)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := 0
		for g := range strings.SplitSeq(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, " [select") && strings.Contains(g, fn+"(") {
				got++
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines in %s; want %d", got, fn, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// count tallies errors by the sentinel they match.
func count(errs []error) map[error]int {
	c := map[error]int{}
	for _, err := range errs {
		for _, s := range []error{iamauth.ErrInvalidToken, iamauth.ErrBusy, iamauth.ErrTooManyFailures} {
			if errors.Is(err, s) {
				c[s]++
			}
		}
	}
	return c
}

func TestConcurrentBadTokensCostBoundedSTSCalls(t *testing.T) {
	const n = 2000
	toks := badTokens(t, n)

	t.Run("2,000 bad tokens from one client cost as many STS calls as its failure budget", func(t *testing.T) {
		lim := &iamauth.FailureLimiter{Interval: time.Hour}
		e := newEnv(t, func(c *iamauth.Config) { c.Limiter = lim })
		errs := attack(t, e, []string{"attacker"}, toks, 4)
		c := count(errs)
		if c[iamauth.ErrInvalidToken] != 4 || c[iamauth.ErrBusy] != n-4 {
			t.Fatalf("results %v; want 4 invalid tokens and %d refused as busy (429)", c, n-4)
		}
		var ie *iamauth.Error
		if errors.As(errs[len(errs)-1], &ie) && ie.Status != 429 && !errors.Is(ie, iamauth.ErrInvalidToken) {
			t.Fatalf("a client over its bound got %d; want 429", ie.Status)
		}
		// The four failures are counted: the budget of 10 has 6 left, and
		// the same attack again, one token at a time, gets no further.
		for _, tok := range toks {
			e.v.VerifyFor(context.Background(), "attacker", tok)
		}
		if got := e.fake.RequestCount(); got != 10 {
			t.Fatalf("4,000 bad tokens from one client caused %d STS calls; want 10, its failure budget", got)
		}
	})

	t.Run("2,000 bad tokens from 1,000 clients cost at most the exit's bound at once", func(t *testing.T) {
		e := newEnv(t, func(c *iamauth.Config) { c.Limiter = &iamauth.FailureLimiter{}; c.MaxInFlight = 50 })
		keys := make([]string, 1000)
		for i := range keys {
			keys[i] = fmt.Sprint("client-", i)
		}
		errs := attack(t, e, keys, toks, 50)
		if c := count(errs); c[iamauth.ErrInvalidToken] != 50 || c[iamauth.ErrBusy] != n-50 {
			t.Fatalf("results %v; want 50 invalid tokens and the rest refused as busy", c)
		}
	})

	t.Run("2,000 copies of one bad token cost one STS call and one failure", func(t *testing.T) {
		lim := &iamauth.FailureLimiter{Burst: 2, Interval: time.Hour}
		e := newEnv(t, func(c *iamauth.Config) { c.Limiter = lim })
		same := make([]string, n)
		for i := range same {
			same[i] = toks[0]
		}
		block := make(chan struct{})
		e.fake.SetFault(awsfake.Fault{Block: block})
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range same {
			wg.Go(func() { _, errs[i] = e.v.VerifyFor(context.Background(), "agent", same[i]) })
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.fake.WaitInFlight(ctx, 1); err != nil {
			t.Fatal(err)
		}
		waitWaiting(t, "iamauth.(*Verifier).identify", n)
		close(block)
		wg.Wait()
		if c := count(errs); c[iamauth.ErrInvalidToken] != n {
			t.Fatalf("results %v; want every copy invalid", c)
		}
		if got := e.fake.RequestCount(); got != 1 {
			t.Fatalf("STS got %d calls for one token; want 1", got)
		}
		e.fake.SetFault(awsfake.Fault{})
		if _, err := e.v.VerifyFor(context.Background(), "agent", toks[1]); !errors.Is(err, iamauth.ErrInvalidToken) {
			t.Fatalf("after one counted failure of two, another bad token: %v; want it checked (ErrInvalidToken)", err)
		}
		if _, err := e.v.VerifyFor(context.Background(), "agent", toks[2]); !errors.Is(err, iamauth.ErrTooManyFailures) {
			t.Fatalf("after two failures of two: %v; want ErrTooManyFailures", err)
		}
	})

	t.Run("verifications that succeed give their failure back", func(t *testing.T) {
		lim := &iamauth.FailureLimiter{Burst: 2, Interval: time.Hour}
		e := newEnv(t, func(c *iamauth.Config) { c.Limiter = lim })
		for i := range 10 {
			tok := mint(t, agentRole, serverID, time.Now().Add(-time.Duration(i)*time.Second))
			if _, err := e.v.VerifyFor(context.Background(), "agent", tok); err != nil {
				t.Fatalf("new good token %d: %v", i, err)
			}
		}
	})
}
