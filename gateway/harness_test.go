package gateway

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
)

// fakeEAS is an in-process EAS upstream on loopback (net/http, which notices a client that goes
// away, unlike fasthttp). It records what reaches it and answers per command: Sync with a fixed
// body, Ping after its hold (or when its client leaves), ItemOperations with 1 MiB, anything
// else with an empty 200.
type fakeEAS struct {
	t    testing.TB
	ln   net.Listener
	srv  *http.Server
	hits atomic.Int64

	mu       sync.Mutex
	last     []recorded
	pingHold time.Duration // default one minute

	activePings atomic.Int64
	release     chan struct{}
}

type recorded struct {
	query, auth, xff, body string
	heartbeat              string
}

var syncResponse = mustEncode(wbxml.NewElement(wbxml.AirSyncSync,
	wbxml.NewElement(wbxml.AirSyncCollections, wbxml.NewElement(wbxml.AirSyncCollection,
		wbxml.NewText(wbxml.AirSyncSyncKey, "2"), wbxml.NewText(wbxml.AirSyncCollectionId, "1"),
		wbxml.NewText(wbxml.AirSyncStatus, "1")))))

func mustEncode(root *wbxml.Element) []byte {
	b, err := wbxml.NewDocument(root).Encode(nil)
	if err != nil {
		panic(err)
	}
	return b
}

func startFakeEAS(t testing.TB) *fakeEAS {
	f := &fakeEAS{t: t, release: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.ln = ln
	f.srv = &http.Server{Handler: http.HandlerFunc(f.handle), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Second,
		ErrorLog: log.New(io.Discard, "", 0)}
	go f.srv.Serve(ln)
	t.Cleanup(func() { close(f.release); f.srv.Close() })
	return f
}

func (f *fakeEAS) url() string {
	return "http://" + f.ln.Addr().String() + "/Microsoft-Server-ActiveSync"
}

func (f *fakeEAS) handle(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	body, _ := io.ReadAll(r.Body)
	var req eas.Request
	_ = eas.ParseQuery([]byte(r.URL.RawQuery), &req)
	rec := recorded{query: r.URL.RawQuery, auth: r.Header.Get("Authorization"), xff: r.Header.Get("X-Forwarded-For"), body: string(body)}
	if req.Cmd == eas.CmdPing {
		if doc, err := wbxml.Parse(body, wbxml.DefaultLimits); err == nil {
			rec.heartbeat = doc.Root.Find(wbxml.PingHeartbeatInterval).Text()
		}
	}
	f.mu.Lock()
	f.last = append(f.last, rec)
	hold := f.pingHold
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/vnd.ms-sync.wbxml")
	switch {
	case req.Cmd == eas.CmdSync && !syncWaits(body):
		w.Write(syncResponse)
	case req.Cmd == eas.CmdPing, req.Cmd == eas.CmdSync:
		f.activePings.Add(1)
		defer f.activePings.Add(-1)
		if hold == 0 {
			hold = time.Minute
		}
		t := time.NewTimer(hold)
		defer t.Stop()
		select {
		case <-t.C:
		case <-f.release:
		case <-r.Context().Done():
			return
		}
		w.Write(mustEncode(wbxml.NewElement(wbxml.PingPing, wbxml.NewText(wbxml.PingStatus, "1"))))
	case req.Cmd == eas.CmdItemOperations:
		w.Write(make([]byte, 1<<20))
	}
}

func (f *fakeEAS) recorded() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.last...)
}

