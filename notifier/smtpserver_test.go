package notifier

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// fakeSMTP is an in-process go-smtp server for fault injection. It records every accepted
// message by Message-ID.
type fakeSMTP struct {
	Addr string
	srv  *smtp.Server

	mu       sync.Mutex
	received []fakeMsg
	byID     map[string]int
	// fail, when set, decides the reply to each stage ("MAIL", "RCPT", "DATA").
	fail func(stage string) error
	// delay is slept before answering the end of DATA.
	delay    time.Duration
	user     string
	password string
}

type fakeMsg struct {
	From string
	To   []string
	Data []byte
}

type fakeSession struct {
	s    *fakeSMTP
	from string
	to   []string
	auth bool
}

func (s *fakeSession) AuthMechanisms() []string {
	if s.s.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *fakeSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != s.s.user || password != s.s.password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.auth = true
		return nil
	}), nil
}

func (s *fakeSession) stage(name string) error {
	s.s.mu.Lock()
	f := s.s.fail
	s.s.mu.Unlock()
	if f != nil {
		return f(name)
	}
	return nil
}

func (s *fakeSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.s.user != "" && !s.auth {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return s.stage("MAIL")
}

func (s *fakeSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := s.stage("RCPT"); err != nil {
		return err
	}
	s.to = append(s.to, to)
	return nil
}

func (s *fakeSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.s.mu.Lock()
	d := s.s.delay
	s.s.mu.Unlock()
	if d > 0 {
		time.Sleep(d)
	}
	if err := s.stage("DATA"); err != nil {
		return err
	}
	id := ""
	if mr, err := mail.CreateReader(bytes.NewReader(b)); err == nil {
		id, _ = mr.Header.MessageID()
	}
	s.s.mu.Lock()
	defer s.s.mu.Unlock()
	s.s.received = append(s.s.received, fakeMsg{From: s.from, To: s.to, Data: b})
	s.s.byID[id]++
	return nil
}

func (s *fakeSession) Reset()        { s.from, s.to = "", nil }
func (s *fakeSession) Logout() error { return nil }

type fakeOpts struct {
	TLS      *tls.Config // STARTTLS offered when set
	Implicit bool        // TLS from the first byte
	User     string
	Password string
}

func startFakeSMTP(t testing.TB, o fakeOpts) *fakeSMTP {
	t.Helper()
	f := &fakeSMTP{byID: map[string]int{}, user: o.User, password: o.Password}
	f.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &fakeSession{s: f}, nil
	}))
	f.srv.Domain = "fake.test"
	f.srv.AllowInsecureAuth = true
	f.srv.TLSConfig = o.TLS
	f.srv.ReadTimeout = 30 * time.Second
	f.srv.WriteTimeout = 30 * time.Second
	f.srv.ErrorLog = nopLogger{}
	var l net.Listener
	var err error
	if o.Implicit {
		l, err = tls.Listen("tcp", "127.0.0.1:0", o.TLS)
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	f.Addr = l.Addr().String()
	go f.srv.Serve(l)
	t.Cleanup(func() { f.srv.Close() })
	return f
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
func (nopLogger) Println(...any)        {}

func (f *fakeSMTP) setFail(fn func(stage string) error) {
	f.mu.Lock()
	f.fail = fn
	f.mu.Unlock()
}

func (f *fakeSMTP) setDelay(d time.Duration) {
	f.mu.Lock()
	f.delay = d
	f.mu.Unlock()
}

func (f *fakeSMTP) messages() []fakeMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeMsg(nil), f.received...)
}

func (f *fakeSMTP) distinct() (distinct, total int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.byID), len(f.received)
}

// waitFor polls cond every 10 ms for up to 20 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testCert makes a self-signed certificate for 127.0.0.1 and writes it as a PEM CA file.
func testCert(t testing.TB) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "relay.test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kder, _ := x509.MarshalECPrivateKey(key)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, path
}

// testConfig is a fast configuration against addr: plain SMTP, tiny backoff, no rate limits.
func testConfig(addr string) Config {
	return Config{
		From: "Mail Access <noreply@easgate.test>",
		SMTP: SMTPConfig{
			Addr: addr, TLS: TLSNone,
			DialTimeout: time.Second, CommandTimeout: 2 * time.Second, DataTimeout: 2 * time.Second,
		},
		Workers:      2,
		Lease:        30 * time.Second,
		PollInterval: 20 * time.Millisecond,
		Retry:        RetryConfig{MaxAttempts: 5, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond},
		PerUser:      RateLimit{Off: true},
		Global:       RateLimit{Off: true},
	}
}

func openTestOutbox(t testing.TB) *SQLiteOutbox {
	t.Helper()
	ob, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "outbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ob.Close() })
	return ob
}

func startNotifier(t testing.TB, cfg Config, ob Outbox) *Notifier {
	t.Helper()
	n, err := New(cfg, ob)
	if err != nil {
		t.Fatal(err)
	}
	n.Start()
	t.Cleanup(func() { n.Close() })
	return n
}

func remediation(device string) Remediation {
	return Remediation{
		User: "alice", DeviceID: device, Cause: "not-enrolled", To: "alice@easgate.test",
		Content: Content{Subject: "Enrol your device", Text: "Please enrol.\r\n", HTML: "<p>Please enrol.</p>"},
	}
}

// waitState polls the outbox row until it reaches state.
func waitState(t testing.TB, ob Outbox, id string, st State) *Item {
	t.Helper()
	var it *Item
	waitFor(t, "row "+id+" to be "+string(st), func() bool {
		var err error
		it, err = ob.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return it.State == st
	})
	return it
}

var errTemp = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
var errPerm = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}

var _ = errors.New
