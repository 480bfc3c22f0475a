package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/valyala/fasthttp"

	imapbackend "github.com/easgate/easgate/backends/imap"
	"github.com/easgate/easgate/backends/imap/demo"
	"github.com/easgate/easgate/eas"
)

// IMAPBackend is the imap backend mode: the gateway is itself the EAS server for an IMAP + SMTP
// mail server. Devices' credentials (Basic password or bearer token) log in to both.
type IMAPBackend struct {
	// IMAPAddr is host:port of the IMAP server; SMTPAddr of the submission server.
	IMAPAddr string `yaml:"imap_addr"`
	SMTPAddr string `yaml:"smtp_addr"`
	// Security of each: "starttls" (default), "tls" (implicit) or "none" (loopback only).
	IMAPSecurity string `yaml:"imap_security"`
	SMTPSecurity string `yaml:"smtp_security"`
	// CAFile verifies the servers' certificates (PEM). Default: the system roots.
	CAFile string `yaml:"ca_file"`
	// Domain completes a bare login name into the sender's address.
	Domain string `yaml:"domain"`
	// OAuthMechanism is the SASL mechanism that carries a device's bearer token to IMAP and
	// SMTP: "XOAUTH2" (default; Gmail, Microsoft, Dovecot) or "OAUTHBEARER" (RFC 7628).
	OAuthMechanism string `yaml:"oauth_mechanism"`
	// State is the SQLite file of the per-device sync state. Default: beside the registry,
	// "<store dir>/easgate-sync.db".
	State string `yaml:"state"`
	// Demo starts an in-memory IMAP server and an SMTP sink holding sample messages, for trying
	// easgate with no mail server (users demo@demo.easgate.test / demo and
	// alice@demo.easgate.test / alice). Never for production.
	Demo bool `yaml:"demo"`
}

func (b *IMAPBackend) validate(bad func(field, format string, args ...any)) {
	if !b.Demo && b.IMAPAddr == "" {
		bad("backend.imap.imap_addr", "required in imap mode (or set demo: true)")
	}
	switch b.OAuthMechanism {
	case "", "XOAUTH2", "OAUTHBEARER":
	default:
		bad("backend.imap.oauth_mechanism", "must be XOAUTH2 or OAUTHBEARER, got %q", b.OAuthMechanism)
	}
	for _, f := range []struct{ field, v string }{{"backend.imap.imap_security", b.IMAPSecurity}, {"backend.imap.smtp_security", b.SMTPSecurity}} {
		if _, err := parseSecurity(f.v); err != nil {
			bad(f.field, "%v", err)
		}
	}
}

func parseSecurity(s string) (imapbackend.Security, error) {
	switch s {
	case "", "starttls":
		return imapbackend.SecurityStartTLS, nil
	case "tls":
		return imapbackend.SecurityTLS, nil
	case "none":
		return imapbackend.SecurityNone, nil
	}
	return 0, fmt.Errorf("must be starttls, tls or none, got %q", s)
}

// imapServer is the gateway's view of the IMAP bridge (*imapbackend.Backend).
type imapServer interface {
	Serve(ctx context.Context, req *eas.Request, cred imapbackend.Credentials, body []byte) (imapbackend.Response, error)
	Options() imapbackend.Response
}

// openIMAP builds the bridge (and the demo servers when asked). The returned closer stops both.
func openIMAP(ctx context.Context, cfg *Config) (imapServer, func() error, error) {
	ic := cfg.Backend.IMAP
	var closers []func() error
	closeAll := func() error {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		return errors.Join(errs...)
	}
	bc := imapbackend.Config{IMAPAddr: ic.IMAPAddr, SMTPAddr: ic.SMTPAddr, Domain: ic.Domain, OAuthMechanism: ic.OAuthMechanism}
	bc.IMAPSecurity, _ = parseSecurity(ic.IMAPSecurity)
	bc.SMTPSecurity, _ = parseSecurity(ic.SMTPSecurity)
	if ic.CAFile != "" {
		pem, err := os.ReadFile(ic.CAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("gateway: backend.imap.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, errors.New("gateway: backend.imap.ca_file: no certificates")
		}
		bc.TLSConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if ic.Demo {
		d, err := demo.Start(ctx)
		if err != nil {
			return nil, nil, err
		}
		closers = append(closers, d.Close)
		bc.IMAPAddr, bc.SMTPAddr = d.IMAPAddr, d.SMTPAddr
		bc.IMAPSecurity, bc.SMTPSecurity = imapbackend.SecurityNone, imapbackend.SecurityNone
		bc.Domain = demo.Domain
	}
	path := ic.State
	if path == "" {
		path = filepath.Join(filepath.Dir(cfg.Store.Path), "easgate-sync.db")
	}
	st, err := imapbackend.OpenSQLiteStore(path)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	closers = append(closers, st.Close)
	b, err := imapbackend.New(bc, st)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	closers = append(closers, b.Close)
	return b, closeAll, nil
}

// serveIMAP answers an allowed request from the IMAP bridge. It runs inside the handler for
// ordinary commands and inside a hold for Ping; req, cred and body are owned by the caller for
// the duration of the call.
func (s *Server) serveIMAP(ctx context.Context, req *eas.Request, cred imapbackend.Credentials, body []byte, resp *fasthttp.Response) error {
	var r imapbackend.Response
	var err error
	if req.Cmd == eas.CmdNone { // OPTIONS
		r = s.local.Options()
	} else {
		start := time.Now()
		r, err = s.local.Serve(ctx, req, cred, body)
		s.metrics.observeUpstream("imap", time.Since(start).Seconds())
		if err != nil {
			return err
		}
	}
	resp.SetStatusCode(r.Status)
	for k, v := range r.Header {
		resp.Header.Set(k, v)
	}
	if r.ContentType != "" {
		resp.Header.SetContentType(r.ContentType)
	}
	switch {
	case r.Reader != nil:
		resp.SetBodyStream(r.Reader, int(r.Length))
	default:
		resp.SetBody(r.Body)
	}
	return nil
}

// credentials are what the device logged in with, passed on to IMAP and SMTP.
func (st *reqState) credentials() imapbackend.Credentials {
	if st.bearer {
		tok := st.hdr.v[hdrAuthorization][len("Bearer "):] // authenticate classified it
		return imapbackend.Credentials{User: st.identity.User, Token: string(tok)}
	}
	return imapbackend.Credentials{User: st.login, Password: st.password}
}
