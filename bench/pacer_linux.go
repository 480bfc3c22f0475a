//go:build linux

package bench

import (
	"context"
	"os"
	"time"

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
	// A cancelled run ends the wait at once, whatever the period.
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Unix(1, 0)) })
	return &timerfdPacer{f: f, ctx: ctx, stopCancel: stop}
}

type timerfdPacer struct {
	f          *os.File
	ctx        context.Context
	stopCancel func() bool
	buf        [8]byte // the number of expirations since the last read; not needed
}

func (p *timerfdPacer) wait() bool {
	if p.ctx.Err() != nil {
		return false
	}
	_, err := p.f.Read(p.buf[:])
	return err == nil && p.ctx.Err() == nil
}

func (p *timerfdPacer) stop() {
	p.stopCancel()
	_ = p.f.Close()
}
