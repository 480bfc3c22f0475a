package eas

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/easgate/easgate/backends/eas/park"
	"github.com/easgate/easgate/backends/eas/rawio"
)

// Class selects the header deadline of a request.
type Class uint8

const (
	// ClassNormal: FolderSync, Sync without Wait, ItemOperations, Provision, Settings, ...
	ClassNormal Class = iota
	// ClassPing: Ping, and Sync carrying Wait or HeartbeatInterval: the upstream holds the
	// request until something changes or the heartbeat ends.
	ClassPing
	// ClassSend: SendMail, SmartReply, SmartForward. Never retried, whatever Idempotent says.
	ClassSend
)

func (c Class) String() string {
	switch c {
	case ClassPing:
		return "ping"
	case ClassSend:
		return "send"
	}
	return "normal"
}

// ForwardOptions describe one request to Forward.
type ForwardOptions struct {
	Class Class
	// Idempotent allows one retry when the connection is reset before any response byte
	// arrives (a keep-alive connection the upstream closed while idle). True for Ping,
	// FolderSync, Sync, ItemOperations Fetch, GetItemEstimate, Search, OPTIONS; false for
	// anything that changes mailbox state and is not safe to apply twice.
	Idempotent bool
	// Timeout overrides the class deadline for the response header when positive, e.g. the
	// Ping's HeartbeatInterval plus a margin.
	Timeout time.Duration
	// ClientAddr is the device's IP address, appended to (Config.TrustForwardedFor) or
	// replacing the request's X-Forwarded-For. Empty and untrusted: the header is removed.
	ClientAddr string
	// TLS says the device connected over TLS (X-Forwarded-Proto: https, else http).
	TLS bool
}

// Upstream forwards requests to one EAS server. It is safe for concurrent use.
type Upstream struct {
	b    *built
	hc   *fasthttp.HostClient // ClassNormal and ClassSend
	held *fasthttp.HostClient // ClassPing
	br   *breaker
	now  func() time.Time
	park *park.Poller // nil where held requests cannot be parked (ForwardHeld uses a goroutine)

	closed atomic.Bool
	calls  sync.Pool
}

// New validates cfg (see Config.Validate) and returns an Upstream. Nothing is dialed yet.
func New(cfg Config) (*Upstream, error) {
	b, err := cfg.build()
	if err != nil {
		return nil, err
	}
	c := b.cfg
	u := &Upstream{b: b, now: time.Now}
	u.br = newBreaker(c.Breaker, time.Now)
	// Two pools: held requests keep their connection for the whole hold, so they must never
	// use up the connections that ordinary requests need, nor the reverse.
	u.hc = u.hostClient(c.MaxRequestConns)
	u.held = u.hostClient(c.MaxConns)
	u.calls.New = func() any { return &call{u: u} }
	if p, err := park.Shared(); err == nil {
		u.park = p
	}
	return u, nil
}

// hostClient is one connection pool to the upstream.
func (u *Upstream) hostClient(maxConns int) *fasthttp.HostClient {
	b, c := u.b, u.b.cfg
	return &fasthttp.HostClient{
		Addr:                          b.addr,
		Name:                          "",
		NoDefaultUserAgentHeader:      true,
		MaxConns:                      maxConns,
		MaxConnWaitTimeout:            c.MaxConnWait,
		MaxIdleConnDuration:           c.IdleConnTimeout,
		ReadBufferSize:                c.MaxResponseHeaderBytes,
		WriteBufferSize:               8 << 10,
		DisablePathNormalizing:        true,
		DisableHeaderNamesNormalizing: false,
		// LIFO hands out the most recently used connection, the one least likely to have
		// been closed by the upstream while idle; the rest age out by IdleConnTimeout.
		ConnPoolStrategy: fasthttp.LIFO,
		// Forward never calls Do, but nothing else may retry either.
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		DialTimeout:               u.dial,
	}
}

