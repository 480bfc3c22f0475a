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
	"github.com/easgate/easgate/backends/eas/park"
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
		// The bridge holds the Ping itself (IMAP IDLE) in a goroutine; it gets owned copies of
		// everything.
		req, cred := st.req.Clone(), st.credentials()
		if body == nil {
			body = append([]byte(nil), ctx.PostBody()...)
		}
		return s.hold(ctx, st, func(hctx context.Context, finish func(*fasthttp.Response, error)) {
			go func() {
				resp := fasthttp.AcquireResponse()
				finish(resp, s.serveIMAP(hctx, req, cred, body, resp))
			}()
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
	return s.hold(ctx, st, func(hctx context.Context, finish func(*fasthttp.Response, error)) {
		start := time.Now()
		s.backend.ForwardHeld(hctx, req, opt, func(resp *fasthttp.Response, err error) {
			s.metrics.observeUpstream(opt.Class.String(), time.Since(start).Seconds())
			fasthttp.ReleaseRequest(req)
			finish(resp, err)
		})
	})
}

// longPoll starts the work of a held request. It calls finish exactly once — perhaps before it
// returns — with the response to write (finish owns it; nil when there is none) and the error
// that ended the work; it must finish promptly once ctx is done.
type longPoll func(ctx context.Context, finish func(*fasthttp.Response, error))

// hold runs work for a long poll on a hijacked connection and writes its response.
//
// fasthttp gives a handler no signal when its client goes away, so a naive proxy keeps every
// abandoned Ping (and its upstream request) until the heartbeat expires — up to an hour. Here the
// connection is hijacked: work runs with a context that is cancelled as soon as the device hangs
// up, and which the ping hub cancels when a newer Ping from the same device arrives or the
// gateway drains. The response is written by hand with "Connection: close"; EAS clients open a
// new connection for their next Ping anyway.
//
// A held Ping costs as little as possible while it waits, because a gateway holds one per
// device: the hijack handler returns at once, so fasthttp releases the connection's 8 KB read
// buffer and request context (the server keeps hijacked connections open for us); the device's
// connection is watched for a hang-up by the process's poller (package park), as is the
// upstream connection for its answer (upstream.ForwardHeld), so no goroutine waits either.
// Where parking is unavailable, a goroutine per connection does the same.
//
// Everything a hold owns is taken inside the hijack handler, because fasthttp skips the handler
// when the connection fails before it runs (a device that gave up at once): a registration made
// earlier would never be released.
func (s *Server) hold(ctx *fasthttp.RequestCtx, st *reqState, work longPoll) error {
	if s.pings.draining() {
		return errDraining
	}
	// The hijack handler runs after this handler returns: copy what it needs out of ctx/st.
	// The eas.Request's strings live in its arena, which the next request reuses: clone.
	h := &heldConn{
		s: s, conn: ctx.Conn(), rid: st.rid(), user: st.user, device: strings.Clone(st.req.DeviceID),
		addr: st.addr, cmd: st.req.Cmd.String(),
	}
	ctx.HijackSetNoResponse(true)
	// The connection itself, not fasthttp's wrapper: the wrapper reads through the buffer
	// fasthttp releases when the hijack handler returns.
	ctx.Hijack(func(net.Conn) {
		s.holding.Add(1)
		p, err := s.pings.acquire(s.baseCtx, h.user, h.device, h.addr)
		if err != nil {
			if errors.Is(err, errPingLimit) {
				err = errPingCapacity
			} else {
				err = errDraining
			}
			resp := fasthttp.AcquireResponse()
			s.writeError(resp, h.rid, err)
			s.writeHeld(h.conn, resp, h.rid, h.cmd)
			fasthttp.ReleaseResponse(resp)
			_ = h.conn.Close()
			s.holding.Add(-1)
			return
		}
		h.p = p
		h.watchClient()
		work(p.ctx, h.finish)
	})
	return nil
}

// heldConn is a device's connection while its long poll is held.
type heldConn struct {
	s                            *Server
	conn                         net.Conn
	p                            *heldPing
	rid, user, device, addr, cmd string
	watch                        *park.Watch   // the hang-up watch, when parked
	watchDone                    chan struct{} // the watching goroutine, when not
}

// watchClient cancels the hold when the device hangs up.
func (h *heldConn) watchClient() {
	p := h.p
	if h.s.park != nil {
		w, err := h.s.park.Watch(h.conn, park.HangUp, func(park.Event) { p.cancel(errClientGone) })
		if err == nil {
			h.watch = w
			return
		}
	}
	h.watchDone = make(chan struct{})
	go func() {
		defer close(h.watchDone)
		var one [1]byte
		// The read returns when the client closes or resets (the hold ends), when finish stops
		// the watcher with a deadline, or if a client wrongly pipelines a request (left alone:
		// the connection is closed after the answer).
		if _, err := h.conn.Read(one[:]); err != nil && !isTimeout(err) {
			p.cancel(errClientGone)
		}
	}()
}

// finish ends the hold: it writes the answer (unless the device left) and closes the
// connection.
func (h *heldConn) finish(resp *fasthttp.Response, werr error) {
	s := h.s
	if h.watch != nil {
		h.watch.Stop()
	} else if h.watchDone != nil {
		_ = h.conn.SetReadDeadline(time.Now())
		<-h.watchDone
	}
	if resp == nil {
		resp = fasthttp.AcquireResponse()
	}
	defer func() {
		fasthttp.ReleaseResponse(resp) // also ends a body stream that was not written
		_ = h.conn.Close()
		s.pings.release(h.p)
		s.holding.Add(-1)
	}()
	switch cause := context.Cause(h.p.ctx); {
	case errors.Is(cause, errClientGone):
		s.metrics.request(h.cmd, 499)
		s.log.Debug("long poll abandoned by client", slog.String("rid", h.rid), slog.String("user", h.user), slog.String("device", h.device))
		return
	case werr != nil && (errors.Is(cause, errSuperseded) || errors.Is(cause, errShuttingDown)):
		// The upstream request was cut short: answer "no changes", so the device polls
		// again at once — on another node, during a rolling restart — which is what a
		// superseded or draining poll should make it do. For Ping that is Status 1; for a
		// waiting Sync, an empty response (MS-ASCMD 2.2.1.21: no changes).
		resp.Reset()
		resp.SetStatusCode(200)
		if h.cmd == "Ping" {
			resp.Header.SetContentType(contentTypeWBXML)
			resp.SetBody(pingNoChanges)
		}
	case werr != nil:
		resp.Reset()
		s.writeError(resp, h.rid, werr)
	}
	s.writeHeld(h.conn, resp, h.rid, h.cmd)
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
