//go:build linux

package rawio

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Conn is a *net.TCPConn whose Read, Write and ReadFrom go through the socket directly and
// whose deadlines are lazy (below). Every other method is the TCPConn's; SyscallConn gives the
// TCPConn's RawConn with the lazy deadlines applied to its Read and Write waits.
type Conn struct {
	*net.TCPConn
	rc   syscall.RawConn
	r, w half

	awaitFn   func(uintptr) bool // sendAwait, bound once
	lastAwait time.Time          // when WriteAwaitReply last began; owned by the writer
}

// half is the state of one direction: the call in progress and the deadline. RawConn takes a
// func(fd) bool; the method value bound once in fn keeps each call free of allocations.
type half struct {
	mu      sync.Mutex // held for a whole call, wait included
	buf     []byte
	n       int
	errno   syscall.Errno
	partial bool // sendAwait stopped at EAGAIN: the rest goes out by an ordinary write
	fn      func(uintptr) bool

	dl deadline
}

// deadline makes setting a deadline cheap. A server sets one or two per request (the idle
// wait, then the read; the write), each later than the one before, and each is a change to a
// runtime timer under locks: ≈ 130 ns, five times per proxied request. Here the deadline
// asked for (want) is only recorded; the runtime's (armed) changes at once only when want is
// earlier than it (or it has none), so a wait never outlasts want. A later want leaves the
// earlier armed deadline in place: when that fires, the wait ends with os.ErrDeadlineExceeded
// before want, and retry re-arms want and waits again. In a steady keep-alive exchange the
// timer is touched about once per timeout period instead of on every request.
type deadline struct {
	mu          sync.Mutex
	want, armed time.Time // zero: none
}

// set records t as the direction's deadline and arms it at once when it is earlier than
// the armed one (which also ends a wait in progress when t has passed).
func (d *deadline) set(t time.Time, arm func(time.Time) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.want = t
	if t.IsZero() || !d.armed.IsZero() && !t.Before(d.armed) {
		return nil
	}
	if err := arm(t); err != nil {
		return err
	}
	d.armed = t
	return nil
}

// retry reports whether err is an armed deadline that fired before the one asked for; it then
// arms the deadline asked for, and the wait should be made again.
func (d *deadline) retry(err error, arm func(time.Time) error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.want.IsZero() && !time.Now().Before(d.want) {
		return false // the deadline asked for has passed: a real timeout
	}
	if arm(d.want) != nil {
		return false
	}
	d.armed = d.want
	return true
}

// SetDeadline sets both directions' deadlines, lazily.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline, lazily.
func (c *Conn) SetReadDeadline(t time.Time) error {
	return c.r.dl.set(t, c.TCPConn.SetReadDeadline)
}

// SetWriteDeadline sets the write deadline, lazily.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	return c.w.dl.set(t, c.TCPConn.SetWriteDeadline)
}

// SyscallConn returns the TCPConn's RawConn with the lazy deadlines applied to the waits of
// its Read and Write (park and waitReadable in backends/eas wait through it).
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return rawConn{c}, nil }

type rawConn struct{ c *Conn }

func (r rawConn) Control(f func(uintptr)) error { return r.c.rc.Control(f) }

func (r rawConn) Read(f func(uintptr) bool) error { return r.c.waitRead(f) }

func (r rawConn) Write(f func(uintptr) bool) error { return r.c.waitWrite(f) }

// waitRead is RawConn.Read under the lazy read deadline: a wait ended by an armed deadline
// earlier than the one asked for is made again.
func (c *Conn) waitRead(f func(uintptr) bool) error {
	for {
		err := c.rc.Read(f)
		if !c.r.dl.retry(err, c.TCPConn.SetReadDeadline) {
			return err
		}
	}
}

// waitWrite is RawConn.Write under the lazy write deadline.
func (c *Conn) waitWrite(f func(uintptr) bool) error {
	for {
		err := c.rc.Write(f)
		if !c.w.dl.retry(err, c.TCPConn.SetWriteDeadline) {
			return err
		}
	}
}

// Wrap returns c as a *Conn when it is a *net.TCPConn, else c itself.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	w := &Conn{TCPConn: tc, rc: rc}
	w.r.fn, w.w.fn, w.awaitFn = w.read, w.write, w.sendAwait
	return w
}

// Read reads like net.Conn's Read: io.EOF at the end, *net.OpError otherwise.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := c.do(&c.r, p, "read", c.waitRead)
	if err == nil && n == 0 {
		err = io.EOF
	}
	return n, err
}

// Write writes all of p, like net.Conn's Write.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return c.do(&c.w, p, "write", c.waitWrite)
}

