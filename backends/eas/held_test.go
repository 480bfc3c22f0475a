package eas

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

type heldResult struct {
	status int
	body   []byte
	err    error
}

// forwardHeld runs ForwardHeld and collects the answer (body read to its end, like the
// gateway writing it to the device).
func forwardHeld(ctx context.Context, u *Upstream, req *fasthttp.Request, opt ForwardOptions) <-chan heldResult {
	ch := make(chan heldResult, 1)
	u.ForwardHeld(ctx, req, opt, func(resp *fasthttp.Response, err error) {
		if err != nil {
			if resp != nil {
				ch <- heldResult{err: fmt.Errorf("response %p with error %w", resp, err)}
				return
			}
			ch <- heldResult{err: err}
			return
		}
		r := heldResult{status: resp.StatusCode()}
		if resp.IsBodyStream() {
			r.body, r.err = io.ReadAll(resp.BodyStream())
		} else {
			r.body = append([]byte(nil), resp.Body()...)
		}
		fasthttp.ReleaseResponse(resp)
		ch <- r
	})
	return ch
}

func waitHeld(t *testing.T, ch <-chan heldResult, within time.Duration) heldResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(within):
		t.Fatalf("ForwardHeld did not finish within %v", within)
		return heldResult{}
	}
}

// answerAfter is an upstream that answers each request after d with body.
func answerAfter(d time.Duration, body string) func(int64, net.Conn) {
	return func(_ int64, c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := readRequest(br); err != nil {
				return
			}
			time.Sleep(d)
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.ms-sync.wbxml\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		}
	}
}

func TestHeld_AnswerDelivered(t *testing.T) {
	if u := mustNew(t, testConfig("http://127.0.0.1:1/x")); u.park == nil {
		t.Fatal("this platform should park held requests (Linux)")
	}
	for _, tc := range []struct {
		name  string
		delay time.Duration
		body  string
	}{
		{"immediate", 0, "\x03\x01j\x00\x00\x0dE"},
		{"after a while", 150 * time.Millisecond, "pong"},
		{"streamed large body", 50 * time.Millisecond, strings.Repeat("m", 300<<10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := startRaw(t, answerAfter(tc.delay, tc.body))
			u := mustNew(t, testConfig(rs.URL))
			for i := range 3 { // the second and third reuse the pooled connection
				r := waitHeld(t, forwardHeld(context.Background(), u, easRequest("Cmd=Ping", []byte("p")), ForwardOptions{Idempotent: true}), 5*time.Second)
				if r.err != nil || r.status != 200 || string(r.body) != tc.body {
					t.Fatalf("round %d: status %d, %d bytes, err %v", i, r.status, len(r.body), r.err)
				}
			}
			if n := rs.conns.Load(); n != 1 {
				t.Errorf("%d upstream connections for 3 sequential Pings, want 1 (keep-alive)", n)
			}
		})
	}
}

