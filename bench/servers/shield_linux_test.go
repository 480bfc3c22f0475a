//go:build linux

package servers

import (
	"os"
	"os/exec"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string][]int{"1": {1}, "0-2,5": {0, 1, 2, 5}, " 3 , 7-8": {3, 7, 8}} {
		set, err := ParseCPUList(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		var got []int
		for c := 0; c < 1024; c++ {
			if set.IsSet(c) {
				got = append(got, c)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%q: %v, want %v", in, got, want)
		}
	}
	for _, bad := range []string{"", "a", "3-1", "-1", "1-", "1,,2", "2048"} {
		if _, err := ParseCPUList(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Shielding a CPU takes it out of another process's affinity and restore puts it back; a task
// that no longer overlaps, or no longer exists, is left alone. Only a child of the test is
// touched here: shielding the whole machine would slow the rest of the test run.
func TestShieldTasks(t *testing.T) {
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	pid := child.Process.Pid

	tasks, err := otherTasks(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(tasks, pid) || slices.Contains(tasks, os.Getpid()) || slices.Contains(tasks, unix.Gettid()) {
		t.Fatalf("other tasks: child %d listed %v, self %d listed %v", pid, slices.Contains(tasks, pid),
			os.Getpid(), slices.Contains(tasks, os.Getpid()))
	}

	var before unix.CPUSet
	if err := unix.SchedGetaffinity(pid, &before); err != nil {
		t.Fatal(err)
	}
	top := -1
	for c := 0; c < 1024; c++ {
		if before.IsSet(c) {
			top = c
		}
	}
	var shield unix.CPUSet
	shield.Set(top)
	const gone = 1 << 30 // above any PID the kernel hands out
	moved, kept, restore, err := shieldTasks(shield, []int{pid, gone})
	if err != nil {
		t.Fatal(err)
	}
	var during unix.CPUSet
	if err := unix.SchedGetaffinity(pid, &during); err != nil {
		t.Fatal(err)
	}
	if before.Count() == 1 {
		// its only CPU: it cannot be moved, and is counted as kept
		if moved != 0 || kept != 1 || during != before {
			t.Errorf("one-CPU child: moved %d kept %d, mask %v → %v", moved, kept, before, during)
		}
	} else {
		want := before
		want.Clear(top)
		if moved != 1 || kept != 0 || during != want {
			t.Errorf("moved %d kept %d, mask %v → %v, want %v", moved, kept, before, during, want)
		}
		// shielded already: it no longer overlaps, so it is neither moved nor kept
		if m, k, _, _ := shieldTasks(shield, []int{pid}); m != 0 || k != 0 {
			t.Errorf("second shield: moved %d kept %d", m, k)
		}
	}
	restore()
	var after unix.CPUSet
	if err := unix.SchedGetaffinity(pid, &after); err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("restored mask %v, want %v", after, before)
	}
}
