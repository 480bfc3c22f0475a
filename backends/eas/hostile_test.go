package eas

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Each test here is a hostile or broken upstream on a raw TCP socket. The contract: a typed
// error or a stream that ends in a typed error (which makes the server cut the device's
// connection), within the configured deadlines and with bounded memory.

// answer serves every request on the connection with the given raw bytes (written after the
// request is read), then runs after, if any.
func answer(raw string, after func(c net.Conn)) func(int64, net.Conn) {
	return func(_ int64, c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readRequest(br); err != nil {
			return
		}
		io.WriteString(c, raw)
		if after != nil {
			after(c)
		}
	}
}

func hold(c net.Conn) { io.Copy(io.Discard, c) }

func TestHostile_InvalidHTTP(t *testing.T) {
	for name, raw := range map[string]string{
		"garbage":            "HELLO FRIEND\r\n\r\n",
		"bad status":         "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
		"bad content-length": "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
		"header then close":  "HTTP/1.1 200 OK\r\nContent-Ty",
		"broken chunking":    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			rs := startRaw(t, answer(raw, nil))
			u := mustNew(t, testConfig(rs.URL))
			_, _, err := forwardAll(context.Background(), u, easRequest("Cmd=Sync", nil), ForwardOptions{})
			wantKind(t, err, KindBadResponse)
			if KindBadResponse.StatusCode() != 502 {
				t.Fatal("bad response must map to 502")
			}
		})
	}
}

func TestHostile_HugeHeaders(t *testing.T) {
	raw := "HTTP/1.1 200 OK\r\nX-Pad: " + strings.Repeat("a", 200<<10) + "\r\nContent-Length: 0\r\n\r\n"
	rs := startRaw(t, answer(raw, hold))
	u := mustNew(t, testConfig(rs.URL))
	_, _, err := forwardAll(context.Background(), u, easRequest("Cmd=Sync", nil), ForwardOptions{})
	wantKind(t, err, KindBadResponse)
	if u.Conns() != 0 {
		t.Errorf("connection with oversized header kept: %d", u.Conns())
	}
}

func TestHostile_EndlessBody(t *testing.T) {
	for name, head := range map[string]string{
		"chunked":         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"close-delimited": "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			chunked := strings.Contains(head, "chunked")
			rs := startRaw(t, answer(head, func(c net.Conn) {
				chunk := strings.Repeat("x", 32<<10)
				for {
					var err error
					if chunked {
						_, err = fmt.Fprintf(c, "%x\r\n%s\r\n", len(chunk), chunk)
					} else {
						_, err = io.WriteString(c, chunk)
					}
					if err != nil {
						return
					}
				}
			}))
			cfg := testConfig(rs.URL)
			cfg.MaxResponseBodyBytes = 1 << 20
			u := mustNew(t, cfg)
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			_, body, err := forwardAll(context.Background(), u, easRequest("Cmd=ItemOperations", nil), ForwardOptions{})
			wantKind(t, err, KindTooLarge)
			if len(body) > 1<<20 || u.Conns() != 0 {
				t.Errorf("body %d bytes, conns %d", len(body), u.Conns())
			}
			// And through a server: the device gets at most the limit, then a cut connection.
			proxy := startProxy(t, u, ForwardOptions{})
			r, err := httpClient().Post(proxy+"?Cmd=ItemOperations", "x", nil)
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, r.Body)
			r.Body.Close()
			if err == nil || n > 1<<20 {
				t.Errorf("device read %d bytes with err %v; want a truncated stream within the limit", n, err)
			}
		})
	}
}

func TestHostile_ContentLengthTooBigUpFront(t *testing.T) {
	rs := startRaw(t, answer("HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\nabc", hold))
	u := mustNew(t, testConfig(rs.URL))
	_, _, err := forwardAll(context.Background(), u, easRequest("Cmd=ItemOperations", nil), ForwardOptions{})
	wantKind(t, err, KindTooLarge)
	if !strings.Contains(err.Error(), "content-length") {
		t.Errorf("not rejected up front: %v", err)
	}
}

