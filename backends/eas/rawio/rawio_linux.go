//go:build linux

package rawio

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Conn is a *net.TCPConn whose Read, Write and ReadFrom go through the socket directly.
// Every other method is the TCPConn's, SyscallConn included.
type Conn struct {
	*net.TCPConn
	rc   syscall.RawConn
	r, w half
}

// half is the state of the call in progress in one direction. RawConn takes a
// func(fd) bool; the method value bound once in fn keeps each call free of allocations.
type half struct {
	mu    sync.Mutex
	buf   []byte
	n     int
	errno syscall.Errno
	fn    func(uintptr) bool
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
	w.r.fn, w.w.fn = w.read, w.write
	return w
}

// Read reads like net.Conn's Read: io.EOF at the end, *net.OpError otherwise.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := c.do(&c.r, p, "read", c.rc.Read)
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
	return c.do(&c.w, p, "write", c.rc.Write)
}

// do runs one call of direction h over p through wait (RawConn's Read or Write), which
// calls h.fn until it reports done, waiting in the poller in between.
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

// write sends with MSG_NOSIGNAL: a peer that went away is EPIPE, never a SIGPIPE.
func (c *Conn) write(fd uintptr) bool {
	h := &c.w
	for h.n < len(h.buf) {
		rest := h.buf[h.n:]
		n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)),
			syscall.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			h.n += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // wait until writable, then the rest
		default:
			h.errno = e
			return true
		}
	}
	return true
}

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
