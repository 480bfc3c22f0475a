// Package gateway is easgate's HTTP front: the client listener (Exchange ActiveSync,
// Autodiscover, OAuth, remediation portal) and the admin listener (REST API, metrics, health).
//
// The request chain is written down once, in easPipeline: parse the EAS request (MS-ASHTTP),
// authenticate and bind the EAS User to the identity, ask the decision layer, then either answer
// locally (quarantine, block, wipe) or forward to the backend. Only this package and cmd/gateway
// import every other package of easgate.
package gateway

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	upstream "github.com/easgate/easgate/backends/eas"
	"github.com/easgate/easgate/backends/eas/park"
	"github.com/easgate/easgate/backends/eas/rawio"
	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/oauth"
	"github.com/easgate/easgate/quarantine"
)

// Decider is the device decision, as the gateway needs it. *decision.Engine implements it.
type Decider interface {
	Decide(ctx context.Context, in *decision.Input) (decision.Decision, error)
}

// Backend is the upstream EAS server (*upstream.Upstream): Forward for ordinary requests,
// ForwardHeld for long polls, which it holds without a goroutine where it can. Both must
// honour ctx (a held Ping whose device left is cancelled through it).
type Backend interface {
	Forward(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response, opt upstream.ForwardOptions) error
	ForwardHeld(ctx context.Context, req *fasthttp.Request, opt upstream.ForwardOptions, done func(*fasthttp.Response, error))
}

// Deps are the parts the gateway is wired from. cmd/gateway builds them from the
// configuration; tests pass in-process ones.
type Deps struct {
	Decider Decider
	Backend Backend
	// Local is the IMAP bridge in imap mode, used instead of Backend.
	Local imapServer
	Admin *decision.Engine // admin API operations; nil disables the device endpoints
	// Responder answers devices that are not allowed (required).
	Responder *quarantine.Responder
	Log       *slog.Logger
}

// Server is one gateway node. Create it with New, run it with Serve, stop it with Shutdown.
type Server struct {
	cfg           *Config
	log           *slog.Logger
	names         UserNames
	trusted       []netip.Prefix
	easURL        string
	decider       Decider
	backend       Backend
	local         imapServer
	admin         *decision.Engine
	responder     *quarantine.Responder
	prov          *provisioner  // EAS provisioning and remote wipe (see provision.go)
	decideTimeout time.Duration // bound for registry writes made while answering a request
	maxHeartbeat  int           // seconds

	notices    *notices // nil: notifications disabled
	validator  *oauth.Validator
	tokens     *oauth.TokenService
	portalLink func(user, device string) string

	// bearer authenticates a Bearer token and returns the canonical user; nil refuses Bearer.
	bearer func(ctx *fasthttp.RequestCtx, st *reqState) (string, error)
	// extra serves the routes other parts register (OAuth, portal); false means "not mine".
	extra func(ctx *fasthttp.RequestCtx, rt route, query []byte) bool

	pings   *pingHub
	holding atomic.Int64 // held long polls not yet answered
	park    *park.Poller // waits for held connections without goroutines; nil where unsupported
	metrics *metrics
	baseCtx context.Context
	stop    context.CancelFunc
	ready   atomic.Bool

	lnMu sync.Mutex
	lns  []net.Listener
	shut bool

	ridPrefix string
	ridSeq    atomic.Uint64

	client *fasthttp.Server
	adminS *fasthttp.Server
}

// New builds a server from a validated configuration.
func New(cfg *Config, deps Deps) (*Server, error) {
	if deps.Decider == nil || (deps.Backend == nil) == (deps.Local == nil) || deps.Responder == nil {
		return nil, errors.New("gateway: a decider, one backend and a responder are required")
	}
	log := deps.Log
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		cfg:           cfg,
		log:           log,
		names:         cfg.Users.UserNames,
		easURL:        trimSlash(cfg.Listen.ExternalURL) + "/Microsoft-Server-ActiveSync",
		decider:       deps.Decider,
		backend:       deps.Backend,
		local:         deps.Local,
		admin:         deps.Admin,
		responder:     deps.Responder,
		decideTimeout: 2 * time.Second,
		maxHeartbeat:  int(cfg.Ping.MaxHeartbeat / time.Second),
		pings:         newPingHub(cfg.Ping.PingLimits),
	}
	for _, p := range cfg.Listen.TrustedProxies {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("gateway: trusted proxy %q: %w", p, err)
		}
		s.trusted = append(s.trusted, pfx)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	s.ridPrefix = hex.EncodeToString(rnd[:]) + "-"
	var devices oauth.DeviceChecker
	if deps.Decider != nil {
		devices = registryDevices{s}
	}
	if err := s.setupOAuth(devices); err != nil {
		return nil, err
	}
	prov, err := newProvisioner(cfg) // EAS provisioning (see provision.go)
	if err != nil {
		return nil, err
	}
	s.prov = prov
	s.metrics = newMetrics(func() float64 { return float64(s.pings.held()) })
	s.baseCtx, s.stop = context.WithCancel(context.Background())
	if p, err := park.Shared(); err == nil {
		s.park = p
	}

	s.client = &fasthttp.Server{
		Handler:                       s.handleClient,
		Name:                          "easgate",
		ReadTimeout:                   cfg.Listen.ReadTimeout,
		WriteTimeout:                  max(cfg.Listen.WriteTimeout, cfg.Backend.EAS.Timeout+30*time.Second),
		IdleTimeout:                   cfg.Listen.IdleTimeout,
		MaxRequestBodySize:            cfg.Limits.MaxRequestBody,
		ReadBufferSize:                8192,
		DisableHeaderNamesNormalizing: false,
		NoDefaultServerHeader:         true,
		NoDefaultContentType:          true,
		DisablePreParseMultipartForm:  true,
		StreamRequestBody:             false,
		// The handler reads its own clock once per request (reqState.start); fasthttp's
		// request time would be a second reading nobody uses.
		LazyRequestTime: true,
		CloseOnShutdown: true,
		// A held long poll's hijack handler returns at once and the hold goes on without it
		// (see hold): the connection is closed by the hold, not by fasthttp.
		KeepHijackedConns: true,
		Logger:            fasthttpLogger{log},
		ErrorHandler:      protocolErrorHandler,
	}
	s.adminS = &fasthttp.Server{
		Handler:               s.handleAdmin,
		Name:                  "easgate-admin",
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          60 * time.Second,
		IdleTimeout:           120 * time.Second,
		MaxRequestBodySize:    1 << 20,
		NoDefaultServerHeader: true,
		CloseOnShutdown:       true,
		Logger:                fasthttpLogger{log},
	}
	return s, nil
}