// dial connects to the upstream, doing the TLS handshake itself so that the dial timeout
// covers it (fasthttp would bound the handshake by the write timeout only).
func (u *Upstream) dial(addr string, timeout time.Duration) (net.Conn, error) {
	d := u.b.cfg.DialTimeout
	if timeout > 0 && timeout < d {
		d = timeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conn = rawio.Wrap(conn) // reads and writes without the runtime's system-call bookkeeping
	if u.b.tls == nil {
		return conn, nil
	}
	tc := tls.Client(conn, u.b.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return tc, nil
}

// State reports the circuit breaker's state.
func (u *Upstream) State() BreakerState { return BreakerState(u.br.state.Load()) }

// Conns reports the number of open upstream connections (busy and idle).
func (u *Upstream) Conns() int { return u.hc.ConnsCount() + u.held.ConnsCount() }

// Close closes idle connections and makes later Forward calls fail with KindDown. Bodies
// already streaming finish on their own.
func (u *Upstream) Close() {
	u.closed.Store(true)
	u.hc.CloseIdleConnections()
	u.held.CloseIdleConnections()
}

func (u *Upstream) classTimeout(opt *ForwardOptions) time.Duration {
	if opt.Timeout > 0 {
		return opt.Timeout
	}
	switch opt.Class {
	case ClassPing:
		return u.b.cfg.PingTimeout
	case ClassSend:
		return u.b.cfg.SendTimeout
	}
	return u.b.cfg.NormalTimeout
}

// Forward sends req to the upstream and fills resp with its answer, in place.
//
// req is modified: its URI is rewritten onto the upstream, hop-by-hop headers are removed and
// X-Forwarded-* set; its body must be complete (a body stream is sent but never retried).
// resp's header is reset and replaced by the upstream's (minus hop-by-hop headers). On success
// a large or unknown-length body is left in resp as a body stream that holds the upstream
// connection until it is read to the end or closed: the fasthttp server does both when it writes
// resp to the client; any other caller must call resp.CloseBodyStream (or resp.Reset). Reading
// that stream fails with an *Error (KindTooLarge, KindTimeout, KindBadResponse, KindDown) when
// the upstream misbehaves mid-body; the server then closes the client connection, so the
// client sees a truncated response rather than a complete wrong one.
//
// ctx bounds Forward only, up to the response header: cancelling it makes Forward return
// KindCanceled at once and closes the connection. The body stream is bounded by
// Config.BodyIdleTimeout and Config.BodyTimeout instead, so the usual
// "defer cancel()" in the handler does not cut the body the server is about to write.
//
// Errors are always *Error; use errors.Is with the Err* sentinels.
func (u *Upstream) Forward(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response, opt ForwardOptions) error {
	if err := ctx.Err(); err != nil {
		return ctxErr(err)
	}
	if u.closed.Load() {
		return newErr(KindDown, "closed", errors.New("upstream closed"))
	}
	timeout := u.classTimeout(&opt)
	ok, probe, retryAfter := u.br.admit(u.b.cfg.NormalTimeout)
	if !ok {
		return &Error{Kind: KindCircuitOpen, RetryAfter: retryAfter}
	}

	c := u.calls.Get().(*call)
	c.prepare(req, &opt)

	retry := opt.Idempotent && opt.Class != ClassSend && !req.IsBodyStream()
	var err *Error
	for attempt := 0; ; attempt++ {
		var retryable bool
		retryable, err = c.exchange(ctx, req, timeout, opt.Class == ClassPing)
		if err == nil || !retry || !retryable || attempt > 0 {
			break
		}
		c.ur.Reset()
	}
	return u.settle(c, req, probe, err, resp)
}

// settle ends a Forward: it restores req, tells the breaker how the upstream did and, on
// success, hands the answer to resp. The call goes back to the pool unless resp now streams
// its body from it.
func (u *Upstream) settle(c *call, req *fasthttp.Request, probe bool, err *Error, resp *fasthttp.Response) error {
	c.restore(req)
	if err != nil {
		switch err.Kind {
		case KindDown, KindTimeout:
			u.br.failure(probe)
		case KindBadResponse, KindTooLarge:
			// the upstream answered: it is up, if broken.
			u.br.success(probe)
		default:
			u.br.release(probe)
		}
		if err.Kind == KindSaturated {
			err.RetryAfter = time.Second
		}
		c.finish(true)
		return err
	}
	if u.b.cfg.Breaker.CountServerErrors && c.ur.StatusCode() >= 500 {
		u.br.failure(probe)
	} else {
		u.br.success(probe)
	}
	if err = c.deliver(resp); err != nil {
		resp.Header.Reset()
		resp.ResetBody()
		c.finish(true)
		return err
	}
	return nil
}

func ctxErr(err error) *Error {
	if errors.Is(err, context.DeadlineExceeded) {
		return newErr(KindTimeout, "context", err)
	}
	return newErr(KindCanceled, "context", err)
}

// call is the per-Forward state, pooled. While a body streams, the call is the stream and goes
// back to the pool when it is closed.
type call struct {
	u  *Upstream
	hc *fasthttp.HostClient // the pool of this call's class
	ur fasthttp.Response    // the upstream's response; headers are copied out of it

	conn      net.Conn
	br        *bufio.Reader
	pooled    any                  // the pooled connection (fasthttp's *clientConn); nil once given back
	pool      *fasthttp.HostClient // the pool pooled came from
	gen       uint64               // exchange number, to tell a late cancel callback from a current one
	canceled  atomic.Uint64        // gen of the exchange whose context ended
	closeConn bool

	// send's writer state (callWriter)
	writes  int
	await   replyAwaiter // set for the one write of a request that fits the buffer
	sendNow time.Time

	// request fields restored after the exchange
	connClose bool

	// body stream state
	stream     io.Reader
	read       int64
	limit      int64
	bodyEnd    time.Time
	done       bool // read to EOF
	failed     bool
	streamOpen bool

	scratch []byte
	names   [][]byte
	nameBuf []byte
	spans   [][2]int
}

// prepare rewrites req for the upstream.
func (c *call) prepare(req *fasthttp.Request, opt *ForwardOptions) {
	b := c.u.b
	c.hc = c.u.hc
	if opt.Class == ClassPing {
		c.hc = c.u.held
	}
	h := &req.Header

	// path := base path; query := the device's query, byte for byte.
	c.scratch = append(c.scratch[:0], b.basePath...)
	ru := h.RequestURI()
	if i := bytes.IndexByte(ru, '?'); i >= 0 && i+1 < len(ru) {
		q := ru[i+1:]
		if j := bytes.IndexByte(q, '#'); j >= 0 {
			q = q[:j]
		}
		if len(q) > 0 {
			c.scratch = append(c.scratch, '?')
			c.scratch = append(c.scratch, q...)
		}
	}
	req.SetRequestURIBytes(c.scratch)

	c.connClose = h.ConnectionClose()
	forwarded := c.stripRequestHopByHop(h, !b.cfg.TrustForwardedFor)
	// X-Forwarded-Host is the host the device asked for, before Host is rewritten.
	if host := h.Host(); len(host) > 0 {
		h.SetCanonical(hdrForwardedHost, host)
	}
	if !b.cfg.PreserveHost {
		h.SetHost(b.host)
	}
	if opt.ClientAddr != "" {
		c.scratch = c.scratch[:0]
		if b.cfg.TrustForwardedFor && forwarded {
			if prior := h.Peek(fasthttp.HeaderXForwardedFor); len(prior) > 0 {
				c.scratch = append(c.scratch, prior...)
				c.scratch = append(c.scratch, ", "...)
			}
		}
		c.scratch = append(c.scratch, opt.ClientAddr...)
		h.SetCanonical(hdrForwardedFor, c.scratch)
	}
	if opt.TLS {
		h.SetCanonical(hdrForwardedProto, valHTTPS)
	} else {
		h.SetCanonical(hdrForwardedProto, valHTTP)
	}
}

// The headers the gateway writes, in fasthttp's canonical form (SetCanonical skips the
// normalisation of the key).
var (
	hdrForwardedHost  = []byte("X-Forwarded-Host")
	hdrForwardedFor   = []byte(fasthttp.HeaderXForwardedFor)
	hdrForwardedProto = []byte("X-Forwarded-Proto")
	valHTTPS          = []byte("https")
	valHTTP           = []byte("http")
)

// restore undoes the request changes the caller's server depends on.
func (c *call) restore(req *fasthttp.Request) {
	if c.connClose {
		req.Header.SetConnectionClose()
	}
}

// hopByHop are the headers a proxy must not forward (RFC 9110 section 7.6.1), plus Expect
// (the body is already in hand) and the Proxy-* family.
var hopByHop = [...]string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Expect",
}

// addConnectionTokens records the header names listed in one Connection header value
// (RFC 9110 section 7.6.1), except close and keep-alive, into c.names (copies in c.nameBuf).
func (c *call) addConnectionTokens(v []byte) {
	for len(v) > 0 && len(c.spans) < 16 {
		var tok []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			tok, v = v, nil
		}
		tok = bytes.TrimSpace(tok)
		if len(tok) == 0 || bytes.EqualFold(tok, []byte("close")) || bytes.EqualFold(tok, []byte("keep-alive")) {
			continue
		}
		a := len(c.nameBuf)
		c.nameBuf = append(c.nameBuf, tok...)
		c.spans = append(c.spans, [2]int{a, len(c.nameBuf)})
	}
}

