package gateway

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	upstream "github.com/easgate/easgate/backends/eas"
	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/oauth"
	"github.com/easgate/easgate/quarantine"
)

// reqState is everything the gateway learns about one EAS request, parsed once. It is pooled;
// every string in it is an owned copy, so nothing aliases fasthttp buffers after the handler
// (hdr does alias the request, and is cleared with the rest before the state is pooled).
type reqState struct {
	ridBuf   [24]byte // the request ID: 9 bytes of prefix and at most 13 of base-36 sequence
	ridLen   uint8
	start    time.Time // when the request came in; also the decision's clock
	req      eas.Request
	user     string // canonical identity: the registry key
	login    string // the Basic user name as the device typed it (the IMAP login)
	password string // Basic password, passed through only
	bearer   bool
	identity *oauth.Identity // the validated bearer token, nil for Basic
	addr     string
	in       decision.Input
	dec      decision.Decision
	hdr      requestHeaders
}

var statePool = sync.Pool{New: func() any { return new(reqState) }}

// rid is the request ID for a log line or an error body; the success path sends ridBytes.
func (st *reqState) rid() string { return string(st.ridBytes()) }

func (st *reqState) ridBytes() []byte { return st.ridBuf[:st.ridLen] }

func (st *reqState) reset() {
	st.req.Reset()
	*st = reqState{req: st.req}
}

// handleClient routes the client listener.
func (s *Server) handleClient(ctx *fasthttp.RequestCtx) {
	rt, query := matchRoute(ctx.Request.Header.RequestURI())
	switch rt {
	case routeEAS:
		s.serveEAS(ctx, query)
	case routeAutodiscover:
		if !ctx.IsPost() {
			s.writeError(&ctx.Response, "", errBadMethod)
			ctx.Response.Header.Set("Allow", "POST")
			return
		}
		code, body := autodiscover(ctx.PostBody(), s.easURL)
		ctx.SetStatusCode(code)
		ctx.SetContentType("text/xml; charset=utf-8")
		ctx.SetBody(body)
	case routeOAuthToken, routeOAuthJWKS, routeOAuthMetadata:
		if s.serveOAuth(ctx, rt) {
			return
		}
		s.writeError(&ctx.Response, "", errNotFound)
	default:
		if s.extra != nil && s.extra(ctx, rt, query) {
			return
		}
		s.writeError(&ctx.Response, "", errNotFound)
	}
}

// serveEAS answers one request on /Microsoft-Server-ActiveSync.
func (s *Server) serveEAS(ctx *fasthttp.RequestCtx, query []byte) {
	st := statePool.Get().(*reqState)
	st.start = time.Now()
	st.ridLen = uint8(copy(st.ridBuf[:], s.appendRequestID(st.ridBuf[:0])))
	if err := s.easPipeline(ctx, query, st); err != nil {
		s.writeError(&ctx.Response, st.rid(), err)
	}
	if !ctx.Hijacked() {
		ctx.Response.Header.SetBytesV("X-Request-Id", st.ridBytes())
		s.finish(ctx, st, st.start)
	}
	st.reset()
	statePool.Put(st)
}

