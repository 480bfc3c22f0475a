package notifier

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"
)

func parseMail(t testing.TB, raw []byte) (*mail.Reader, map[string]string) {
	t.Helper()
	mr, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, raw)
	}
	parts := map[string]string{}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		h, ok := p.Header.(*mail.InlineHeader)
		if !ok {
			t.Fatalf("unexpected attachment part")
		}
		ct, _, _ := h.ContentType()
		b, _ := io.ReadAll(p.Body)
		parts[ct] = string(b)
	}
	return mr, parts
}

func TestComposeRFC5322MultipartAlternative(t *testing.T) {
	from, _ := parseAddress("Mail Access <noreply@easgate.test>")
	to, _ := parseAddress("alice@easgate.test")
	date := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	raw, err := composeEmail(envelope{From: from, To: []*mail.Address{to}, MessageID: "easgate.abc@easgate.test", Date: date},
		Content{Subject: "Gerät registrieren – bitte", Text: "Hallo Jörg\r\n", HTML: "<p>Hallo J&ouml;rg</p>"}, Config{}.Defaults().Limits)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("Subject: =?utf-8?")) {
		t.Errorf("non-ASCII subject not RFC 2047 encoded:\n%s", raw)
	}
	mr, parts := parseMail(t, raw)
	h := mr.Header
	if ct, _, _ := h.ContentType(); ct != "multipart/alternative" {
		t.Errorf("Content-Type %q, want multipart/alternative", ct)
	}
	if s, _ := h.Subject(); s != "Gerät registrieren – bitte" {
		t.Errorf("Subject decodes to %q", s)
	}
	if id, _ := h.MessageID(); id != "easgate.abc@easgate.test" {
		t.Errorf("Message-ID %q", id)
	}
	if d, _ := h.Date(); !d.Equal(date) {
		t.Errorf("Date %v", d)
	}
	if f, _ := h.AddressList("From"); len(f) != 1 || f[0].Address != "noreply@easgate.test" || f[0].Name != "Mail Access" {
		t.Errorf("From %v", f)
	}
	if to, _ := h.AddressList("To"); len(to) != 1 || to[0].Address != "alice@easgate.test" {
		t.Errorf("To %v", to)
	}
	if v := h.Get("Auto-Submitted"); v != "auto-generated" {
		t.Errorf("Auto-Submitted %q", v)
	}
	if v := h.Get("X-Auto-Response-Suppress"); v != "All" {
		t.Errorf("X-Auto-Response-Suppress %q", v)
	}
	if parts["text/plain"] != "Hallo Jörg\r\n" || parts["text/html"] != "<p>Hallo J&ouml;rg</p>" {
		t.Errorf("parts %q", parts)
	}
}

// Header injection regression tests: every caller-supplied value that reaches a header is
// rejected when it could end the field.
func TestHeaderInjection_SubjectCRLF(t *testing.T) {
	n, _ := New(testConfig("127.0.0.1:25"), openTestOutbox(t))
	r := remediation("dev1")
	r.Content.Subject = "hello\r\nBcc: victim@example.com"
	if _, err := n.Remediate(context.Background(), r); !errors.Is(err, ErrInvalidHeader) {
		t.Fatalf("got %v, want ErrInvalidHeader", err)
	}
	r.Content.Subject = "hello\nBcc: victim@example.com"
	if _, err := n.Remediate(context.Background(), r); !errors.Is(err, ErrInvalidHeader) {
		t.Fatalf("bare LF: got %v, want ErrInvalidHeader", err)
	}
}

func TestHeaderInjection_SubjectNUL(t *testing.T) {
	n, _ := New(testConfig("127.0.0.1:25"), openTestOutbox(t))
	r := remediation("dev1")
	r.Content.Subject = "a\x00b"
	if _, err := n.Remediate(context.Background(), r); !errors.Is(err, ErrInvalidHeader) {
		t.Fatalf("got %v, want ErrInvalidHeader", err)
	}
}

