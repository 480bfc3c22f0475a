package gateway

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message/mail"

	"github.com/easgate/easgate/bench/servers"
	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/eas/wbxml"
)

// TestRemediationMailReachesRealMailbox is the quarantine story end to end with real servers:
// an unknown device is quarantined, the gateway composes the remediation message and submits it
// to a real Postfix, which delivers into a real Dovecot; the test reads it back over IMAP, follows
// its link to the remediation page, releases the device and sees the page say so.
func TestRemediationMailReachesRealMailbox(t *testing.T) {
	dovecot := servers.StartDovecot(t, servers.DovecotOptions{Users: []servers.DovecotUser{{Name: "jdoe", Password: "imap-pw"}}})
	postfix := servers.StartPostfix(t, servers.PostfixOptions{Dovecot: dovecot})
	g := startGateway(t, func(c *Config, p *decision.Policy) {
		p.UnknownDevice = decision.Quarantine
		c.Users.DefaultDomain = dovecot.Domain
		c.Notify = NotifyConfig{From: "it-help@" + dovecot.Domain, SMTP: NotifySMTP{Addr: postfix.SMTPAddr, TLS: "none"},
			AdminRecipients: []string{"jdoe@" + dovecot.Domain}}
	})

	// The quarantined device polls twice: one remediation message, not two.
	for i := 0; i < 2; i++ {
		resp, body := g.do(easReq{cmd: "FolderSync", user: "jdoe", device: "MAILDEV1", body: mustEncode(
			wbxml.NewElement(wbxml.FolderHierarchyFolderSync, wbxml.NewText(wbxml.FolderHierarchySyncKey, "0")))})
		if resp.StatusCode != 200 || statusOf(t, body) != "1" {
			t.Fatalf("quarantine FolderSync: %d", resp.StatusCode)
		}
	}

	c, err := imapclient.DialInsecure(dovecot.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("jdoe@"+dovecot.Domain, "imap-pw").Wait(); err != nil {
		t.Fatal(err)
	}
	var msgs []*imapclient.FetchMessageBuffer
	deadline := time.Now().Add(45 * time.Second)
	for {
		sel, err := c.Select("INBOX", nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if sel.NumMessages >= 2 || time.Now().After(deadline) && sel.NumMessages > 0 {
			var set imap.SeqSet
			set.AddRange(1, sel.NumMessages)
			if msgs, err = c.Fetch(set, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect(); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	var remediation []byte
	var subjects []string
	for _, m := range msgs {
		for _, raw := range m.BodySection {
			r, err := mail.CreateReader(strings.NewReader(string(raw.Bytes)))
			if err != nil {
				t.Fatal(err)
			}
			subj, _ := r.Header.Subject()
			subjects = append(subjects, subj)
			if r.Header.Get("Auto-Submitted") != "auto-generated" || r.Header.Get("Message-Id") == "" {
				t.Errorf("headers: %v", r.Header)
			}
			if testing.Verbose() {
				t.Logf("message:\n%s", raw.Bytes)
			}
			if strings.Contains(string(raw.Bytes), "/portal/d/") {
				for {
					p, err := r.NextPart()
					if err != nil {
						break
					}
					b, _ := io.ReadAll(p.Body)
					if strings.Contains(p.Header.Get("Content-Type"), "text/plain") {
						remediation = b
					}
				}
			}
		}
	}
	if remediation == nil {
		t.Fatalf("no remediation message among %d delivered: %q", len(msgs), subjects)
	}
	if len(msgs) != 2 {
		t.Errorf("delivered %d messages (want the remediation message and the admin alert): %q", len(msgs), subjects)
	}

	// Follow the link (rewritten from the external URL onto the test listener).
	link := regexp.MustCompile(`https://gw\.example\.com(/portal/d/[A-Za-z0-9_\-.~%]+)`).FindSubmatch(remediation)
	if link == nil {
		t.Fatalf("no portal link in:\n%s\nraw messages: %d", remediation, len(msgs))
	}
	page := func() string {
		resp, err := http.Get("http://" + g.addr + string(link[1]))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("portal: %d %s", resp.StatusCode, b)
		}
		return string(b)
	}
	before := page()
	if code, _ := g.adminDo("POST", "/admin/v1/devices/jdoe@"+dovecot.Domain+"/MAILDEV1/release", ""); code != 200 {
		t.Fatalf("release: %d", code)
	}
	after := page()
	if before == after {
		t.Fatal("the remediation page did not change after the release")
	}
	if g.up.hits.Load() != 0 {
		t.Fatal("the quarantined device reached the upstream")
	}
}

// TestPortalWipeReachesRegistry: a user erases company mail from their own lost device through
// the remediation page; the gateway records an account-only wipe and the device's next request
// is answered RemoteWipeRequested (140), which sends it to Provision, where the wipe is delivered. The form is read from the page like a browser would.
func TestPortalWipeReachesRegistry(t *testing.T) {
	g := startGateway(t, func(_ *Config, p *decision.Policy) { p.UnknownDevice = decision.Quarantine })
	g.do(easReq{cmd: "Sync", user: "jdoe", device: "LOST161", version: "16.1", body: syncRequest})
	link := g.srv.portalLink("jdoe@example.com", "LOST161")
	path := strings.TrimPrefix(link, "https://gw.example.com")
	resp, err := http.Get("http://" + g.addr + path)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("device page: %d, no wipe form:\n%s", resp.StatusCode, page)
	}
	post := func(origin string) int {
		form := "csrf=" + string(m[1]) + "&confirm=yes"
		req, _ := http.NewRequest("POST", "http://"+g.addr+path+"/wipe", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("https://evil.example"); code != 403 {
		t.Fatalf("foreign origin: %d", code)
	}
	if code := post("https://gw.example.com"); code != 200 {
		t.Fatalf("wipe: %d", code)
	}
	d, err := g.engine.Device(context.Background(), "jdoe@example.com", "LOST161")
	if err != nil || d.Wipe.Kind != decision.WipeAccountOnly {
		t.Fatalf("registry after the portal wipe: %+v %v", d.Wipe, err)
	}
	// The device's next request is told to provision, where the wipe is delivered.
	resp2, body := g.do(easReq{cmd: "Sync", user: "jdoe", device: "LOST161", version: "16.1", body: syncRequest})
	if resp2.StatusCode != 200 || statusOf(t, body) != "140" {
		t.Fatalf("next request after the wipe: %d status %q", resp2.StatusCode, statusOf(t, body))
	}
}
