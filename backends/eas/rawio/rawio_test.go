//go:build linux

package rawio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// pair returns a wrapped client connection and the server's end, both on loopback.
func pair(t testing.TB) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wl := NewListener(ln)
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := wl.Accept()
		if err != nil {
			acc <- nil
			return
		}
		acc <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv := <-acc
	if srv == nil {
		t.Fatal("accept failed")
	}
	if _, ok := srv.(*Conn); !ok {
		t.Fatalf("the listener gave a %T", srv)
	}
	w, ok := Wrap(c).(*Conn)
	if !ok {
		t.Fatalf("Wrap gave a %T", Wrap(c))
	}
	t.Cleanup(func() { w.Close(); srv.Close() })
	return w, srv
}

// Bodies far larger than the socket buffers go through whole both ways: writes that stop at
// EAGAIN wait and finish, reads that find nothing wait.
func TestLargeTransfersBothWays(t *testing.T) {
	c, srv := pair(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	errc := make(chan error, 1)
	go func() { // echo
		_, err := io.CopyN(srv, srv, int64(len(data)))
		errc <- err
	}()
	go func() {
		if n, err := c.Write(data); err != nil || n != len(data) {
			t.Errorf("Write: %d, %v", n, err)
		}
	}()
	got := make([]byte, len(data))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("echoed bytes differ")
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestReadFromCopiesAll(t *testing.T) {
	c, srv := pair(t)
	data := bytes.Repeat([]byte{7, 8, 9}, 300_000)
	go func() {
		if n, err := c.ReadFrom(bytes.NewReader(data)); err != nil || n != int64(len(data)) {
			t.Errorf("ReadFrom: %d, %v", n, err)
		}
		c.CloseWrite()
	}()
	got, err := io.ReadAll(srv)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
}

// Deadlines are the connection's: a read with nothing to read times out as net.Conn's does.
func TestReadDeadline(t *testing.T) {
	c, _ := pair(t)
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err := c.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("want a timeout, got %v", err)
	}
	if d := time.Since(start); d < 40*time.Millisecond || d > 5*time.Second {
		t.Fatalf("timed out after %v", d)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("not a read *net.OpError: %#v", err)
	}
}

// The end of the stream is io.EOF; writing to a peer that reset is an error, never a signal.
func TestPeerCloseAndReset(t *testing.T) {
	c, srv := pair(t)
	srv.Write([]byte("bye"))
	srv.(*Conn).SetLinger(0)
	srv.Close()
	b := make([]byte, 10)
	n, err := c.Read(b)
	if n == 3 {
		n, err = c.Read(b)
	}
	if err == nil {
		t.Fatalf("read after close: %d bytes, no error", n)
	}
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		_, werr = c.Write(make([]byte, 64<<10))
	}
	if !errors.Is(werr, syscall.EPIPE) && !errors.Is(werr, syscall.ECONNRESET) {
		t.Fatalf("write to a reset peer: %v", werr)
	}
}

func TestEOF(t *testing.T) {
	c, srv := pair(t)
	srv.Write([]byte("x"))
	srv.Close()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "x" {
		t.Fatalf("%q, %v", got, err)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after the end: %d, %v", n, err)
	}
}

// Closing the connection ends a read waiting in another goroutine with net.ErrClosed.
func TestCloseWhileReading(t *testing.T) {
	c, _ := pair(t)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(30 * time.Millisecond)
	c.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("want net.ErrClosed, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return after Close")
	}
}

// A request's reads and writes allocate nothing.
func TestNoAllocations(t *testing.T) {
	c, srv := pair(t)
	msg, buf := []byte("ping"), make([]byte, 16)
	go io.Copy(srv, srv)
	if n := testing.AllocsPerRun(200, func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per exchange", n)
	}
}

// SyscallConn is the TCPConn's, so the poller-based waits elsewhere (park) keep working.
func TestSyscallConnExposed(t *testing.T) {
	c, _ := pair(t)
	var sc syscall.Conn = c
	rc, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Control(func(fd uintptr) {
		if fd == 0 {
			t.Error("no descriptor")
		}
	}); err != nil {
		t.Fatal(err)
	}
}

