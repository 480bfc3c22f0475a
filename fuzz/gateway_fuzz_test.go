package fuzz

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/easgate/easgate/gateway"
)

// FuzzGatewayRequest feeds raw HTTP requests to the gateway's whole client path in-process:
// routing, the EAS query (plain and base64) and headers, Basic and Bearer credentials, the
// decision, the quarantine responder, Autodiscover and the portal, with a real SQLite registry
// and a loopback upstream. Whatever the bytes, the gateway answers with a status (never a panic),
// and never a 5xx of its own making.
func FuzzGatewayRequest(f *testing.F) {
	basic := "Basic amRvZTpwdw==" // jdoe:pw
	seeds := []string{
		"POST /Microsoft-Server-ActiveSync?Cmd=Sync&User=jdoe&DeviceId=D1&DeviceType=iPhone HTTP/1.1\r\nHost: gw\r\nAuthorization: " + basic + "\r\nMS-ASProtocolVersion: 14.1\r\nContent-Length: 0\r\n\r\n",
		"POST /Microsoft-Server-ActiveSync?Cmd=FolderSync&User=jdoe&DeviceId=Q1&DeviceType=Android HTTP/1.1\r\nHost: gw\r\nAuthorization: " + basic + "\r\nMS-ASProtocolVersion: 16.1\r\nContent-Length: 12\r\n\r\n\x03\x01\x6a\x00\x00\x07\x56\x52\x03\x30\x00\x01",
		"POST /Microsoft-Server-ActiveSync?jQAJBBBjYWZlYmFiZWNhZmViYWJlBAAAAAAGaVBob25l HTTP/1.1\r\nHost: gw\r\nAuthorization: " + basic + "\r\nContent-Length: 0\r\n\r\n",
		"OPTIONS /Microsoft-Server-ActiveSync HTTP/1.1\r\nHost: gw\r\nAuthorization: " + basic + "\r\n\r\n",
		"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: gw\r\nContent-Length: 60\r\n\r\n<Autodiscover><Request><EMailAddress>a@b</EMailAddress></Request></Autodiscover>",
		"GET /portal/d/AAAA.BBBB HTTP/1.1\r\nHost: gw\r\n\r\n",
		"POST /Microsoft-Server-ActiveSync?Cmd=Ping&User=jdoe&DeviceId=P1&DeviceType=iPhone HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer a.b.c\r\nContent-Length: 0\r\n\r\n",
		"POST /oauth/token HTTP/1.1\r\nHost: gw\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\n\r\ngrant_type",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	h := fuzzGateway(f)
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var req fasthttp.Request
		if err := req.Read(bufio.NewReader(bytes.NewReader(raw))); err != nil {
			return // fasthttp refuses it before the gateway sees it
		}
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, remote, nil)
		h(&ctx)
		code := ctx.Response.StatusCode()
		if ctx.Hijacked() {
			return // a held Ping: answered later on the connection
		}
		if code < 200 || code > 599 || code == 500 {
			t.Fatalf("status %d for %q", code, raw)
		}
	})
}

// fuzzGateway starts one gateway (SQLite registry, loopback upstream) for the whole fuzz run.
func fuzzGateway(f *testing.F) fasthttp.RequestHandler {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/vnd.ms-sync.wbxml")
	})}
	go up.Serve(ln)
	f.Cleanup(func() { up.Close() })
	dir := f.TempDir()
	cfg := fmt.Sprintf(`
listen:
  external_url: https://gw.example.com
admin:
  token: %[1]s
portal:
  key: %[1]s
store:
  path: %[2]s
backend:
  eas:
    url: http://%[3]s/Microsoft-Server-ActiveSync
    timeout: 2s
oauth:
  allow_loopback_http: true
  issuers:
    - issuer: http://%[3]s/tenant
      jwks_url: http://%[3]s/tenant/keys
      audiences: [api://easgate]
  token_service:
    enabled: true
policy:
  unknown_device: quarantine
  rules:
    - id: d1
      match: {device_type: iPhone}
      action: allow
`, strings.Repeat("k", 40), filepath.Join(dir, "fuzz.db"), ln.Addr())
	c, err := gateway.ParseConfig([]byte(cfg), func(string) (string, bool) { return "", false })
	if err != nil {
		f.Fatal(err)
	}
	app, err := gateway.Open(context.Background(), c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { app.Close() })
	return app.Server.ClientHandler()
}
