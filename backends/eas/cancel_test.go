package eas

import (
	"context"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A held Ping whose device went away: Forward returns at once and the upstream sees its
// connection closed.
func TestCancel_HeldPingReturnsPromptly(t *testing.T) {
	closed := make(chan struct{}, 1)
	got := make(chan struct{}, 1)
	rs := startRaw(t, func(_ int64, c net.Conn) {
		buf := make([]byte, 4096)
		if _, err := c.Read(buf); err == nil {
			got <- struct{}{}
		}
		for {
			if _, err := c.Read(buf); err != nil {
				closed <- struct{}{}
				return
			}
		}
	})
	u := mustNew(t, testConfig(rs.URL))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := forwardAll(ctx, u, easRequest("Cmd=Ping", nil), ForwardOptions{Class: ClassPing})
		done <- err
	}()
	<-got
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		wantKind(t, err, KindCanceled)
		if d := time.Since(start); d > time.Second {
			t.Errorf("Forward returned %v after cancel", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Forward did not return after cancel")
	}
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("upstream connection not closed after cancel")
	}
	if u.Conns() != 0 {
		t.Errorf("%d connections left", u.Conns())
	}
}

func TestCancel_ContextDeadlineIsTimeout(t *testing.T) {
	rs := startRaw(t, func(_ int64, c net.Conn) { hold(c) })
	u := mustNew(t, testConfig(rs.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, err := forwardAll(ctx, u, easRequest("Cmd=Ping", nil), ForwardOptions{Class: ClassPing})
	wantKind(t, err, KindTimeout)
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	_, _, err = forwardAll(ctx2, u, easRequest("Cmd=Ping", nil), ForwardOptions{})
	wantKind(t, err, KindCanceled)
}

// 10,000 requests cancelled at every stage (before dial, mid-write, while held) leave no
// goroutine and no connection behind.
func TestCancel_NoGoroutineLeak(t *testing.T) {
	if testing.Short() {
		t.Log("short mode: 1,000 requests instead of 10,000")
	}
	total := 10000
	if testing.Short() {
		total = 1000
	}
	rs := startRaw(t, func(_ int64, c net.Conn) { hold(c) })
	cfg := testConfig(rs.URL)
	cfg.PingTimeout = time.Minute
	u := mustNew(t, cfg)
	// Warm up the runtime's own goroutines (timers, netpoll) before measuring.
	ctx0, c0 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	forwardAll(ctx0, u, easRequest("Cmd=Ping", nil), ForwardOptions{Class: ClassPing})
	c0()
	settleGoroutines(t, runtime.NumGoroutine()+2)
	base := runtime.NumGoroutine()

	const workers = 50
	var next, canceled atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(total) {
					return
				}
				ctx, cancel := context.WithCancel(context.Background())
				delay := time.Duration(i%7) * 200 * time.Microsecond
				tm := time.AfterFunc(delay, cancel)
				_, _, err := forwardAll(ctx, u, easRequest("Cmd=Ping&DeviceId=d", []byte("ping")), ForwardOptions{Class: ClassPing, Idempotent: true})
				tm.Stop()
				cancel()
				if KindOf(err) == KindCanceled {
					canceled.Add(1)
				} else {
					t.Errorf("request %d: %v", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if canceled.Load() != int64(total) {
		t.Fatalf("%d of %d requests canceled", canceled.Load(), total)
	}
	// The raw server's per-connection goroutines end as their connections close.
	settleGoroutines(t, base+2)
	deadline := time.Now().Add(5 * time.Second)
	for u.Conns() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := u.Conns(); n != 0 {
		t.Errorf("%d upstream connections left open", n)
	}
}
