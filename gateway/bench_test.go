package gateway

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
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

// BenchmarkHeldPingMemory measures what one held Ping costs in this process: Go heap in use,
// goroutine stacks and goroutines, with heldPings Pings held by the fake upstream, once sent
// straight to it (direct: the upstream's own share) and once through the gateway (gateway: the
// upstream's share plus the gateway's client connection, hijacked hold and upstream request).
// gateway − direct is the gateway's cost per held Ping. Run with -benchtime 1x; set
// EASGATE_HELDPING_HEAPPROFILE=FILE to write the heap profile taken while the gateway's Pings
// are held (go tool pprof -sample_index=inuse_space FILE).
func BenchmarkHeldPingMemory(b *testing.B) {
	const heldPings = 500
	g := startGateway(b)
	ping := bench.PingRequest(480)
	measure := func(b *testing.B, addr string, profile string) {
		for b.Loop() {
			g.up.mu.Lock()
			g.up.pingHold = time.Hour // held until the connections close
			g.up.mu.Unlock()
			before := held()
			conns := make([]net.Conn, 0, heldPings)
			for i := range heldPings {
				c, err := dialRaw(addr)
				if err != nil {
					b.Fatal(err)
				}
				conns = append(conns, c)
				dev := fmt.Sprintf("HELD%08d", i)
				req := fmt.Sprintf("POST /Microsoft-Server-ActiveSync?Cmd=Ping&User=held&DeviceId=%s&DeviceType=iPhone HTTP/1.1\r\n"+
					"Host: %s\r\nAuthorization: %s\r\nMS-ASProtocolVersion: 14.1\r\nContent-Type: application/vnd.ms-sync.wbxml\r\n"+
					"Content-Length: %d\r\n\r\n", dev, addr, basic("held", "secret-held"), len(ping))
				if _, err := c.Write(append([]byte(req), ping...)); err != nil {
					b.Fatal(err)
				}
				// Ramp in steps: each new device is a registry write before its Ping is
				// forwarded, which is slow under -race.
				if n := int64(i + 1); n%50 == 0 || n == heldPings {
					waitFor(b, func() bool { return g.up.activePings.Load() >= n })
				}
			}
			after := held()
			if profile != "" {
				f, err := os.Create(profile)
				if err != nil {
					b.Fatal(err)
				}
				if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
			for _, c := range conns {
				c.Close()
			}
			waitFor(b, func() bool { return g.up.activePings.Load() == 0 })
			b.ReportMetric(float64(after.heap-before.heap)/heldPings, "heap-B/ping")
			b.ReportMetric(float64(after.stack-before.stack)/heldPings, "stack-B/ping")
			b.ReportMetric(float64(after.goroutines-before.goroutines)/heldPings, "goroutines/ping")
		}
	}
	b.Run("direct", func(b *testing.B) { measure(b, g.up.ln.Addr().String(), "") })
	b.Run("gateway", func(b *testing.B) { measure(b, g.addr, os.Getenv("EASGATE_HELDPING_HEAPPROFILE")) })
}

type memPoint struct{ heap, stack, goroutines int64 }

// held settles the runtime (two GCs) and reads heap in use, stacks in use and goroutines.
func held() memPoint {
	time.Sleep(200 * time.Millisecond)
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memPoint{heap: int64(ms.HeapInuse), stack: int64(ms.StackInuse), goroutines: int64(runtime.NumGoroutine())}
}

// BenchmarkSyncWaits is the long-poll check every Sync pays, on the 2 KB bench Sync (84
// changes, a GUID SyncKey): the byte-pair prefilter the gateway runs against the decoder
// walk it replaces on bodies like this one (decoder-walk is the baseline).
func BenchmarkSyncWaits(b *testing.B) {
	body := bench.SyncRequest
	if syncWaits(body) || mayHoldValue(body) {
		b.Fatal("the bench Sync should pass the prefilter")
	}
	b.Run("decoder-walk", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			walkSyncWaits(body)
		}
	})
	b.Run("syncWaits", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			syncWaits(body)
		}
	})
}
