package eas

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// Benchmarks of Forward against a direct fasthttp HostClient.Do to the same in-process
// upstream, in the same run: the ratio direct/forward (ns/op) is the pass-through cost.
//
//	go test -run '^$' -bench . -benchmem ./backends/eas/

func benchUpstream(b *testing.B) (*fastUpstream, []byte, []byte) {
	sync2k := make([]byte, 2048)
	for i := range sync2k {
		sync2k[i] = byte(i)
	}
	big := make([]byte, 1<<20)
	up := startFastUpstream(b, func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/vnd.ms-sync.wbxml")
		if string(ctx.QueryArgs().Peek("Cmd")) == "ItemOperations" {
			ctx.SetBody(big)
			return
		}
		ctx.SetBody(sync2k)
	})
	return up, sync2k, big
}

func benchForward(b *testing.B, query string, size int) {
	up, reqBody, _ := benchUpstream(b)
	u := mustNew(b, testConfig(up.URL))
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	ctx := context.Background()
	opt := ForwardOptions{Idempotent: true, ClientAddr: "192.0.2.1", TLS: true}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req.Reset()
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetRequestURI(easPath + "?" + query)
		req.Header.SetHost("gateway.example.com")
		req.SetBody(reqBody)
		if err := u.Forward(ctx, req, resp, opt); err != nil {
			b.Fatal(err)
		}
		var n int
		if resp.IsBodyStream() { // check first: Body() would buffer the whole stream
			m, err := io.Copy(io.Discard, resp.BodyStream())
			if err != nil {
				b.Fatal(err)
			}
			n = int(m)
			_ = resp.CloseBodyStream()
		} else {
			n = len(resp.Body())
		}
		if n != size {
			b.Fatalf("body %d bytes, want %d", n, size)
		}
	}
}

func benchDirect(b *testing.B, query string, size int) {
	up, reqBody, _ := benchUpstream(b)
	hc := &fasthttp.HostClient{Addr: up.Addr}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req.Reset()
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetRequestURI(up.URL + "?" + query)
		req.SetBody(reqBody)
		if err := hc.Do(req, resp); err != nil {
			b.Fatal(err)
		}
		if len(resp.Body()) != size {
			b.Fatalf("body %d bytes", len(resp.Body()))
		}
	}
}

func BenchmarkSync2KB(b *testing.B) {
	b.Run("direct", func(b *testing.B) { benchDirect(b, "Cmd=Sync&User=u&DeviceId=d&DeviceType=t", 2048) })
	b.Run("forward", func(b *testing.B) { benchForward(b, "Cmd=Sync&User=u&DeviceId=d&DeviceType=t", 2048) })
}

func BenchmarkItemOperations1MB(b *testing.B) {
	b.Run("direct", func(b *testing.B) { benchDirect(b, "Cmd=ItemOperations", 1<<20) })
	b.Run("forward", func(b *testing.B) { benchForward(b, "Cmd=ItemOperations", 1<<20) })
}

// BenchmarkRatio interleaves a direct Do, a direct streaming Do and a Forward on every
// iteration, so all see the same machine noise, and reports throughput_ratio = direct time /
// Forward time (1.0: the pass-through costs nothing; 0.5: it halves throughput) and
// stream_ratio, the same against a direct client that streams the body too (StreamResponseBody,
// drained to io.Discard) — the like-for-like baseline for 1 MB, since a buffering Do pays a copy
// Forward does not.
func BenchmarkRatio(b *testing.B) {
	for _, tc := range []struct {
		name, query string
		size        int
	}{
		{"Sync2KB", "Cmd=Sync&User=u&DeviceId=d&DeviceType=t", 2048},
		{"ItemOperations1MB", "Cmd=ItemOperations", 1 << 20},
	} {
		b.Run(tc.name, func(b *testing.B) {
			up, reqBody, _ := benchUpstream(b)
			u := mustNew(b, testConfig(up.URL))
			hc := &fasthttp.HostClient{Addr: up.Addr}
			hcs := &fasthttp.HostClient{Addr: up.Addr, StreamResponseBody: true}
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			opt := ForwardOptions{Idempotent: true, ClientAddr: "192.0.2.1", TLS: true}
			var direct, stream, forward time.Duration
			b.SetBytes(int64(tc.size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req.Reset()
				req.Header.SetMethod(fasthttp.MethodPost)
				req.SetRequestURI(up.URL + "?" + tc.query)
				req.SetBody(reqBody)
				t0 := time.Now()
				if err := hc.Do(req, resp); err != nil || len(resp.Body()) != tc.size {
					b.Fatal(err)
				}
				ts := time.Now()
				if err := hcs.Do(req, resp); err != nil {
					b.Fatal(err)
				}
				if m, err := io.Copy(io.Discard, resp.BodyStream()); err != nil || int(m) != tc.size {
					b.Fatal(m, err)
				}
				_ = resp.CloseBodyStream()
				t1 := time.Now()
				req.Reset()
				req.Header.SetMethod(fasthttp.MethodPost)
				req.SetRequestURI(easPath + "?" + tc.query)
				req.Header.SetHost("gateway.example.com")
				req.SetBody(reqBody)
				if err := u.Forward(context.Background(), req, resp, opt); err != nil {
					b.Fatal(err)
				}
				n := 0
				if resp.IsBodyStream() {
					m, err := io.Copy(io.Discard, resp.BodyStream())
					if err != nil {
						b.Fatal(err)
					}
					n = int(m)
					_ = resp.CloseBodyStream()
				} else {
					n = len(resp.Body())
				}
				if n != tc.size {
					b.Fatalf("forward body %d", n)
				}
				t2 := time.Now()
				direct += ts.Sub(t0)
				stream += t1.Sub(ts)
				forward += t2.Sub(t1)
			}
			b.ReportMetric(float64(direct)/float64(forward), "throughput_ratio")
			b.ReportMetric(float64(stream)/float64(forward), "stream_ratio")
			b.ReportMetric(float64(direct.Nanoseconds())/float64(b.N), "direct_ns/op")
			b.ReportMetric(float64(forward.Nanoseconds())/float64(b.N), "forward_ns/op")
		})
	}
}
