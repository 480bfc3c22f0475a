package servers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Postgres is a PostgreSQL server started by StartPostgres: a fresh cluster (initdb) in the test's
// temporary directory, listening on 127.0.0.1 only (no Unix socket), trust authentication for
// the superuser PostgresUser, fsync off. It runs as an unprivileged system user when the test runs
// as root, because PostgreSQL refuses to run as root.
//
// A Postgres is stopped (fast shutdown, then SIGKILL after 10 s) by the test's cleanup; Stop may
// also be called earlier, for example to test what a client does when the database goes away.
type Postgres struct {
	// Host and Port are where the server listens (Host is always 127.0.0.1).
	Host string
	Port int
	// User is the superuser role; it needs no password from 127.0.0.1.
	User string
	// Dir holds the cluster (Dir/data) and the server log (Dir/postgres.log).
	Dir string
	// BinDir is the directory the PostgreSQL programs were taken from.
	BinDir string

	cred     *syscall.Credential
	cmd      *exec.Cmd
	exited   chan struct{}
	stopOnce sync.Once
	stopErr  error
}

// PostgresUser is the superuser role of every cluster StartPostgres creates.
const PostgresUser = "easgate"

// postgresRunAs is the unprivileged account the server runs as when the test runs as root.
const postgresRunAs = "nobody"

// StartPostgres starts a new PostgreSQL cluster for tb and registers its shutdown with tb.Cleanup.
// The programs are looked up in $EASGATE_PG_BIN, then the newest /usr/lib/postgresql/*/bin, then
// PATH; when initdb is missing everywhere it runs `apt-get install -y postgresql` once and fails
// the test if the programs are still absent.
func StartPostgres(tb testing.TB) *Postgres {
	tb.Helper()
	bin, err := pgFindBinDir()
	if err != nil {
		tb.Fatalf("servers: postgres: %v", err)
	}
	dir := tb.TempDir()
	p := &Postgres{Host: "127.0.0.1", User: PostgresUser, Dir: dir, BinDir: bin}
	if err := p.prepare(); err != nil {
		tb.Fatalf("servers: postgres: %v", err)
	}
	// The free port is found by binding and releasing it, so another process can take it in
	// between; a few attempts make that race harmless.
	for attempt := 0; ; attempt++ {
		err = p.start()
		if err == nil {
			break
		}
		if attempt == 4 {
			tb.Fatalf("servers: postgres: %v", err)
		}
	}
	tb.Cleanup(func() {
		if err := p.Stop(); err != nil {
			tb.Errorf("servers: postgres: stop: %v", err)
		}
	})
	return p
}

// DSN returns a libpq/pgx connection string for database db (use "postgres" for the default
// database), without TLS.
func (p *Postgres) DSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", p.Host, p.Port, p.User, db)
}

// URL returns the same as DSN in URL form.
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", p.User, net.JoinHostPort(p.Host, strconv.Itoa(p.Port)), db)
}

// CreateDatabase creates an empty database named name (with the createdb program, so this file
// needs no client library) and returns its DSN. Tests use one database per store under test so
// they never see each other's rows.
func (p *Postgres) CreateDatabase(name string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(p.BinDir, "createdb"),
		"-h", p.Host, "-p", strconv.Itoa(p.Port), "-U", p.User, name)
	p.setCred(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("servers: postgres: createdb %s: %v: %s", name, err, bytes.TrimSpace(out))
	}
	return p.DSN(name), nil
}

// Stop shuts the server down (SIGINT, PostgreSQL's fast shutdown) and waits for it, killing it
// after 10 seconds. It is idempotent; the test's cleanup calls it too.
func (p *Postgres) Stop() error {
	p.stopOnce.Do(func() {
		if p.cmd == nil || p.cmd.Process == nil {
			return
		}
		_ = p.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
			p.stopErr = errors.New("did not stop within 10s after SIGINT; killed")
		}
	})
	return p.stopErr
}

