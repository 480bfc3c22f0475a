package servers

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// GatewayPackage is the import path of the gateway command that BuildGateway compiles.
const GatewayPackage = "github.com/easgate/easgate/cmd/gateway"

// GatewayOptions configures NewGateway. Zero values mean the documented default.
type GatewayOptions struct {
	// Upstream is the EAS URL the gateway forwards to (backend.eas.url), e.g. a
	// bench.Upstream's URL. Required; loopback only.
	Upstream string
	// Binary is the built gateway command; empty: BuildGateway into Dir.
	Binary string
	// CPUs pins the gateway with `taskset -c CPUS`, like NginxOptions.CPUs; the Go runtime
	// then sizes GOMAXPROCS to the pinned set. Empty: no pinning.
	CPUs string
	// PingPerUser, PingPerClient, PingTotal are the gateway's held-Ping caps (ping.per_user,
	// ping.per_client, ping.total). Defaults 100, 100000, 19000: every simulated Ping comes from
	// one loopback address, so the production per-client default (2000) would refuse them.
	PingPerUser, PingPerClient, PingTotal int
	// LogLevel is log.level; default "warn" (the request log is debug level anyway).
	LogLevel string
	// Dir holds the configuration, the SQLite registry and the log. Empty: a new temporary
	// directory removed by Stop.
	Dir string
}

// Gateway is a running easgate gateway process (`gateway serve --config FILE`) on loopback,
// plain HTTP, in front of GatewayOptions.Upstream, with a fresh SQLite registry whose policy
// allows unknown devices. Stop ends it.
type Gateway struct {
	// Addr is the client listener (127.0.0.1:port); URL is its EAS endpoint
	// http://Addr/Microsoft-Server-ActiveSync.
	Addr, URL string
	// Dir holds gateway.yaml, easgate.db and gateway.log.
	Dir string

	cmd     *exec.Cmd
	log     *os.File
	exited  chan struct{}
	ownDir  bool
	stopped sync.Once
}

// Environment variables the generated configuration reads its secrets from (the gateway
// refuses secrets written in the file).
const (
	gatewayAdminTokenEnv = "EASGATE_ADMIN_TOKEN"
	gatewayPortalKeyEnv  = "EASGATE_PORTAL_KEY"
)

// BuildGateway compiles the gateway command into dir and returns the binary's path. It runs
// `go build` in the current directory, which must be inside the easgate module.
func BuildGateway(dir string) (string, error) {
	out := filepath.Join(dir, "easgate-gateway")
	cmd := exec.Command("go", "build", "-o", out, GatewayPackage)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("servers: go build %s: %v\n%s", GatewayPackage, err, b)
	}
	return out, nil
}

// GatewayConfig returns the YAML configuration NewGateway writes: listen on addr without TLS,
// admin on a free loopback port, the registry in dir, unknown devices allowed, secrets read
// from the environment.
func GatewayConfig(addr, adminAddr, dir string, o GatewayOptions) string {
	return fmt.Sprintf(`listen:
  addr: %s
  external_url: http://%s
admin:
  addr: %s
  token: ${%s}
portal:
  key: ${%s}
users:
  default_domain: example.com
backend:
  mode: eas
  eas:
    url: %s
    timeout: 30s
store:
  driver: sqlite
  path: %s
ping:
  max_heartbeat: 15m
  per_user: %d
  per_client: %d
  total: %d
log:
  level: %s
policy:
  unknown_device: allow
`, addr, addr, adminAddr, gatewayAdminTokenEnv, gatewayPortalKeyEnv, o.Upstream,
		filepath.Join(dir, "easgate.db"), o.PingPerUser, o.PingPerClient, o.PingTotal, o.LogLevel)
}

