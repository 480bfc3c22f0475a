package eas

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

const easPath = "/Microsoft-Server-ActiveSync"

// fastUpstream is an in-process fasthttp EAS server on a real loopback TCP port.
type fastUpstream struct {
	URL  string
	Addr string
	hits atomic.Int64
}

func startFastUpstream(t testing.TB, h fasthttp.RequestHandler) *fastUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fu := &fastUpstream{Addr: ln.Addr().String()}
	fu.URL = "http://" + fu.Addr + easPath
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			fu.hits.Add(1)
			h(ctx)
		},
		StreamRequestBody: false,
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return fu
}

// rawServer is a TCP server on 127.0.0.1 whose every connection is handled by a test function:
// it speaks whatever (broken) HTTP the test wants.
type rawServer struct {
	Addr  string
	URL   string
	conns atomic.Int64
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	open  map[net.Conn]struct{}
}

func startRaw(t testing.TB, handle func(n int64, c net.Conn)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rs := &rawServer{Addr: ln.Addr().String(), ln: ln, open: map[net.Conn]struct{}{}}
	rs.URL = "http://" + rs.Addr + easPath
	rs.wg.Add(1)
	go func() {
		defer rs.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := rs.conns.Add(1)
			rs.mu.Lock()
			rs.open[c] = struct{}{}
			rs.mu.Unlock()
			rs.wg.Add(1)
			go func() {
				defer rs.wg.Done()
				defer func() {
					_ = c.Close()
					rs.mu.Lock()
					delete(rs.open, c)
					rs.mu.Unlock()
				}()
				handle(n, c)
			}()
		}
	}()
	t.Cleanup(rs.Close)
	return rs
}

func (rs *rawServer) Close() {
	_ = rs.ln.Close()
	rs.mu.Lock()
	for c := range rs.open {
		_ = c.Close()
	}
	rs.mu.Unlock()
	rs.wg.Wait()
}

// readRequest reads one HTTP/1.1 request head and its Content-Length body from br.
func readRequest(br *bufio.Reader) (head string, err error) {
	var sb strings.Builder
	cl := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return sb.String(), err
		}
		sb.WriteString(line)
		if line == "\r\n" {
			break
		}
		var n int
		if _, e := fmt.Sscanf(strings.ToLower(line), "content-length: %d", &n); e == nil {
			cl = n
		}
	}
	if cl > 0 {
		if _, err := io.CopyN(io.Discard, br, int64(cl)); err != nil {
			return sb.String(), err
		}
	}
	return sb.String(), nil
}

// testConfig is a Config with short deadlines, for tests.
func testConfig(url string) Config {
	return Config{
		URL:             url,
		DialTimeout:     2 * time.Second,
		NormalTimeout:   2 * time.Second,
		SendTimeout:     2 * time.Second,
		PingTimeout:     5 * time.Second,
		BodyIdleTimeout: 2 * time.Second,
		BodyTimeout:     5 * time.Second,
		Breaker:         BreakerConfig{Disabled: true},
	}
}

func mustNew(t testing.TB, cfg Config) *Upstream {
	t.Helper()
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.Close)
	return u
}

// easRequest builds a device request as the gateway's server would hand it over.
func easRequest(query string, body []byte) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(easPath + "?" + query)
	req.Header.SetHost("gateway.example.com")
	req.Header.SetContentType("application/vnd.ms-sync.wbxml")
	req.Header.Set("MS-ASProtocolVersion", "14.1")
	req.Header.Set("Authorization", "Basic dXNlcjpwYXNz")
	req.SetBody(body)
	return req
}

// forwardAll runs Forward and reads the whole body (streamed or not), like a server would.
func forwardAll(ctx context.Context, u *Upstream, req *fasthttp.Request, opt ForwardOptions) (*fasthttp.Response, []byte, error) {
	resp := fasthttp.AcquireResponse()
	if err := u.Forward(ctx, req, resp, opt); err != nil {
		return resp, nil, err
	}
	if resp.IsBodyStream() {
		b, err := io.ReadAll(resp.BodyStream())
		cerr := resp.CloseBodyStream()
		if err == nil {
			err = cerr
		}
		return resp, b, err
	}
	return resp, append([]byte(nil), resp.Body()...), nil
}

// startProxy serves a gateway-like fasthttp handler that forwards everything through u, so tests
// can see what a device sees (including truncated bodies) with an independent client.
func startProxy(t testing.TB, u *Upstream, opt ForwardOptions) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		o := opt
		o.ClientAddr = ctx.RemoteIP().String()
		if err := u.Forward(context.Background(), &ctx.Request, &ctx.Response, o); err != nil {
			var e *Error
			errors.As(err, &e)
			ctx.Response.Reset()
			ctx.SetStatusCode(e.StatusCode())
			if ra := e.RetryAfterHeader(); ra != "" {
				ctx.Response.Header.Set("Retry-After", ra)
			}
		}
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return "http://" + ln.Addr().String() + easPath
}

// httpClient is an independent (net/http) device client.
func httpClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

// settleGoroutines waits until the goroutine count drops to at most limit, or fails.
func settleGoroutines(t testing.TB, limit int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= limit {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines did not settle: %d > %d\n%s", n, limit, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func wantKind(t testing.TB, err error, k Kind) {
	t.Helper()
	if got := KindOf(err); got != k {
		t.Fatalf("error kind = %v, want %v (err: %v)", got, k, err)
	}
}
