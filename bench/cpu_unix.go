//go:build unix

package bench

import (
	"syscall"
	"time"
)

// selfCPU is the CPU time (user and system) this process has used so far; zero when the
// system cannot say.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