// testGateway is a gateway on loopback in front of a fakeEAS, with a real SQLite registry.
type testGateway struct {
	t        testing.TB
	srv      *Server
	engine   *decision.Engine
	up       *fakeEAS
	addr     string // client listener
	admin    string // admin listener
	client   *http.Client
	token    string
	logs     *syncBuffer
	stopOnce sync.Once
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.b = append(s.b, p...)
	s.mu.Unlock()
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

const testAdminToken = "test-admin-token-0123456789abcdefghijkl"

type gwOption func(*Config, *decision.Policy)

func startGateway(t testing.TB, opts ...gwOption) *testGateway {
	t.Helper()
	up := startFakeEAS(t)
	return startGatewayWith(t, up, opts...)
}

func startGatewayWith(t testing.TB, up *fakeEAS, opts ...gwOption) *testGateway {
	t.Helper()
	cfgText := fmt.Sprintf(`
listen:
  addr: 127.0.0.1:0
  external_url: https://gw.example.com
  read_timeout: 2s
admin:
  addr: 127.0.0.1:0
  token: %s
portal:
  key: test-portal-key-0123456789abcdefghijklmnop
quarantine:
  ping_hold: 200ms
store:
  path: %s
users:
  default_domain: example.com
backend:
  eas:
    url: %s
    timeout: 3s
ping:
  max_heartbeat: 10m
  per_user: 100000
  per_client: 100000
`, testAdminToken, filepath.Join(t.TempDir(), "easgate.db"), up.url())
	cfg, err := ParseConfig([]byte(cfgText), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	policy := decision.DefaultPolicy()
	policy.UnknownDevice = decision.Allow
	for _, o := range opts {
		o(cfg, &policy)
	}
	cfg.policy = &policy
	// Every test logs at debug level into a buffer, so that TestSecretsNeverLogged can read what
	// a gateway writes; -v also shows it.
	logs := &syncBuffer{}
	var w io.Writer = logs
	if testing.Verbose() {
		w = io.MultiWriter(logs, testWriter{t})
	}
	log := slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	app, err := Open(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	srv, engine := app.Server, app.Engine
	// The harness owns the listeners, so that tests know the bound ports.
	cl, err := net.Listen("tcp", cfg.Listen.Addr)
	if err != nil {
		t.Fatal(err)
	}
	al, err := net.Listen("tcp", cfg.Admin.Addr)
	if err != nil {
		t.Fatal(err)
	}
	g := &testGateway{t: t, srv: srv, engine: engine, up: up, logs: logs, addr: cl.Addr().String(), admin: al.Addr().String(),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}, token: testAdminToken}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(cl, al) }()
	t.Cleanup(func() {
		g.stop()
		<-done
		app.Close()
	})
	return g
}

func (g *testGateway) stop() {
	g.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.srv.Shutdown(ctx)
	})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// easReq describes one EAS request from a simulated device.
type easReq struct {
	cmd, user, device, devType string
	authUser, password         string
	version                    string
	body                       []byte
	rawQuery                   string // overrides the built query
	header                     map[string]string
}

func (r easReq) query() string {
	if r.rawQuery != "" {
		return r.rawQuery
	}
	if r.devType == "" {
		r.devType = "iPhone"
	}
	return fmt.Sprintf("Cmd=%s&User=%s&DeviceId=%s&DeviceType=%s", r.cmd, r.user, r.device, r.devType)
}

func (g *testGateway) do(r easReq) (*http.Response, []byte) {
	g.t.Helper()
	req, err := http.NewRequest("POST", "http://"+g.addr+"/Microsoft-Server-ActiveSync?"+r.query(), strings.NewReader(string(r.body)))
	if err != nil {
		g.t.Fatal(err)
	}
	au := r.authUser
	if au == "" {
		au = r.user
	}
	pw := r.password
	if pw == "" {
		pw = "secret-" + au
	}
	req.SetBasicAuth(au, pw)
	v := r.version
	if v == "" {
		v = "14.1"
	}
	req.Header.Set("MS-ASProtocolVersion", v)
	req.Header.Set("Content-Type", "application/vnd.ms-sync.wbxml")
	req.Header.Set("User-Agent", "Apple-iPhone/1")
	for k, val := range r.header {
		req.Header.Set(k, val)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// raw sends bytes on a fresh TCP connection and returns what the gateway answered before it
// closed the connection or the deadline passed.
func (g *testGateway) raw(payload string, wait time.Duration) string {
	g.t.Helper()
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		g.t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, payload); err != nil {
		return ""
	}
	b, _ := io.ReadAll(bufio.NewReader(c))
	return string(b)
}

func (g *testGateway) adminDo(method, path, body string) (int, string) {
	g.t.Helper()
	req, _ := http.NewRequest(method, "http://"+g.admin+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+g.token)
	resp, err := g.client.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func basic(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

// statusOf decodes a WBXML answer and returns the text of its top-level Status.
func statusOf(t testing.TB, body []byte) string {
	t.Helper()
	doc, err := wbxml.Parse(body, wbxml.DefaultLimits)
	if err != nil {
		t.Fatalf("answer is not WBXML: %v (%q)", err, body)
	}
	for _, c := range doc.Root.Children {
		if c.Tag.Name() == "Status" {
			return c.Text()
		}
	}
	return ""
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	waitForLong(t, 30*time.Second, cond)
}

func waitForLong(t testing.TB, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			if os.Getenv("EASGATE_DUMP_STACKS") != "" {
				buf := make([]byte, 64<<20)
				os.WriteFile(os.Getenv("EASGATE_DUMP_STACKS"), buf[:runtime.Stack(buf, true)], 0o644)
			}
			t.Fatalf("condition not reached in %s", limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dialRaw(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }
