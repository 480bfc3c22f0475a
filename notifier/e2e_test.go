package notifier_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message/mail"

	"github.com/easgate/easgate/bench/servers"
	"github.com/easgate/easgate/notifier"
)

// fetchNewest waits until the user's INBOX holds want messages and returns the newest one's bytes.
func fetchNewest(t *testing.T, d *servers.Dovecot, user, pass string, want uint32) []byte {
	t.Helper()
	c, err := imapclient.DialStartTLS(d.IMAPAddr, &imapclient.Options{TLSConfig: d.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		sel, err := c.Select("INBOX", nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if sel.NumMessages >= want {
			section := &imap.FetchItemBodySection{}
			msgs, err := c.Fetch(imap.SeqSetNum(sel.NumMessages), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
			if err != nil {
				t.Fatal(err)
			}
			return msgs[0].FindBodySection(section)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d messages after 30 s, want %d", user, sel.NumMessages, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestEndToEndPostfixDovecot sends a remediation e-mail and an admin e-mail through a real
// Postfix (submission, STARTTLS verified against its CA, AUTH PLAIN checked by Dovecot) that
// delivers over LMTP into a real Dovecot, and reads both back over IMAP.
func TestEndToEndPostfixDovecot(t *testing.T) {
	d := servers.StartDovecot(t, servers.DovecotOptions{STARTTLS: true})
	alice := d.AddUser("alice", "alice-pw")
	admin := d.AddUser("secops", "secops-pw")
	relayUser := d.AddUser("notifier", "relay-pw")
	p := servers.StartPostfix(t, servers.PostfixOptions{Dovecot: d, STARTTLS: true, Submission: true})

	caFile := filepath.Join(t.TempDir(), "relay-ca.pem")
	if err := os.WriteFile(caFile, p.CACertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := notifier.Config{
		From:            "Mail Access <notifier@easgate.test>",
		AdminRecipients: []string{admin},
		SMTP: notifier.SMTPConfig{
			Addr: p.SubmissionAddr, TLS: notifier.TLSStartTLS, CAFile: caFile, ServerName: "127.0.0.1",
			Username: relayUser, Password: "relay-pw", HeloName: "gateway.easgate.test",
		},
		PollInterval: 50 * time.Millisecond,
	}
	ob, err := notifier.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "gateway.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	n, err := notifier.New(cfg, ob)
	if err != nil {
		t.Fatal(err)
	}
	n.Start()
	defer n.Close()

	id, err := n.Remediate(context.Background(), notifier.Remediation{
		User: alice, DeviceID: "ApplF17ABCDEF", Cause: "not-enrolled", To: alice,
		Content: notifier.Content{
			Subject: "Ihr Gerät ist gesperrt – jetzt registrieren",
			Text:    "Your iPhone cannot get mail until it is enrolled.\r\nOpen https://portal.easgate.test/enrol\r\n",
			HTML:    `<p>Your iPhone cannot get mail until it is <a href="https://portal.easgate.test/enrol">enrolled</a>.</p>`,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	raw := fetchNewest(t, d, alice, "alice-pw", 1)

	mr, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	h := mr.Header
	if s, _ := h.Subject(); s != "Ihr Gerät ist gesperrt – jetzt registrieren" {
		t.Errorf("Subject %q", s)
	}
	if mid, _ := h.MessageID(); mid != n.MessageID(id) {
		t.Errorf("Message-ID %q, want %q", mid, n.MessageID(id))
	}
	if from, _ := h.AddressList("From"); len(from) != 1 || from[0].Address != "notifier@easgate.test" {
		t.Errorf("From %v", from)
	}
	if to, _ := h.AddressList("To"); len(to) != 1 || to[0].Address != alice {
		t.Errorf("To %v", to)
	}
	if date, err := h.Date(); err != nil || time.Since(date) > time.Minute {
		t.Errorf("Date %v %v", date, err)
	}
	if h.Get("Auto-Submitted") != "auto-generated" || h.Get("X-Auto-Response-Suppress") != "All" {
		t.Errorf("auto-reply suppression headers: %q %q", h.Get("Auto-Submitted"), h.Get("X-Auto-Response-Suppress"))
	}
	if ct, _, _ := h.ContentType(); ct != "multipart/alternative" {
		t.Errorf("Content-Type %q", ct)
	}
	if recv := strings.Join(h.Values("Received"), "\n"); !strings.Contains(recv, "with ESMTPSA") {
		t.Errorf("not submitted over TLS with AUTH (ESMTPSA): Received %q", recv)
	}
	parts := map[string]string{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, params, _ := part.Header.(*mail.InlineHeader).ContentType()
		if params["charset"] != "utf-8" {
			t.Errorf("%s charset %q", ct, params["charset"])
		}
		b, _ := io.ReadAll(part.Body)
		parts[ct] = string(b)
	}
	if !strings.Contains(parts["text/plain"], "https://portal.easgate.test/enrol") ||
		!strings.Contains(parts["text/html"], `<a href="https://portal.easgate.test/enrol">enrolled</a>`) || len(parts) != 2 {
		t.Errorf("parts %q", parts)
	}

	// Admin event: e-mail to the admin mailbox.
	if _, err := n.Notify(context.Background(), notifier.Event{Kind: notifier.EventWipe, User: alice, DeviceID: "ApplF17ABCDEF", Reason: "admin-wipe"}); err != nil {
		t.Fatal(err)
	}
	adminRaw := fetchNewest(t, d, admin, "secops-pw", 1)
	if !bytes.Contains(adminRaw, []byte("ApplF17ABCDEF")) || !bytes.Contains(adminRaw, []byte("admin-wipe")) {
		t.Errorf("admin e-mail:\n%s", adminRaw)
	}
	if st := n.Stats(); st.Sent != 2 || st.Dead != 0 {
		t.Errorf("stats %+v", st)
	}

	// AUTH LOGIN against the same relay, from a second Notifier taking over the outbox (the
	// first is closed, so only the second one's workers deliver).
	n.Close()
	cfg.SMTP.AuthMechanism = "LOGIN"
	n2, err := notifier.New(cfg, ob)
	if err != nil {
		t.Fatal(err)
	}
	n2.Start()
	defer n2.Close()
	id2, err := n2.Remediate(context.Background(), notifier.Remediation{
		User: alice, DeviceID: "androidc1234", Cause: "non-compliant", To: alice,
		Content: notifier.Content{Subject: "Update your phone", Text: "Update Android.\r\n", HTML: "<p>Update Android.</p>"},
	})
	if err != nil {
		t.Fatal(err)
	}
	raw2 := fetchNewest(t, d, alice, "alice-pw", 2)
	if !bytes.Contains(raw2, []byte(n2.MessageID(id2))) {
		t.Errorf("second remediation (AUTH LOGIN) not delivered:\n%s", raw2)
	}
	maillog, err := os.ReadFile(p.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, mech := range []string{"sasl_method=PLAIN", "sasl_method=LOGIN"} {
		if !bytes.Contains(maillog, []byte(mech+", sasl_username="+relayUser)) {
			t.Errorf("Postfix log lacks %s for %s", mech, relayUser)
		}
	}
}
