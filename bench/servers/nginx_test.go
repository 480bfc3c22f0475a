package servers

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// nginxTestUpstream is a tiny HTTP/1.1 upstream on loopback that counts TCP connections, so the
// test can see nginx reuse its upstream keep-alive connections.
// The returned release lets a held Ping send its second part.
func nginxTestUpstream(t *testing.T) (addr string, conns *atomic.Int64, release func()) {
	t.Helper()
	conns = new(atomic.Int64)
	released := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(released) }) }
	t.Cleanup(release)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Query().Get("Cmd") {
			case "Ping":
				// a held long poll that sends its answer in two parts, the second only
				// after the device has seen the first: that works only if nginx passes
				// bytes on as they come (proxy_buffering off).
				w.Header().Set("Content-Type", "application/vnd.ms-sync.wbxml")
				w.WriteHeader(200)
				io.WriteString(w, "part1")
				w.(http.Flusher).Flush()
				select {
				case <-released:
				case <-time.After(10 * time.Second):
				}
				io.WriteString(w, "part2")
			default:
				w.Header().Set("X-Seen-XFF", r.Header.Get("X-Forwarded-For"))
				w.Header().Set("X-Seen-Connection", r.Header.Get("Connection"))
				w.Header().Set("X-Seen-Query", r.URL.RawQuery)
				io.WriteString(w, "ok "+r.Method)
			}
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), conns, release
}

func TestNginxProxiesWithKeepaliveAndNoBuffering(t *testing.T) {
	up, conns, release := nginxTestUpstream(t)
	n := StartNginx(t, NginxOptions{Upstream: up, Workers: 1, CPUs: "0"})

	client := &http.Client{Timeout: 10 * time.Second}
	for i := 0; i < 20; i++ {
		resp, err := client.Post(n.URL+"/Microsoft-Server-ActiveSync?Cmd=Sync&User=u&DeviceId=d&DeviceType=t",
			"application/vnd.ms-sync.wbxml", strings.NewReader("body"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ok POST" || resp.Header.Get("X-Seen-Query") != "Cmd=Sync&User=u&DeviceId=d&DeviceType=t" {
			t.Fatalf("through nginx: %q %v", b, resp.Header)
		}
		if resp.Header.Get("X-Seen-XFF") != "127.0.0.1" || resp.Header.Get("X-Seen-Connection") != "" {
			t.Fatalf("upstream saw XFF %q Connection %q", resp.Header.Get("X-Seen-XFF"), resp.Header.Get("X-Seen-Connection"))
		}
	}
	if c := conns.Load(); c != 1 {
		t.Errorf("nginx opened %d upstream connections for 20 sequential requests, want 1 (keepalive)", c)
	}

	// A held Ping's first bytes arrive before the upstream finishes (proxy_buffering off).
	c, err := net.Dial("tcp", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /Microsoft-Server-ActiveSync?Cmd=Ping HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
	// part2 is sent only after part1 was read here, so a buffering nginx fails with a timeout.
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var seen string
	for !strings.Contains(seen, "part1") {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading held response: %v (got %q)", err, seen)
		}
		seen += line
	}
	release()

	// Pinned: the master's affinity is CPU 0 only; one worker.
	status, err := os.ReadFile("/proc/" + strconv.Itoa(n.PID()) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), "Cpus_allowed_list:\t0\n") {
		t.Errorf("nginx not pinned to CPU 0:\n%s", status)
	}
	workers, err := n.WorkerPIDs()
	if err != nil || len(workers) != 1 {
		t.Fatalf("workers %v, %v", workers, err)
	}
	rss, err := n.WorkersRSS()
	if err != nil || rss <= 0 {
		t.Fatalf("workers RSS %d, %v", rss, err)
	}
}

func TestNginxStopAndConfigErrors(t *testing.T) {
	if _, err := NewNginx(NginxOptions{}); err == nil {
		t.Fatal("no upstream accepted")
	}
	up, _, _ := nginxTestUpstream(t)
	n, err := NewNginx(NginxOptions{Upstream: up, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	dir := n.Dir
	// The master accepts before it has forked every worker: wait for them, boundedly.
	var w []int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if w, _ = n.WorkerPIDs(); len(w) == 2 {
			break
		}
	}
	if len(w) != 2 {
		t.Errorf("Workers: 2 started %d workers", len(w))
	}
	n.Stop()
	n.Stop()
	if _, err := net.DialTimeout("tcp", n.Addr, 200*time.Millisecond); err == nil {
		t.Error("nginx still listening after Stop")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("NewNginx's own directory left behind: %v", err)
	}
}

// The steal column is the eighth number of /proc/stat's first line, in 10 ms ticks; anything
// else reads as none.
func TestParseSteal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"cpu  889264 1929 520601 6300628 5431 0 218581 6978 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n", 69780 * time.Millisecond},
		{"cpu  1 2 3 4 5 6 7 0\n", 0},
		{"cpu  1 2 3\n", 0},               // a kernel without the column
		{"cpu0 1 2 3 4 5 6 7 8 0 0\n", 0}, // not the summary line
		{"cpu  1 2 3 4 5 6 7 x 0 0\n", 0}, // not a number
		{"", 0},
	} {
		if got := parseSteal([]byte(tc.in)); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.in, got, tc.want)
		}
	}
	if a, b := Steal(), Steal(); b < a {
		t.Errorf("steal went back: %v then %v", a, b)
	}
}
