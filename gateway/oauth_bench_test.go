package gateway

import (
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/easgate/easgate/oauth/oauthtest"
)

// BenchmarkBearerVsBasic: the same allowed Sync through the whole handler (to a loopback upstream)
// with a bearer token whose verification is cached, and with Basic credentials (no token
// validation). Issue target: bearer ≥ 0.9× the requests per second of the unauthenticated path.
func BenchmarkBearerVsBasic(b *testing.B) {
	is := oauthtest.New(b, "ES256")
	g := startGateway(b, withIssuer(is))
	tok := is.Mint(is.Claims("jdoe@example.com", "api://easgate", time.Hour))
	h := g.srv.ClientHandler()
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	run := func(b *testing.B, auth string) {
		var req fasthttp.Request
		req.Header.SetMethod("POST")
		req.SetRequestURI("/Microsoft-Server-ActiveSync?Cmd=Sync&User=jdoe&DeviceId=BENCH1&DeviceType=Outlook")
		req.Header.Set("Authorization", auth)
		req.Header.Set("MS-ASProtocolVersion", "14.1")
		req.SetBody(syncRequest)
		var ctx fasthttp.RequestCtx
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			ctx.Init(&req, remote, nil)
			h(&ctx)
			if ctx.Response.StatusCode() != 200 {
				b.Fatalf("status %d", ctx.Response.StatusCode())
			}
		}
	}
	b.Run("basic", func(b *testing.B) { run(b, basic("jdoe", "pw")) })
	b.Run("bearer-cached", func(b *testing.B) { run(b, "Bearer "+tok) })
}