// readWithin reads once from c and reports how long the read took and its error.
func readWithin(c net.Conn) (time.Duration, error) {
	start := time.Now()
	_, err := c.Read(make([]byte, 10))
	return time.Since(start), err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && errors.Is(err, os.ErrDeadlineExceeded)
}

// A deadline moved later is kept lazily: the earlier one still armed in the runtime fires,
// and the read waits on until the later one, which is the one that times it out.
func TestLaterDeadlineOutlastsTheArmedOne(t *testing.T) {
	c, _ := pair(t)
	c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	took, err := readWithin(c)
	if !isTimeout(err) {
		t.Fatalf("want a timeout, got %v", err)
	}
	if took < 290*time.Millisecond || took > 5*time.Second {
		t.Fatalf("timed out after %v, want ≈ 300 ms", took)
	}
}

// Bytes that arrive while the read waits past the earlier armed deadline are read.
func TestDataAfterTheArmedDeadlineIsRead(t *testing.T) {
	c, srv := pair(t)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	time.AfterFunc(150*time.Millisecond, func() { srv.Write([]byte("late")) })
	b := make([]byte, 10)
	n, err := c.Read(b)
	if err != nil || string(b[:n]) != "late" {
		t.Fatalf("%q, %v", b[:n], err)
	}
}

// An armed deadline that fired while nobody read does not fail the next read when the
// deadline asked for has since moved on.
func TestExpiredArmedDeadlineWhileIdle(t *testing.T) {
	c, srv := pair(t)
	c.SetDeadline(time.Now().Add(20 * time.Millisecond))
	time.Sleep(60 * time.Millisecond)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatalf("write after the armed deadline passed: %v", err)
	}
	srv.Write([]byte("ok"))
	b := make([]byte, 2)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "ok" {
		t.Fatalf("%q, %v", b, err)
	}
}

// A deadline moved earlier is armed at once, and one set in the past ends a read waiting
// in another goroutine (how long polls are cancelled).
func TestEarlierDeadlineEndsAWaitingRead(t *testing.T) {
	c, _ := pair(t)
	c.SetReadDeadline(time.Now().Add(time.Hour))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(30 * time.Millisecond)
	start := time.Now()
	c.SetReadDeadline(time.Now())
	select {
	case err := <-errc:
		if !isTimeout(err) {
			t.Fatalf("want a timeout, got %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("the read ended %v after the deadline was moved", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the read did not end")
	}
	// and an hour-long deadline moved to 50 ms from now times out the next read then
	c.SetReadDeadline(time.Now().Add(time.Hour))
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if took, err := readWithin(c); !isTimeout(err) || took > 2*time.Second {
		t.Fatalf("%v after %v", err, took)
	}
}

// Clearing the deadline (zero) lets the read wait past the deadline armed before.
func TestZeroDeadlineClears(t *testing.T) {
	c, srv := pair(t)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	c.SetReadDeadline(time.Time{})
	time.AfterFunc(200*time.Millisecond, func() { srv.Write([]byte("x")) })
	if took, err := readWithin(c); err != nil || took < 150*time.Millisecond {
		t.Fatalf("%v after %v", err, took)
	}
}

// A write blocked on a full socket waits until its lazily kept deadline, not the armed one,
// and keeps what it had written.
func TestWriteDeadlineLazy(t *testing.T) {
	c, _ := pair(t)
	c.SetWriteBuffer(4096)
	c.SetWriteDeadline(time.Now().Add(30 * time.Millisecond))
	c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	start := time.Now()
	n, err := c.Write(make([]byte, 64<<20)) // the peer never reads
	if !isTimeout(err) {
		t.Fatalf("want a timeout, got %d, %v", n, err)
	}
	if d := time.Since(start); d < 290*time.Millisecond || d > 5*time.Second {
		t.Fatalf("timed out after %v, want ≈ 300 ms", d)
	}
	if n == 0 {
		t.Fatal("nothing written before the timeout")
	}
}

// Waits through SyscallConn's RawConn follow the lazy deadline too.
func TestSyscallConnWaitHonoursLazyDeadline(t *testing.T) {
	c, _ := pair(t)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		return e != syscall.EAGAIN
	})
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("want the deadline, got %v", err)
	}
	if d := time.Since(start); d < 240*time.Millisecond || d > 5*time.Second {
		t.Fatalf("the wait ended after %v, want ≈ 250 ms", d)
	}
}

