//go:build linux

package servers

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Shield keeps the CPUs in list (taskset syntax: "1", "2-3", "1,3") for the proxies a
// benchmark pins there: every other task that may run on them — other processes and their
// threads, kernel threads that are not bound to a CPU — has those CPUs taken out of its
// affinity, the way `cset shield` does. What is left on them is the kernel's per-CPU work and
// whatever is pinned there afterwards (taskset sets a child's mask outright), so start the
// proxies after Shield. This process is left alone: it is pinned by its caller.
//
// Moving another user's tasks needs root (CAP_SYS_NICE). Tasks that cannot be moved — per-CPU
// kernel threads, tasks allowed nothing but the shielded CPUs — stay and are counted in kept.
// restore gives every moved task its former affinity back (tasks gone since are skipped); call
// it on every way out, since a killed benchmark leaves the machine shielded.
func Shield(list string) (moved, kept int, restore func(), err error) {
	cpus, err := ParseCPUList(list)
	if err != nil {
		return 0, 0, nil, err
	}
	tasks, err := otherTasks(os.Getpid())
	if err != nil {
		return 0, 0, nil, err
	}
	return shieldTasks(cpus, tasks)
}

// ParseCPUList reads a CPU list in taskset/cpuset syntax: comma-separated CPUs and inclusive
// ranges.
func ParseCPUList(list string) (unix.CPUSet, error) {
	var set unix.CPUSet
	if strings.TrimSpace(list) == "" {
		return set, errors.New("servers: empty CPU list")
	}
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err1 := strconv.Atoi(lo)
		b, err2 := a, error(nil)
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 0 || b < a || b >= 1024 {
			return set, fmt.Errorf("servers: bad CPU list %q", list)
		}
		for c := a; c <= b; c++ {
			set.Set(c)
		}
	}
	return set, nil
}

// otherTasks lists the thread IDs of every task on the machine outside process self.
func otherTasks(self int) ([]int, error) {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var tids []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		threads, err := os.ReadDir("/proc/" + p.Name() + "/task")
		if err != nil {
			continue // gone meanwhile
		}
		for _, t := range threads {
			if tid, err := strconv.Atoi(t.Name()); err == nil {
				tids = append(tids, tid)
			}
		}
	}
	return tids, nil
}

// shieldTasks takes cpus out of the affinity of each of tids that may run there.
func shieldTasks(cpus unix.CPUSet, tids []int) (moved, kept int, restore func(), err error) {
	type saved struct {
		tid  int
		mask unix.CPUSet
	}
	var done []saved
	for _, tid := range tids {
		var mask unix.CPUSet
		if unix.SchedGetaffinity(tid, &mask) != nil {
			continue // gone meanwhile
		}
		rest := mask
		for i := range rest {
			rest[i] &^= cpus[i]
		}
		if rest == mask {
			continue // not allowed on the shielded CPUs anyway
		}
		if rest.Count() == 0 || unix.SchedSetaffinity(tid, &rest) != nil {
			kept++
			continue
		}
		done = append(done, saved{tid, mask})
	}
	restore = func() {
		for _, s := range done {
			_ = unix.SchedSetaffinity(s.tid, &s.mask)
		}
	}
	return len(done), kept, restore, nil
}
