//go:build linux

package bench

import (
	"context"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// newPacer returns a pacer that wakes every period through a timerfd. The descriptor sits in
// the runtime's poller, so the wake-up is as precise as the kernel's timer (tens of
// microseconds) even when the harness's core is idle, where a runtime timer would wait in
// epoll_wait, whose timeout is whole milliseconds: a sleep of 100 µs on an idle core lasts a
// millisecond, and the requests due meanwhile would go out as one burst. Where a timerfd
// cannot be had, the runtime's timers are used.
func newPacer(ctx context.Context, period time.Duration) pacer {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return newTimerPacer(ctx, period)
	}
	ts := unix.NsecToTimespec(period.Nanoseconds())
	if err := unix.TimerfdSettime(fd, 0, &unix.ItimerSpec{Interval: ts, Value: ts}, nil); err != nil {
		unix.Close(fd)
		return newTimerPacer(ctx, period)
	}
	f := os.NewFile(uintptr(fd), "timerfd")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return newTimerPacer(ctx, period)
	}
	p := &timerfdPacer{f: f, rc: rc, ctx: ctx}
	p.read = p.readOnce
	// A cancelled run ends the wait at once, whatever the period.
	p.stopCancel = context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Unix(1, 0)) })
	return p
}

type timerfdPacer struct {
	f          *os.File
	rc         syscall.RawConn
	read       func(fd uintptr) bool // readOnce, bound once so that a wait allocates nothing
	ctx        context.Context
	stopCancel func() bool
	buf        [8]byte // the number of expirations since the last read; not needed
	errno      syscall.Errno
}

// wait reads the timerfd through the poller with a raw system call. os.File.Read would enter
// the runtime's blocking-syscall path, which wakes the runtime's monitor thread whenever the
// harness's one P has been idle: at 10,000 waits a second that made three quarters of the
// harness's context switches (22,600 a second at 26,000 req/s, 6,100 without).
func (p *timerfdPacer) wait() bool {
	if p.ctx.Err() != nil {
		return false
	}
	err := p.rc.Read(p.read)
	return err == nil && p.errno == 0 && p.ctx.Err() == nil
}

// readOnce is one non-blocking read of the expiration count; false (EAGAIN) makes the poller
// wait for the next expiration. Any other error ends the pacing (errno).
func (p *timerfdPacer) readOnce(fd uintptr) bool {
	for {
		_, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p.buf[0])), uintptr(len(p.buf)))
		if e == syscall.EINTR {
			continue
		}
		p.errno = e
		return e != syscall.EAGAIN
	}
}

func (p *timerfdPacer) stop() {
	p.stopCancel()
	_ = p.f.Close()
}
