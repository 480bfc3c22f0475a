package eas

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestConfig_ValidateReportsEveryError(t *testing.T) {
	cfg := Config{
		URL:                    "ftp://user:pw@/x?Cmd=Sync",
		MaxConns:               -1,
		NormalTimeout:          -time.Second,
		MaxResponseHeaderBytes: 100,
		TLS:                    TLSConfig{CAFile: "/nonexistent"},
		Breaker:                BreakerConfig{Threshold: -2},
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate accepted a broken config")
	}
	msg := err.Error()
	for _, want := range []string{"scheme", "no host", "credentials", "query", "MaxConns", "NormalTimeout", "MaxResponseHeaderBytes", "TLS.", "Breaker.Threshold"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Validate error lacks %q:\n%s", want, msg)
		}
	}
	for _, line := range strings.Split(msg, "\n") {
		if !strings.HasPrefix(line, "eas backend: ") {
			t.Errorf("error line %q does not start with the package name", line)
		}
	}
	if err := (Config{}).Validate(); err == nil || !strings.Contains(err.Error(), "URL is required") {
		t.Errorf("empty config: %v", err)
	}
}

func TestConfig_Defaults(t *testing.T) {
	c := Config{URL: "https://mail.example.com/Microsoft-Server-ActiveSync"}.withDefaults()
	if c.PingTimeout != 3600*time.Second || c.NormalTimeout != DefaultNormalTimeout || c.SendTimeout != DefaultSendTimeout {
		t.Errorf("class timeouts: %v %v %v", c.PingTimeout, c.NormalTimeout, c.SendTimeout)
	}
	if c.MaxResponseBodyBytes != 256<<20 || c.MaxConns != DefaultMaxConns || c.Breaker.Threshold != 5 {
		t.Errorf("defaults: %+v", c)
	}
	b, err := Config{URL: "https://mail.example.com/Microsoft-Server-ActiveSync"}.build()
	if err != nil {
		t.Fatal(err)
	}
	if b.addr != "mail.example.com:443" || b.tls == nil || b.tls.MinVersion != 0x0303 || b.tls.ServerName != "mail.example.com" {
		t.Errorf("built: addr %q tls %+v", b.addr, b.tls)
	}
}

// MS-ASHTTP section 2.2.1.1.1: the command parameters travel in the query string, plain or
// base64; the upstream must get them byte for byte on its own base path.
func TestForward_RewritesPathKeepsQuery(t *testing.T) {
	type seen struct{ uri, host, xfh, body string }
	got := make(chan seen, 4)
	up := startFastUpstream(t, func(ctx *fasthttp.RequestCtx) {
		got <- seen{string(ctx.Request.Header.RequestURI()), string(ctx.Host()),
			string(ctx.Request.Header.Peek("X-Forwarded-Host")), string(ctx.PostBody())}
		ctx.SetStatusCode(200)
	})
	u := mustNew(t, testConfig("http://"+up.Addr+"/z-push/index.php"))
	for _, q := range []string{
		"Cmd=Sync&User=alice&DeviceId=ABC123&DeviceType=iPhone",
		"jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l", // base64 form
		"Cmd=Ping&User=dom%5Calice&DeviceId=A&DeviceType=Android",
	} {
		req := easRequest(q, []byte("wbxml"))
		if _, _, err := forwardAll(context.Background(), u, req, ForwardOptions{}); err != nil {
			t.Fatal(err)
		}
		s := <-got
		if s.uri != "/z-push/index.php?"+q {
			t.Errorf("upstream URI %q, want base path + %q", s.uri, q)
		}
		if s.host != up.Addr || s.xfh != "gateway.example.com" || s.body != "wbxml" {
			t.Errorf("host %q xfh %q body %q", s.host, s.xfh, s.body)
		}
	}
	// OPTIONS without a query: just the base path.
	req := easRequest("", nil)
	req.Header.SetMethod(fasthttp.MethodOptions)
	req.SetRequestURI(easPath)
	if _, _, err := forwardAll(context.Background(), u, req, ForwardOptions{Idempotent: true}); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s.uri != "/z-push/index.php" {
		t.Errorf("OPTIONS URI %q", s.uri)
	}
}

