package notifier

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The crash test re-executes the test binary as a child that queues notifications and is
// killed with SIGKILL; these variables carry its instructions.
const (
	crashChildEnv = "EASGATE_NOTIFIER_CRASH_CHILD"
	crashDBEnv    = "EASGATE_NOTIFIER_CRASH_DB"
	crashSMTPEnv  = "EASGATE_NOTIFIER_CRASH_SMTP"
	crashCount    = 1000
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) == "1" {
		crashChild()
		return
	}
	os.Exit(m.Run())
}

// crashConfig is shared by the child and the process that recovers after it: timeouts short
// enough that a lease of 3 s is longer than any delivery, and retries that never give up (a
// slow, loaded CI machine may time out a few deliveries; none may be dead-lettered).
func crashConfig(addr string) Config {
	cfg := testConfig(addr)
	cfg.SMTP.DialTimeout = 500 * time.Millisecond
	cfg.SMTP.CommandTimeout = 500 * time.Millisecond
	cfg.SMTP.DataTimeout = 900 * time.Millisecond
	cfg.Lease = 3 * time.Second
	cfg.Workers = 4
	cfg.Retry.MaxAttempts = 1000
	return cfg
}

// crashChild queues crashCount remediation e-mails, printing each outbox id once Remediate
// returned (the row is committed), then "DONE", then starts its workers and delivers until it
// is killed: at the kill most mail is still queued and up to Workers messages are in flight.
func crashChild() {
	ctx := context.Background()
	ob, err := OpenSQLite(ctx, os.Getenv(crashDBEnv))
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	n, err := New(crashConfig(os.Getenv(crashSMTPEnv)), ob)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	for i := 0; i < crashCount; i++ {
		r := remediation(fmt.Sprintf("DEV%04d", i))
		r.User = fmt.Sprintf("user%04d", i)
		id, err := n.Remediate(ctx, r)
		if err != nil {
			fmt.Fprintln(out, "ERR", err)
			out.Flush()
			os.Exit(2)
		}
		fmt.Fprintln(out, "ID", id)
		out.Flush()
	}
	fmt.Fprintln(out, "DONE")
	out.Flush()
	n.Start()
	time.Sleep(time.Minute) // killed long before
	os.Exit(3)
}

func TestKill9LosesNoQueuedOrInFlightMail(t *testing.T) {
	f := startFakeSMTP(t, fakeOpts{})
	f.setDelay(15 * time.Millisecond) // slow relay: mail is in flight when the kill lands
	db := filepath.Join(t.TempDir(), "gateway.db")

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"=1", crashDBEnv+"="+db, crashSMTPEnv+"="+f.Addr)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	startT := time.Now()
	acked := map[string]bool{}
	sc := bufio.NewScanner(stdout)
	done := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "ID "):
			acked[strings.TrimPrefix(line, "ID ")] = true
		case line == "DONE":
			done = true
		default:
			t.Fatalf("child: %s", line)
		}
		if done {
			break
		}
	}
	if !done || len(acked) != crashCount {
		t.Fatalf("child acknowledged %d of %d (done=%v): %v", len(acked), crashCount, done, sc.Err())
	}
	t.Logf("child committed %d notifications in %v", len(acked), time.Since(startT))
	// Let deliveries run so some are sent, some in flight and most still queued.
	waitFor(t, "first deliveries", func() bool { d, _ := f.distinct(); return d >= 50 })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true
	before, _ := f.distinct()
	if before >= crashCount {
		t.Fatalf("child delivered everything (%d) before the kill; the test proves nothing", before)
	}

	// A new process (here: a new Notifier in this process) on the same database file.
	ob, err := OpenSQLite(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	f.setDelay(0)
	n, err := New(crashConfig(f.Addr), ob)
	if err != nil {
		t.Fatal(err)
	}
	n.Start()
	defer n.Close()
	deadline := time.Now().Add(60 * time.Second)
	for d, _ := f.distinct(); d < crashCount; d, _ = f.distinct() {
		if time.Now().After(deadline) {
			var states []string
			for _, st := range []State{StateQueued, StateSending, StateSent, StateDead} {
				rows, _ := ob.List(context.Background(), ListFilter{State: st, Limit: 2 * crashCount})
				states = append(states, fmt.Sprintf("%s=%d", st, len(rows)))
				if len(rows) > 0 && st != StateSent {
					states = append(states, fmt.Sprintf("(e.g. %+v)", *rows[0]))
				}
			}
			t.Fatalf("received %d distinct of %d; outbox %v; stats %+v", d, crashCount, states, n.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}

	distinct, total := f.distinct()
	if distinct != crashCount {
		t.Fatalf("received %d distinct Message-IDs, want %d", distinct, crashCount)
	}
	f.mu.Lock()
	for id := range f.byID {
		if !strings.HasPrefix(id, "easgate.") || !acked[strings.TrimSuffix(strings.TrimPrefix(id, "easgate."), "@easgate.test")] {
			t.Errorf("received unknown Message-ID %q", id)
		}
	}
	f.mu.Unlock()
	// Duplicates are the messages in flight at the kill, re-sent with the same Message-ID.
	t.Logf("delivered %d before the kill; %d messages received, %d distinct, %d duplicates",
		before, total, distinct, total-distinct)
	if total-distinct > 4 {
		t.Errorf("%d duplicates, more than the 4 workers could have had in flight", total-distinct)
	}
	waitFor(t, "every row marked sent", func() bool {
		rows, err := ob.List(context.Background(), ListFilter{State: StateSent, Limit: 2 * crashCount})
		return err == nil && len(rows) == crashCount
	})
}