// NewGateway builds (unless Binary is set) and starts the gateway; the caller must call Stop.
func NewGateway(o GatewayOptions) (*Gateway, error) {
	u, err := url.Parse(o.Upstream)
	if o.Upstream == "" || err != nil || u.Host == "" {
		return nil, fmt.Errorf("servers: gateway: Upstream %q is not an absolute URL", o.Upstream)
	}
	if o.PingPerUser <= 0 {
		o.PingPerUser = 100
	}
	if o.PingPerClient <= 0 {
		o.PingPerClient = 100000
	}
	if o.PingTotal <= 0 {
		o.PingTotal = 19000
	}
	if o.LogLevel == "" {
		o.LogLevel = "warn"
	}
	g := &Gateway{exited: make(chan struct{})}
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "easgate-gateway-")
		if err != nil {
			return nil, fmt.Errorf("servers: gateway: %w", err)
		}
		o.Dir, g.ownDir = d, true
	}
	g.Dir = o.Dir
	fail := func(err error) (*Gateway, error) {
		if g.log != nil {
			g.log.Close()
		}
		if g.ownDir {
			_ = os.RemoveAll(g.Dir)
		}
		return nil, err
	}
	if o.Binary == "" {
		if o.Binary, err = BuildGateway(o.Dir); err != nil {
			return fail(err)
		}
	}
	addrs, err := freeAddrs(2)
	if err != nil {
		return fail(err)
	}
	addr, adminAddr := addrs[0], addrs[1]
	g.Addr, g.URL = addr, "http://"+addr+"/Microsoft-Server-ActiveSync"
	confPath := filepath.Join(o.Dir, "gateway.yaml")
	if err := os.WriteFile(confPath, []byte(GatewayConfig(addr, adminAddr, o.Dir, o)), 0o600); err != nil {
		return fail(fmt.Errorf("servers: gateway: %w", err))
	}
	if g.log, err = os.Create(filepath.Join(o.Dir, "gateway.log")); err != nil {
		return fail(fmt.Errorf("servers: gateway: %w", err))
	}
	args := []string{o.Binary, "serve", "--config", confPath}
	if o.CPUs != "" {
		ts, err := exec.LookPath("taskset")
		if err != nil {
			return fail(fmt.Errorf("servers: gateway: CPU pinning needs taskset (util-linux): %w", err))
		}
		args = append([]string{ts, "-c", o.CPUs}, args...)
	}
	g.cmd = exec.Command(args[0], args[1:]...)
	g.cmd.Dir = o.Dir
	g.cmd.Stdout, g.cmd.Stderr = g.log, g.log
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Benchmark-only secrets, fresh per process; never a real deployment's.
	g.cmd.Env = append(os.Environ(),
		gatewayAdminTokenEnv+"=bench-admin-token-"+randomHex(16),
		gatewayPortalKeyEnv+"=bench-portal-key-"+randomHex(16))
	if err := g.cmd.Start(); err != nil {
		return fail(fmt.Errorf("servers: start gateway: %w", err))
	}
	go func() { _ = g.cmd.Wait(); close(g.exited) }()
	// taskset execs the gateway in place, so cmd's PID is the gateway's.
	if err := nginxWaitListening(addr, g.exited, 30*time.Second); err != nil {
		g.kill()
		return fail(fmt.Errorf("servers: gateway did not start: %v\n%s", err, g.LogTail(20)))
	}
	return g, nil
}

// PID is the gateway process's ID.
func (g *Gateway) PID() int { return g.cmd.Process.Pid }

// RSS is the gateway process's resident memory in bytes.
func (g *Gateway) RSS() (int64, error) { return ProcRSS(g.PID()) }

// CPU is the gateway process's user + system CPU time so far.
func (g *Gateway) CPU() (time.Duration, error) { return ProcCPU(g.PID()) }

// LogTail returns the last n lines of the gateway's output.
func (g *Gateway) LogTail(lines int) string {
	b, _ := os.ReadFile(filepath.Join(g.Dir, "gateway.log"))
	return nginxTail(b, lines)
}

// Stop sends SIGTERM (the gateway answers held Pings and drains), SIGKILL to the process group
// after 15 s, and waits. Safe to call more than once.
func (g *Gateway) Stop() {
	g.stopped.Do(func() {
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.exited:
		case <-time.After(15 * time.Second):
			g.kill()
		}
		g.log.Close()
		if g.ownDir {
			_ = os.RemoveAll(g.Dir)
		}
	})
}

func (g *Gateway) kill() {
	_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
	<-g.exited
}

// ErrGatewayExited reports a gateway process that is no longer running.
var ErrGatewayExited = errors.New("servers: gateway exited")

// Running returns ErrGatewayExited (with the log's tail) once the process has ended.
func (g *Gateway) Running() error {
	select {
	case <-g.exited:
		return fmt.Errorf("%w\n%s", ErrGatewayExited, g.LogTail(20))
	default:
		return nil
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}
