package notifier

import (
	"context"
	"sync"
	"time"
)

// bucket is a token bucket: burst tokens, one more every interval.
type bucket struct {
	tokens float64
	last   time.Time
}

// limiter holds token buckets by key. A zero-key limiter with one key is the global limit.
// Safe for concurrent use.
type limiter struct {
	mu       sync.Mutex
	off      bool
	burst    float64
	every    time.Duration
	max      int
	buckets  map[string]*bucket
	now      func() time.Time
	lastTrim time.Time
}

func newLimiter(rl RateLimit, maxKeys int) *limiter {
	return &limiter{off: rl.Off, burst: float64(rl.Burst), every: rl.Every, max: maxKeys,
		buckets: make(map[string]*bucket), now: time.Now}
}

// refill brings b up to date at now. Caller holds l.mu.
func (l *limiter) refill(b *bucket, now time.Time) {
	if el := now.Sub(b.last); el > 0 {
		b.tokens += float64(el) / float64(l.every)
		if b.tokens > l.burst {
			b.tokens = l.burst
		}
		b.last = now
	}
}

// reserve takes a token for key and returns how long the caller must wait before using it
// (0: now). With mustNow, it takes the token only if one is available now.
func (l *limiter) reserve(key string, mustNow bool) (time.Duration, bool) {
	if l.off {
		return 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[key]
	if b == nil {
		l.trim(now)
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	if mustNow {
		return 0, false
	}
	wait := time.Duration((1 - b.tokens) * float64(l.every))
	b.tokens--
	return wait, true
}

// allow takes a token for key if one is available now.
func (l *limiter) allow(key string) bool {
	_, ok := l.reserve(key, true)
	return ok
}

// wait takes a token for key, sleeping until it is due or ctx ends.
func (l *limiter) wait(ctx context.Context, key string) error {
	d, _ := l.reserve(key, false)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// trim forgets full buckets (indistinguishable from new ones) once the map reaches its bound.
// Caller holds l.mu.
func (l *limiter) trim(now time.Time) {
	if l.max <= 0 || len(l.buckets) < l.max || now.Sub(l.lastTrim) < time.Second {
		return
	}
	l.lastTrim = now
	for k, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// size returns the number of tracked keys (tests).
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// refund gives back a token taken by allow for a notification that was not queued after all.
func (l *limiter) refund(key string) {
	if l.off {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[key]; b != nil && b.tokens+1 <= l.burst {
		b.tokens++
	}
}
