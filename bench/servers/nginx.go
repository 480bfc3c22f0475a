package servers

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// NginxOptions configures StartNginx / NewNginx. Zero values mean the documented default.
type NginxOptions struct {
	// Upstream is the host:port nginx proxies every request to (proxy_pass). Required.
	Upstream string
	// Workers is worker_processes; default 1 (the pinned, like-for-like comparison with a
	// single-core gateway).
	Workers int
	// CPUs pins nginx (master and workers) with `taskset -c CPUS`, e.g. "1" or "0,1".
	// Empty: no pinning.
	CPUs string
	// ReadTimeout is proxy_read_timeout and proxy_send_timeout: how long nginx waits for the
	// upstream's answer. Default 3600 s, so held Pings (heartbeat up to 3540 s) are not cut.
	ReadTimeout time.Duration
	// KeepaliveConns is the upstream keepalive pool size per worker (`keepalive N`);
	// default 1024.
	KeepaliveConns int
	// WorkerConnections is events.worker_connections; default 19000. Each held Ping uses two
	// (device side and upstream side). worker_rlimit_nofile is set to the same value plus 64.
	WorkerConnections int
	// ProxyBufferSize is proxy_buffer_size: with proxy_buffering off it is the one buffer a
	// response passes through, so nginx's 4 KB default turns a 1 MB attachment into 256
	// read/write rounds. Default 64 KiB (allocated only once an answer arrives, so held Pings
	// do not pay for it).
	ProxyBufferSize int
	// Dir holds nginx.conf, the pid file, error.log and the temp paths. Empty: a new temporary
	// directory (StartNginx uses t.TempDir(); NewNginx removes its own directory on Stop).
	Dir string
}

// Nginx is a running nginx (the Debian package's /usr/sbin/nginx), reverse-proxying
// 127.0.0.1:port to NginxOptions.Upstream with keep-alive upstream connections and no response
// buffering (long polls and streamed attachments pass straight through).
type Nginx struct {
	// Addr is where nginx listens (127.0.0.1:port); URL is http://Addr.
	Addr, URL string
	// ProxyBufferSize is proxy_buffer_size: with proxy_buffering off it is the one buffer a
	// response passes through, so nginx's 4 KB default turns a 1 MB attachment into 256
	// read/write rounds. Default 64 KiB (allocated only once an answer arrives, so held Pings
	// do not pay for it).
	ProxyBufferSize int
	// Dir holds nginx.conf, nginx.pid, error.log and the temp paths.
	Dir string

	cmd     *exec.Cmd
	exited  chan struct{}
	ownDir  bool
	stopped sync.Once
}

// NginxBinary is the Debian package's nginx.
const NginxBinary = "/usr/sbin/nginx"