// resetTokens clears c.names before a header is scanned.
func (c *call) resetTokens() {
	c.names, c.nameBuf, c.spans = c.names[:0], c.nameBuf[:0], c.spans[:0]
}

// endTokens turns the recorded spans into c.names (nameBuf no longer grows).
func (c *call) endTokens() {
	for _, sp := range c.spans {
		c.names = append(c.names, c.nameBuf[sp[0]:sp[1]])
	}
}

// stripRequestHopByHop removes the hop-by-hop headers, the ones the Connection header names,
// and the X-Forwarded-Host and -Proto the device sent (the gateway writes its own); also
// X-Forwarded-For when dropForwardedFor. One pass finds which are present, so a request that
// has none (the usual case) costs no deletion. It reports whether X-Forwarded-For is left.
func (c *call) stripRequestHopByHop(h *fasthttp.RequestHeader, dropForwardedFor bool) (forwarded bool) {
	c.resetTokens()
	var present uint32 // bit i: hopByHop[i]; then the X-Forwarded-* headers
	const (
		bitHost = 1 << (len(hopByHop) + iota)
		bitProto
		bitFor
	)
	for k, v := range h.All() {
		if i := hopIndex(k); i >= 0 {
			present |= 1 << i
			if i == 0 { // Connection
				c.addConnectionTokens(v)
			}
			continue
		}
		switch {
		case bytes.EqualFold(k, hdrForwardedHost):
			present |= bitHost
		case bytes.EqualFold(k, hdrForwardedProto):
			present |= bitProto
		case bytes.EqualFold(k, hdrForwardedFor):
			present |= bitFor
		}
	}
	c.endTokens()
	for _, n := range c.names {
		h.DelBytes(n)
	}
	for i, n := range hopByHop {
		if present&(1<<i) != 0 {
			h.Del(n)
		}
	}
	h.ResetConnectionClose()
	if present&bitHost != 0 {
		h.DelBytes(hdrForwardedHost)
	}
	if present&bitProto != 0 {
		h.DelBytes(hdrForwardedProto)
	}
	if present&bitFor != 0 && dropForwardedFor {
		// a device can put anything in X-Forwarded-For; only the gateway's word counts.
		h.DelBytes(hdrForwardedFor)
		return false
	}
	return present&bitFor != 0
}

