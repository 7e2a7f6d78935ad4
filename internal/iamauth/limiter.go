package iamauth

import (
	"sync"
	"time"
)

// FailureLimiter limits how often one client may fail verification: a token
// bucket per key (for example the client certificate's name), holding Burst
// failures and refilling one every Interval. While a key's bucket is empty,
// its new tokens are refused without an STS call. A zero FailureLimiter is
// ready to use; it is safe for concurrent use and never calls out while
// holding its lock.
type FailureLimiter struct {
	Burst    int           // failures allowed in a row; if zero, 10
	Interval time.Duration // time to earn back one failure; if zero, 6s
	MaxKeys  int           // clients remembered; if zero, 10000
	Now      func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket // guarded by mu
}

type bucket struct {
	tokens   float64   // failures still allowed
	last     time.Time // when tokens was brought up to date
	failedAt time.Time // the last failure, for eviction
}

func (l *FailureLimiter) burst() float64 {
	if l.Burst > 0 {
		return float64(l.Burst)
	}
	return 10
}

func (l *FailureLimiter) interval() time.Duration {
	if l.Interval > 0 {
		return l.Interval
	}
	return 6 * time.Second
}

func (l *FailureLimiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// refillLocked brings b up to now and reports its tokens.
func (l *FailureLimiter) refillLocked(b *bucket, now time.Time) float64 {
	if d := now.Sub(b.last); d > 0 {
		b.tokens += float64(d) / float64(l.interval())
		if b.tokens > l.burst() {
			b.tokens = l.burst()
		}
		b.last = now
	}
	return b.tokens
}

// Allow reports whether key may try again, and if not, how long until it
// may. It consumes nothing.
func (l *FailureLimiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, found := l.buckets[key]
	if !found {
		return true, 0
	}
	t := l.refillLocked(b, l.now())
	if t >= 1 {
		return true, 0
	}
	return false, time.Duration((1 - t) * float64(l.interval()))
}

// Failed records one failure of key.
func (l *FailureLimiter) Failed(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.bucketLocked(key, now)
	b.failedAt = now
	if b.tokens -= 1; b.tokens < 0 {
		b.tokens = 0
	}
}

// Take records one failure of key in advance, for an attempt about to be
// made whose outcome is not known yet, if key may try: ok is false, with
// the time until it may, when its failures have used up its budget. Refund
// gives the failure back when the attempt succeeds.
func (l *FailureLimiter) Take(key string) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.bucketLocked(key, now)
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) * float64(l.interval()))
	}
	b.tokens--
	b.failedAt = now
	return true, 0
}

// Refund gives back a failure that Take recorded in advance.
func (l *FailureLimiter) Refund(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, found := l.buckets[key]; found {
		l.refillLocked(b, l.now())
		b.tokens = min(b.tokens+1, l.burst())
	}
}

// bucketLocked returns key's bucket, brought up to now, making it if
// needed.
func (l *FailureLimiter) bucketLocked(key string, now time.Time) *bucket {
	b, found := l.buckets[key]
	if !found {
		if l.buckets == nil {
			l.buckets = make(map[string]*bucket)
		}
		l.makeRoomLocked(now)
		b = &bucket{tokens: l.burst(), last: now}
		l.buckets[key] = b
	}
	l.refillLocked(b, now)
	return b
}

// makeRoomLocked keeps the map under MaxKeys: it forgets full buckets
// (they hold no state), then the longest-idle one.
func (l *FailureLimiter) makeRoomLocked(now time.Time) {
	max := l.MaxKeys
	if max <= 0 {
		max = 10000
	}
	if len(l.buckets) < max {
		return
	}
	var oldest string
	var oldestAt time.Time
	found := false
	for k, b := range l.buckets {
		if l.refillLocked(b, now) >= l.burst() {
			delete(l.buckets, k)
			continue
		}
		if !found || b.failedAt.Before(oldestAt) {
			oldest, oldestAt, found = k, b.failedAt, true
		}
	}
	if len(l.buckets) >= max {
		delete(l.buckets, oldest)
	}
}
