package gateway

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/easgate/easgate/bench/servers"
	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/eas/wbxml"
	"github.com/easgate/easgate/oauth/oauthtest"
)

// TestIMAPBackendBearerThroughRealDovecot is the OAuth story of the IMAP backend end to end:
// an OAuth client (bearer token, no password) syncs its mailbox through the gateway from a real
// Dovecot whose oauth2 passdb validates the same token itself, for each configured SASL
// mechanism (backend.imap.oauth_mechanism). A token the gateway accepts but the mail server
// refuses (signed with a key Dovecot was never given) ends in 401, never in mail or a 5xx.
func TestIMAPBackendBearerThroughRealDovecot(t *testing.T) {
	is := oauthtest.New(t, "ES256")
	k := is.SigningKey()
	d := servers.StartDovecot(t, servers.DovecotOptions{
		Users: []servers.DovecotUser{{Name: "alice", Password: "pw-a"}},
		OAuth: &servers.DovecotOAuth{Keys: []servers.DovecotOAuthKey{{Kid: k.Kid, Alg: k.Alg, PublicKey: k.Priv.Public()}}, Issuers: []string{is.Issuer}},
	})
	alice := "alice@" + d.Domain

	// A desktop client puts three messages in the Inbox.
	c, err := imapclient.DialInsecure(d.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(alice, "pw-a").Wait(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		msg := fmt.Sprintf("From: bob@%s\r\nTo: %s\r\nSubject: oauth message %d\r\nDate: Mon, 23 Nov 2026 10:0%d:00 +0000\r\nMessage-ID: <oauth-%d@test>\r\nContent-Type: text/plain\r\n\r\nbody %d\r\n", d.Domain, alice, i, i, i, i)
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		if _, err := cmd.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}

	// Dovecot 2.3.19 accepts typ "JWT" only (Microsoft Entra's access tokens), so the gateway's
	// issuer is configured to accept that type.
	mint := func(key *oauthtest.Key, device string) string {
		claims := is.Claims(alice, "api://easgate", time.Hour)
		claims["deviceid"] = device
		return oauthtest.MintWith(key, map[string]any{"typ": "JWT"}, claims)
	}
	for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
		t.Run(mech, func(t *testing.T) {
			g := startGateway(t, withIssuer(is, func(oi *OAuthIssuer) { oi.Types = []string{"JWT"} }),
				func(c *Config, p *decision.Policy) {
					c.Users.DefaultDomain = d.Domain
					c.Backend.Mode = "imap"
					c.Backend.IMAP = IMAPBackend{IMAPAddr: d.IMAPAddr, SMTPAddr: "127.0.0.1:1", IMAPSecurity: "none", SMTPSecurity: "none",
						Domain: d.Domain, OAuthMechanism: mech, State: t.TempDir() + "/sync.db"}
				})
			device := "OAUTH" + mech
			tok := mint(k, device)
			q := "User=alice&DeviceId=" + device + "&DeviceType=Outlook&Cmd="

			resp, body := g.doBearer(tok, q+"FolderSync", mustEncode(wbxml.NewElement(wbxml.FolderHierarchyFolderSync, wbxml.NewText(wbxml.FolderHierarchySyncKey, "0"))))
			if resp.StatusCode != 200 || statusOf(t, body) != "1" {
				t.Fatalf("FolderSync: %d %q", resp.StatusCode, body)
			}
			inbox := inboxOf(t, body)
			_, body = g.doBearer(tok, q+"Sync", syncFolderRequest(inbox, "0"))
			doc, err := wbxml.Parse(body, wbxml.DefaultLimits)
			if err != nil {
				t.Fatalf("Sync 0: %v %q", err, body)
			}
			key := doc.Root.Path(wbxml.AirSyncCollections, wbxml.AirSyncCollection, wbxml.AirSyncSyncKey).Text()
			resp, body = g.doBearer(tok, q+"Sync", syncFolderRequest(inbox, key))
			if resp.StatusCode != 200 {
				t.Fatalf("Sync %s: %d", key, resp.StatusCode)
			}
			for i := 1; i <= 3; i++ {
				if !strings.Contains(string(body), fmt.Sprintf("oauth message %d", i)) {
					t.Fatalf("message %d missing from the bearer device's Sync (%d bytes)", i, len(body))
				}
			}

			// A key the issuer publishes but Dovecot does not trust: the gateway validates the
			// token, the mail server refuses it, the device is told to authenticate again.
			other, err := is.AddKey("ES256")
			if err != nil {
				t.Fatal(err)
			}
			defer is.RemoveKey(other.Kid)
			resp, body = g.doBearer(mint(other, device+"X"), strings.Replace(q, device, device+"X", 1)+"FolderSync",
				mustEncode(wbxml.NewElement(wbxml.FolderHierarchyFolderSync, wbxml.NewText(wbxml.FolderHierarchySyncKey, "0"))))
			if resp.StatusCode != 401 {
				t.Fatalf("token refused by Dovecot: %d %q", resp.StatusCode, body)
			}
		})
	}
}