// exchange writes req and reads the response header into c.ur. retryable reports that the
// connection failed before any response byte arrived for a reason a fresh connection may not
// share (reset, EOF), so an idempotent request may be sent again.
//
// held says the upstream is expected to hold the request (ClassPing): the exchange then waits
// for the first response byte without a read buffer, so a held Ping costs no 16 KB buffer.
func (c *call) exchange(ctx context.Context, req *fasthttp.Request, timeout time.Duration, held bool) (retryable bool, e *Error) {
	if e := c.acquire(ctx, timeout); e != nil {
		return false, e
	}
	gen := c.gen
	var stop func() bool
	if ctx.Done() != nil {
		// Runs in its own goroutine when the context ends mid-exchange: closing the connection
		// unblocks the exchange's read or write at once. It captures conn and gen, not c's
		// fields, because it may still run after the call went back to the pool.
		conn, canceled := c.conn, &c.canceled
		stop = context.AfterFunc(ctx, func() {
			canceled.Store(gen)
			_ = conn.Close()
		})
	}
	fail := func(op string, err error) *Error {
		c.dropConn()
		if c.canceled.Load() == gen || ctx.Err() != nil {
			return ctxErr(context.Cause(ctx))
		}
		return classify(op, err)
	}
	stopCancel := func() bool { return stop == nil || stop() }

	if op, err := c.send(req, timeout, held); err != nil {
		stopCancel()
		e := fail(op, err)
		return e.Kind == KindDown && isReset(err), e
	}
	if held {
		if err := waitReadable(c.conn); err != nil {
			stopCancel()
			return false, fail("read header", err)
		}
	}
	first, err := c.receive(req)
	if !stopCancel() {
		// the context ended while the header arrived: the connection is already closed.
		err = context.Canceled
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			c.dropConn()
			return false, ctxErr(context.Cause(ctx))
		}
		e := fail("read header", err)
		if e.Kind == KindDown {
			if first {
				return isReset(err), e
			}
			// the upstream sent part of a header, then hung up: a broken answer, not a stale
			// connection.
			e.Kind = KindBadResponse
		}
		return false, e
	}
	return false, nil
}