// do runs one call of direction h over p through wait (waitRead or waitWrite), which calls
// h.fn until it reports done, waiting in the poller in between; a wait made again after an
// early deadline goes on from where the call had got to.
func (c *Conn) do(h *half, p []byte, op string, wait func(func(uintptr) bool) error) (int, error) {
	h.mu.Lock()
	h.buf, h.n, h.errno = p, 0, 0
	err := wait(h.fn)
	n, errno := h.n, h.errno
	h.buf = nil
	h.mu.Unlock()
	if err == nil && errno != 0 {
		err = os.NewSyscallError(op, errno)
	}
	if err != nil {
		return n, &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	return n, nil
}

func (c *Conn) read(fd uintptr) bool {
	h := &c.r
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&h.buf[0])), uintptr(len(h.buf)))
		switch e {
		case 0:
			h.n = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait in the poller, then again
		}
		h.errno = e
		return true
	}
}

// write is Write's function inside RawConn.Write.
func (c *Conn) write(fd uintptr) bool {
	return !c.w.send(fd) // full: wait until writable, then the rest
}

// send writes the rest of h.buf with MSG_NOSIGNAL (a peer that went away is EPIPE, never a
// SIGPIPE) until it is all sent, the call fails (h.errno), or the socket's buffer is full.
func (h *half) send(fd uintptr) (full bool) {
	for h.n < len(h.buf) {
		rest := h.buf[h.n:]
		n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)),
			syscall.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			h.n += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return true
		default:
			h.errno = e
			return false
		}
	}
	return false
}

// AwaitWindow is how recently a connection must have begun its previous WriteAwaitReply for
// the next one to skip the read that would find nothing (below). Far shorter than any
// server's keep-alive timeout: a peer answered the request that began then, and has had no
// reason since to speak first or to close the connection while it was idle.
const AwaitWindow = 10 * time.Millisecond

// WriteAwaitReply writes p, like Write, and then waits until the connection is readable —
// the peer's reply has begun, it hung up, or the read deadline passed — without reading. It
// is for the request side of a request–response exchange, and saves one system call a
// round trip: a Write followed by a Read tries the read at once and finds nothing (the reply
// cannot be there yet) before it waits in the poller. Here the bytes are sent from inside the
// poller's read wait, after the wait has reset the socket's readiness, so a reply that comes
// back at once still ends the wait, and no read is tried before one can have arrived.
//
// What arrived before the call is not seen by that wait: bytes or a hang-up from the peer
// while the connection was idle would only be noticed at the read deadline (a hung-up peer
// usually answers the request with a reset, which is noticed at once). So the wait is made
// only when the previous WriteAwaitReply on this connection began less than AwaitWindow
// before now (the caller's clock); otherwise, and when the socket's buffer is full, p is
// written as by Write and the caller's read does the waiting. The caller reads next either
// way. An error is the write's; one from the wait (deadline, close) is left to that read.
func (c *Conn) WriteAwaitReply(p []byte, now time.Time) (int, error) {
	steady := !c.lastAwait.IsZero() && now.Sub(c.lastAwait) < AwaitWindow
	c.lastAwait = now
	if !steady || len(p) == 0 {
		return c.Write(p)
	}
	h := &c.w
	h.mu.Lock()
	h.buf, h.n, h.errno, h.partial = p, 0, 0, false
	err := c.waitRead(c.awaitFn)
	n, errno, partial := h.n, h.errno, h.partial
	h.buf = nil
	h.mu.Unlock()
	switch {
	case errno != 0:
		err = os.NewSyscallError("write", errno)
	case partial:
		m, err := c.Write(p[n:])
		return n + m, err
	case n == len(p):
		return n, nil // sent; the read that follows reports a failed wait
	}
	if err == nil {
		err = io.ErrShortWrite
	}
	return n, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// sendAwait is WriteAwaitReply's function inside RawConn.Read: the first call sends and asks
// to wait; the call after the wait reports the socket readable.
func (c *Conn) sendAwait(fd uintptr) bool {
	h := &c.w
	if h.n == len(h.buf) {
		return true
	}
	if h.send(fd) {
		h.partial = true // this wait cannot also wait for room to write
		return true
	}
	if h.errno != 0 {
		return true
	}
	if testHookAfterSend != nil {
		testHookAfterSend()
	}
	return false
}

// testHookAfterSend, when set, runs between sendAwait's send and its wait.
var testHookAfterSend func()

// ReadFrom copies r to the connection in 32 KiB writes, as net.TCPConn does for a reader that
// is neither a file nor a socket (a bufio.Writer hands streamed bodies here).
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return io.CopyBuffer(writerOnly{c}, r, *bp)
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// writerOnly hides ReadFrom from io.CopyBuffer, which would otherwise call it again.
type writerOnly struct{ io.Writer }

// Listener wraps every connection it accepts.
type Listener struct{ net.Listener }

// NewListener returns ln wrapped.
func NewListener(ln net.Listener) net.Listener { return Listener{ln} }

// Accept accepts from the wrapped listener and wraps the connection.
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}