func TestHostile_ContentLengthMismatch(t *testing.T) {
	t.Run("short small body", func(t *testing.T) {
		rs := startRaw(t, answer("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"+strings.Repeat("a", 500), nil))
		u := mustNew(t, testConfig(rs.URL))
		_, _, err := forwardAll(context.Background(), u, easRequest("Cmd=Sync", nil), ForwardOptions{})
		wantKind(t, err, KindBadResponse)
	})
	t.Run("short streamed body", func(t *testing.T) {
		rs := startRaw(t, answer("HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n"+strings.Repeat("a", 100000), nil))
		u := mustNew(t, testConfig(rs.URL))
		_, _, err := forwardAll(context.Background(), u, easRequest("Cmd=Sync", nil), ForwardOptions{})
		wantKind(t, err, KindBadResponse)
		proxy := startProxy(t, u, ForwardOptions{})
		r, err := httpClient().Post(proxy+"?Cmd=Sync", "x", nil)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if err == nil || n >= 300000 {
			t.Errorf("device got %d bytes, err %v: truncation not visible", n, err)
		}
	})
	t.Run("long body is cut and the connection dropped", func(t *testing.T) {
		rs := startRaw(t, func(_ int64, c net.Conn) {
			br := bufio.NewReader(c)
			for {
				if _, err := readRequest(br); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloSMUGGLED")
			}
		})
		u := mustNew(t, testConfig(rs.URL))
		_, body, err := forwardAll(context.Background(), u, easRequest("Cmd=Sync", nil), ForwardOptions{})
		if err != nil || string(body) != "hello" {
			t.Fatalf("%v %q", err, body)
		}
		if u.Conns() != 0 {
			t.Error("connection with bytes after the response was pooled: the next request would read them")
		}
	})
}

func TestHostile_ResetMidBody(t *testing.T) {
	rs := startRaw(t, answer("HTTP/1.1 200 OK\r\nContent-Length: 500000\r\n\r\n"+strings.Repeat("b", 100000), func(c net.Conn) {
		time.Sleep(20 * time.Millisecond)
		_ = c.(*net.TCPConn).SetLinger(0)
	}))
	u := mustNew(t, testConfig(rs.URL))
	start := time.Now()
	_, _, err := forwardAll(context.Background(), u, easRequest("Cmd=ItemOperations", nil), ForwardOptions{})
	if k := KindOf(err); k != KindDown && k != KindBadResponse {
		t.Fatalf("reset mid-body: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
}

func TestHostile_BlackHole(t *testing.T) {
	rs := startRaw(t, func(_ int64, c net.Conn) { hold(c) })
	cfg := testConfig(rs.URL)
	cfg.NormalTimeout = 200 * time.Millisecond
	u := mustNew(t, cfg)
	start := time.Now()
	_, _, err := forwardAll(context.Background(), u, easRequest("Cmd=Sync", nil), ForwardOptions{Idempotent: true})
	wantKind(t, err, KindTimeout)
	if d := time.Since(start); d < 180*time.Millisecond || d > 2*time.Second {
		t.Errorf("black hole answered after %v, want ~200ms", d)
	}
	if u.Conns() != 0 {
		t.Error("timed-out connection kept")
	}
}

func TestHostile_SlowDrip(t *testing.T) {
	drip := func(prefix string) func(int64, net.Conn) {
		return answer(prefix, func(c net.Conn) {
			for i := 0; i < 200; i++ {
				if _, err := io.WriteString(c, "x"); err != nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	t.Run("header", func(t *testing.T) {
		rs := startRaw(t, drip("HTTP/1.1 200 OK\r\nX-Drip: "))
		cfg := testConfig(rs.URL)
		cfg.NormalTimeout = 300 * time.Millisecond
		u := mustNew(t, cfg)
		start := time.Now()
		_, _, err := forwardAll(context.Background(), u, easRequest("Cmd=Sync", nil), ForwardOptions{})
		wantKind(t, err, KindTimeout)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("header drip took %v, deadline was 300ms", d)
		}
	})
	t.Run("body", func(t *testing.T) {
		rs := startRaw(t, drip("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"))
		cfg := testConfig(rs.URL)
		cfg.BodyIdleTimeout = time.Second // every byte arrives in time...
		cfg.BodyTimeout = 400 * time.Millisecond
		u := mustNew(t, cfg)
		start := time.Now()
		_, _, err := forwardAll(context.Background(), u, easRequest("Cmd=ItemOperations", nil), ForwardOptions{})
		wantKind(t, err, KindTimeout) // ...but the whole body is bounded
		if d := time.Since(start); d > 2500*time.Millisecond {
			t.Errorf("body drip took %v, body deadline was 400ms", d)
		}
	})
	t.Run("body idle", func(t *testing.T) {
		rs := startRaw(t, answer("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"+strings.Repeat("y", 70000), hold))
		cfg := testConfig(rs.URL)
		cfg.BodyIdleTimeout = 200 * time.Millisecond
		u := mustNew(t, cfg)
		_, _, err := forwardAll(context.Background(), u, easRequest("Cmd=ItemOperations", nil), ForwardOptions{})
		wantKind(t, err, KindTimeout)
	})
}