// acquire takes a connection from the pool (or dials one) for the next exchange.
func (c *call) acquire(ctx context.Context, timeout time.Duration) *Error {
	hc := c.hc
	c.gen++
	c.closeConn = false
	cc, err := hc.AcquireConn(timeout, false)
	if err != nil {
		if errors.Is(err, fasthttp.ErrNoFreeConns) {
			return newErr(KindSaturated, "acquire", err)
		}
		if cerr := ctx.Err(); cerr != nil {
			return ctxErr(cerr)
		}
		return classify("dial", err)
	}
	c.conn = cc.Conn()
	// fasthttp's connection type is unexported, so it is kept as an interface (a pointer in
	// one costs no allocation, where a closure over it would cost one per request) and handed
	// back through giveBack's type parameter.
	c.pooled, c.pool = cc, hc
	return nil
}

// release gives the pooled connection back, or closes it when discard.
func (c *call) release(discard bool) {
	if discard {
		giveBack(c.pool.CloseConn, c.pooled)
	} else {
		giveBack(c.pool.ReleaseConn, c.pooled)
	}
	c.pooled, c.pool = nil, nil
}

// giveBack calls f with cc, whose dynamic type is f's parameter type.
func giveBack[T any](f func(T), cc any) { f(cc.(T)) }

// send sets the connection's deadline for the whole exchange and writes req. On failure it
// names the operation that failed; the caller drops the connection.
//
// A request that fits the write buffer goes out in one write, and on a plain TCP connection
// in steady use that write also waits for the answer to begin (rawio's WriteAwaitReply):
// receive's first read then finds the header instead of nothing. Held requests wait their own
// way (waitReadable), so they write plainly.
func (c *call) send(req *fasthttp.Request, timeout time.Duration, held bool) (op string, err error) {
	now := c.u.now()
	if err := c.conn.SetDeadline(now.Add(timeout)); err != nil {
		return "deadline", err
	}
	hc := c.hc
	bw := hc.AcquireWriter(c.conn)
	aw, ok := c.conn.(replyAwaiter)
	if ok = ok && !held && !req.IsBodyStream(); ok {
		bw.Reset((*callWriter)(c))
		c.writes = 0
	}
	err = req.Write(bw)
	if err == nil {
		if ok && c.writes == 0 {
			c.await, c.sendNow = aw, now
		}
		err = bw.Flush()
	}
	c.await = nil
	hc.ReleaseWriter(bw)
	if err != nil {
		return "write", err
	}
	return "", nil
}

// replyAwaiter is a connection that can send a request and wait for its answer in one
// step (*rawio.Conn on Linux).
type replyAwaiter interface {
	WriteAwaitReply(p []byte, now time.Time) (int, error)
}

// callWriter is the call as the writer under send's buffered writer, for a request whose
// body is in memory: it counts the writes and hands the one Flush makes to WriteAwaitReply
// when send chose to. (A streamed body writes to the connection directly.)
type callWriter call

func (w *callWriter) Write(p []byte) (int, error) {
	c := (*call)(w)
	c.writes++
	if aw := c.await; aw != nil {
		c.await = nil
		return aw.WriteAwaitReply(p, c.sendNow)
	}
	return c.conn.Write(p)
}

