package gateway

import (
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/easgate/easgate/bench"
)

// BenchmarkAllowedSync measures the gateway's request path for an allowed Sync of a known
// device whose decision is cached (the steady state of a phone fleet), beside the same request
// sent straight to the same fake upstream in the same run:
//
//   - direct: a fasthttp client → fake upstream (the baseline);
//   - gateway-handler: the gateway's client handler called in-process with a prepared
//     RequestCtx (no client socket), forwarding over loopback to the fake upstream;
//   - gateway-loopback: a fasthttp client → gateway listener → fake upstream.
//
// gateway-handler − direct is what the gateway adds per request (parse, Basic
// authentication, user binding, decision cache hit, quarantine-key scan, metrics, forward
// bookkeeping). Allocations are those of the whole process, upstream included, so compare
// them between sub-benchmarks, not in absolute terms.
func BenchmarkAllowedSync(b *testing.B) {
	g := startGateway(b)
	const user, device = "benchuser", "BENCHDEVICE0001"
	query := "Cmd=Sync&User=" + user + "&DeviceId=" + device + "&DeviceType=iPhone"
	auth := basic(user, "secret-"+user)
	prepare := func(req *fasthttp.Request, uri string) {
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetRequestURI(uri)
		req.Header.Set(fasthttp.HeaderAuthorization, auth)
		req.Header.Set(fasthttp.HeaderUserAgent, "Apple-iPhone15C2/2104.261")
		req.Header.Set("MS-ASProtocolVersion", "14.1")
		req.Header.SetContentType("application/vnd.ms-sync.wbxml")
		req.SetBodyRaw(bench.SyncRequest)
	}
	client := func(addr string) *fasthttp.HostClient {
		return &fasthttp.HostClient{Addr: addr, MaxConns: 4, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	}
	upAddr := g.up.ln.Addr().String()
	viaClient := func(b *testing.B, hc *fasthttp.HostClient, host string) {
		var req fasthttp.Request
		var resp fasthttp.Response
		prepare(&req, "http://"+host+"/Microsoft-Server-ActiveSync?"+query)
		// Register the device and cache its decision before timing.
		for range 3 {
			if err := hc.Do(&req, &resp); err != nil || resp.StatusCode() != fasthttp.StatusOK {
				b.Fatalf("warm-up: %v status %d", err, resp.StatusCode())
			}
		}
		time.Sleep(50 * time.Millisecond)
		b.ReportAllocs()
		b.SetBytes(int64(len(bench.SyncRequest)))
		b.ResetTimer()
		for b.Loop() {
			if err := hc.Do(&req, &resp); err != nil || resp.StatusCode() != fasthttp.StatusOK {
				b.Fatalf("%v status %d", err, resp.StatusCode())
			}
		}
	}

	b.Run("direct", func(b *testing.B) { viaClient(b, client(upAddr), upAddr) })
	b.Run("gateway-handler", func(b *testing.B) {
		h := g.srv.ClientHandler()
		var tmpl fasthttp.Request
		prepare(&tmpl, "/Microsoft-Server-ActiveSync?"+query)
		tmpl.Header.SetHost(g.addr)
		remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}
		var rc fasthttp.RequestCtx
		serve := func() {
			rc.Init(&tmpl, remote, nil)
			rc.Response.Reset()
			h(&rc)
			if rc.Response.StatusCode() != fasthttp.StatusOK {
				b.Fatalf("status %d: %q", rc.Response.StatusCode(), rc.Response.Body())
			}
		}
		for range 3 {
			serve()
		}
		time.Sleep(50 * time.Millisecond)
		b.ReportAllocs()
		b.SetBytes(int64(len(bench.SyncRequest)))
		b.ResetTimer()
		for b.Loop() {
			serve()
		}
	})
	b.Run("gateway-loopback", func(b *testing.B) { viaClient(b, client(g.addr), g.addr) })
}
