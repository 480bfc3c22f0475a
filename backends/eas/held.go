package eas

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/easgate/easgate/backends/eas/park"
)

// ForwardHeld is Forward for a request the upstream holds (a Ping, a Sync with Wait) that
// keeps no goroutine while it waits: it writes req, parks the upstream connection in the
// process's poller (package park) and returns. When the upstream's answer begins, ctx ends or
// the timeout passes, done is called exactly once, in a goroutine of its own, with the answer
// (owned by done: release it with fasthttp.ReleaseResponse after writing it, which also ends a
// streamed body) or an *Error (resp nil). done may also run before ForwardHeld returns, for
// failures found before anything was sent. req must stay untouched until done runs.
//
// Semantics are Forward's with opt.Class ClassPing: the same breaker, retry of a connection
// that was reset before any response byte (a keep-alive connection the upstream closed while
// idle), error kinds and body handling. Where parking is not possible (not Linux, a connection
// without a descriptor) the same work runs in a goroutine instead.
func (u *Upstream) ForwardHeld(ctx context.Context, req *fasthttp.Request, opt ForwardOptions, done func(*fasthttp.Response, error)) {
	opt.Class = ClassPing
	if u.park == nil {
		go u.forwardBlocking(ctx, req, opt, done)
		return
	}
	if err := ctx.Err(); err != nil {
		done(nil, ctxErr(err))
		return
	}
	if u.closed.Load() {
		done(nil, newErr(KindDown, "closed", errors.New("upstream closed")))
		return
	}
	ok, probe, retryAfter := u.br.admit(u.b.cfg.NormalTimeout)
	if !ok {
		done(nil, &Error{Kind: KindCircuitOpen, RetryAfter: retryAfter})
		return
	}
	c := u.calls.Get().(*call)
	c.prepare(req, &opt)
	h := &heldCall{
		u: u, c: c, ctx: ctx, req: req, timeout: u.classTimeout(&opt), probe: probe, done: done,
		retry: opt.Idempotent && !req.IsBodyStream(),
	}
	h.start()
}

func (u *Upstream) forwardBlocking(ctx context.Context, req *fasthttp.Request, opt ForwardOptions, done func(*fasthttp.Response, error)) {
	resp := fasthttp.AcquireResponse()
	if err := u.Forward(ctx, req, resp, opt); err != nil {
		fasthttp.ReleaseResponse(resp)
		done(nil, err)
		return
	}
	done(resp, nil)
}

// heldCall is one ForwardHeld in flight. Each attempt (start) arms three triggers — the
// upstream connection becoming readable, ctx ending, the timeout — and the first to claim the
// attempt ends it; the others are disarmed.
type heldCall struct {
	u       *Upstream
	c       *call
	ctx     context.Context
	req     *fasthttp.Request
	timeout time.Duration
	probe   bool
	retry   bool
	retried bool
	done    func(*fasthttp.Response, error)

	// state is the attempt number << 1 | claimed. A trigger carries the attempt it was armed
	// for, so one that fires late (a timer or context callback that was already running when
	// the attempt ended) cannot end the retry that followed.
	state   atomic.Uint64
	mu      sync.Mutex // guards the triggers while they are armed
	watch   *park.Watch
	stopCtx func() bool
	timer   *time.Timer
}

// start sends the request on a pooled connection and parks it.
func (h *heldCall) start() {
	c := h.c
	if e := c.acquire(h.ctx, h.timeout); e != nil {
		h.end(e)
		return
	}
	if op, err := c.send(h.req, h.timeout, true); err != nil {
		c.dropConn()
		e := classify(op, err)
		if op == "write" && e.Kind == KindDown && isReset(err) && h.again() {
			h.start()
			return
		}
		h.end(e)
		return
	}
	round := h.state.Load()>>1 + 1
	h.state.Store(round << 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	w, err := h.u.park.Watch(c.conn, park.Readable, func(park.Event) { h.onReady(round) })
	if err != nil {
		// no descriptor to park (an unusual dialer): wait for the first byte in a goroutine.
		go func() {
			_ = waitReadable(c.conn)
			h.onReady(round)
		}()
	}
	h.watch = w
	h.timer = time.AfterFunc(h.timeout, func() { h.onTimeout(round) })
	h.stopCtx = context.AfterFunc(h.ctx, func() { h.onCancel(round) })
}

// again reports whether one more attempt is allowed, and prepares it.
func (h *heldCall) again() bool {
	if !h.retry || h.retried {
		return false
	}
	h.retried = true
	h.c.ur.Reset()
	return true
}

// claim makes the caller the one trigger that ends attempt round, and disarms the others.
func (h *heldCall) claim(round uint64) bool {
	if !h.state.CompareAndSwap(round<<1, round<<1|1) {
		return false
	}
	h.mu.Lock()
	if h.watch != nil {
		h.watch.Stop()
		h.watch = nil
	}
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	if h.stopCtx != nil {
		h.stopCtx()
		h.stopCtx = nil
	}
	h.mu.Unlock()
	return true
}

// onReady: the upstream's answer has begun (or its connection failed).
func (h *heldCall) onReady(round uint64) {
	if !h.claim(round) {
		return
	}
	c := h.c
	first, err := c.receive(h.req)
	if err == nil {
		h.end(nil)
		return
	}
	c.dropConn()
	e := classify("read header", err)
	if e.Kind == KindDown {
		if first {
			if isReset(err) && h.again() {
				h.start()
				return
			}
		} else {
			// part of a header, then a hang-up: a broken answer, not a stale connection.
			e.Kind = KindBadResponse
		}
	}
	h.end(e)
}

// onCancel: ctx ended (the device left, a newer Ping superseded this one, shutdown).
func (h *heldCall) onCancel(round uint64) {
	if !h.claim(round) {
		return
	}
	h.c.dropConn()
	h.end(ctxErr(context.Cause(h.ctx)))
}

// onTimeout: no answer within the timeout.
func (h *heldCall) onTimeout(round uint64) {
	if !h.claim(round) {
		return
	}
	h.c.dropConn()
	h.end(newErr(KindTimeout, "read header", os.ErrDeadlineExceeded))
}

// end settles the call (breaker, pool) and reports to done.
func (h *heldCall) end(e *Error) {
	resp := fasthttp.AcquireResponse()
	if err := h.u.settle(h.c, h.req, h.probe, e, resp); err != nil {
		fasthttp.ReleaseResponse(resp)
		h.done(nil, err)
		return
	}
	h.done(resp, nil)
}