// A keep-alive connection the upstream closed while idle: the held request is sent again on a
// fresh connection, once.
func TestHeld_StaleConnectionRetried(t *testing.T) {
	rs := startRaw(t, func(n int64, c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readRequest(br); err != nil {
			return
		}
		if n == 1 {
			// answer, keep-alive by the headers, then hang up: the pooled connection is stale.
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			time.Sleep(50 * time.Millisecond)
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\npong")
	})
	u := mustNew(t, testConfig(rs.URL))
	if _, _, err := forwardAll(context.Background(), u, easRequest("Cmd=FolderSync", nil), ForwardOptions{Idempotent: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	r := waitHeld(t, forwardHeld(context.Background(), u, easRequest("Cmd=Ping", []byte("p")), ForwardOptions{Idempotent: true}), 5*time.Second)
	if r.err != nil || string(r.body) != "pong" {
		t.Fatalf("got %q, %v", r.body, r.err)
	}
	if n := rs.conns.Load(); n != 2 {
		t.Errorf("%d upstream connections, want 2", n)
	}
	// not idempotent: the failure is reported, never sent twice.
	time.Sleep(100 * time.Millisecond)
	before := rs.conns.Load()
	r = waitHeld(t, forwardHeld(context.Background(), u, easRequest("Cmd=Ping", []byte("p")), ForwardOptions{}), 5*time.Second)
	if r.err == nil && rs.conns.Load()-before > 1 {
		t.Errorf("non-idempotent request sent on %d connections", rs.conns.Load()-before)
	}
}

func TestHeld_CancelAndTimeout(t *testing.T) {
	closed := make(chan struct{}, 4)
	got := make(chan struct{}, 4)
	rs := startRaw(t, func(_ int64, c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readRequest(br); err == nil {
			got <- struct{}{}
		}
		if _, err := br.ReadByte(); err != nil {
			closed <- struct{}{}
		}
	})
	u := mustNew(t, testConfig(rs.URL))
	ctx, cancel := context.WithCancelCause(context.Background())
	gone := fmt.Errorf("device left")
	ch := forwardHeld(ctx, u, easRequest("Cmd=Ping", nil), ForwardOptions{Idempotent: true})
	<-got
	start := time.Now()
	cancel(gone)
	r := waitHeld(t, ch, 2*time.Second)
	wantKind(t, r.err, KindCanceled)
	if d := time.Since(start); d > time.Second {
		t.Errorf("returned %v after cancel", d)
	}
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("upstream connection not closed after cancel")
	}

	r = waitHeld(t, forwardHeld(context.Background(), u, easRequest("Cmd=Ping", nil), ForwardOptions{Timeout: 100 * time.Millisecond}), 3*time.Second)
	wantKind(t, r.err, KindTimeout)
	deadline := time.Now().Add(2 * time.Second)
	for u.Conns() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := u.Conns(); n != 0 {
		t.Errorf("%d connections left", n)
	}

	// already cancelled: nothing is sent.
	before := rs.conns.Load()
	r = waitHeld(t, forwardHeld(ctx, u, easRequest("Cmd=Ping", nil), ForwardOptions{}), time.Second)
	wantKind(t, r.err, KindCanceled)
	if rs.conns.Load() != before {
		t.Error("a cancelled request was sent")
	}
}

func TestHeld_BrokenHeader(t *testing.T) {
	rs := startRaw(t, func(_ int64, c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Le")
	})
	u := mustNew(t, testConfig(rs.URL))
	r := waitHeld(t, forwardHeld(context.Background(), u, easRequest("Cmd=Ping", nil), ForwardOptions{Idempotent: true}), 5*time.Second)
	wantKind(t, r.err, KindBadResponse)
}

// While held, a parked request owns no goroutine: 500 held Pings add (about) none besides the
// simulated upstream's own one per connection. Cancelling them leaves nothing behind.
func TestHeld_NoGoroutinePerHeldRequest(t *testing.T) {
	var held atomic.Int64
	rs := startRaw(t, func(_ int64, c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readRequest(br); err != nil {
			return
		}
		held.Add(1)
		defer held.Add(-1)
		_, _ = br.ReadByte() // until the gateway side closes
	})
	cfg := testConfig(rs.URL)
	cfg.PingTimeout = time.Minute
	u := mustNew(t, cfg)
	settleGoroutines(t, runtime.NumGoroutine())
	base := runtime.NumGoroutine()
	const n = 500
	ctx, cancel := context.WithCancel(context.Background())
	chans := make([]<-chan heldResult, n)
	for i := range chans {
		chans[i] = forwardHeld(ctx, u, easRequest("Cmd=Ping", nil), ForwardOptions{Idempotent: true})
	}
	deadline := time.Now().Add(10 * time.Second)
	for held.Load() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if held.Load() != n {
		t.Fatalf("%d of %d Pings reached the upstream", held.Load(), n)
	}
	time.Sleep(50 * time.Millisecond)
	if extra := runtime.NumGoroutine() - base - n; extra > 20 {
		t.Errorf("%d goroutines beyond the upstream's %d while %d Pings are held", extra, n, n)
	}
	cancel()
	for _, ch := range chans {
		wantKind(t, waitHeld(t, ch, 5*time.Second).err, KindCanceled)
	}
	settleGoroutines(t, base+2)
	if u.Conns() != 0 {
		t.Errorf("%d connections left", u.Conns())
	}
}
