package servers

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
)

func TestDovecotLMTPDeliveryReadOverIMAP(t *testing.T) {
	d := StartDovecot(t, DovecotOptions{STARTTLS: true, LMTPSocket: true})
	alice := d.AddUser("alice", "secret-a")

	msg := "From: bob@easgate.test\r\nTo: " + alice + "\r\nSubject: hello\r\nMessage-ID: <lmtp-1@easgate.test>\r\n\r\nbody line\r\n"
	lmtpDeliver(t, "tcp", d.LMTPAddr, alice, msg)
	lmtpDeliver(t, "unix", d.LMTPSocket, alice, msg)

	c, err := imapclient.DialStartTLS(d.IMAPAddr, &imapclient.Options{TLSConfig: d.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(alice, "secret-a").Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 2 {
		t.Fatalf("INBOX has %d messages, want 2", sel.NumMessages)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || !bytes.Contains(msgs[0].FindBodySection(&imap.FetchItemBodySection{}), []byte("Subject: hello")) {
		t.Fatalf("fetched %+v", msgs)
	}
	if err := c.Login(alice, "wrong").Wait(); err == nil {
		t.Fatal("second login with wrong password accepted")
	}
}

func TestDovecotRestartKeepsPortsAndData(t *testing.T) {
	d := StartDovecot(t, DovecotOptions{Users: []DovecotUser{{Name: "carol", Password: "pw"}}})
	carol := "carol@easgate.test"
	lmtpDeliver(t, "tcp", d.LMTPAddr, carol, "Subject: before\r\n\r\nx\r\n")
	d.Restart()
	c, err := imapclient.DialInsecure(d.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(carol, "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 1 {
		t.Fatalf("after restart INBOX has %d messages, want 1", sel.NumMessages)
	}
	d.Stop()
	if _, err := imapclient.DialInsecure(d.IMAPAddr, nil); err == nil {
		t.Fatal("IMAP still accepting after Stop")
	}
	d.Start()
}

func lmtpDeliver(t *testing.T, network, addr, rcpt, msg string) {
	t.Helper()
	conn, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("test.easgate.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("bob@easgate.test", []string{rcpt}, strings.NewReader(msg)); err != nil {
		t.Fatalf("LMTP delivery to %s over %s: %v", rcpt, network, err)
	}
}
