package gateway

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	upstream "github.com/easgate/easgate/backends/eas"
	"github.com/easgate/easgate/eas"
)

// holdLongPoll forwards an allowed long poll — a Ping (its HeartbeatInterval clamped) or a Sync
// with Wait — and holds it open.
func (s *Server) holdLongPoll(ctx *fasthttp.RequestCtx, st *reqState) error {
	var body []byte
	if st.req.Cmd == eas.CmdPing {
		b, err := clampHeartbeat(ctx.PostBody(), s.maxHeartbeat)
		if err != nil {
			return err
		}
		body = b
	}
	if s.local != nil {
		// The bridge holds the Ping itself (IMAP IDLE); it gets owned copies of everything.
		req, cred := st.req.Clone(), st.credentials(ctx.Request.Header.Peek("Authorization"))
		if body == nil {
			body = append([]byte(nil), ctx.PostBody()...)
		}
		return s.hold(ctx, st, func(hctx context.Context, resp *fasthttp.Response) error {
			return s.serveIMAP(hctx, req, cred, body, resp)
		})
	}
	req := fasthttp.AcquireRequest()
	ctx.Request.CopyTo(req)
	if body != nil {
		req.SetBody(body)
	}
	s.upstreamCredentials(req)
	opt := upstream.ForwardOptions{
		Class: upstream.ClassPing, Idempotent: true, ClientAddr: st.addr, TLS: ctx.IsTLS(),
		Timeout: time.Duration(s.maxHeartbeat)*time.Second + 2*time.Minute,
	}
	return s.hold(ctx, st, func(hctx context.Context, resp *fasthttp.Response) error {
		defer fasthttp.ReleaseRequest(req)
		start := time.Now()
		err := s.backend.Forward(hctx, req, resp, opt)
		s.metrics.upstream.WithLabelValues(opt.Class.String()).Observe(time.Since(start).Seconds())
		return err
	})
}

// hold runs work for a long poll on a hijacked connection and writes its response.
//
// fasthttp gives a handler no signal when its client goes away, so a naive proxy keeps every
// abandoned Ping (and its upstream request) until the heartbeat expires — up to an hour. Here the
// connection is hijacked: work runs with a context that a watcher cancels as soon as a one-byte
// read of the client connection fails (the device disconnected), and which the ping hub cancels
// when a newer Ping from the same device arrives or the gateway drains. The response is written
// by hand with "Connection: close"; EAS clients open a new connection for their next Ping anyway.
//
// work owns resp until it returns; it must return promptly once its context is done.
//
// Everything a hold owns is taken inside the hijack handler, because fasthttp skips the handler
// when the connection fails before it runs (a device that gave up at once): a registration made
// earlier would never be released.
func (s *Server) hold(ctx *fasthttp.RequestCtx, st *reqState, work func(context.Context, *fasthttp.Response) error) error {
	if s.pings.draining() {
		return errDraining
	}
	// The hijack handler runs after this handler returns: copy what it needs out of ctx/st.
	// The eas.Request's strings live in its arena, which the next request reuses: clone.
	rid, user, device, addr, cmd := st.rid, st.user, strings.Clone(st.req.DeviceID), st.addr, st.req.Cmd.String()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		s.holding.Add(1)
		defer s.holding.Add(-1)
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
		p, err := s.pings.acquire(s.baseCtx, user, device, addr)
		if err != nil {
			if errors.Is(err, errPingLimit) {
				err = errPingCapacity
			} else {
				err = errDraining
			}
			s.writeError(resp, rid, err)
			s.writeHeld(c, resp, rid, cmd)
			return
		}
		defer s.pings.release(p)

		watchDone := make(chan struct{})
		go func() {
			defer close(watchDone)
			var one [1]byte
			// The read returns when the client closes or resets (the hold ends), when the deadline
			// below stops the watcher, or if a client wrongly pipelines a request (left alone: the
			// connection is closed after the answer).
			if _, err := c.Read(one[:]); err != nil && !isTimeout(err) {
				p.cancel(errClientGone)
			}
		}()

		werr := work(p.ctx, resp)
		_ = c.SetReadDeadline(time.Now())
		<-watchDone

		switch cause := context.Cause(p.ctx); {
		case errors.Is(cause, errClientGone):
			s.metrics.request(cmd, 499)
			s.log.Debug("long poll abandoned by client", slog.String("rid", rid), slog.String("user", user), slog.String("device", device))
			return
		case werr != nil && (errors.Is(cause, errSuperseded) || errors.Is(cause, errShuttingDown)):
			// The upstream request was cut short: answer "no changes", so the device polls
			// again at once — on another node, during a rolling restart — which is what a
			// superseded or draining poll should make it do. For Ping that is Status 1; for a
			// waiting Sync, an empty response (MS-ASCMD 2.2.1.21: no changes).
			resp.Reset()
			resp.SetStatusCode(200)
			if cmd == "Ping" {
				resp.Header.SetContentType(contentTypeWBXML)
				resp.SetBody(pingNoChanges)
			}
		case werr != nil:
			s.writeError(resp, rid, werr)
		}
		s.writeHeld(c, resp, rid, cmd)
	})
	return nil
}

// writeHeld writes the answer to a held request on its hijacked connection, which is then
// closed.
func (s *Server) writeHeld(c net.Conn, resp *fasthttp.Response, rid, cmd string) {
	resp.Header.Set("X-Request-Id", rid)
	resp.SetConnectionClose()
	_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	w := bufio.NewWriterSize(c, 4096)
	if resp.Write(w) == nil {
		_ = w.Flush()
	}
	s.metrics.request(cmd, resp.StatusCode())
}

const contentTypeWBXML = "application/vnd.ms-sync.wbxml"

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