// receive reads the response header into c.ur (the body is left as a stream). first reports
// that the failure came before any response byte — a stale connection when it is a reset or
// EOF — rather than in the middle of a header.
func (c *call) receive(req *fasthttp.Request) (first bool, err error) {
	c.br = c.hc.AcquireReader(c.conn)
	if _, err := c.br.Peek(1); err != nil {
		return true, err
	}
	c.ur.StreamBody = true
	c.ur.SkipBody = req.Header.IsHead()
	if err := c.ur.ReadLimitBody(c.br, 0); err != nil {
		return false, err
	}
	c.closeConn = c.ur.ConnectionClose() || c.ur.Header.ContentLength() == -2
	return false, nil
}

// waitReadable blocks until conn has bytes to read (or is closed, or its read deadline
// passes) without reading them, using the runtime's poller: a held request then owns no read
// buffer while it waits. Connections without a raw file descriptor return at once.
//
// RawConn.Read resets the poller's readiness before calling the function, so bytes that arrived
// earlier (an upstream that answered at once) would never signal again: the function must look
// at the socket itself before asking to wait (peekReady), or the wait lasts until the deadline.
func waitReadable(conn net.Conn) error {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc.Read(func(fd uintptr) bool { return peekReady(fd) })
}

// dropConn closes the connection and releases the reader.
func (c *call) dropConn() {
	if c.br != nil {
		c.hc.ReleaseReader(c.br)
		c.br = nil
	}
	if c.pooled != nil {
		_ = c.conn.Close()
		c.release(true)
	}
	c.conn = nil
}

// finish ends the call and returns it to the pool. discard closes the connection instead of
// pooling it.
func (c *call) finish(discard bool) {
	_ = c.ur.CloseBodyStream()
	if c.pooled != nil {
		if !discard && !c.closeConn && c.br != nil && c.br.Buffered() == 0 {
			c.hc.ReleaseReader(c.br)
			c.br = nil
			c.release(false)
			c.conn = nil
		} else {
			// bytes after the end of a response are a protocol violation: never reuse.
			c.dropConn()
		}
	} else if c.br != nil {
		c.hc.ReleaseReader(c.br)
		c.br = nil
	}
	c.ur.Reset()
	c.stream = nil
	c.streamOpen = false
	c.done, c.failed = false, false
	c.read = 0
	if cap(c.scratch) > c.u.b.cfg.SmallBodyBytes+4096 {
		c.scratch = nil
	}
	c.u.calls.Put(c)
}

// deliver copies the upstream's status and headers into resp and hands it the body.
func (c *call) deliver(resp *fasthttp.Response) *Error {
	cfg := &c.u.b.cfg
	ur := &c.ur
	resp.ResetBody()
	resp.Header.Reset()
	resp.Header.SetNoDefaultContentType(true)
	resp.Header.SetStatusCode(ur.StatusCode())
	c.copyResponseHeader(&resp.Header, &ur.Header)

	cl := ur.Header.ContentLength()
	stream := ur.BodyStream()
	if stream == nil || cl == 0 {
		c.finish(false)
		return nil
	}
	if cl > 0 && int64(cl) > cfg.MaxResponseBodyBytes {
		return newErr(KindTooLarge, "content-length", nil)
	}
	c.stream = stream
	c.limit = cfg.MaxResponseBodyBytes
	c.bodyEnd = time.Time{} // set by the first Read that waits for the network
	if cl > 0 && cl <= cfg.SmallBodyBytes {
		if cap(c.scratch) < cl {
			c.scratch = make([]byte, cl)
		}
		buf := c.scratch[:cl]
		n := 0
		for n < cl {
			m, err := c.Read(buf[n:])
			n += m
			if err == io.EOF {
				break
			}
			if err != nil {
				resp.Header.Reset()
				return err.(*Error)
			}
		}
		if n < cl {
			resp.Header.Reset()
			return newErr(KindBadResponse, "read body", io.ErrUnexpectedEOF)
		}
		// The read buffer becomes the response's body and the response's (pooled, empty)
		// buffer becomes the call's: no copy of the body.
		c.scratch = resp.SwapBody(buf)[:0]
		c.finish(false)
		return nil
	}
	c.streamOpen = true
	if cl < 0 {
		cl = -1 // chunked to the device
	}
	resp.SetBodyStream(c, cl)
	return nil
}

