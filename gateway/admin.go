package gateway

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"github.com/valyala/fasthttp/pprofhandler"
)

// handleAdmin serves the admin listener: /healthz and /readyz unauthenticated (load balancers
// probe them), everything else — /metrics, the REST API under /admin/v1/ and Go's profiles
// under /debug/pprof/ — behind the admin bearer token.
func (s *Server) handleAdmin(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	switch string(path) {
	case "/healthz":
		ctx.SetStatusCode(200)
		ctx.SetBodyString("ok\n")
		return
	case "/readyz":
		if s.ready.Load() {
			ctx.SetStatusCode(200)
			ctx.SetBodyString("ready\n")
		} else {
			ctx.SetStatusCode(503)
			ctx.SetBodyString("not ready\n")
		}
		return
	}
	if string(path) == mdmPath {
		s.serveMDM(ctx) // authenticated by its signature, not the admin token
		return
	}
	if !s.adminAuthorized(ctx.Request.Header.Peek("Authorization")) {
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="easgate-admin"`)
		adminJSONError(ctx, 401, "admin token required")
		return
	}
	switch {
	case string(path) == "/metrics":
		s.metricsHandler()(ctx)
	case bytes.HasPrefix(path, []byte("/admin/v1/")):
		s.serveAdminAPI(ctx, string(path[len("/admin/v1/"):]))
	case bytes.HasPrefix(path, []byte("/debug/pprof/")):
		// Go's profiles (CPU, heap, goroutines, execution trace) for diagnosing a live node;
		// behind the admin token like everything else here. A CPU profile or trace is bounded by
		// its ?seconds= and the admin listener's 60 s write timeout.
		pprofhandler.PprofHandler(ctx)
	default:
		adminJSONError(ctx, 404, "not found")
	}
}

// adminAuthorized compares the presented token with the configured one in constant time (both
// hashed first, so neither length nor content leaks through timing).
func (s *Server) adminAuthorized(h []byte) bool {
	const prefix = "bearer "
	if len(h) <= len(prefix) || !asciiEqualFold(h[:len(prefix)], prefix) {
		return false
	}
	got := sha256.Sum256(bytes.TrimSpace(h[len(prefix):]))
	want := sha256.Sum256([]byte(s.cfg.Admin.Token))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

func (s *Server) metricsHandler() fasthttp.RequestHandler {
	return fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
}

func adminJSON(ctx *fasthttp.RequestCtx, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		adminJSONError(ctx, 500, "encoding failed")
		return
	}
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}

func adminJSONError(ctx *fasthttp.RequestCtx, code int, msg string) {
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	b, _ := json.Marshal(map[string]string{"error": msg, "status": http.StatusText(code)})
	ctx.SetBody(append(b, '\n'))
}