// easPipeline is the gateway's request chain, top to bottom: method → parse → authenticate and
// bind → decide → answer locally or forward. Each step returns an error that writeError maps.
func (s *Server) easPipeline(ctx *fasthttp.RequestCtx, query []byte, st *reqState) error {
	// 1. Method. OPTIONS (version discovery) carries no device; it still needs credentials.
	options := ctx.IsOptions()
	if !options && !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "OPTIONS, POST")
		return errBadMethod
	}
	st.hdr.read(&ctx.Request.Header)
	st.addr = clientAddr(ctx.RemoteAddr(), st.hdr.v[hdrForwardedFor], s.trusted).String()
	if err := checkFraming(&ctx.Request.Header); err != nil {
		ctx.SetConnectionClose()
		return err
	}

	// 2. Parse the EAS request: plain or base64 query, then the EAS headers.
	if !options {
		if err := eas.ParseQuery(query, &st.req); err != nil {
			return err
		}
	}
	if err := eas.ParseHeaders(st.hdr.get, &st.req); err != nil {
		return err
	}

	// 3. Authenticate, and bind the EAS User to the authenticated identity.
	if err := s.authenticate(ctx, st); err != nil {
		return err
	}
	if options {
		return s.forward(ctx, st)
	}
	if s.bindUser(st) != nil {
		s.log.Warn("user mismatch", slog.String("rid", st.rid()), slog.String("user", st.user),
			slog.String("eas_user", st.req.User), slog.String("device", st.req.DeviceID))
		s.auditSpoofing(st.user, st.req.DeviceID, "EAS User is not the authenticated identity")
		return errUserMismatch
	}

	// 4. Decide: is this user, on this device, allowed to get company mail right now?
	st.in = decision.Input{
		User:       st.user,
		DeviceID:   st.req.DeviceID,
		DeviceType: st.req.DeviceType,
		UserAgent:  st.req.UserAgent,
		ClientAddr: st.addr,
		Command:    st.req.Cmd.String(),
		Now:        st.start,
	}
	if st.identity != nil {
		st.in.Groups = st.identity.Groups // merged with the policy's group members by the engine
	}
	// No per-request deadline: a cache hit does no I/O, and the engine bounds every registry
	// call itself (decision.Options.StoreTimeout) — a timer per request would cost more than
	// the decision.
	d, err := s.decider.Decide(s.baseCtx, &st.in)
	if err != nil {
		// Decide already applied the configured fail mode; an error here means "deny".
		s.log.Warn("decision failed, denying", slog.String("rid", st.rid()), slog.String("err", err.Error()))
	}
	st.dec = d
	s.metrics.decision(d.Action, d.Reason)

	// 4b. Provisioning (MS-ASPROV, provision.go): the gateway's EAS policy, Provision of
	// allowed and quarantined devices, and the policy key every other command carries.
	if err == nil {
		if done, perr := s.provisioning(ctx, st); done || perr != nil {
			return perr
		}
	}

	// 5. Anything but Allow is answered here; the backend never hears of it. OAuth clients that
	// can handle a claims challenge are sent to get a compliant token instead.
	if cerr := s.claimsChallenge(st); cerr != nil {
		return cerr
	}
	if d.Action != decision.Allow || err != nil {
		return s.answerLocally(ctx, st)
	}

	if s.notices != nil {
		s.notices.allowed(st.user, st.req.DeviceID)
	}

	// 6. A device released from quarantine still holds the quarantine inbox's SyncKeys; the
	// upstream must never see them. Answering with the "resynchronise" status makes the device
	// start over against the real mailbox (a token scan, no allocation when there is none).
	if a, stale := quarantine.Stale(st.req.Cmd, ctx.PostBody()); stale {
		writeAnswer(&ctx.Response, &a)
		return nil
	}

	// 7. Forward. Long polls (Ping, Sync with Wait) are held on a hijacked connection so that a
	// device that goes away is noticed and its upstream request cancelled.
	if st.req.Cmd == eas.CmdPing || st.req.Cmd == eas.CmdSync && syncWaits(ctx.PostBody()) {
		return s.holdLongPoll(ctx, st)
	}
	return s.forward(ctx, st)
}

// authenticate establishes the caller's identity from the Authorization header.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx, st *reqState) error {
	h := st.hdr.v[hdrAuthorization]
	switch classifyAuth(h) {
	case authNone:
		return errAuthMissing
	case authBasic:
		name, pw, ok := parseBasic(h)
		if !ok {
			return errAuthMalformed
		}
		user, ok := s.names.canonicalUser(name)
		if !ok {
			return errAuthMalformed
		}
		st.user, st.login, st.password = user, name, pw
		return nil
	case authBearer:
		if s.bearer == nil {
			return errAuthScheme
		}
		user, err := s.bearer(ctx, st)
		if err != nil {
			return err
		}
		st.user, st.bearer = user, true
		return nil
	default:
		return errAuthScheme
	}
}

