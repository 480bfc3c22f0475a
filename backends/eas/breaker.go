package eas

import (
	"sync"
	"sync/atomic"
	"time"
)

// BreakerState is the state of the circuit breaker.
type BreakerState int32

const (
	BreakerClosed   BreakerState = iota // requests flow
	BreakerOpen                         // requests fail fast with KindCircuitOpen
	BreakerHalfOpen                     // one probe request flows, the rest fail fast
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return "unknown"
}

// breaker is a consecutive-failure circuit breaker. The closed, failure-free path costs one
// atomic load per admit and one per success.
type breaker struct {
	cfg BreakerConfig
	now func() time.Time

	state    atomic.Int32 // BreakerState
	failures atomic.Int32 // consecutive failures while closed

	mu          sync.Mutex
	lastFailure time.Time
	openedAt    time.Time
	probeUntil  time.Time // half-open: a probe is in flight until then
	probeLive   bool
}

func newBreaker(cfg BreakerConfig, now func() time.Time) *breaker {
	return &breaker{cfg: cfg, now: now}
}

// admit reports whether a request may go upstream. probe is true when the request is the
// half-open probe; it must then be followed by success or failure with probe set.
// maxProbe bounds how long one probe holds the half-open slot: a held Ping used as a probe
// would otherwise keep every other device out until its heartbeat ends.
func (b *breaker) admit(maxProbe time.Duration) (ok, probe bool, retryAfter time.Duration) {
	if b.cfg.Disabled || BreakerState(b.state.Load()) == BreakerClosed {
		return true, false, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	switch BreakerState(b.state.Load()) {
	case BreakerClosed:
		return true, false, 0
	case BreakerOpen:
		if rest := b.openedAt.Add(b.cfg.CoolDown).Sub(now); rest > 0 {
			return false, false, max(rest, time.Second)
		}
		b.state.Store(int32(BreakerHalfOpen))
		fallthrough
	default: // half-open
		if b.probeLive && now.Before(b.probeUntil) {
			return false, false, time.Second
		}
		b.probeLive = true
		b.probeUntil = now.Add(maxProbe)
		return true, true, 0
	}
}

// success records an answer from the upstream.
func (b *breaker) success(probe bool) {
	if b.cfg.Disabled {
		return
	}
	if !probe && b.failures.Load() == 0 && BreakerState(b.state.Load()) == BreakerClosed {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures.Store(0)
	if probe || BreakerState(b.state.Load()) == BreakerHalfOpen {
		b.probeLive = false
		b.state.Store(int32(BreakerClosed))
	}
}

// failure records a connection failure or timeout.
func (b *breaker) failure(probe bool) {
	if b.cfg.Disabled {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	switch BreakerState(b.state.Load()) {
	case BreakerHalfOpen:
		if probe {
			b.probeLive = false
		}
		b.open(now)
	case BreakerOpen:
		// a request admitted before the breaker opened: already open.
	default:
		if b.failures.Load() > 0 && now.Sub(b.lastFailure) > b.cfg.Window {
			b.failures.Store(0)
		}
		b.lastFailure = now
		if b.failures.Add(1) >= int32(b.cfg.Threshold) {
			b.open(now)
		}
	}
}

// release gives back a probe slot whose request ended without telling anything about the
// upstream (the caller cancelled).
func (b *breaker) release(probe bool) {
	if !probe || b.cfg.Disabled {
		return
	}
	b.mu.Lock()
	b.probeLive = false
	b.mu.Unlock()
}

func (b *breaker) open(now time.Time) {
	b.state.Store(int32(BreakerOpen))
	b.openedAt = now
	b.failures.Store(0)
}