func TestHeaderInjection_RecipientCRLF(t *testing.T) {
	n, _ := New(testConfig("127.0.0.1:25"), openTestOutbox(t))
	for _, to := range []string{
		"alice@easgate.test\r\nBcc: victim@example.com",
		"alice@easgate.test\nX-Evil: 1",
		"=?utf-8?q?Alice=0D=0ABcc:_victim@example.com?= <alice@easgate.test>", // encoded CRLF in the name
		"alice@easgate.test, victim@example.com",
		"Undisclosed: alice@easgate.test;",
		"alice",
		"<alice@easgate.test>\x00",
	} {
		r := remediation("dev1")
		r.To = to
		if _, err := n.Remediate(context.Background(), r); !errors.Is(err, ErrInvalidAddress) {
			t.Errorf("To %q: got %v, want ErrInvalidAddress", to, err)
		}
	}
}

func TestHeaderInjection_DeviceIDInAdminEvent(t *testing.T) {
	cfg := testConfig("127.0.0.1:25")
	cfg.AdminRecipients = []string{"admin@easgate.test"}
	n, _ := New(cfg, openTestOutbox(t))
	for _, ev := range []Event{
		{Kind: EventQuarantine, User: "alice", DeviceID: "dev\r\nBcc: victim@example.com", Reason: "x"},
		{Kind: EventBlock, User: "alice\n", DeviceID: "d", Reason: "x"},
		{Kind: EventWipe, User: "alice", DeviceID: "d", Reason: "r\x00"},
	} {
		if _, err := n.Notify(context.Background(), ev); !errors.Is(err, ErrInvalidHeader) {
			t.Errorf("%+v: got %v, want ErrInvalidHeader", ev, err)
		}
	}
	if st := n.Stats(); st.Enqueued != 0 {
		t.Errorf("rejected events were queued: %+v", st)
	}
}

func TestHeaderInjection_ComposeRechecks(t *testing.T) {
	from := &mail.Address{Address: "noreply@easgate.test"}
	bad := &mail.Address{Name: "x\r\nBcc: v@example.com", Address: "a@easgate.test"}
	_, err := composeEmail(envelope{From: from, To: []*mail.Address{bad}, MessageID: "m@x", Date: time.Now()},
		Content{Subject: "s", Text: "t", HTML: "h"}, Config{}.Defaults().Limits)
	if !errors.Is(err, ErrInvalidHeader) {
		t.Fatalf("got %v", err)
	}
}

func TestConfigValidateReportsEveryError(t *testing.T) {
	err := Config{
		From:            "not an address",
		AdminRecipients: []string{"admin@x.test\r\nBcc: y@z"},
		SMTP:            SMTPConfig{TLS: "ssl", AuthMechanism: "CRAM-MD5", Password: "p", CAFile: "/nonexistent"},
		Webhook:         WebhookConfig{URL: "ftp://x"},
		Retry:           RetryConfig{InitialBackoff: time.Hour, MaxBackoff: time.Minute},
		Workers:         -1,
	}.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"From", "AdminRecipients[0]", "SMTP.Addr", "SMTP.TLS", "SMTP.AuthMechanism",
		"SMTP.Password", "SMTP.CAFile", "Webhook.URL", "Webhook.Secret", "Retry.MaxBackoff", "Workers"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %s:\n%v", want, err)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("empty config (notifications off) rejected: %v", err)
	}
	if err := testConfig("127.0.0.1:25").Validate(); err != nil {
		t.Errorf("test config rejected: %v", err)
	}
}