// Read implements the response body stream. It bounds the body's size and time and turns
// every failure into an *Error.
func (c *call) Read(p []byte) (int, error) {
	if c.done {
		return 0, io.EOF
	}
	if c.failed || c.stream == nil {
		return 0, newErr(KindBadResponse, "read body", io.ErrClosedPipe)
	}
	// Bytes already buffered are returned without touching the connection: no deadline to
	// arm (the common case of a small body that arrived with its header).
	if c.br == nil || c.br.Buffered() == 0 {
		now := c.u.now()
		if c.bodyEnd.IsZero() {
			c.bodyEnd = now.Add(c.u.b.cfg.BodyTimeout)
		}
		if !now.Before(c.bodyEnd) {
			c.failed = true
			return 0, newErr(KindTimeout, "read body", os.ErrDeadlineExceeded)
		}
		dl := now.Add(c.u.b.cfg.BodyIdleTimeout)
		if c.bodyEnd.Before(dl) {
			dl = c.bodyEnd
		}
		if err := c.conn.SetReadDeadline(dl); err != nil {
			c.failed = true
			return 0, classify("read body", err)
		}
	}
	// read at most one byte past the limit, to tell "exactly at the limit" from "over it".
	if room := c.limit - c.read + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := c.stream.Read(p)
	c.read += int64(n)
	if c.read > c.limit {
		c.failed = true
		return n - int(c.read-c.limit), newErr(KindTooLarge, "read body", nil)
	}
	if err == io.EOF {
		c.done = true
		return n, io.EOF
	}
	if err != nil {
		c.failed = true
		e := classify("read body", err)
		if e.Kind == KindDown && !isReset(err) {
			e.Kind = KindBadResponse
		}
		return n, e
	}
	return n, nil
}

// CloseWithError ends the body stream; the fasthttp server calls it once the body is written
// (err nil) or writing failed. The connection is pooled only if the body was read to its end.
func (c *call) CloseWithError(err error) error {
	if !c.streamOpen {
		return nil
	}
	c.streamOpen = false
	c.finish(err != nil || !c.done || c.failed)
	return nil
}

// Close is CloseWithError(nil).
func (c *call) Close() error { return c.CloseWithError(nil) }

// copyResponseHeader copies src into dst without hop-by-hop headers and without framing
// (Content-Length is set from the body). dst is empty, so the headers a Connection header
// names are dropped after the one pass that finds them.
func (c *call) copyResponseHeader(dst, src *fasthttp.ResponseHeader) {
	c.resetTokens()
	for k, v := range src.All() {
		if i := hopIndex(k); i >= 0 {
			if i == 0 { // Connection
				c.addConnectionTokens(v)
			}
			continue
		}
		if len(k) == len(fasthttp.HeaderContentLength) && bytes.EqualFold(k, []byte(fasthttp.HeaderContentLength)) {
			continue
		}
		dst.AddBytesKV(k, v)
	}
	c.endTokens()
	for _, n := range c.names {
		dst.DelBytes(n)
	}
}

// hopIndex is k's index in hopByHop, or -1.
func hopIndex(k []byte) int {
	for i, n := range hopByHop {
		if len(k) == len(n) && bytes.EqualFold(k, []byte(n)) {
			return i
		}
	}
	return -1
}

// classify turns a network or protocol error into an *Error.
func classify(op string, err error) *Error {
	switch {
	case isTimeout(err):
		return newErr(KindTimeout, op, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return newErr(KindDown, op, err)
	}
	var ne net.Error
	var oe *net.OpError
	var te *tls.CertificateVerificationError
	var re tls.RecordHeaderError
	var ae tls.AlertError
	switch {
	case errors.As(err, &te), errors.As(err, &re), errors.As(err, &ae):
		return newErr(KindDown, op, err)
	case errors.As(err, &oe), errors.As(err, &ne), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNREFUSED):
		return newErr(KindDown, op, err)
	}
	var small *fasthttp.ErrSmallBuffer
	if errors.As(err, &small) {
		return newErr(KindBadResponse, op, err)
	}
	if op == "dial" {
		return newErr(KindDown, op, err)
	}
	return newErr(KindBadResponse, op, err)
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, fasthttp.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, fasthttp.ErrDialTimeout) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isReset reports a connection the peer closed or reset: the signature of a stale keep-alive
// connection.
func isReset(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

var _ fasthttp.ReadCloserWithError = (*call)(nil)
