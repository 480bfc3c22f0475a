//go:build linux

package park

import (
	"net"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection.
func pair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-acc
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func newPoller(t testing.TB) *Poller {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func waitEvent(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5 s")
		return 0
	}
}

func noEvent(t *testing.T, ch <-chan Event) {
	t.Helper()
	select {
	case e := <-ch:
		t.Fatalf("unexpected event %v", e)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestReadableFiresOnData(t *testing.T) {
	p := newPoller(t)
	c, s := pair(t)
	ch := make(chan Event, 2)
	if _, err := p.Watch(c, Readable, func(e Event) { ch <- e }); err != nil {
		t.Fatal(err)
	}
	noEvent(t, ch)
	if _, err := s.Write([]byte("HTTP/1.1 200 OK\r\n")); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, ch); e&EventReadable == 0 || e&EventHangUp != 0 {
		t.Fatalf("event %b, want readable only", e)
	}
	noEvent(t, ch) // one-shot
	// nothing was consumed: the bytes are still there for the reader.
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "HTTP/1.1 200 OK\r\n" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if p.Len() != 0 {
		t.Fatalf("%d watches left", p.Len())
	}
}

// Bytes that arrived before the watch began must be reported, not waited past (the upstream
// that answers a Ping at once).
func TestReadableFiresForBytesAlreadyThere(t *testing.T) {
	p := newPoller(t)
	c, s := pair(t)
	if _, err := s.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	ch := make(chan Event, 1)
	if _, err := p.Watch(c, Readable, func(e Event) { ch <- e }); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, ch)
}

func TestHangUpIgnoresDataAndFiresOnClose(t *testing.T) {
	p := newPoller(t)
	c, s := pair(t)
	ch := make(chan Event, 2)
	if _, err := p.Watch(s, HangUp, func(e Event) { ch <- e }); err != nil {
		t.Fatal(err)
	}
	// a pipelined request or a TLS close_notify is not a hang-up.
	if _, err := c.Write([]byte("POST / HTTP/1.1\r\n")); err != nil {
		t.Fatal(err)
	}
	noEvent(t, ch)
	c.Close()
	if e := waitEvent(t, ch); e&EventHangUp == 0 {
		t.Fatalf("event %b, want hang-up", e)
	}
}

func TestHangUpOnReset(t *testing.T) {
	p := newPoller(t)
	c, s := pair(t)
	ch := make(chan Event, 1)
	if _, err := p.Watch(s, HangUp, func(e Event) { ch <- e }); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).SetLinger(0) // close with RST
	c.Close()
	if e := waitEvent(t, ch); e&EventHangUp == 0 {
		t.Fatalf("event %b, want hang-up", e)
	}
}

func TestStopPreventsCallbackAndRewatch(t *testing.T) {
	p := newPoller(t)
	c, s := pair(t)
	ch := make(chan Event, 2)
	w, err := p.Watch(c, Readable, func(e Event) { ch <- e })
	if err != nil {
		t.Fatal(err)
	}
	if !w.Stop() {
		t.Fatal("Stop of a pending watch reported false")
	}
	if w.Stop() {
		t.Fatal("second Stop reported true")
	}
	if _, err := s.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	noEvent(t, ch)
	// the socket can be watched again (a pooled upstream connection's next Ping).
	if _, err := p.Watch(c, Readable, func(e Event) { ch <- e }); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, ch)
	if _, err := p.Watch(c, Readable, func(e Event) { ch <- e }); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, ch) // the byte is still unread: fires again
}

func TestStopAfterFireReportsFalse(t *testing.T) {
	p := newPoller(t)
	c, s := pair(t)
	ran := make(chan Event, 1)
	w, err := p.Watch(c, Readable, func(e Event) { ran <- e })
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("x"))
	waitEvent(t, ran)
	if w.Stop() {
		t.Fatal("Stop after the callback ran reported true")
	}
}

// A watched connection closed by its owner simply stops being watched; its descriptor number,
// reused by a new socket, is not confused with it.
func TestClosedConnForgotten(t *testing.T) {
	p := newPoller(t)
	c, _ := pair(t)
	ch := make(chan Event, 1)
	w, err := p.Watch(c, Readable, func(e Event) { ch <- e })
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	noEvent(t, ch)
	if !w.Stop() {
		t.Fatal("Stop after close reported false")
	}
	c2, s2 := pair(t)
	ch2 := make(chan Event, 1)
	if _, err := p.Watch(c2, Readable, func(e Event) { ch2 <- e }); err != nil {
		t.Fatal(err)
	}
	s2.Write([]byte("y"))
	waitEvent(t, ch2)
	noEvent(t, ch)
}

func TestUnsupportedConn(t *testing.T) {
	p := newPoller(t)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := p.Watch(a, Readable, func(Event) {}); err != ErrUnsupported {
		t.Fatalf("pipe: %v, want ErrUnsupported", err)
	}
}

// Many watches at once, each fired once: the loop drains more than one batch of events.
func TestManyWatches(t *testing.T) {
	p := newPoller(t)
	const n = 600
	ch := make(chan Event, n)
	servers := make([]net.Conn, n)
	for i := range n {
		c, s := pair(t)
		servers[i] = s
		if _, err := p.Watch(c, Readable, func(e Event) { ch <- e }); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range servers {
		s.Write([]byte("z"))
	}
	for range n {
		waitEvent(t, ch)
	}
	if p.Len() != 0 {
		t.Fatalf("%d watches left", p.Len())
	}
}

func TestSharedAndClose(t *testing.T) {
	a, err := Shared()
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := Shared(); a != b {
		t.Fatal("Shared returned two pollers")
	}
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	c, _ := pair(t)
	if _, err := p.Watch(c, Readable, func(Event) {}); err != ErrClosed {
		t.Fatalf("Watch after Close: %v", err)
	}
}
