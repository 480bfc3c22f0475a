// Package demo runs a self-contained mail system for trying easgate's IMAP backend without an
// external server: an in-memory IMAP server (go-imap's imapmemserver) and an SMTP server that
// delivers every accepted message into the recipients' in-memory INBOX, both on loopback, with
// demo users and a few sample messages. It is for demos and fast tests, not for production:
// nothing is persisted.
package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Domain is the mail domain of the demo users.
const Domain = "demo.easgate.test"

// Users are the demo accounts: login (also the address) → password.
var Users = map[string]string{
	"demo@" + Domain:  "demo",
	"alice@" + Domain: "alice",
}

// Demo is a running demo mail system. Its fields are fixed for its lifetime.
type Demo struct {
	// IMAPAddr and SMTPAddr are "127.0.0.1:port" (plain text, loopback only). SMTP requires
	// AUTH PLAIN with a demo user's credentials and delivers to demo users only.
	IMAPAddr string
	SMTPAddr string
	// Users maps login to password.
	Users map[string]string

	mem      *imapmemserver.Server
	users    map[string]*imapmemserver.User
	imapSrv  *imapserver.Server
	smtpSrv  *smtp.Server
	imapLn   net.Listener
	smtpLn   net.Listener
	wg       sync.WaitGroup
	closeOne sync.Once
}

// Start starts the servers on loopback ports chosen by the system and seeds the mailboxes. The
// servers run until Close (ctx only bounds the start).
func Start(ctx context.Context) (*Demo, error) {
	d := &Demo{Users: map[string]string{}, mem: imapmemserver.New(), users: map[string]*imapmemserver.User{}}
	for u, p := range Users {
		d.Users[u] = p
		mu := imapmemserver.NewUser(u, p)
		for _, mbox := range []string{"INBOX", "Sent", "Drafts", "Trash", "Archive"} {
			if err := mu.Create(mbox, nil); err != nil {
				return nil, fmt.Errorf("demo: create %s: %w", mbox, err)
			}
		}
		d.mem.AddUser(mu)
		d.users[u] = mu
	}
	if err := d.seed(); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	var err error
	if d.imapLn, err = lc.Listen(ctx, "tcp", "127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("demo: listen IMAP: %w", err)
	}
	if d.smtpLn, err = lc.Listen(ctx, "tcp", "127.0.0.1:0"); err != nil {
		d.imapLn.Close()
		return nil, fmt.Errorf("demo: listen SMTP: %w", err)
	}
	d.IMAPAddr, d.SMTPAddr = d.imapLn.Addr().String(), d.smtpLn.Addr().String()
	d.imapSrv = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return d.mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true,
		Logger:       discardLogger{},
	})
	d.smtpSrv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{d: d}, nil }))
	d.smtpSrv.Domain = Domain
	d.smtpSrv.AllowInsecureAuth = true
	d.smtpSrv.MaxMessageBytes = 25 << 20
	d.smtpSrv.MaxRecipients = 100
	d.smtpSrv.ReadTimeout = time.Minute
	d.smtpSrv.WriteTimeout = time.Minute
	d.smtpSrv.ErrorLog = discardLogger{}
	d.wg.Add(2)
	go func() { defer d.wg.Done(); d.imapSrv.Serve(d.imapLn) }()
	go func() { defer d.wg.Done(); d.smtpSrv.Serve(d.smtpLn) }()
	return d, nil
}

// Close stops both servers and waits for them.
func (d *Demo) Close() error {
	d.closeOne.Do(func() {
		d.imapSrv.Close()
		d.smtpSrv.Close()
		d.wg.Wait()
	})
	return nil
}

// Deliver appends a raw RFC 5322 message to the INBOX of a demo user.
func (d *Demo) Deliver(user string, msg []byte) error {
	u := d.users[strings.ToLower(user)]
	if u == nil {
		return fmt.Errorf("demo: no user %q", user)
	}
	_, err := u.Append("INBOX", bytes.NewReader(msg), &imap.AppendOptions{Time: time.Now()})
	return err
}

var samples = []struct{ from, subject, body string }{
	{"welcome@" + Domain, "Welcome to easgate", "This mailbox is served by easgate's IMAP backend.\r\nEvery device request passed the gateway's identity and device checks.\r\n"},
	{"alice@" + Domain, "Lunch on Friday?", "Shall we try the new place round the corner?\r\n\r\nAlice\r\n"},
	{"it@" + Domain, "Your device is compliant", "Passcode, encryption and OS version all meet the policy.\r\n"},
}

func (d *Demo) seed() error {
	for u := range d.users {
		for i, s := range samples {
			msg := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <sample-%d-%s>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s",
				s.from, u, s.subject, time.Now().Add(time.Duration(i-len(samples))*time.Hour).Format(time.RFC1123Z), i, u, s.body)
			if err := d.Deliver(u, []byte(msg)); err != nil {
				return fmt.Errorf("demo: seed: %w", err)
			}
		}
	}
	return nil
}

// session is one SMTP session of the delivery sink.
type session struct {
	d     *Demo
	authd bool
	rcpts []string
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if p, ok := s.d.Users[strings.ToLower(username)]; !ok || p != password {
			return errors.New("demo: invalid credentials")
		}
		s.authd = true
		return nil
	}), nil
}

func (s *session) Mail(string, *smtp.MailOptions) error {
	if !s.authd {
		return smtp.ErrAuthRequired
	}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	to = strings.ToLower(to)
	if _, ok := s.d.users[to]; !ok {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "demo: no such user"}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	for _, to := range s.rcpts {
		if err := s.d.Deliver(to, b); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) Reset()        { s.rcpts = nil }
func (s *session) Logout() error { return nil }

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}