// Moving a deadline later, as a server does on every request, costs no allocation and is
// far cheaper than re-arming the runtime's timer (BenchmarkSetDeadline).
func TestSetDeadlineNoAllocations(t *testing.T) {
	c, _ := pair(t)
	d := time.Now().Add(time.Hour)
	if n := testing.AllocsPerRun(200, func() {
		d = d.Add(time.Millisecond)
		c.SetReadDeadline(d)
		c.SetWriteDeadline(d)
	}); n != 0 {
		t.Fatalf("%v allocations per deadline pair", n)
	}
}

// BenchmarkSetDeadline: the per-request deadlines of a keep-alive server (idle, read, write),
// each later than the last, on a lazy Conn and on the bare TCPConn.
func BenchmarkSetDeadline(b *testing.B) {
	c, _ := pair(b)
	for _, tc := range []struct {
		name string
		conn net.Conn
	}{{"rawio", c}, {"TCPConn", c.TCPConn}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				now := time.Now()
				tc.conn.SetReadDeadline(now.Add(120 * time.Second))
				tc.conn.SetReadDeadline(now.Add(30 * time.Second))
				tc.conn.SetWriteDeadline(now.Add(60 * time.Second))
			}
		})
	}
}

// peekable reports whether c's socket has bytes to read now, without reading them.
func peekable(t *testing.T, c *Conn) bool {
	t.Helper()
	var n uintptr
	var e syscall.Errno
	b := make([]byte, 1)
	if err := c.rc.Control(func(fd uintptr) {
		n, _, e = syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	}); err != nil {
		t.Fatal(err)
	}
	return e == 0 && n == 1
}

// answerWhenTold reads one request of size n from srv at a time and answers "ok" only when
// a value arrives on the returned channel; closing the channel stops it.
func answerWhenTold(srv net.Conn, n int) chan<- struct{} {
	tell := make(chan struct{})
	go func() {
		buf := make([]byte, n)
		for {
			if _, err := io.ReadFull(srv, buf); err != nil {
				return
			}
			if _, ok := <-tell; !ok {
				return
			}
			if _, err := srv.Write([]byte("ok")); err != nil {
				return
			}
		}
	}()
	return tell
}

// The first WriteAwaitReply on a connection, and one long after the previous, only writes;
// one within AwaitWindow of the previous returns only once the answer has begun, and the
// answer is then there to read.
func TestWriteAwaitReplyWaitsOnlyInSteadyUse(t *testing.T) {
	c, srv := pair(t)
	tell := answerWhenTold(srv, 4)
	defer close(tell)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2)
	t0 := time.Now()
	exchange := func(now time.Time, waits bool) {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			n, err := c.WriteAwaitReply([]byte("ping"), now)
			if err == nil && n != 4 {
				err = io.ErrShortWrite
			}
			done <- err
		}()
		if waits {
			select {
			case err := <-done:
				t.Fatalf("returned before the answer: %v", err)
			case <-time.After(50 * time.Millisecond):
			}
			tell <- struct{}{}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if !peekable(t, c) {
				t.Fatal("returned, but nothing to read")
			}
		} else {
			if err := <-done; err != nil { // returns without the answer, or the test hangs
				t.Fatal(err)
			}
			tell <- struct{}{}
		}
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ok" {
			t.Fatalf("answer %q, %v", buf, err)
		}
	}
	exchange(t0, false)                      // first on this connection
	exchange(t0.Add(time.Millisecond), true) // within the window
	exchange(t0.Add(2*time.Millisecond), true)
	exchange(t0.Add(2*time.Millisecond+AwaitWindow), false) // idle too long
}

