package exit

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestIdleAt(t *testing.T) {
	start := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	now := start.Add(time.Hour)
	closed := start.Add(50 * time.Minute)
	p := IdlePolicy{After: 5 * time.Minute, Unused: 2 * time.Minute}
	for _, tc := range []struct {
		name   string
		p      IdlePolicy
		a      Activity
		want   time.Time
		wantOK bool
	}{
		{"a server never used is idle Unused after its start", p, Activity{Start: start, Last: start}, start.Add(2 * time.Minute), true},
		{"a server with an open stream is idle no sooner than After from now", p, Activity{Open: 1, Total: 1, Start: start, Last: start.Add(time.Minute)}, now.Add(5 * time.Minute), true},
		{"a server whose streams closed is idle After the last close", p, Activity{Total: 3, Start: start, Last: closed}, closed.Add(5 * time.Minute), true},
		{"without After, a used server is never idle", IdlePolicy{Unused: time.Minute}, Activity{Total: 1, Start: start, Last: closed}, time.Time{}, false},
		{"without After, a server with an open stream is never idle", IdlePolicy{Unused: time.Minute}, Activity{Open: 1, Total: 1, Start: start, Last: closed}, time.Time{}, false},
		{"without Unused, an unused server is never idle", IdlePolicy{After: time.Minute}, Activity{Start: start, Last: start}, time.Time{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.p.IdleAt(tc.a, now)
			if ok != tc.wantOK || ok && !got.Equal(tc.want) {
				t.Fatalf("IdleAt = %v, %v; want %v, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// newIdleServer is a Server that serves nothing, whose stream counts the
// test moves itself.
func newIdleServer(t *testing.T) *Server {
	t.Helper()
	s, err := New(Config{TLS: &tls.Config{}, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no dialing here")
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitIdle runs WaitIdle on a goroutine; the returned func waits for it
// and reports when it returned, relative to start.
func waitIdle(ctx context.Context, s *Server, p IdlePolicy) (result func() (time.Duration, string, error), returned func() bool) {
	type res struct {
		at     time.Duration
		reason string
		err    error
	}
	done := make(chan res, 1)
	go func() {
		reason, err := s.WaitIdle(ctx, p)
		done <- res{time.Since(s.start), reason, err}
	}()
	var r *res
	return func() (time.Duration, string, error) {
			if r == nil {
				v := <-done
				r = &v
			}
			return r.at, r.reason, r.err
		}, func() bool {
			synctest.Wait()
			if r != nil {
				return true
			}
			select {
			case v := <-done:
				r = &v
				return true
			default:
				return false
			}
		}
}

func TestWaitIdle(t *testing.T) {
	p := IdlePolicy{After: time.Second, Unused: 2 * time.Second}

	t.Run("an unused server is idle exactly Unused after its start", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newIdleServer(t)
			result, _ := waitIdle(t.Context(), s, p)
			at, reason, err := result()
			if err != nil || at != 2*time.Second || !strings.Contains(reason, "exit_when_unused") {
				t.Fatalf("WaitIdle returned after %v: %q, %v; want after 2s, saying exit_when_unused", at, reason, err)
			}
		})
	})

	t.Run("a used server is idle exactly After its last stream closed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newIdleServer(t)
			result, returned := waitIdle(t.Context(), s, p)
			time.Sleep(500 * time.Millisecond)
			s.streamStarted()
			time.Sleep(500 * time.Millisecond)
			s.streamStarted()
			time.Sleep(2 * time.Second) // past Unused, with streams open
			s.streamEnded()
			time.Sleep(2 * time.Second) // past After since the first close, one still open
			if returned() {
				t.Fatal("WaitIdle returned with a stream open")
			}
			s.streamEnded() // at 5s
			at, reason, err := result()
			if err != nil || at != 6*time.Second || !strings.Contains(reason, "exit_when_idle") {
				t.Fatalf("WaitIdle returned after %v: %q, %v; want after 6s, saying exit_when_idle", at, reason, err)
			}
		})
	})

	t.Run("a stream that comes and goes long before Unused is up counts from its close", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newIdleServer(t)
			result, _ := waitIdle(t.Context(), s, IdlePolicy{After: time.Second, Unused: time.Hour})
			time.Sleep(1500 * time.Millisecond)
			s.streamStarted()
			time.Sleep(300 * time.Millisecond)
			s.streamEnded() // at 1.8s
			if at, _, err := result(); err != nil || at != 2800*time.Millisecond {
				t.Fatalf("WaitIdle returned after %v, %v; want after 2.8s", at, err)
			}
		})
	})

	t.Run("an open silent stream keeps the server in use", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newIdleServer(t)
			ctx, cancel := context.WithCancel(t.Context())
			result, returned := waitIdle(ctx, s, p)
			s.streamStarted()
			time.Sleep(time.Hour)
			if returned() {
				t.Fatal("WaitIdle returned with a stream open")
			}
			cancel()
			if _, _, err := result(); !errors.Is(err, context.Canceled) {
				t.Fatalf("WaitIdle = %v after its context ended, want context.Canceled", err)
			}
		})
	})

	t.Run("without Unused, a server is idle After the close of a stream that came late", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newIdleServer(t)
			result, returned := waitIdle(t.Context(), s, IdlePolicy{After: time.Second})
			time.Sleep(10*time.Second + 300*time.Millisecond)
			if returned() {
				t.Fatal("WaitIdle returned for a server never used, with Unused off")
			}
			s.streamStarted()
			time.Sleep(200 * time.Millisecond)
			s.streamEnded() // at 10.5s
			if at, _, err := result(); err != nil || at != 11500*time.Millisecond {
				t.Fatalf("WaitIdle returned after %v, %v; want after 11.5s", at, err)
			}
		})
	})

	t.Run("without After, a used server is never idle", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newIdleServer(t)
			ctx, cancel := context.WithCancel(t.Context())
			result, returned := waitIdle(ctx, s, IdlePolicy{Unused: time.Second})
			time.Sleep(100 * time.Millisecond)
			s.streamStarted()
			s.streamEnded()
			time.Sleep(time.Hour)
			if returned() {
				t.Fatal("WaitIdle returned for a used server, with After off")
			}
			cancel()
			if _, _, err := result(); !errors.Is(err, context.Canceled) {
				t.Fatalf("WaitIdle = %v, want context.Canceled", err)
			}
		})
	})
}