// RFC 9110 section 7.6.1: hop-by-hop headers, and headers named by Connection, are not
// forwarded in either direction.
func TestForward_StripsHopByHopBothWays(t *testing.T) {
	rs, heads := startRecording(t, "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.ms-sync.wbxml\r\n"+
		"Connection: X-Internal, keep-alive\r\nX-Internal: secret\r\nKeep-Alive: timeout=5\r\n"+
		"Proxy-Authenticate: Basic\r\nUpgrade: h2c\r\nMS-Server-ActiveSync: 15.1\r\n"+
		"Set-Cookie: a=b\r\nContent-Length: 5\r\n\r\nhello")
	u := mustNew(t, testConfig(rs.URL))
	req := easRequest("Cmd=Sync&User=a&DeviceId=b&DeviceType=c", []byte("x"))
	req.Header.Set("Connection", "X-Device-Secret")
	req.Header.Set("X-Device-Secret", "1")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Proxy-Authorization", "Basic Zm9v")
	req.Header.Set("Proxy-Connection", "keep-alive")
	req.Header.Set("TE", "trailers")
	req.Header.Set("Trailer", "X-T")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Expect", "100-continue")
	// Request smuggling: the upstream must see one framing only (Content-Length).
	req.Header.Set("Transfer-Encoding", "chunked")
	resp, body, err := forwardAll(context.Background(), u, req, ForwardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	head := strings.ToLower(<-heads)
	for _, h := range []string{"x-device-secret", "keep-alive", "proxy-authorization", "proxy-connection", "\r\nte:", "trailer", "upgrade", "expect", "transfer-encoding"} {
		if strings.Contains(head, h) {
			t.Errorf("upstream received hop-by-hop %q:\n%s", h, head)
		}
	}
	for _, h := range []string{"authorization: basic dxnlcjpwyxnz", "ms-asprotocolversion: 14.1", "content-length: 1"} {
		if !strings.Contains(head, h) {
			t.Errorf("upstream request lacks %q:\n%s", h, head)
		}
	}
	if string(body) != "hello" {
		t.Errorf("body %q", body)
	}
	for _, h := range []string{"X-Internal", "Keep-Alive", "Proxy-Authenticate", "Upgrade", "Connection"} {
		if v := resp.Header.Peek(h); len(v) > 0 {
			t.Errorf("response kept hop-by-hop %s: %q", h, v)
		}
	}
	if string(resp.Header.Peek("MS-Server-ActiveSync")) != "15.1" || string(resp.Header.ContentType()) != "application/vnd.ms-sync.wbxml" {
		t.Errorf("end-to-end headers lost:\n%s", resp.Header.String())
	}
	if !strings.Contains(resp.Header.String(), "Set-Cookie: a=b") {
		t.Errorf("Set-Cookie lost:\n%s", resp.Header.String())
	}
}

// A device's own X-Forwarded-For is not trusted unless configured.
func TestForward_XForwardedFor(t *testing.T) {
	got := make(chan [3]string, 1)
	up := startFastUpstream(t, func(ctx *fasthttp.RequestCtx) {
		h := &ctx.Request.Header
		got <- [3]string{string(h.Peek("X-Forwarded-For")), string(h.Peek("X-Forwarded-Proto")), string(h.Peek("X-Forwarded-Host"))}
	})
	for _, tc := range []struct {
		trust bool
		tls   bool
		want  [3]string
	}{
		{false, true, [3]string{"198.51.100.7", "https", "gateway.example.com"}},
		{true, false, [3]string{"10.9.9.9, 198.51.100.7", "http", "gateway.example.com"}},
	} {
		cfg := testConfig(up.URL)
		cfg.TrustForwardedFor = tc.trust
		u := mustNew(t, cfg)
		req := easRequest("Cmd=FolderSync", nil)
		req.Header.Set("X-Forwarded-For", "10.9.9.9")
		req.Header.Set("X-Forwarded-Proto", "gopher")
		if _, _, err := forwardAll(context.Background(), u, req, ForwardOptions{ClientAddr: "198.51.100.7", TLS: tc.tls}); err != nil {
			t.Fatal(err)
		}
		if g := <-got; g != tc.want {
			t.Errorf("trust=%v: got %q, want %q", tc.trust, g, tc.want)
		}
	}
	// Untrusted and no client address: the device's own header does not get through.
	u := mustNew(t, testConfig(up.URL))
	req := easRequest("Cmd=FolderSync", nil)
	req.Header.Set("X-Forwarded-For", "10.9.9.9")
	if _, _, err := forwardAll(context.Background(), u, req, ForwardOptions{}); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g[0] != "" {
		t.Errorf("spoofed X-Forwarded-For passed: %q", g[0])
	}
}

// startRecording is a raw upstream that sends each request's head to the channel and answers
// every request with the given response, byte for byte.
func startRecording(t *testing.T, response string) (*rawServer, chan string) {
	heads := make(chan string, 1)
	rs := startRaw(t, func(_ int64, c net.Conn) {
		br := bufio.NewReader(c)
		for {
			head, err := readRequest(br)
			if err != nil {
				return
			}
			heads <- head
			io.WriteString(c, response)
		}
	})
	return rs, heads
}

// Every X-Forwarded-Host, -Proto and (untrusted) -For the device sent, duplicates included, is
// replaced by exactly one of the gateway's.
func TestForward_DeviceForwardedHeadersReplaced(t *testing.T) {
	rs, heads := startRecording(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	u := mustNew(t, testConfig(rs.URL))
	req := easRequest("Cmd=FolderSync", nil)
	for _, v := range []string{"a.example", "b.example"} {
		req.Header.Add("X-Forwarded-Host", v)
		req.Header.Add("X-Forwarded-Proto", "gopher-"+v)
		req.Header.Add("X-Forwarded-For", "10.9.9."+v[:1])
	}
	if _, _, err := forwardAll(context.Background(), u, req, ForwardOptions{ClientAddr: "198.51.100.7"}); err != nil {
		t.Fatal(err)
	}
	head := strings.ToLower(<-heads)
	for _, h := range []string{"x-forwarded-host: gateway.example.com", "x-forwarded-proto: http", "x-forwarded-for: 198.51.100.7"} {
		if !strings.Contains(head, "\r\n"+h+"\r\n") {
			t.Errorf("want %q:\n%s", h, head)
		}
	}
	for _, h := range []string{"x-forwarded-host", "x-forwarded-proto", "x-forwarded-for"} {
		if n := strings.Count(head, "\r\n"+h+":"); n != 1 {
			t.Errorf("%d %s headers reached the upstream:\n%s", n, h, head)
		}
	}
}

// countingServer reads requests and counts them; after each one, serve answers (or not) and
// reports whether to go on reading from the connection.
func countingServer(t *testing.T, serve func(conn int64, c net.Conn) bool) (*rawServer, *sync.Mutex, *int) {
	var mu sync.Mutex
	n := 0
	rs := startRaw(t, func(conn int64, c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := readRequest(br); err != nil {
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
			if !serve(conn, c) {
				return
			}
		}
	})
	return rs, &mu, &n
}

// staleServer drops the first `drop` connections after reading the request, without a byte of
// answer (a keep-alive connection the upstream closed), then answers normally. It counts the
// requests it read.
func staleServer(t *testing.T, drop int64) (*rawServer, *sync.Mutex, *int) {
	return countingServer(t, func(conn int64, c net.Conn) bool {
		if conn <= drop {
			_ = c.(*net.TCPConn).SetLinger(0) // RST
			return false
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
}

func TestForward_RetryIdempotentOnceOnReset(t *testing.T) {
	rs, mu, hits := staleServer(t, 1)
	u := mustNew(t, testConfig(rs.URL))
	_, body, err := forwardAll(context.Background(), u, easRequest("Cmd=Sync", []byte("s")), ForwardOptions{Idempotent: true})
	if err != nil || string(body) != "ok" {
		t.Fatalf("idempotent request not retried: %v %q", err, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if *hits != 2 {
		t.Errorf("upstream saw %d requests, want 2 (one retry)", *hits)
	}
}

func TestForward_RetriesAtMostOnce(t *testing.T) {
	rs, mu, hits := staleServer(t, 100)
	u := mustNew(t, testConfig(rs.URL))
	_, _, err := forwardAll(context.Background(), u, easRequest("Cmd=Sync", []byte("s")), ForwardOptions{Idempotent: true})
	wantKind(t, err, KindDown)
	mu.Lock()
	defer mu.Unlock()
	if *hits != 2 {
		t.Errorf("upstream saw %d requests, want 2", *hits)
	}
}

// SendMail, SmartReply and SmartForward must never reach the upstream twice: a duplicate is a
// duplicate email.
func TestForward_NeverRetriesSend(t *testing.T) {
	for _, opt := range []ForwardOptions{
		{Class: ClassSend, Idempotent: true}, // ClassSend wins over a wrong Idempotent flag
		{Class: ClassNormal, Idempotent: false},
	} {
		rs, mu, hits := staleServer(t, 1)
		u := mustNew(t, testConfig(rs.URL))
		_, _, err := forwardAll(context.Background(), u, easRequest("Cmd=SendMail&SaveInSent=T", []byte("mime")), opt)
		wantKind(t, err, KindDown)
		mu.Lock()
		if *hits != 1 {
			t.Errorf("%+v: upstream saw %d requests, want exactly 1", opt, *hits)
		}
		mu.Unlock()
	}
}

// A pooled connection the upstream closed just after answering (no "Connection: close") is
// reused while in steady use, where the request is sent from inside the wait for its answer
// (rawio's WriteAwaitReply) and the close arrived before that wait began. The closed socket
// answers the request with a reset, which is noticed at once: an idempotent request is
// retried on a fresh connection and SendMail fails as down — neither waits for the timeout.
func TestForward_UpstreamClosedJustAfterAnswering(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  ForwardOptions
	}{
		{"idempotent", ForwardOptions{Idempotent: true}},
		{"send", ForwardOptions{Class: ClassSend}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, mu, hits := countingServer(t, func(conn int64, c net.Conn) bool {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				if conn == 1 {
					c.Close() // idle keep-alive close, right after the answer
					return false
				}
				return true
			})
			cfg := testConfig(rs.URL)
			cfg.NormalTimeout, cfg.SendTimeout, cfg.PingTimeout = 10*time.Second, 10*time.Second, 20*time.Second
			u := mustNew(t, cfg)
			// A clock that moves a microsecond a call keeps every reuse inside the window.
			var clk sync.Mutex
			fake := time.Now()
			u.now = func() time.Time { clk.Lock(); defer clk.Unlock(); fake = fake.Add(time.Microsecond); return fake }

			// The first exchange on connection 1 writes plainly; the next one on it is in steady use.
			if _, body, err := forwardAll(context.Background(), u, easRequest("Cmd=Sync", []byte("s")), ForwardOptions{Idempotent: true}); err != nil || string(body) != "ok" {
				t.Fatalf("first exchange: %v %q", err, body)
			}
			mu.Lock()
			*hits = 0
			mu.Unlock()
			time.Sleep(20 * time.Millisecond) // the close reaches the gateway's side while it is idle
			start := time.Now()
			_, body, err := forwardAll(context.Background(), u, easRequest("Cmd=Sync", []byte("s")), tc.opt)
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("took %v: the close was noticed only at the deadline", d)
			}
			mu.Lock()
			defer mu.Unlock()
			if tc.opt.Idempotent {
				// the request on the closed connection was never read; its retry was.
				if err != nil || string(body) != "ok" || *hits != 1 {
					t.Fatalf("not retried on a fresh connection: %v %q, upstream read %d requests", err, body, *hits)
				}
				return
			}
			wantKind(t, err, KindDown)
			if *hits != 0 {
				t.Fatalf("upstream read %d requests, want none (no retry)", *hits)
			}
		})
	}
}

func TestForward_TimeoutPerClass(t *testing.T) {
	up := startFastUpstream(t, func(ctx *fasthttp.RequestCtx) {
		time.Sleep(400 * time.Millisecond) // a held Ping answering after its heartbeat
		ctx.SetBodyString("pong")
	})
	cfg := testConfig(up.URL)
	cfg.NormalTimeout = 150 * time.Millisecond
	cfg.SendTimeout = 150 * time.Millisecond
	cfg.PingTimeout = 3 * time.Second
	u := mustNew(t, cfg)

	start := time.Now()
	_, _, err := forwardAll(context.Background(), u, easRequest("Cmd=Sync", nil), ForwardOptions{Class: ClassNormal})
	wantKind(t, err, KindTimeout)
	if d := time.Since(start); d > time.Second {
		t.Errorf("normal timeout took %v", d)
	}
	_, _, err = forwardAll(context.Background(), u, easRequest("Cmd=SendMail", nil), ForwardOptions{Class: ClassSend})
	wantKind(t, err, KindTimeout)
	if !errors.Is(err, ErrUpstreamTimeout) || KindTimeout.StatusCode() != 504 {
		t.Errorf("timeout does not map to 504: %v", err)
	}
	_, body, err := forwardAll(context.Background(), u, easRequest("Cmd=Ping", nil), ForwardOptions{Class: ClassPing, Idempotent: true})
	if err != nil || string(body) != "pong" {
		t.Fatalf("ping: %v %q", err, body)
	}
	// A per-request deadline (HeartbeatInterval + margin) overrides the class.
	_, _, err = forwardAll(context.Background(), u, easRequest("Cmd=Ping", nil), ForwardOptions{Class: ClassPing, Timeout: 100 * time.Millisecond})
	wantKind(t, err, KindTimeout)
}

// The device sees exactly the upstream's bytes, and a 1 MB body is a stream, not a buffer.
func TestForward_StreamsLargeBody(t *testing.T) {
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	up := startFastUpstream(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/vnd.ms-sync.wbxml")
		if string(ctx.QueryArgs().Peek("chunked")) == "1" {
			ctx.SetBodyStream(bytes.NewReader(big), -1)
			return
		}
		ctx.SetBody(big)
	})
	u := mustNew(t, testConfig(up.URL))

	resp := fasthttp.AcquireResponse()
	if err := u.Forward(context.Background(), easRequest("Cmd=ItemOperations", nil), resp, ForwardOptions{}); err != nil {
		t.Fatal(err)
	}
	if !resp.IsBodyStream() {
		t.Fatal("1 MB body was buffered, not streamed")
	}
	_ = resp.CloseBodyStream()

	proxy := startProxy(t, u, ForwardOptions{Idempotent: true})
	want := sha256.Sum256(big)
	for _, q := range []string{"Cmd=ItemOperations", "Cmd=ItemOperations&chunked=1"} {
		r, err := httpClient().Post(proxy+"?"+q, "application/vnd.ms-sync.wbxml", strings.NewReader("req"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil || sha256.Sum256(b) != want || r.StatusCode != 200 {
			t.Fatalf("%s: status %d, %d bytes, err %v", q, r.StatusCode, len(b), err)
		}
		// A known length is passed on as Content-Length, an unknown one as chunked.
		wantCL := int64(1 << 20)
		if strings.Contains(q, "chunked") {
			wantCL = -1
		}
		if r.ContentLength != wantCL || len(r.Header.Values("Date")) != 1 || len(r.Header.Values("Content-Type")) != 1 {
			t.Errorf("%s: Content-Length %d, headers %v", q, r.ContentLength, r.Header)
		}
	}
}

// Connections go back to the pool after small and streamed bodies alike.
func TestForward_ReusesConnections(t *testing.T) {
	up := startFastUpstream(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.QueryArgs().Peek("big")) == "1" {
			ctx.SetBody(make([]byte, 200<<10))
			return
		}
		ctx.SetBody(make([]byte, 2048))
	})
	u := mustNew(t, testConfig(up.URL))
	for i := 0; i < 20; i++ {
		q := "Cmd=Sync"
		if i%2 == 1 {
			q += "&big=1"
		}
		if _, _, err := forwardAll(context.Background(), u, easRequest(q, nil), ForwardOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := u.Conns(); n != 1 {
		t.Errorf("%d upstream connections for 20 sequential requests, want 1", n)
	}
}

func TestForward_TLSWithCABundleAndServerName(t *testing.T) {
	ca := newTestTLS(t)
	ln := ca.listen(t)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("tls ok") }}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	url := "https://" + ln.Addr().String() + easPath

	cfg := testConfig(url)
	cfg.TLS = TLSConfig{CAFile: ca.caFile, ServerName: "mail.test"}
	u := mustNew(t, cfg)
	_, body, err := forwardAll(context.Background(), u, easRequest("Cmd=Sync", nil), ForwardOptions{})
	if err != nil || string(body) != "tls ok" {
		t.Fatalf("TLS forward: %v %q", err, body)
	}

	// Without the CA (system roots) the certificate is rejected: the upstream is "down".
	u2 := mustNew(t, testConfig(url))
	_, _, err = forwardAll(context.Background(), u2, easRequest("Cmd=Sync", nil), ForwardOptions{})
	wantKind(t, err, KindDown)
}

func TestForward_MutualTLSClientCertificate(t *testing.T) {
	tt := newTestTLS(t)
	ln := tt.listenMutual(t)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetBodyString("hello " + ctx.TLSConnectionState().PeerCertificates[0].Subject.CommonName)
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	url := "https://" + ln.Addr().String() + easPath

	cfg := testConfig(url)
	cfg.TLS = TLSConfig{CAFile: tt.caFile, ServerName: "mail.test", CertFile: tt.clientCert, KeyFile: tt.clientKey}
	u := mustNew(t, cfg)
	_, body, err := forwardAll(context.Background(), u, easRequest("Cmd=Sync", nil), ForwardOptions{})
	if err != nil || string(body) != "hello easgate gateway" {
		t.Fatalf("mutual TLS: %v %q", err, body)
	}
	// Without the client certificate the upstream refuses the handshake.
	cfg.TLS.CertFile, cfg.TLS.KeyFile = "", ""
	u2 := mustNew(t, cfg)
	_, _, err = forwardAll(context.Background(), u2, easRequest("Cmd=Sync", nil), ForwardOptions{})
	wantKind(t, err, KindDown)
	// Half a key pair is a configuration error.
	cfg.TLS.CertFile = tt.clientCert
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "CertFile and KeyFile") {
		t.Errorf("CertFile without KeyFile: %v", err)
	}
}

// Held requests and ordinary ones have separate pools: Pings holding every held connection
// never starve a Sync, and each pool, once full, answers KindSaturated (503, Retry-After) after
// MaxConnWait instead of opening more connections.
func TestForward_SaturatedWhenPoolFull(t *testing.T) {
	release := make(chan struct{})
	up := startFastUpstream(t, func(ctx *fasthttp.RequestCtx) {
		if q := string(ctx.QueryArgs().Peek("Cmd")); q == "Ping" || q == "Slow" {
			<-release
		}
	})
	defer close(release)
	cfg := testConfig(up.URL)
	cfg.MaxConns, cfg.MaxRequestConns = 1, 1
	cfg.MaxConnWait = 50 * time.Millisecond
	u := mustNew(t, cfg)
	hold := func(query string, class Class) {
		before := up.hits.Load()
		go forwardAll(context.Background(), u, easRequest(query, nil), ForwardOptions{Class: class})
		deadline := time.Now().Add(2 * time.Second)
		for up.hits.Load() == before && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	wantSaturated := func(err error) {
		t.Helper()
		wantKind(t, err, KindSaturated)
		var e *Error
		if !errors.As(err, &e) || e.RetryAfterHeader() != "1" || e.StatusCode() != http.StatusServiceUnavailable {
			t.Errorf("saturated error: %+v", e)
		}
	}

	hold("Cmd=Ping", ClassPing) // the only held connection
	if _, _, err := forwardAll(context.Background(), u, easRequest("Cmd=Sync", nil), ForwardOptions{}); err != nil {
		t.Fatalf("a Sync while the held pool is full: %v", err)
	}
	_, _, err := forwardAll(context.Background(), u, easRequest("Cmd=Ping", nil), ForwardOptions{Class: ClassPing})
	wantSaturated(err)

	hold("Cmd=Slow", ClassNormal) // the only ordinary connection
	_, _, err = forwardAll(context.Background(), u, easRequest("Cmd=Sync", nil), ForwardOptions{})
	wantSaturated(err)
	if n := u.Conns(); n != 2 {
		t.Errorf("%d upstream connections, want 2 (one per pool)", n)
	}
}

func TestHopIndex(t *testing.T) {
	for i, n := range hopByHop {
		for _, k := range []string{n, strings.ToLower(n), strings.ToUpper(n)} {
			if got := hopIndex([]byte(k)); got != i {
				t.Errorf("hopIndex(%q) = %d, want %d", k, got, i)
			}
		}
	}
	for _, k := range []string{"", "Tx", "Accept", "Upgrades", "Trailers", "X-Trailer", "Content-Type", "Keep-Alivf",
		"Proxy-Connectiom", "Transfer-Encodinf", "Proxy-Authenticatf", "Proxy-Authorizatiom", "Connectiom", "Mpgrade"} {
		if got := hopIndex([]byte(k)); got != -1 {
			t.Errorf("hopIndex(%q) = %d, want -1", k, got)
		}
	}
}