// NginxTB is the part of testing.TB that StartNginx uses, so a benchmark command can pass its
// own implementation; *testing.T and *testing.B satisfy it.
type NginxTB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// StartNginx starts nginx for a test or benchmark and stops it on t's cleanup. It installs the
// nginx Debian package when the binary is missing and fails the test (never skips) if nginx
// cannot be had or does not start.
func StartNginx(t NginxTB, opts NginxOptions) *Nginx {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	n, err := NewNginx(opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(n.Stop)
	return n
}

// NewNginx starts nginx outside a test (the bench command). The caller must call Stop.
func NewNginx(opts NginxOptions) (*Nginx, error) {
	if opts.Upstream == "" {
		return nil, errors.New("servers: nginx: Upstream is required")
	}
	if _, _, err := net.SplitHostPort(opts.Upstream); err != nil {
		return nil, fmt.Errorf("servers: nginx: Upstream %q is not host:port", opts.Upstream)
	}
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = time.Hour
	}
	if opts.KeepaliveConns <= 0 {
		opts.KeepaliveConns = 1024
	}
	if opts.WorkerConnections <= 0 {
		opts.WorkerConnections = 19000
	}
	if opts.ProxyBufferSize <= 0 {
		opts.ProxyBufferSize = 64 << 10
	}
	if err := nginxEnsureBinary(); err != nil {
		return nil, err
	}
	n := &Nginx{exited: make(chan struct{})}
	if opts.Dir == "" {
		d, err := os.MkdirTemp("", "easgate-nginx-")
		if err != nil {
			return nil, fmt.Errorf("servers: nginx: %w", err)
		}
		opts.Dir, n.ownDir = d, true
	}
	n.Dir = opts.Dir
	fail := func(err error) (*Nginx, error) {
		if n.ownDir {
			_ = os.RemoveAll(n.Dir)
		}
		return nil, err
	}

	addrs, err := freeAddrs(1)
	if err != nil {
		return fail(err)
	}
	addr := addrs[0]
	n.Addr, n.URL = addr, "http://"+addr

	// Workers run unprivileged when nginx starts as root; they write only the temp paths.
	userLine := ""
	if os.Geteuid() == 0 {
		u, uerr := user.Lookup("www-data")
		if uerr != nil {
			u, uerr = user.Lookup("nobody")
		}
		if uerr != nil {
			return fail(fmt.Errorf("servers: nginx: no unprivileged user for workers: %w", uerr))
		}
		g, _ := user.LookupGroupId(u.Gid)
		group := u.Username
		if g != nil {
			group = g.Name
		}
		userLine = fmt.Sprintf("user %s %s;", u.Username, group)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := nginxOpenPath(n.Dir); err != nil {
			return fail(err)
		}
		for _, d := range []string{"tmp", "tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"} {
			p := filepath.Join(n.Dir, d)
			if err := os.MkdirAll(p, 0o700); err != nil {
				return fail(err)
			}
			if err := os.Chown(p, uid, gid); err != nil {
				return fail(fmt.Errorf("servers: nginx: %w", err))
			}
		}
	} else {
		for _, d := range []string{"tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"} {
			if err := os.MkdirAll(filepath.Join(n.Dir, d), 0o700); err != nil {
				return fail(err)
			}
		}
	}

	conf := nginxConfig(n.Dir, userLine, addr, opts)
	confPath := filepath.Join(n.Dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return fail(err)
	}

	// nginx -t first: a config error is reported with nginx's own words.
	if out, err := exec.Command(NginxBinary, "-t", "-q", "-p", n.Dir, "-c", confPath).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("servers: nginx -t: %v\n%s", err, out))
	}

	args := []string{NginxBinary, "-p", n.Dir, "-c", confPath}
	if opts.CPUs != "" {
		ts, err := exec.LookPath("taskset")
		if err != nil {
			return fail(fmt.Errorf("servers: nginx: CPU pinning needs taskset (util-linux): %w", err))
		}
		args = append([]string{ts, "-c", opts.CPUs}, args...)
	}
	n.cmd = exec.Command(args[0], args[1:]...)
	n.cmd.Dir = n.Dir
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	n.cmd.Stderr = &stderr
	if err := n.cmd.Start(); err != nil {
		return fail(fmt.Errorf("servers: start nginx: %w", err))
	}
	go func() { _ = n.cmd.Wait(); close(n.exited) }()

	if err := nginxWaitListening(addr, n.exited, 10*time.Second); err != nil {
		n.kill()
		logTail, _ := os.ReadFile(filepath.Join(n.Dir, "error.log"))
		return fail(fmt.Errorf("servers: nginx did not start: %v\nstderr: %s\nerror.log: %s", err, stderr.String(), nginxTail(logTail, 20)))
	}
	return n, nil
}

func nginxConfig(dir, userLine, addr string, o NginxOptions) string {
	secs := int(o.ReadTimeout / time.Second)
	if secs < 1 {
		secs = 1
	}
	return fmt.Sprintf(`# written by easgate bench/servers for one run
daemon off;
master_process on;
%[1]s
worker_processes %[2]d;
worker_rlimit_nofile %[3]d;
pid %[4]s/nginx.pid;
error_log %[4]s/error.log warn;

events {
	worker_connections %[5]d;
	multi_accept on;
}

http {
	access_log off;
	server_tokens off;
	client_body_temp_path %[4]s/tmp/body;
	proxy_temp_path %[4]s/tmp/proxy;
	fastcgi_temp_path %[4]s/tmp/fastcgi;
	uwsgi_temp_path %[4]s/tmp/uwsgi;
	scgi_temp_path %[4]s/tmp/scgi;

	# EAS requests: a SendMail carries the whole MIME message.
	client_max_body_size 64m;
	client_body_buffer_size 1m;
	keepalive_timeout 75s;
	keepalive_requests 1000000;

	upstream eas {
		server %[6]s;
		keepalive %[7]d;
		keepalive_requests 1000000;
		keepalive_timeout 60s;
	}

	server {
		listen %[8]s backlog=4096 reuseport;

		location / {
			proxy_pass http://eas;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host $host;
			proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Proto $scheme;
			# held Pings and streamed attachments pass through as they come
			proxy_buffering off;
			proxy_buffer_size %[10]d;
			proxy_buffers 4 %[10]d;
			proxy_busy_buffers_size %[11]d;
			proxy_read_timeout %[9]ds;
			proxy_send_timeout %[9]ds;
			proxy_connect_timeout 5s;
		}
	}
}
`, userLine, o.Workers, o.WorkerConnections+64, dir, o.WorkerConnections, o.Upstream, o.KeepaliveConns, addr, secs, o.ProxyBufferSize, 2*o.ProxyBufferSize)
}