// TestIdleOverRealStreams opens a CONNECT stream over TLS and keeps it open
// past the idle time without a byte: the server is in use until it closes,
// and idle After its close.
func TestIdleOverRealStreams(t *testing.T) {
	f := startExit(t, false, nil)
	const after = 300 * time.Millisecond
	if a := f.srv.Activity(); a.Open != 0 || a.Total != 0 || !a.Last.Equal(a.Start) {
		t.Fatalf("a new server's activity is %+v", a)
	}
	tr := f.h2Client(t)
	defer tr.CloseIdleConnections()
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodConnect, "https://"+f.addr, pr)
	req.Host = f.echo
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if a := f.srv.Activity(); a.Open != 1 || a.Total != 1 {
		t.Fatalf("with a stream open, activity is %+v", a)
	}
	type result struct {
		at  time.Time
		err error
	}
	done := make(chan result, 1)
	go func() {
		_, err := f.srv.WaitIdle(t.Context(), IdlePolicy{After: after, Unused: after})
		done <- result{time.Now(), err}
	}()
	select {
	case r := <-done:
		t.Fatalf("WaitIdle returned (%v) while a silent stream was open", r.err)
	case <-time.After(4 * after):
	}
	pw.Close()
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	r := <-done
	a := f.srv.Activity()
	if r.err != nil || a.Open != 0 || a.Total != 1 {
		t.Fatalf("WaitIdle = %v with activity %+v", r.err, a)
	}
	late := r.at.Sub(a.Last.Add(after))
	t.Logf("idle %v after the stream closed (After %v)", r.at.Sub(a.Last).Round(time.Millisecond), after)
	if late < 0 || late > time.Second {
		t.Fatalf("WaitIdle returned %v after the stream closed, want %v to %v", r.at.Sub(a.Last), after, after+time.Second)
	}
}