func TestDeliverSTARTTLSWithCAFileAndAuthPlain(t *testing.T) {
	cert, caFile := testCert(t)
	f := startFakeSMTP(t, fakeOpts{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, User: "relay", Password: "s3cret"})
	cfg := testConfig(f.Addr)
	cfg.SMTP.TLS = TLSStartTLS
	cfg.SMTP.CAFile = caFile
	cfg.SMTP.Username, cfg.SMTP.Password = "relay", "s3cret"
	ob := openTestOutbox(t)
	n := startNotifier(t, cfg, ob)
	id, err := n.Remediate(context.Background(), remediation("dev1"))
	if err != nil {
		t.Fatal(err)
	}
	it := waitState(t, ob, id, StateSent)
	if it.Attempts != 1 {
		t.Errorf("attempts %d", it.Attempts)
	}
	msgs := f.messages()
	if len(msgs) != 1 || msgs[0].From != "noreply@easgate.test" || msgs[0].To[0] != "alice@easgate.test" {
		t.Fatalf("received %+v", msgs)
	}
	mr, _ := parseMail(t, msgs[0].Data)
	if mid, _ := mr.Header.MessageID(); mid != n.MessageID(id) {
		t.Errorf("Message-ID %q, want %q", mid, n.MessageID(id))
	}
}

func TestDeliverImplicitTLS(t *testing.T) {
	cert, caFile := testCert(t)
	f := startFakeSMTP(t, fakeOpts{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, Implicit: true})
	cfg := testConfig(f.Addr)
	cfg.SMTP.TLS = TLSImplicit
	cfg.SMTP.CAFile = caFile
	ob := openTestOutbox(t)
	n := startNotifier(t, cfg, ob)
	id, err := n.Remediate(context.Background(), remediation("dev1"))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, ob, id, StateSent)
}

