package eas

import (
	"context"
	"io"
	"testing"

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
