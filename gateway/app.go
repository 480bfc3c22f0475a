package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/valyala/fasthttp"

	upstream "github.com/easgate/easgate/backends/eas"
	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/decision/postgres"
	"github.com/easgate/easgate/decision/sqlite"
	"github.com/easgate/easgate/notifier"
	"github.com/easgate/easgate/quarantine"
	"github.com/easgate/easgate/quarantine/portal"
)

// App is a whole gateway node built from a configuration: registry, decision engine, backend,
// quarantine responder, remediation portal and the two listeners. cmd/gateway runs one; tests
// run several in-process.
type App struct {
	Server *Server
	Engine *decision.Engine

	cfg     *Config
	log     *slog.Logger
	closers []func() error
}

// Open builds every part of a gateway node from cfg. Nothing listens yet; see Run.
func Open(ctx context.Context, cfg *Config, log *slog.Logger) (_ *App, err error) {
	if log == nil {
		log = slog.Default()
	}
	a := &App{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.Close() // whatever was opened before the failure
		}
	}()

	// The registry: the source of truth for devices; the engine caches in front of it.
	var store decision.Store
	switch cfg.Store.Driver {
	case "postgres":
		st, err := postgres.Open(ctx, cfg.Store.DSN, postgres.Options{})
		if err != nil {
			return nil, err
		}
		store = st
	default:
		if err := os.MkdirAll(filepath.Dir(cfg.Store.Path), 0o750); err != nil {
			return nil, fmt.Errorf("gateway: store: %w", err)
		}
		st, err := sqlite.Open(ctx, cfg.Store.Path, sqlite.Options{})
		if err != nil {
			return nil, err
		}
		store = st
	}
	a.closers = append(a.closers, store.Close)
	engine, err := decision.New(ctx, decision.Options{
		Store:        store,
		Policy:       cfg.policy,
		StoreTimeout: cfg.Store.Timeout,
		CacheTTL:     cfg.Store.CacheTTL,
		OnError:      func(op string, err error) { log.Warn("decision background error", "op", op, "err", err.Error()) },
	})
	if err != nil {
		return nil, err
	}
	a.Engine = engine
	a.closers = append([]func() error{engine.Close}, a.closers...)

	// The remediation portal and the quarantine responder share the signed-link maker.
	base := trimSlash(cfg.Listen.ExternalURL)
	signer, err := portal.NewSigner([]byte(cfg.Portal.Key), base)
	if err != nil {
		return nil, err
	}
	qcfg := cfg.Quarantine
	qcfg.PortalLink = signer.Link
	responder, err := quarantine.New(qcfg)
	if err != nil {
		return nil, err
	}
	prt, err := portal.New(portal.Config{
		Signer:       signer,
		Lookup:       registryLookup{engine},
		Renderer:     responder.Renderer(),
		EnrollURL:    qcfg.EnrollURL,
		Organization: qcfg.Organization,
		Log:          log,
		// A user erases company mail from their own lost device: account-only, never a
		// silent full wipe; a device too old for it (EAS < 16.1) is sent to IT. a.Server is
		// set below, before any listener serves the portal.
		Wipe: func(ctx context.Context, user, device string) error {
			if a.Server == nil {
				return errors.New("gateway: portal wipe before the server is built")
			}
			if err := a.Server.AccountOnlyWipeCheck(ctx, user, device); err != nil {
				if errors.Is(err, decision.ErrInvalidState) {
					return fmt.Errorf("%w: %w", portal.ErrWipeRefused, err)
				}
				return err
			}
			if _, err := engine.RequestWipe(ctx, user, device, decision.WipeAccountOnly, portal.WipeActor(user)); err != nil {
				return err
			}
			if a.Server.notices != nil {
				a.Server.notices.admin(notifier.EventWipe, user, device, "user_requested")
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}

	deps := Deps{Decider: engine, Admin: engine, Responder: responder, Log: log}
	var closeBackend func() error
	if cfg.Backend.Mode == "imap" {
		deps.Local, closeBackend, err = openIMAP(ctx, cfg)
	} else {
		deps.Backend, closeBackend, err = openBackend(cfg)
	}
	if err != nil {
		return nil, err
	}
	a.closers = append([]func() error{closeBackend}, a.closers...)

	srv, err := New(cfg, deps)
	if err != nil {
		return nil, err
	}
	if cfg.Notify.enabled() {
		path := cfg.Notify.Outbox
		if path == "" {
			path = filepath.Join(filepath.Dir(cfg.Store.Path), "easgate-outbox.db")
		}
		ob, err := notifier.OpenSQLite(ctx, path)
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, ob.Close)
		n, err := notifier.New(cfg.Notify.notifierConfig(), ob, notifier.WithLogger(log))
		if err != nil {
			return nil, err
		}
		n.Start()
		a.closers = append([]func() error{n.Close}, a.closers...)
		email := make(map[string]string)
		for u, addr := range cfg.Users.Email {
			if cu, ok := srv.names.canonicalUser(u); ok {
				email[cu] = addr
			}
		}
		srv.notices = newNotices(n, responder, email, cfg.Notify.DedupWindow, func(op string, err error) {
			log.Warn("notification failed", "op", op, "err", err.Error())
		})
	}
	srv.portalLink = func(user, device string) string {
		return signer.Link(user, device, time.Now().Add(linkTTL(qcfg)))
	}
	srv.extra = func(ctx *fasthttp.RequestCtx, rt route, _ []byte) bool {
		if rt != routePortal {
			return false
		}
		prt.Handler(ctx)
		return true
	}
	a.Server = srv
	return a, nil
}

// linkTTL is how long a remediation link given out by the gateway (claims challenge, token
// service) stays valid: the quarantine message's link lifetime.
func linkTTL(q quarantine.Config) time.Duration {
	if q.LinkTTL > 0 {
		return q.LinkTTL
	}
	return 7 * 24 * time.Hour
}

// openBackend connects the configured backend.
func openBackend(cfg *Config) (Backend, func() error, error) {
	switch cfg.Backend.Mode {
	case "eas":
		e := cfg.Backend.EAS
		u, err := upstream.New(upstream.Config{
			URL:                  e.URL,
			TLS:                  upstream.TLSConfig{CAFile: e.CAFile, CertFile: e.ClientCert, KeyFile: e.ClientKey},
			NormalTimeout:        e.Timeout,
			MaxResponseBodyBytes: e.MaxResponseBody,
			// Every held long poll holds an upstream connection: room for all of them, in
			// their own pool; ordinary requests share max_conns.
			MaxConns:        cfg.Ping.Total + 64,
			MaxRequestConns: e.MaxConns,
		})
		if err != nil {
			return nil, nil, err
		}
		return u, func() error { u.Close(); return nil }, nil
	}
	return nil, nil, fmt.Errorf("gateway: backend mode %q is not available", cfg.Backend.Mode)
}

// Run listens on the configured addresses and serves until ctx ends, then drains: held Pings
// are answered so devices re-ping another node, and requests in flight finish (up to 30s).
func (a *App) Run(ctx context.Context) error {
	cl, err := net.Listen("tcp", a.cfg.Listen.Addr)
	if err != nil {
		return fmt.Errorf("gateway: client listener: %w", err)
	}
	al, err := net.Listen("tcp", a.cfg.Admin.Addr)
	if err != nil {
		cl.Close()
		return fmt.Errorf("gateway: admin listener: %w", err)
	}
	a.log.Info("easgate serving", "client", cl.Addr().String(), "admin", al.Addr().String(),
		"backend", a.cfg.Backend.Mode, "tls", a.cfg.Listen.TLSCert != "")
	errc := make(chan error, 1)
	go func() { errc <- a.Server.Serve(cl, al) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = a.Server.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, net.ErrClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// Close releases the backend, the engine (flushing what it learnt) and the registry.
func (a *App) Close() error {
	var errs []error
	for _, c := range a.closers {
		errs = append(errs, c())
	}
	a.closers = nil
	return errors.Join(errs...)
}

// registryLookup answers the portal: the device's record and its decision right now.
type registryLookup struct{ e *decision.Engine }

func (r registryLookup) Lookup(ctx context.Context, user, deviceID string) (decision.Device, decision.Decision, error) {
	d, err := r.e.Device(ctx, user, deviceID)
	if err != nil {
		return decision.Device{}, decision.Decision{}, err
	}
	dec, err := r.e.Decide(ctx, &decision.Input{User: user, DeviceID: deviceID, DeviceType: d.DeviceType, UserAgent: d.UserAgent, Command: "Portal"})
	return d, dec, err
}
