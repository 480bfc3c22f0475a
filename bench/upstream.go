package bench

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/easgate/easgate/backends/eas/rawio"
)

// UpstreamOptions configure the simulated EAS server.
type UpstreamOptions struct {
	// Addr to listen on; default 127.0.0.1:0. Only loopback addresses are accepted.
	Addr string
	// PingHold is how long a Ping is held before the "heartbeat expired" answer (Status 1);
	// default 200 ms. ReleasePings ends every held Ping at once.
	PingHold time.Duration
	// ItemOperationsBytes is the attachment size of the ItemOperations answer; default 1 MiB.
	ItemOperationsBytes int
	// ManyHeld trades speed for memory: each idle connection (thousands of held Pings) gives
	// its read buffer back between requests, at the price of a one-byte read per request.
	ManyHeld bool
}

// Upstream is a simulated EAS server (fasthttp on loopback): Sync answers a ~2 KB WBXML
// response, FolderSync six folders, Ping is held then answered, SendMail is accepted (200, empty
// body), ItemOperations answers an attachment of ItemOperationsBytes. Requests without an
// Authorization header get 401, like a real server.
type Upstream struct {
	// Addr is host:port; URL is http://Addr/Microsoft-Server-ActiveSync.
	Addr, URL string

	opts     UpstreamOptions
	srv      *fasthttp.Server
	ln       net.Listener
	itemOps  []byte
	held     atomic.Int64
	counts   [numCommands]atomic.Int64
	bad      atomic.Int64
	release  chan struct{}
	relOnce  sync.Once
	doneOnce sync.Once
	done     chan struct{}
}

// StartUpstream starts the simulated EAS server. Close stops it.
func StartUpstream(opts UpstreamOptions) (*Upstream, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.PingHold <= 0 {
		opts.PingHold = 200 * time.Millisecond
	}
	if opts.ItemOperationsBytes <= 0 {
		opts.ItemOperationsBytes = 1 << 20
	}
	host, _, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("bench: upstream address %q: %w", opts.Addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("bench: upstream must listen on loopback, not %q", host)
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("bench: upstream: %w", err)
	}
	// The simulated server shares its core with the load generator; its connections use the
	// gateway's cheaper system calls (rawio), which leave that core more headroom.
	ln = rawio.NewListener(ln)
	u := &Upstream{
		opts:    opts,
		ln:      ln,
		Addr:    ln.Addr().String(),
		itemOps: ItemOperationsResponse(opts.ItemOperationsBytes),
		release: make(chan struct{}),
		done:    make(chan struct{}),
	}
	u.URL = "http://" + u.Addr + "/Microsoft-Server-ActiveSync"
	u.srv = &fasthttp.Server{
		Handler:               u.handle,
		Name:                  "easbench-upstream",
		Concurrency:           64 << 10,
		ReadBufferSize:        8 << 10,
		NoDefaultServerHeader: false,
		ReduceMemoryUsage:     opts.ManyHeld,
		IdleTimeout:           2 * time.Minute,
	}
	go func() { _ = u.srv.Serve(ln) }()
	return u, nil
}

// Held is the number of Pings being held right now.
func (u *Upstream) Held() int64 { return u.held.Load() }

// Count is the number of requests of cmd answered so far.
func (u *Upstream) Count(cmd Command) int64 { return u.counts[cmd].Load() }

// BadRequests counts requests the upstream could not classify.
func (u *Upstream) BadRequests() int64 { return u.bad.Load() }

// ReleasePings answers every held Ping now; later Pings are answered at once.
func (u *Upstream) ReleasePings() { u.relOnce.Do(func() { close(u.release) }) }

// Close releases held Pings and stops the server.
func (u *Upstream) Close() error {
	u.ReleasePings()
	var err error
	u.doneOnce.Do(func() {
		close(u.done)
		err = u.srv.Shutdown()
	})
	return err
}

var wbxmlType = []byte("application/vnd.ms-sync.wbxml")

func (u *Upstream) handle(ctx *fasthttp.RequestCtx) {
	if ctx.IsOptions() {
		ctx.Response.Header.Set("MS-ASProtocolVersions", "12.1,14.0,14.1,16.0,16.1")
		ctx.Response.Header.Set("MS-ASProtocolCommands", "Sync,FolderSync,Ping,SendMail,ItemOperations")
		return
	}
	if len(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)) == 0 {
		ctx.Response.Header.Set("WWW-Authenticate", `Basic realm="eas"`)
		ctx.SetStatusCode(fasthttp.StatusUnauthorized)
		return
	}
	cmd, ok := commandOf(ctx)
	if !ok {
		u.bad.Add(1)
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		return
	}
	u.counts[cmd].Add(1)
	ctx.Response.Header.SetContentTypeBytes(wbxmlType)
	ctx.Response.Header.Set("MS-Server-ActiveSync", "14.3")
	switch cmd {
	case CmdSync:
		ctx.Response.SetBodyRaw(SyncResponse)
	case CmdFolderSync:
		ctx.Response.SetBodyRaw(FolderSyncResponse)
	case CmdSendMail:
		ctx.Response.Header.SetContentLength(0)
	case CmdItemOperations:
		ctx.Response.SetBodyRaw(u.itemOps)
	case CmdPing:
		u.held.Add(1)
		t := time.NewTimer(u.opts.PingHold)
		select {
		case <-t.C:
		case <-u.release:
		case <-u.done:
		}
		t.Stop()
		u.held.Add(-1)
		ctx.Response.SetBodyRaw(PingResponseExpired)
	}
}

// commandOf reads the command from the plain (Cmd=) or base64 query (MS-ASHTTP 2.2.1.1.1.1:
// the second byte is the command code).
func commandOf(ctx *fasthttp.RequestCtx) (Command, bool) {
	if name := ctx.QueryArgs().Peek("Cmd"); len(name) > 0 {
		return ParseCommand(string(name))
	}
	raw := ctx.URI().QueryString()
	if len(raw) == 0 {
		return 0, false
	}
	s, err := url.QueryUnescape(string(raw))
	if err != nil {
		return 0, false
	}
	bin, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(bin) < 2 {
		return 0, false
	}
	for c, code := range cmdCodes {
		if code == bin[1] {
			return Command(c), true
		}
	}
	return 0, false
}

// errNotLoopback guards every target the harness is pointed at.
var errNotLoopback = errors.New("bench: targets must be loopback (127.0.0.0/8 or ::1)")

// checkLoopback fails unless rawURL's host is a loopback IP address.
func checkLoopback(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("bench: target %q: %w", rawURL, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("bench: target %q: only http targets are supported", rawURL)
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("%w: %q", errNotLoopback, rawURL)
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), "80")
	}
	if u.Path == "" {
		u.Path = "/Microsoft-Server-ActiveSync"
	}
	return u, nil
}
