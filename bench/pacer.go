package bench

import (
	"context"
	"time"
)

// pacer wakes the open loop's scheduler once a period until its context ends.
type pacer interface {
	// wait blocks until the next period begins; false when the context ended.
	wait() bool
	stop()
}

// timerPacer paces with the runtime's timers: portable, but on an idle core a wait shorter
// than a millisecond lasts about a millisecond on Linux (see newPacer).
type timerPacer struct {
	ctx context.Context
	t   *time.Ticker
}

func newTimerPacer(ctx context.Context, period time.Duration) pacer {
	return &timerPacer{ctx: ctx, t: time.NewTicker(period)}
}

func (p *timerPacer) wait() bool {
	select {
	case <-p.ctx.Done():
		return false
	case <-p.t.C:
		return true
	}
}

func (p *timerPacer) stop() { p.t.Stop() }