func TestDeliverBadCertificateRetriesThenDeadLetters(t *testing.T) {
	cert, _ := testCert(t)
	_, otherCA := testCert(t) // a CA that did not sign the server's certificate
	f := startFakeSMTP(t, fakeOpts{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	cfg := testConfig(f.Addr)
	cfg.SMTP.TLS = TLSStartTLS
	cfg.SMTP.CAFile = otherCA
	cfg.Retry.MaxAttempts = 3
	ob := openTestOutbox(t)
	n := startNotifier(t, cfg, ob)
	id, err := n.Remediate(context.Background(), remediation("dev1"))
	if err != nil {
		t.Fatal(err)
	}
	it := waitState(t, ob, id, StateDead)
	if it.Attempts != 3 || !strings.Contains(it.LastError, "certificate") {
		t.Errorf("attempts %d, last error %q", it.Attempts, it.LastError)
	}
	if len(f.messages()) != 0 {
		t.Error("message delivered over an unverified connection")
	}
}

func TestDeliverSTARTTLSNotOfferedIsRetried(t *testing.T) {
	f := startFakeSMTP(t, fakeOpts{})
	cfg := testConfig(f.Addr)
	cfg.SMTP.TLS = TLSStartTLS
	cfg.Retry.MaxAttempts = 2
	ob := openTestOutbox(t)
	n := startNotifier(t, cfg, ob)
	id, _ := n.Remediate(context.Background(), remediation("dev1"))
	it := waitState(t, ob, id, StateDead)
	if it.Attempts != 2 || !strings.Contains(it.LastError, "STARTTLS") {
		t.Errorf("attempts %d, last error %q", it.Attempts, it.LastError)
	}
}

func TestDeliverAuthFailureIsRetried(t *testing.T) {
	f := startFakeSMTP(t, fakeOpts{User: "relay", Password: "right"})
	cfg := testConfig(f.Addr)
	cfg.SMTP.Username, cfg.SMTP.Password = "relay", "wrong"
	cfg.Retry.MaxAttempts = 3
	ob := openTestOutbox(t)
	n := startNotifier(t, cfg, ob)
	id, _ := n.Remediate(context.Background(), remediation("dev1"))
	it := waitState(t, ob, id, StateDead)
	if it.Attempts != 3 || !strings.Contains(it.LastError, "auth") {
		t.Errorf("attempts %d, last error %q", it.Attempts, it.LastError)
	}
}

func TestDeliverSMTPDownThenUp(t *testing.T) {
	// Reserve a port with nothing listening.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	cfg := testConfig(addr)
	cfg.Retry = RetryConfig{MaxAttempts: 1000, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	ob := openTestOutbox(t)
	n := startNotifier(t, cfg, ob)
	id, err := n.Remediate(context.Background(), remediation("dev1"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "retries", func() bool { return n.Stats().Retried >= 2 })
	it, _ := ob.Get(context.Background(), id)
	if it.State == StateSent || it.State == StateDead || !strings.Contains(it.LastError, "dial") {
		t.Fatalf("row %+v", it)
	}
	// The relay comes up on that port: the queued mail goes out.
	f := &fakeSMTP{byID: map[string]int{}}
	f.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &fakeSession{s: f}, nil }))
	f.srv.AllowInsecureAuth = true
	f.srv.ErrorLog = nopLogger{}
	l2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go f.srv.Serve(l2)
	defer f.srv.Close()
	waitState(t, ob, id, StateSent)
}

func TestDeliver4xxRetriesThenSucceeds(t *testing.T) {
	f := startFakeSMTP(t, fakeOpts{})
	var calls atomic.Int32
	f.setFail(func(stage string) error {
		if stage == "RCPT" && calls.Add(1) <= 2 {
			return errTemp
		}
		return nil
	})
	ob := openTestOutbox(t)
	n := startNotifier(t, testConfig(f.Addr), ob)
	id, _ := n.Remediate(context.Background(), remediation("dev1"))
	it := waitState(t, ob, id, StateSent)
	if it.Attempts != 3 {
		t.Errorf("attempts %d, want 3", it.Attempts)
	}
	if got := len(f.messages()); got != 1 {
		t.Errorf("%d messages received", got)
	}
}

func TestDeliver5xxDeadLettersAtOnceAndRequeue(t *testing.T) {
	f := startFakeSMTP(t, fakeOpts{})
	f.setFail(func(stage string) error {
		if stage == "DATA" {
			return errPerm
		}
		return nil
	})
	ob := openTestOutbox(t)
	n := startNotifier(t, testConfig(f.Addr), ob)
	id, _ := n.Remediate(context.Background(), remediation("dev1"))
	it := waitState(t, ob, id, StateDead)
	if it.Attempts != 1 || !strings.Contains(it.LastError, "550") {
		t.Errorf("attempts %d, last error %q", it.Attempts, it.LastError)
	}
	dead, err := ob.List(context.Background(), ListFilter{State: StateDead})
	if err != nil || len(dead) != 1 || dead[0].ID != id {
		t.Fatalf("dead letters %v %v", dead, err)
	}
	f.setFail(nil)
	if err := ob.Requeue(context.Background(), id, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitState(t, ob, id, StateSent)
	if err := ob.Requeue(context.Background(), id, time.Now()); !errors.Is(err, ErrNotFound) {
		t.Errorf("requeue of a sent row: %v", err)
	}
}

func TestDeliverSlowServerTimesOutAndRetries(t *testing.T) {
	f := startFakeSMTP(t, fakeOpts{})
	f.setDelay(700 * time.Millisecond)
	cfg := testConfig(f.Addr)
	cfg.SMTP.DataTimeout = 200 * time.Millisecond
	ob := openTestOutbox(t)
	n := startNotifier(t, cfg, ob)
	id, _ := n.Remediate(context.Background(), remediation("dev1"))
	waitFor(t, "a timed-out attempt", func() bool { return n.Stats().Retried >= 1 })
	f.setDelay(0)
	it := waitState(t, ob, id, StateSent)
	if it.Attempts < 2 {
		t.Errorf("attempts %d", it.Attempts)
	}
	// The slow attempts were accepted by the server after the client gave up: duplicates, all
	// with the same Message-ID.
	distinct, total := f.distinct()
	if distinct != 1 || total < 1 {
		t.Errorf("distinct %d total %d", distinct, total)
	}
}

func TestLeaseExpiryRedelivers(t *testing.T) {
	ob := openTestOutbox(t)
	ctx := context.Background()
	if err := ob.Enqueue(ctx, &Item{ID: "x1", Channel: ChannelEmail, User: "u", Recipients: []string{"a@b.test"}, Payload: []byte("m")}, 0); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	first, err := ob.Claim(ctx, now, time.Minute)
	if err != nil || first == nil {
		t.Fatalf("claim: %v %v", first, err)
	}
	if again, _ := ob.Claim(ctx, now.Add(30*time.Second), time.Minute); again != nil {
		t.Fatal("leased row claimed twice")
	}
	second, err := ob.Claim(ctx, now.Add(2*time.Minute), time.Minute)
	if err != nil || second == nil || second.ID != "x1" || second.Attempts != 2 {
		t.Fatalf("after lease expiry: %+v %v", second, err)
	}
	// The first worker's late outcome is refused: its lease is gone.
	if err := ob.MarkSent(ctx, "x1", first.Lease, time.Now()); !errors.Is(err, ErrNotFound) {
		t.Errorf("stale MarkSent: %v", err)
	}
	if err := ob.MarkSent(ctx, "x1", second.Lease, time.Now()); err != nil {
		t.Error(err)
	}
}

func TestDedupOneMessagePerUserDeviceCause(t *testing.T) {
	f := startFakeSMTP(t, fakeOpts{})
	ob := openTestOutbox(t)
	n := startNotifier(t, testConfig(f.Addr), ob)
	ctx := context.Background()
	if _, err := n.Remediate(ctx, remediation("dev1")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := n.Remediate(ctx, remediation("dev1")); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("repeat %d: %v", i, err)
		}
	}
	other := remediation("dev1")
	other.Cause = "non-compliant"
	if _, err := n.Remediate(ctx, other); err != nil {
		t.Fatalf("other cause suppressed: %v", err)
	}
	waitFor(t, "2 deliveries", func() bool { return n.Stats().Sent == 2 })
	if st := n.Stats(); st.Duplicates != 20 {
		t.Errorf("stats %+v", st)
	}
}

func TestDedupWindowExpires(t *testing.T) {
	ob := openTestOutbox(t)
	ctx := context.Background()
	it := func(id string) *Item {
		return &Item{ID: id, Channel: ChannelEmail, User: "u", DedupKey: "k", Recipients: []string{"a@b.test"}, Payload: []byte("m")}
	}
	if err := ob.Enqueue(ctx, it("1"), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := ob.Enqueue(ctx, it("2"), 50*time.Millisecond); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("within window: %v", err)
	}
	time.Sleep(60 * time.Millisecond)
	if err := ob.Enqueue(ctx, it("3"), 50*time.Millisecond); err != nil {
		t.Fatalf("after window: %v", err)
	}
}

func TestRateLimitTenThousandDeviceIDsOneUser(t *testing.T) {
	f := startFakeSMTP(t, fakeOpts{})
	cfg := testConfig(f.Addr)
	cfg.PerUser = RateLimit{} // defaults: burst 5, one per hour
	ob := openTestOutbox(t)
	n := startNotifier(t, cfg, ob)
	ctx := context.Background()
	queued, limited := 0, 0
	for i := 0; i < 10000; i++ {
		_, err := n.Remediate(ctx, remediation(fmt.Sprintf("FAKEDEVICE%05d", i)))
		switch {
		case err == nil:
			queued++
		case errors.Is(err, ErrRateLimited):
			limited++
		default:
			t.Fatal(err)
		}
	}
	if queued != 5 || limited != 9995 {
		t.Fatalf("queued %d, rate limited %d", queued, limited)
	}
	// Another user is not affected.
	r := remediation("bobdev")
	r.User, r.To = "bob", "bob@easgate.test"
	if _, err := n.Remediate(ctx, r); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "6 deliveries", func() bool { return n.Stats().Sent == 6 })
	time.Sleep(50 * time.Millisecond)
	if got := len(f.messages()); got != 6 {
		t.Errorf("%d e-mails sent", got)
	}
}