// Serve accepts on the two listeners until Shutdown. The client listener uses TLS when the
// configuration names a certificate.
func (s *Server) Serve(client, admin net.Listener) error {
	// Devices' connections read and write without the runtime's system-call bookkeeping
	// (backends/eas/rawio); TLS, when configured, runs on top of them.
	client = rawio.NewListener(client)
	if s.cfg.Listen.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.Listen.TLSCert, s.cfg.Listen.TLSKey)
		if err != nil {
			return fmt.Errorf("gateway: tls: %w", err)
		}
		client = tls.NewListener(client, &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{cert},
		})
	}
	// A Shutdown that comes before (or while) Serve starts must still stop it: the listeners
	// are registered first and closed by Shutdown.
	s.lnMu.Lock()
	if s.shut {
		s.lnMu.Unlock()
		client.Close()
		admin.Close()
		return nil
	}
	s.lns = []net.Listener{client, admin}
	s.lnMu.Unlock()
	s.ready.Store(true)
	errc := make(chan error, 2)
	go func() { errc <- s.client.Serve(client) }()
	go func() { errc <- s.adminS.Serve(admin) }()
	err := <-errc
	if err2 := <-errc; err == nil {
		err = err2
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil // closed by Shutdown
	}
	return err
}

// Shutdown answers every held Ping (so devices re-ping another node), stops accepting, and
// waits for requests in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.Store(false)
	s.pings.shutdown()
	s.lnMu.Lock()
	s.shut = true
	lns := s.lns
	s.lnMu.Unlock()
	err := ignoreClosed(s.client.ShutdownWithContext(ctx))
	for _, ln := range lns {
		_ = ln.Close() // a Serve that had not reached fasthttp's accept loop yet returns too
	}
	// Hijacked connections are not the server's any more: wait for their answers here.
	for s.holding.Load() > 0 && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	if s.holding.Load() > 0 {
		err = errors.Join(err, ctx.Err())
	}
	s.stop()
	return errors.Join(err, ignoreClosed(s.adminS.ShutdownWithContext(ctx)))
}

// ignoreClosed drops the error of closing a listener Shutdown had already closed.
func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// appendRequestID appends the next request ID: the node's random prefix and a sequence number.
func (s *Server) appendRequestID(dst []byte) []byte {
	return strconv.AppendUint(append(dst, s.ridPrefix...), s.ridSeq.Add(1), 36)
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// protocolErrorHandler answers requests fasthttp could not read: 413 for a body over the
// limit, 408 for a client too slow to send it, 400 for everything malformed.
func protocolErrorHandler(ctx *fasthttp.RequestCtx, err error) {
	code := 400
	var te interface{ Timeout() bool }
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		code = 413
	case errors.As(err, &te) && te.Timeout():
		code = 408
	}
	ctx.Response.Reset()
	ctx.SetStatusCode(code)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(fasthttp.StatusMessage(code) + "\n")
	ctx.SetConnectionClose()
}

// fasthttpLogger routes fasthttp's own messages (malformed requests, timeouts) to slog.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug("http", slog.String("msg", fmt.Sprintf(format, args...)))
}

// ClientHandler is the client listener's request handler, for embedding the gateway in another
// fasthttp server and for fuzzing the whole request path in-process. An embedding server must
// set KeepHijackedConns: held long polls answer on their hijacked connection after the hijack
// handler has returned.
func (s *Server) ClientHandler() fasthttp.RequestHandler { return s.handleClient }