// Answers that come back at once are never missed: thousands of exchanges in a row against
// an echo, each bounded by a deadline that a lost wake-up would run into.
func TestWriteAwaitReplyImmediateAnswers(t *testing.T) {
	c, srv := pair(t)
	go io.Copy(srv, srv)
	msg, buf := []byte("ping"), make([]byte, 4)
	now := time.Now()
	for i := range 3000 {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		now = now.Add(time.Microsecond)
		if _, err := c.WriteAwaitReply(msg, now); err != nil {
			t.Fatalf("exchange %d: %v", i, err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatalf("exchange %d: %v", i, err)
		}
	}
}

// An answer that arrives, and is seen by the runtime's poller, between the send and the
// wait still ends the wait at once: the send comes after the wait reset the readiness.
func TestWriteAwaitReplyAnswerBeforeTheWait(t *testing.T) {
	c, srv := pair(t)
	go io.Copy(srv, srv)
	testHookAfterSend = func() { time.Sleep(20 * time.Millisecond) } // the echo comes back meanwhile
	defer func() { testHookAfterSend = nil }()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	now := time.Now()
	c.lastAwait = now.Add(-time.Millisecond)
	start := time.Now()
	if _, err := c.WriteAwaitReply([]byte("ping"), now); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the wait lasted %v: the answer's wake-up was lost", d)
	}
	if !peekable(t, c) {
		t.Fatal("returned, but nothing to read")
	}
}

// A request larger than the socket's buffers stops at EAGAIN inside the wait and is finished
// by an ordinary write: all of it arrives, then the answer.
func TestWriteAwaitReplyLargerThanTheBuffers(t *testing.T) {
	c, srv := pair(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB
	got := make(chan error, 1)
	go func() {
		b := make([]byte, len(data))
		_, err := io.ReadFull(srv, b)
		if err == nil && !bytes.Equal(b, data) {
			err = errors.New("the request arrived changed")
		}
		if err == nil {
			_, err = srv.Write([]byte("ok"))
		}
		got <- err
	}()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	now := time.Now()
	c.lastAwait = now.Add(-time.Millisecond)
	if n, err := c.WriteAwaitReply(data, now); err != nil || n != len(data) {
		t.Fatalf("wrote %d of %d: %v", n, len(data), err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "ok" {
		t.Fatalf("answer %q, %v", b, err)
	}
}

// A peer that closed while the connection was idle answers the request with a reset: the
// read that follows fails at once, not at the deadline. A peer that never answers leaves the
// wait to the read deadline, which the following read reports.
func TestWriteAwaitReplyClosedAndSilentPeers(t *testing.T) {
	t.Run("closed", func(t *testing.T) {
		c, srv := pair(t)
		srv.Close()
		time.Sleep(20 * time.Millisecond) // the FIN arrives, and the poller sees it, before the request
		c.SetDeadline(time.Now().Add(10 * time.Second))
		now := time.Now()
		c.lastAwait = now.Add(-time.Millisecond)
		start := time.Now()
		_, err := c.WriteAwaitReply([]byte("ping"), now)
		if err == nil {
			_, err = c.Read(make([]byte, 10))
		}
		if err == nil || isTimeout(err) {
			t.Fatalf("want a reset or the end of the stream, got %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("noticed after %v", d)
		}
	})
	t.Run("silent", func(t *testing.T) {
		c, _ := pair(t)
		c.SetDeadline(time.Now().Add(60 * time.Millisecond))
		now := time.Now()
		c.lastAwait = now.Add(-time.Millisecond)
		if _, err := c.WriteAwaitReply([]byte("ping"), now); err != nil {
			t.Fatalf("the write itself failed: %v", err)
		}
		if _, err := c.Read(make([]byte, 10)); !isTimeout(err) {
			t.Fatalf("want a timeout, got %v", err)
		}
	})
	t.Run("closed here", func(t *testing.T) {
		c, _ := pair(t)
		c.Close()
		now := time.Now()
		c.lastAwait = now.Add(-time.Millisecond)
		_, err := c.WriteAwaitReply([]byte("ping"), now)
		var oe *net.OpError
		if !errors.Is(err, net.ErrClosed) || !errors.As(err, &oe) || oe.Op != "write" {
			t.Fatalf("want a write error wrapping net.ErrClosed, got %v", err)
		}
	})
}

// An exchange in steady use allocates nothing either.
func TestWriteAwaitReplyNoAllocations(t *testing.T) {
	c, srv := pair(t)
	go io.Copy(srv, srv)
	msg, buf := []byte("ping"), make([]byte, 4)
	now := time.Now()
	c.lastAwait = now
	if n := testing.AllocsPerRun(200, func() {
		now = now.Add(time.Microsecond)
		if _, err := c.WriteAwaitReply(msg, now); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per exchange", n)
	}
}
