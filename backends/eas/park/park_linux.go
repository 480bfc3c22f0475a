//go:build linux

package park

import (
	"net"
	"os"
	"sync"
	"syscall"
)

// Poller is one epoll set and the goroutine that serves it. Safe for concurrent use.
type Poller struct {
	epfd int
	file *os.File // epfd, so that the runtime's poller wakes the loop

	mu      sync.Mutex
	next    uint64
	watches map[uint64]*Watch
	closed  bool
}

// Watch is one registered connection. Its callback runs at most once.
type Watch struct {
	p  *Poller
	id uint64
	rc syscall.RawConn
	fn func(Event)
}

var (
	sharedOnce sync.Once
	shared     *Poller
	sharedErr  error
)

// Shared returns the process's poller, created on first use and never closed.
func Shared() (*Poller, error) {
	sharedOnce.Do(func() { shared, sharedErr = New() })
	return shared, sharedErr
}

// New creates a poller and starts its goroutine. Close stops it.
func New() (*Poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		_ = syscall.Close(epfd)
		return nil, os.NewSyscallError("setnonblock", err)
	}
	// A non-blocking descriptor given to os.NewFile joins the runtime's poller: reads on its
	// RawConn park the goroutine until the epoll set has events.
	p := &Poller{epfd: epfd, file: os.NewFile(uintptr(epfd), "park-epoll"), watches: make(map[uint64]*Watch)}
	rc, err := p.file.SyscallConn()
	if err != nil {
		_ = p.file.Close()
		return nil, err
	}
	go p.loop(rc)
	return p, nil
}

// Close stops the poller. Watches still registered never fire; their connections are left
// alone (their owners close them).
func (p *Poller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.watches = nil
	p.mu.Unlock()
	return p.file.Close()
}

// Len reports the number of registered watches.
func (p *Poller) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.watches)
}

func (p *Poller) loop(rc syscall.RawConn) {
	events := make([]syscall.EpollEvent, 128)
	// The function never reports "done": RawRead calls it, then sleeps until the epoll
	// descriptor is readable again, for as long as the file is open.
	_ = rc.Read(func(fd uintptr) bool {
		for {
			n, err := syscall.EpollWait(int(fd), events, 0)
			if err == syscall.EINTR {
				continue
			}
			if err != nil || n <= 0 {
				return false
			}
			for i := range events[:n] {
				p.dispatch(&events[i])
			}
			if n < len(events) {
				return false
			}
		}
	})
}

func (p *Poller) dispatch(ev *syscall.EpollEvent) {
	id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
	p.mu.Lock()
	w := p.watches[id]
	if w != nil {
		delete(p.watches, id)
	}
	p.mu.Unlock()
	if w == nil {
		return // stopped while the event was on its way
	}
	var e Event
	if ev.Events&(syscall.EPOLLIN|syscall.EPOLLPRI) != 0 {
		e |= EventReadable
	}
	if ev.Events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		e |= EventHangUp | EventReadable
	}
	go func() {
		w.deregister()
		w.fn(e)
	}()
}

// Watch calls fn once, in a goroutine of its own, when conn becomes ready for mode — at once
// if it already is. Stop cancels the watch. The connection must stay open until fn has run
// or Stop has returned; closing it silently ends the watch (the kernel forgets a closed
// socket), after which Stop still returns true.
//
// It fails with ErrUnsupported for a connection without a socket descriptor.
func (p *Poller) Watch(conn net.Conn, mode Mode, fn func(Event)) (*Watch, error) {
	sc, ok := rawConn(conn).(syscall.Conn)
	if !ok {
		return nil, ErrUnsupported
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, ErrUnsupported
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	p.next++
	w := &Watch{p: p, id: p.next, rc: rc, fn: fn}
	p.watches[w.id] = w
	p.mu.Unlock()

	flags := uint32(syscall.EPOLLRDHUP | syscall.EPOLLONESHOT)
	if mode == Readable {
		flags |= syscall.EPOLLIN
	}
	ev := syscall.EpollEvent{Events: flags, Fd: int32(uint32(w.id)), Pad: int32(uint32(w.id >> 32))}
	var cerr error
	err = rc.Control(func(fd uintptr) {
		cerr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
		if cerr == syscall.EEXIST {
			// a one-shot watch that fired earlier on this socket (a pooled upstream
			// connection) is still in the set, disabled: re-arm it.
			cerr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
		}
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		p.mu.Lock()
		delete(p.watches, w.id)
		p.mu.Unlock()
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	return w, nil
}

// Stop cancels the watch. It reports whether the callback was prevented: false means it has
// run or is about to.
func (w *Watch) Stop() bool {
	p := w.p
	p.mu.Lock()
	_, ok := p.watches[w.id]
	if ok {
		delete(p.watches, w.id)
	}
	p.mu.Unlock()
	if ok {
		w.deregister()
	}
	return ok
}

// deregister removes the socket from the epoll set. RawConn.Control keeps the descriptor from
// being closed (and its number reused) during the call, and fails if the connection is already
// closed, in which case the kernel dropped it from the set by itself.
func (w *Watch) deregister() {
	_ = w.rc.Control(func(fd uintptr) {
		_ = syscall.EpollCtl(w.p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
	})
}
