package servers

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// waitForMessages polls the user's INBOX until it holds want messages or 20 s pass.
func waitForMessages(t *testing.T, d *Dovecot, user, pass string, want uint32) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(d.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		sel, err := c.Select("INBOX", nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if sel.NumMessages >= want {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("INBOX of %s has %d messages after 20 s, want %d", user, sel.NumMessages, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestPostfixDeliversIntoDovecot(t *testing.T) {
	d := StartDovecot(t, DovecotOptions{})
	alice := d.AddUser("alice", "pw-alice")
	p := StartPostfix(t, PostfixOptions{Dovecot: d, STARTTLS: true})

	msg := "From: sender@example.org\r\nTo: " + alice + "\r\nSubject: via postfix\r\nMessage-ID: <pf-1@example.org>\r\n\r\nhello through the MTA\r\n"
	c, err := smtp.DialStartTLS(p.SMTPAddr, p.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("sender@example.org", []string{alice}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	// Relaying outside the virtual domains is refused.
	if err := c.SendMail("sender@example.org", []string{"someone@example.com"}, strings.NewReader(msg)); err == nil {
		t.Fatal("relay to an outside domain accepted")
	}
	c.Close()

	ic := waitForMessages(t, d, alice, "pw-alice", 1)
	msgs, err := ic.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	body := msgs[0].FindBodySection(&imap.FetchItemBodySection{})
	for _, want := range []string{"Message-ID: <pf-1@example.org>", "hello through the MTA", "Received: from"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("delivered message lacks %q:\n%s", want, body)
		}
	}
}

func TestPostfixSubmissionAuthThroughDovecot(t *testing.T) {
	d := StartDovecot(t, DovecotOptions{})
	bob := d.AddUser("bob", "pw-bob")
	p := StartPostfix(t, PostfixOptions{Dovecot: d, Submission: true})

	msg := "From: " + bob + "\r\nTo: " + bob + "\r\nSubject: submitted\r\n\r\nx\r\n"
	c, err := smtp.Dial(p.SubmissionAddr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", bob, "wrong")); err == nil {
		t.Fatal("AUTH with a wrong password accepted")
	}
	c.Close()
	c, err = smtp.Dial(p.SubmissionAddr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail(bob, []string{bob}, strings.NewReader(msg)); err == nil {
		t.Fatal("unauthenticated submission accepted")
	}
	c.Close()
	c, err = smtp.Dial(p.SubmissionAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", bob, "pw-bob")); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail(bob, []string{bob}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	waitForMessages(t, d, bob, "pw-bob", 1)
}

func TestPostfixRestartDeliversQueuedMail(t *testing.T) {
	d := StartDovecot(t, DovecotOptions{})
	carol := d.AddUser("carol", "pw")
	p := StartPostfix(t, PostfixOptions{Dovecot: d})
	d.Stop()
	c, err := smtp.Dial(p.SMTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("s@example.org", []string{carol}, strings.NewReader("Subject: q\r\n\r\nqueued\r\n")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	p.Restart()
	d.Start()
	p.Flush()
	waitForMessages(t, d, carol, "pw", 1)
	if n := p.QueueLen(); n != 0 {
		t.Errorf("queue holds %d messages after delivery", n)
	}
}
