package eas

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock for breaker tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// switchable answers 200 while healthy, else hangs up on every connection without a byte.
func switchable(t *testing.T, status string) (*rawServer, *atomic.Bool) {
	var healthy atomic.Bool
	rs := startRaw(t, func(_ int64, c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := readRequest(br); err != nil {
				return
			}
			if !healthy.Load() {
				return
			}
			io.WriteString(c, "HTTP/1.1 "+status+"\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	return rs, &healthy
}

func breakerUpstream(t *testing.T, url string, bc BreakerConfig) (*Upstream, *fakeClock) {
	cfg := testConfig(url)
	cfg.Breaker = bc
	u := mustNew(t, cfg)
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	u.br.now = clk.now
	return u, clk
}

func forwardOnce(u *Upstream) error {
	_, _, err := forwardAll(context.Background(), u, easRequest("Cmd=FolderSync", nil), ForwardOptions{})
	return err
}

func TestBreaker_OpensHalfOpensCloses(t *testing.T) {
	rs, healthy := switchable(t, "200 OK")
	u, clk := breakerUpstream(t, rs.URL, BreakerConfig{Threshold: 3, Window: 10 * time.Second, CoolDown: 5 * time.Second})

	for i := 0; i < 3; i++ {
		wantKind(t, forwardOnce(u), KindDown)
	}
	if u.State() != BreakerOpen {
		t.Fatalf("state %v after 3 failures, want open", u.State())
	}
	hits := rs.conns.Load()
	err := forwardOnce(u)
	wantKind(t, err, KindCircuitOpen)
	var e *Error
	if !errors.As(err, &e) || e.RetryAfterHeader() != "5" || e.StatusCode() != 503 || !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("open breaker error: %+v", e)
	}
	if rs.conns.Load() != hits {
		t.Fatal("open breaker still dialed the upstream")
	}
	clk.add(3 * time.Second)
	err = forwardOnce(u)
	if errors.As(err, &e); e.RetryAfterHeader() != "2" {
		t.Errorf("Retry-After %q after 3s of a 5s cool-down", e.RetryAfterHeader())
	}

	// Cool-down over, still down: the probe fails and the breaker reopens.
	clk.add(2 * time.Second)
	wantKind(t, forwardOnce(u), KindDown)
	if u.State() != BreakerOpen {
		t.Fatalf("failed probe left state %v", u.State())
	}
	wantKind(t, forwardOnce(u), KindCircuitOpen)

	// Upstream back: the next probe closes it.
	healthy.Store(true)
	clk.add(5 * time.Second)
	if err := forwardOnce(u); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if u.State() != BreakerClosed {
		t.Fatalf("state %v after a good probe", u.State())
	}
	if err := forwardOnce(u); err != nil {
		t.Fatal(err)
	}
}

func TestBreaker_HalfOpenAdmitsOneProbe(t *testing.T) {
	b := newBreaker(BreakerConfig{Threshold: 1, Window: time.Second, CoolDown: time.Second}, nil)
	clk := &fakeClock{t: time.Unix(1000, 0)}
	b.now = clk.now
	b.failure(false)
	clk.add(time.Second)
	ok, probe, _ := b.admit(time.Minute)
	if !ok || !probe {
		t.Fatal("first request after cool-down is not the probe")
	}
	if ok, _, ra := b.admit(time.Minute); ok || ra <= 0 {
		t.Fatal("second request admitted while the probe is in flight")
	}
	// A probe held longer than maxProbe (a Ping) frees the slot.
	clk.add(time.Minute + time.Millisecond)
	if ok, probe, _ := b.admit(time.Minute); !ok || !probe {
		t.Fatal("probe slot not freed after maxProbe")
	}
	b.success(true)
	if BreakerState(b.state.Load()) != BreakerClosed {
		t.Fatal("not closed after probe success")
	}
}

func TestBreaker_FailuresOutsideWindowDoNotAccumulate(t *testing.T) {
	rs, _ := switchable(t, "200 OK")
	u, clk := breakerUpstream(t, rs.URL, BreakerConfig{Threshold: 3, Window: time.Second, CoolDown: time.Second})
	for i := 0; i < 6; i++ {
		wantKind(t, forwardOnce(u), KindDown)
		clk.add(2 * time.Second)
	}
	if u.State() != BreakerClosed {
		t.Fatalf("sparse failures opened the breaker")
	}
}

func TestBreaker_ServerErrorsDoNotOpenByDefault(t *testing.T) {
	rs, healthy := switchable(t, "503 Service Unavailable")
	healthy.Store(true)
	u, _ := breakerUpstream(t, rs.URL, BreakerConfig{Threshold: 2})
	for i := 0; i < 5; i++ {
		resp, _, err := forwardAll(context.Background(), u, easRequest("Cmd=Sync", nil), ForwardOptions{})
		if err != nil || resp.StatusCode() != 503 {
			t.Fatalf("%v %d", err, resp.StatusCode())
		}
	}
	if u.State() != BreakerClosed {
		t.Fatal("5xx answers opened the breaker")
	}

	u2, _ := breakerUpstream(t, rs.URL, BreakerConfig{Threshold: 2, CountServerErrors: true})
	forwardOnce(u2)
	forwardOnce(u2)
	if u2.State() != BreakerOpen {
		t.Fatal("CountServerErrors: 5xx did not open the breaker")
	}
}

func TestBreaker_CancelDoesNotCount(t *testing.T) {
	rs := startRaw(t, func(_ int64, c net.Conn) { hold(c) })
	u, _ := breakerUpstream(t, rs.URL, BreakerConfig{Threshold: 2})
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(10*time.Millisecond, cancel)
		_, _, err := forwardAll(ctx, u, easRequest("Cmd=Ping", nil), ForwardOptions{Class: ClassPing})
		wantKind(t, err, KindCanceled)
	}
	if u.State() != BreakerClosed {
		t.Fatal("devices going away opened the breaker")
	}
}