// prepare creates the cluster with initdb, owned by the account the server will run as.
func (p *Postgres) prepare() error {
	if os.Geteuid() == 0 {
		u, err := user.Lookup(postgresRunAs)
		if err != nil {
			return fmt.Errorf("look up user %q to run as: %v", postgresRunAs, err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
		// t.TempDir and its per-test parent are 0700 root; the server account must be able to
		// traverse them (not list them) to reach its own directory.
		for _, d := range []string{filepath.Dir(p.Dir), p.Dir} {
			if err := os.Chmod(d, 0o711); err != nil {
				return err
			}
		}
		if err := os.Chown(p.Dir, int(uid), int(gid)); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(p.BinDir, "initdb"),
		"-D", filepath.Join(p.Dir, "data"), "-U", p.User, "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync")
	p.setCred(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// start runs the postmaster in the foreground as a child of the test process, so the test owns
// its lifetime (it also dies with the test process, by Pdeathsig), and waits until it accepts
// connections.
func (p *Postgres) start() error {
	port, err := pgFreePort()
	if err != nil {
		return err
	}
	p.Port = port
	logPath := filepath.Join(p.Dir, "postgres.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(p.BinDir, "postgres"),
		"-D", filepath.Join(p.Dir, "data"),
		"-h", p.Host, "-p", strconv.Itoa(port), "-k", "",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=60", "-c", "shared_buffers=16MB",
		"-c", "log_min_messages=warning", "-c", "listen_addresses=127.0.0.1")
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = []string{"LANG=C", "LC_ALL=C", "PATH=/usr/bin:/bin"}
	p.setCred(cmd)
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	p.cmd, p.exited = cmd, exited

	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			p.cmd = nil
			return fmt.Errorf("postgres exited during startup: %s", pgTail(logPath))
		default:
		}
		if p.ready() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	p.cmd = nil
	return fmt.Errorf("postgres not ready within 60s: %s", pgTail(logPath))
}

// ready reports whether the server accepts sessions (not just TCP: a starting server accepts
// connections and then refuses them), using pg_isready.
func (p *Postgres) ready() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(p.BinDir, "pg_isready"),
		"-q", "-h", p.Host, "-p", strconv.Itoa(p.Port), "-U", p.User, "-d", "postgres", "-t", "2")
	return cmd.Run() == nil
}

func (p *Postgres) setCred(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if p.cred != nil {
		cmd.SysProcAttr.Credential = p.cred
		cmd.Dir = p.Dir
	}
}

var pgInstallOnce sync.Once

// pgFindBinDir finds the directory holding initdb, postgres, pg_isready and createdb.
func pgFindBinDir() (string, error) {
	find := func() string {
		if d := os.Getenv("EASGATE_PG_BIN"); d != "" {
			return d
		}
		dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
		for _, d := range dirs {
			if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
				return d
			}
		}
		if path, err := exec.LookPath("initdb"); err == nil {
			if real, err := filepath.EvalSymlinks(path); err == nil {
				path = real
			}
			return filepath.Dir(path)
		}
		return ""
	}
	dir := find()
	if dir == "" {
		pgInstallOnce.Do(func() {
			_ = exec.Command("apt-get", "install", "-y", "postgresql").Run()
		})
		dir = find()
	}
	if dir == "" {
		return "", errors.New("PostgreSQL server programs not found (install the Debian package " +
			"postgresql, or set EASGATE_PG_BIN to the directory holding initdb and postgres)")
	}
	for _, prog := range []string{"initdb", "postgres", "pg_isready", "createdb"} {
		if _, err := os.Stat(filepath.Join(dir, prog)); err != nil {
			return "", fmt.Errorf("%s missing from %s (Debian package postgresql)", prog, dir)
		}
	}
	return dir, nil
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func pgFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// pgTail returns the last lines of the server log for error messages.
func pgTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}