// bindUser checks that the EAS User parameter names the authenticated identity. The registry is
// keyed by the identity, never by the parameter, so a device cannot borrow another user's
// registration by naming them.
func (s *Server) bindUser(st *reqState) error {
	// Devices usually send the User exactly as they typed the Basic login; canonicalUser is a
	// function of its argument alone, so the same spelling folds to the identity it gave.
	if !st.bearer && st.login != "" && st.req.User == st.login {
		return nil
	}
	u, ok := s.names.canonicalUser(st.req.User)
	if !ok || u != st.user {
		return errUserMismatch
	}
	return nil
}

// auditSpoofing records a refused impersonation attempt in the registry's audit log, off the
// request path (the device is answered at once; the write is bounded by the engine).
func (s *Server) auditSpoofing(user, device, detail string) {
	if s.admin == nil {
		return
	}
	user, device = strings.Clone(user), strings.Clone(device)
	go s.admin.RecordSpoofing(s.baseCtx, user, device, detail)
}

// upstreamCredentials replaces the device's Authorization with the configured service
// credential, when there is one (backend.eas.service_authorization).
func (s *Server) upstreamCredentials(req *fasthttp.Request) {
	if a := s.cfg.Backend.EAS.ServiceAuthorization; a != "" {
		req.Header.Set("Authorization", a)
	}
}

// forward sends an allowed request to the backend and streams its answer back.
func (s *Server) forward(ctx *fasthttp.RequestCtx, st *reqState) error {
	if st.req.Cmd == eas.CmdSettings {
		s.learnDeviceInformation(st, ctx.PostBody())
	}
	if s.local != nil {
		fctx, cancel := context.WithTimeout(context.Background(), s.cfg.Backend.EAS.Timeout)
		defer cancel()
		return s.serveIMAP(fctx, &st.req, st.credentials(), ctx.PostBody(), &ctx.Response)
	}
	opt := upstream.ForwardOptions{
		Class:      upstream.ClassNormal,
		Idempotent: st.req.Cmd == eas.CmdNone || st.req.Cmd.Idempotent(),
		ClientAddr: st.addr,
	}
	if !opt.Idempotent {
		opt.Class = upstream.ClassSend
	}
	s.upstreamCredentials(&ctx.Request)
	// The backend bounds the exchange by the command class's timeouts. No cancellation: a
	// shutdown drains requests in flight rather than cutting them (only held long polls are
	// answered early), and a context that can end costs a registration per request.
	start := time.Now()
	err := s.backend.Forward(context.Background(), &ctx.Request, &ctx.Response, opt)
	s.metrics.observeUpstream(opt.Class.String(), time.Since(start).Seconds())
	return err
}

// finish records the answered request: metrics and one log line. Credentials never appear.
func (s *Server) finish(ctx *fasthttp.RequestCtx, st *reqState, start time.Time) {
	code := ctx.Response.StatusCode()
	cmd := st.req.Cmd.String()
	if cmd == "" {
		cmd = strings.ToUpper(string(ctx.Method()))
	}
	s.metrics.request(cmd, code)
	if s.log.Enabled(context.Background(), slog.LevelDebug) || code >= 500 {
		s.log.Log(context.Background(), levelFor(code), "request",
			slog.String("rid", st.rid()), slog.String("cmd", cmd), slog.Int("status", code),
			slog.String("user", st.user), slog.String("device", st.req.DeviceID),
			slog.String("action", st.dec.Action.String()), slog.String("reason", string(st.dec.Reason)),
			slog.String("client", st.addr), slog.Duration("took", time.Since(start)))
	}
}

func levelFor(code int) slog.Level {
	if code >= 500 {
		return slog.LevelWarn
	}
	return slog.LevelDebug
}