func TestGlobalRateLimitPacesDelivery(t *testing.T) {
	l := newLimiter(RateLimit{Burst: 2, Every: time.Hour}, 1)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	if d, _ := l.reserve("", false); d != 0 {
		t.Fatal(d)
	}
	if d, _ := l.reserve("", false); d != 0 {
		t.Fatal(d)
	}
	if d, _ := l.reserve("", false); d != time.Hour {
		t.Fatalf("third token due in %v, want 1h", d)
	}
	now = now.Add(3 * time.Hour)
	if !l.allow("") {
		t.Fatal("bucket did not refill")
	}
}

func TestPerUserLimiterForgetsFullBuckets(t *testing.T) {
	l := newLimiter(RateLimit{Burst: 1, Every: time.Millisecond}, 100)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	for i := 0; i < 100; i++ {
		l.allow(fmt.Sprint(i))
	}
	now = now.Add(2 * time.Second)
	l.allow("new")
	if s := l.size(); s != 1 {
		t.Errorf("tracked %d users after trim, want 1", s)
	}
}

type webhookReceiver struct {
	mu      sync.Mutex
	bodies  [][]byte
	ids     []string
	sigErrs []error
	status  func(n int) int
}

func (w *webhookReceiver) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.mu.Lock()
	w.bodies = append(w.bodies, b)
	w.ids = append(w.ids, r.Header.Get(EventIDHeader))
	w.sigErrs = append(w.sigErrs, VerifyWebhookSignature([]byte("hook-secret"), r.Header.Get(SignatureHeader), b, time.Now(), 5*time.Minute))
	n := len(w.bodies)
	w.mu.Unlock()
	rw.WriteHeader(w.status(n))
}

