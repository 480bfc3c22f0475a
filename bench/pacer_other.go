//go:build !linux

package bench

import (
	"context"
	"time"
)

func newPacer(ctx context.Context, period time.Duration) pacer { return newTimerPacer(ctx, period) }
