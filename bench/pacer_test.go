package bench

import (
	"context"
	"testing"
	"time"
)

// The pacer wakes once a period, and never before: n waits of a period take at least n-1
// periods (the first may come at once when the test was slow to start).
func TestPacer_WakesEveryPeriod(t *testing.T) {
	const period, n = 2 * time.Millisecond, 25
	p := newPacer(context.Background(), period)
	defer p.stop()
	start := time.Now()
	for i := range n {
		if !p.wait() {
			t.Fatalf("wait %d ended early", i)
		}
	}
	if el := time.Since(start); el < (n-1)*period {
		t.Errorf("%d waits of %v took %v", n, period, el)
	}
}

// A cancelled run ends the wait at once, whatever the period (an hour here), and every later
// wait reports the end too.
func TestPacer_CancelEndsTheWait(t *testing.T) {
	for _, mk := range []struct {
		name string
		new  func(context.Context, time.Duration) pacer
	}{{"default", newPacer}, {"timer", newTimerPacer}} {
		t.Run(mk.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			p := mk.new(ctx, time.Hour)
			defer p.stop()
			done := make(chan bool, 1)
			go func() { done <- p.wait() }()
			time.Sleep(20 * time.Millisecond)
			cancel()
			select {
			case ok := <-done:
				if ok {
					t.Error("wait reported a period after the cancel")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("wait did not end after the cancel")
			}
			if p.wait() {
				t.Error("a wait after the cancel reported a period")
			}
		})
	}
}

// A wait allocates nothing: the open loop waits 10,000 times a second on the harness's core.
func TestPacer_WaitAllocatesNothing(t *testing.T) {
	p := newPacer(context.Background(), 200*time.Microsecond)
	defer p.stop()
	if a := testing.AllocsPerRun(20, func() {
		if !p.wait() {
			t.Fatal("wait ended early")
		}
	}); a != 0 {
		t.Errorf("a wait allocates %v times", a)
	}
}