func (w *webhookReceiver) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.bodies)
}

func TestWebhookSignedAndRetried(t *testing.T) {
	recv := &webhookReceiver{status: func(n int) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	}}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	cfg := Config{
		Webhook:      WebhookConfig{URL: srv.URL + "/hook", Secret: "hook-secret"},
		PollInterval: 20 * time.Millisecond,
		Retry:        RetryConfig{MaxAttempts: 5, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
		PerUser:      RateLimit{Off: true},
		Global:       RateLimit{Off: true},
	}
	ob := openTestOutbox(t)
	n := startNotifier(t, cfg, ob)
	ev := Event{Kind: EventWipe, User: "alice", DeviceID: "ApplDEV1", Reason: "admin-wipe", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	ids, err := n.Notify(context.Background(), ev)
	if err != nil || len(ids) != 1 {
		t.Fatalf("notify: %v %v", ids, err)
	}
	it := waitState(t, ob, ids[0], StateSent)
	if it.Attempts != 3 || recv.count() != 3 {
		t.Fatalf("attempts %d, posts %d", it.Attempts, recv.count())
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	for i := range recv.bodies {
		if recv.sigErrs[i] != nil {
			t.Errorf("post %d: signature: %v", i, recv.sigErrs[i])
		}
		if recv.ids[i] != ids[0] {
			t.Errorf("post %d: event id %q, want %q", i, recv.ids[i], ids[0])
		}
	}
	var got webhookBody
	if err := json.Unmarshal(recv.bodies[2], &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != ids[0] || got.Kind != EventWipe || got.User != "alice" || got.DeviceID != "ApplDEV1" ||
		got.Reason != "admin-wipe" || !got.Time.Equal(ev.Time) {
		t.Errorf("body %+v", got)
	}
}

func TestWebhook4xxDeadLetters(t *testing.T) {
	recv := &webhookReceiver{status: func(int) int { return http.StatusBadRequest }}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	cfg := Config{Webhook: WebhookConfig{URL: srv.URL, Secret: "hook-secret"}, PollInterval: 20 * time.Millisecond,
		PerUser: RateLimit{Off: true}, Global: RateLimit{Off: true}}
	ob := openTestOutbox(t)
	n := startNotifier(t, cfg, ob)
	ids, err := n.Notify(context.Background(), Event{Kind: EventBlock, User: "u", DeviceID: "d", Reason: "r"})
	if err != nil {
		t.Fatal(err)
	}
	it := waitState(t, ob, ids[0], StateDead)
	if it.Attempts != 1 || !strings.Contains(it.LastError, "400") {
		t.Errorf("row %+v", it)
	}
}

func TestVerifyWebhookSignatureRejectsTampering(t *testing.T) {
	secret := []byte("k")
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"kind":"wipe"}`)
	h := SignWebhook(secret, now, body)
	if err := VerifyWebhookSignature(secret, h, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := VerifyWebhookSignature(secret, h, []byte(`{"kind":"release"}`), now, 5*time.Minute); !errors.Is(err, ErrSignatureMismatch) {
		t.Errorf("tampered body: %v", err)
	}
	if err := VerifyWebhookSignature([]byte("other"), h, body, now, 5*time.Minute); !errors.Is(err, ErrSignatureMismatch) {
		t.Errorf("wrong secret: %v", err)
	}
	if err := VerifyWebhookSignature(secret, h, body, now.Add(10*time.Minute), 5*time.Minute); !errors.Is(err, ErrSignatureExpired) {
		t.Errorf("replay: %v", err)
	}
	if err := VerifyWebhookSignature(secret, "v1=zz", body, now, 5*time.Minute); !errors.Is(err, ErrSignatureMalformed) {
		t.Errorf("malformed: %v", err)
	}
	// The timestamp is covered by the MAC: moving it invalidates the signature.
	moved := strings.Replace(h, "t=1800000000", "t=1800000600", 1)
	if err := VerifyWebhookSignature(secret, moved, body, now.Add(10*time.Minute), 5*time.Minute); !errors.Is(err, ErrSignatureMismatch) {
		t.Errorf("moved timestamp: %v", err)
	}
}

func TestAdminEventEmailAndWebhook(t *testing.T) {
	f := startFakeSMTP(t, fakeOpts{})
	recv := &webhookReceiver{status: func(int) int { return 200 }}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	cfg := testConfig(f.Addr)
	cfg.AdminRecipients = []string{"admin@easgate.test", "Sec Team <sec@easgate.test>"}
	cfg.Webhook = WebhookConfig{URL: srv.URL, Secret: "hook-secret"}
	ob := openTestOutbox(t)
	n := startNotifier(t, cfg, ob)
	ids, err := n.Notify(context.Background(), Event{Kind: EventQuarantine, User: "alice", DeviceID: "<b>dev</b>", Reason: "not-enrolled"})
	if err != nil || len(ids) != 2 {
		t.Fatalf("%v %v", ids, err)
	}
	waitFor(t, "both deliveries", func() bool { return n.Stats().Sent == 2 })
	msgs := f.messages()
	if len(msgs) != 1 || len(msgs[0].To) != 2 {
		t.Fatalf("admin mail %+v", msgs)
	}
	_, parts := parseMail(t, msgs[0].Data)
	if !strings.Contains(parts["text/html"], "&lt;b&gt;dev&lt;/b&gt;") || strings.Contains(parts["text/html"], "<b>dev</b>") {
		t.Errorf("device id not escaped in HTML:\n%s", parts["text/html"])
	}
	// Same event again: suppressed on both channels.
	if _, err := n.Notify(context.Background(), Event{Kind: EventQuarantine, User: "alice", DeviceID: "<b>dev</b>", Reason: "not-enrolled"}); !errors.Is(err, ErrDuplicate) {
		t.Errorf("repeat: %v", err)
	}
}

func TestSharedDatabaseHandle(t *testing.T) {
	ob := openTestOutbox(t)
	// A second outbox on the same *sql.DB (as the gateway would share its registry database)
	// migrates idempotently and sees the same rows.
	ob2, err := NewSQLiteOutbox(context.Background(), ob.db)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Enqueue(context.Background(), &Item{ID: "s1", Channel: ChannelEmail, User: "u", Recipients: []string{"a@b.test"}, Payload: []byte("m")}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := ob2.Get(context.Background(), "s1"); err != nil {
		t.Fatal(err)
	}
	if err := ob2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ob.db.Ping(); err != nil {
		t.Fatalf("Close of a borrowed handle closed it: %v", err)
	}
}
