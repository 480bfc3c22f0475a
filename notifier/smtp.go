package notifier

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// smtpSender delivers one message per connection to the configured relay. One connection per
// message keeps a poisoned connection from failing the next message; notification volume is
// small and paced by the global limiter.
type smtpSender struct {
	cfg SMTPConfig
	tls *tls.Config
}

func newSMTPSender(cfg SMTPConfig) (*smtpSender, error) {
	tc, err := cfg.tlsConfig()
	if err != nil {
		return nil, fmt.Errorf("notifier: smtp tls: %w", err)
	}
	return &smtpSender{cfg: cfg, tls: tc}, nil
}

// send delivers msg. Errors are *DeliveryError.
func (s *smtpSender) send(ctx context.Context, from string, to []string, msg []byte) error {
	c, err := s.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	// A cancelled context (shutdown) aborts the conversation by closing the connection.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	if s.cfg.Username != "" {
		if err := c.Auth(s.saslClient(c)); err != nil {
			// A rejected login is a configuration problem, not the message's: retry, so mail
			// flows once an operator fixes the credentials.
			return temporary(fmt.Errorf("auth: %w", err))
		}
	}
	if err := c.Mail(from, nil); err != nil {
		return classifySMTP("MAIL FROM", err)
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return classifySMTP("RCPT TO", err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return classifySMTP("DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return classifySMTP("DATA", err)
	}
	if err := w.Close(); err != nil {
		return classifySMTP("end of DATA", err)
	}
	_ = c.Quit()
	return nil
}

func (s *smtpSender) dial(ctx context.Context) (*smtp.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	d := net.Dialer{}
	conn, err := d.DialContext(dctx, "tcp", s.cfg.Addr)
	if err != nil {
		return nil, temporary(fmt.Errorf("dial %s: %w", s.cfg.Addr, err))
	}
	// The greeting, EHLO and STARTTLS handshake share the dial deadline.
	deadline, _ := dctx.Deadline()
	_ = conn.SetDeadline(deadline)
	if s.cfg.TLS == TLSImplicit {
		tc := tls.Client(conn, s.tls)
		if err := tc.HandshakeContext(dctx); err != nil {
			conn.Close()
			return nil, temporary(fmt.Errorf("tls: %w", err))
		}
		conn = tc
	}
	var c *smtp.Client
	if s.cfg.TLS == TLSStartTLS {
		// go-smtp sends the first EHLO as "localhost"; HeloName is used after the upgrade.
		c, err = smtp.NewClientStartTLS(conn, s.tls)
		if err != nil {
			conn.Close()
			return nil, classifyTLS("starttls", err)
		}
	} else {
		c = smtp.NewClient(conn)
	}
	c.CommandTimeout = s.cfg.CommandTimeout
	c.SubmissionTimeout = s.cfg.DataTimeout
	// With STARTTLS this EHLO is the first write on the TLS connection: a bad certificate
	// fails here.
	if err := c.Hello(s.cfg.HeloName); err != nil {
		c.Close()
		return nil, classifyTLS("EHLO", err)
	}
	// From here go-smtp's per-command timeouts apply.
	_ = conn.SetDeadline(time.Time{})
	return c, nil
}

func (s *smtpSender) saslClient(c *smtp.Client) sasl.Client {
	switch strings.ToUpper(s.cfg.AuthMechanism) {
	case "LOGIN":
		return sasl.NewLoginClient(s.cfg.Username, s.cfg.Password)
	case "PLAIN":
		return sasl.NewPlainClient("", s.cfg.Username, s.cfg.Password)
	}
	if !c.SupportsAuth("PLAIN") && c.SupportsAuth("LOGIN") {
		return sasl.NewLoginClient(s.cfg.Username, s.cfg.Password)
	}
	return sasl.NewPlainClient("", s.cfg.Username, s.cfg.Password)
}

func temporary(err error) *DeliveryError { return &DeliveryError{Err: err} }

// classifySMTP maps a command failure: 5xx replies are permanent, 4xx replies and everything
// else (I/O, timeouts) temporary.
func classifySMTP(cmd string, err error) *DeliveryError {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return &DeliveryError{Permanent: se.Code >= 500 && se.Code < 600, Code: se.Code, Err: fmt.Errorf("%s: %w", cmd, err)}
	}
	return &DeliveryError{Err: fmt.Errorf("%s: %w", cmd, err)}
}

// classifyTLS maps failures before the mail transaction: a 5xx reply to EHLO or STARTTLS is a
// relay configuration problem, so even those are retried (temporary) like TLS failures.
func classifyTLS(step string, err error) *DeliveryError {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return &DeliveryError{Code: se.Code, Err: fmt.Errorf("%s: %w", step, err)}
	}
	return &DeliveryError{Err: fmt.Errorf("%s: %w", step, err)}
}