// PID is the nginx master's process ID.
func (n *Nginx) PID() int { return n.cmd.Process.Pid }

// WorkerPIDs lists the worker processes (children of the master).
func (n *Nginx) WorkerPIDs() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	master := n.PID()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so parse after the last ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(master) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// WorkersRSS is the sum of VmRSS over the worker processes, in bytes: the memory that grows
// with connections (the master holds none).
func (n *Nginx) WorkersRSS() (int64, error) {
	pids, err := n.WorkerPIDs()
	if err != nil {
		return 0, err
	}
	if len(pids) == 0 {
		return 0, errors.New("servers: nginx has no worker processes")
	}
	var sum int64
	for _, p := range pids {
		rss, err := ProcRSS(p)
		if err != nil {
			return 0, err
		}
		sum += rss
	}
	return sum, nil
}

// WorkersCPU is the CPU time (user + system) the worker processes have used so far.
func (n *Nginx) WorkersCPU() (time.Duration, error) {
	pids, err := n.WorkerPIDs()
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	for _, p := range pids {
		c, err := ProcCPU(p)
		if err != nil {
			return 0, err
		}
		sum += c
	}
	return sum, nil
}

// Steal reads the time the hypervisor ran something else while this machine's virtual CPUs
// wanted to run, summed over all of them: the "steal" column of /proc/stat's cpu line (USER_HZ
// ticks, 10 ms resolution). It is zero on bare metal and where /proc/stat is missing; on a
// shared VM, steal during a benchmark round is latency no proxy caused.
func Steal() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	return parseSteal(b)
}

// parseSteal reads the steal time off /proc/stat's contents b (0 when it is not there).
func parseSteal(b []byte) time.Duration {
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	ticks, err := strconv.ParseInt(f[8], 10, 64)
	if err != nil {
		return 0
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// ProcCPU reads a process's user + system CPU time from /proc/<pid>/stat (in USER_HZ ticks,
// 100 per second on Linux: 10 ms resolution, so measure over seconds).
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("servers: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("servers: short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("servers: bad /proc/%d/stat times", pid)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// ProcRSS reads VmRSS of a process from /proc/<pid>/status, in bytes.
func ProcRSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fs := strings.Fields(rest)
			if len(fs) == 2 && fs[1] == "kB" {
				kb, err := strconv.ParseInt(fs[0], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("servers: no VmRSS in /proc/%d/status", pid)
}

// ErrorLog returns the last n lines of nginx's error log.
func (n *Nginx) ErrorLog(lines int) string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "error.log"))
	return nginxTail(b, lines)
}

// Stop shuts nginx down (SIGTERM, a fast shutdown that closes held connections; SIGKILL to the
// process group after 10 s) and waits for it. Safe to call more than once.
func (n *Nginx) Stop() {
	n.stopped.Do(func() {
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exited:
		case <-time.After(10 * time.Second):
			n.kill()
		}
		if n.ownDir {
			_ = os.RemoveAll(n.Dir)
		}
	})
}

func (n *Nginx) kill() {
	_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	<-n.exited
}

var nginxInstallMu sync.Mutex

// nginxEnsureBinary installs Debian's nginx when missing; an error when it is still missing.
func nginxEnsureBinary() error {
	if _, err := os.Stat(NginxBinary); err == nil {
		return nil
	}
	nginxInstallMu.Lock()
	defer nginxInstallMu.Unlock()
	if _, err := os.Stat(NginxBinary); err == nil {
		return nil
	}
	cmd := exec.Command("apt-get", "install", "-y", "--no-install-recommends", "nginx")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if _, serr := os.Stat(NginxBinary); serr != nil {
		return fmt.Errorf("servers: %s is missing and `apt-get install -y nginx` did not provide it (%v):\n%s",
			NginxBinary, err, nginxTail(out, 20))
	}
	return nil
}

// nginxOpenPath makes dir and its parents up to the temp root traversable by the worker user.
func nginxOpenPath(dir string) error {
	stop := filepath.Clean(os.TempDir())
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("servers: nginx: %w", err)
		}
		if want := fi.Mode().Perm() | 0o011; want != fi.Mode().Perm() {
			if err := os.Chmod(p, want); err != nil {
				return fmt.Errorf("servers: nginx: make %s traversable: %w", p, err)
			}
		}
		if p == stop || p == "/" || !strings.HasPrefix(p, stop) {
			return nil
		}
	}
}

func nginxWaitListening(addr string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-exited:
			return errors.New("nginx exited")
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening after %v: %w", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func nginxTail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
