package imap

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/easgate/easgate/bench/servers"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
	"github.com/easgate/easgate/oauth/oauthtest"
)

// TestOAuth_DovecotBearerFolderSyncAndSync drives the Backend with bearer credentials against a
// real Dovecot whose oauth2 passdb verifies the JWT locally (servers.DovecotOAuth): for each
// Config.OAuthMechanism (XOAUTH2, RFC 7628 OAUTHBEARER) a device whose credential is a token
// from oauthtest — the issuer the gateway's validator is tested with — runs FolderSync and a
// windowed Sync of the Inbox, and the mail it gets is what a password login sees. Refused
// tokens (forged, expired, another user's, not a JWT) end in ErrAuthFailed / HTTP 401, never in
// ErrUnavailable: the SASL exchange is completed after the server's error challenge, so
// Dovecot answers with its tagged NO.
func TestOAuth_DovecotBearerFolderSyncAndSync(t *testing.T) {
	is := oauthtest.New(t, "ES256")
	es := is.SigningKey()
	rs, err := is.AddKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	var keys []servers.DovecotOAuthKey
	for _, k := range []*oauthtest.Key{es, rs} {
		keys = append(keys, servers.DovecotOAuthKey{Kid: k.Kid, Alg: k.Alg, PublicKey: k.Priv.Public()})
	}
	d := servers.StartDovecot(t, servers.DovecotOptions{
		Users: []servers.DovecotUser{{Name: "alice", Password: "pw-a"}, {Name: "bob", Password: "pw-b"}},
		OAuth: &servers.DovecotOAuth{Keys: keys, Issuers: []string{is.Issuer}},
	})
	alice, bob := "alice@"+d.Domain, "bob@"+d.Domain
	// Dovecot 2.3.19 accepts only typ "JWT" (what Microsoft Entra puts in its access tokens),
	// not RFC 9068's "at+jwt".
	mint := func(k *oauthtest.Key, claims map[string]any) string {
		return oauthtest.MintWith(k, map[string]any{"typ": "JWT"}, claims)
	}
	const aud = "https://eas.easgate.test"

	dc := desktop(t, d.IMAPAddr, alice, "pw-a")
	var msgs [][]byte
	for i := 1; i <= 5; i++ {
		msgs = append(msgs, sampleMessage(i, alice))
	}
	appendMessages(t, dc, "INBOX", msgs)
	inInbox := len(msgs) // each subtest appends one more

	for _, tc := range []struct {
		mech string
		key  *oauthtest.Key
	}{{"XOAUTH2", es}, {"OAUTHBEARER", rs}} {
		t.Run(tc.mech, func(t *testing.T) {
			b, err := New(Config{IMAPAddr: d.IMAPAddr, Domain: d.Domain, OAuthMechanism: tc.mech}, openStore(t, t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })

			dev := newDevice(t, b, alice, "", "oauth-"+tc.mech)
			dev.cred = Credentials{User: alice, Token: mint(tc.key, is.Claims(alice, aud, time.Hour))}
			dev.folderSync()
			inbox := dev.folder(typeInbox, "")
			dev.folder(typeSent, "Sent")
			dev.folder(typeDeleted, "Trash")
			if n := dev.syncAll(inbox, 2); n < (inInbox+1)/2 {
				t.Fatalf("%d items in windows of 2 took %d Syncs", inInbox, n)
			}
			for i := 1; i <= inInbox; i++ {
				if id, _ := dev.findSubject(inbox, "message "+itoaT(i)); id == "" {
					t.Fatalf("message %d missing from the bearer device's Inbox: %d items", i, len(dev.items[inbox]))
				}
			}
			if len(dev.items[inbox]) != inInbox {
				t.Fatalf("device holds %d items, want %d", len(dev.items[inbox]), inInbox)
			}
			// A new message reaches the bearer device through the pooled token connection.
			inInbox++
			appendMessages(t, dc, "INBOX", [][]byte{sampleMessage(inInbox, alice)})
			if r := dev.sync(inbox, 10); len(r.adds) != 1 {
				t.Fatalf("new message: %d adds, want 1", len(r.adds))
			}

			expired := is.Claims(alice, aud, time.Hour)
			past := time.Now().Add(-2 * time.Hour).Unix()
			expired["iat"], expired["nbf"], expired["exp"] = past, past, time.Now().Add(-time.Hour).Unix()
			for _, bad := range []struct{ name, token string }{
				{"forged signature", mint(is.PoisonKey(tc.key), is.Claims(alice, aud, time.Hour))},
				{"expired", mint(tc.key, expired)},
				{"token of another user", mint(tc.key, is.Claims(bob, aud, time.Hour))},
				{"RFC 9068 typ at+jwt", oauthtest.MintWith(tc.key, map[string]any{"typ": "at+jwt"}, is.Claims(alice, aud, time.Hour))},
				{"not a JWT", "pw-a"},
			} {
				t.Run(bad.name, func(t *testing.T) {
					// The same device and user as the good token, whose connection is pooled:
					// a different token must not reuse it.
					err := serveFolderSync(t, b, dev, Credentials{User: alice, Token: bad.token})
					var e *Error
					if !errors.Is(err, ErrAuthFailed) || !errors.As(err, &e) || e.HTTPStatus != http.StatusUnauthorized {
						t.Fatalf("want ErrAuthFailed (401), got %v", err)
					}
				})
			}
			// The good token still works after the refusals.
			if r := dev.sync(inbox, 10); r.status != "1" || len(r.adds) != 0 {
				t.Fatalf("Sync after refusals: %+v", r)
			}
		})
	}
}

// serveFolderSync sends one FolderSync with SyncKey 0 and cred, returning Serve's error.
func serveFolderSync(t *testing.T, b *Backend, dev *device, cred Credentials) error {
	t.Helper()
	body, err := wbxml.NewDocument(wbxml.NewElement(wbxml.FolderHierarchyFolderSync,
		wbxml.NewText(wbxml.FolderHierarchySyncKey, "0"))).Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = b.Serve(ctx, dev.request(eas.CmdFolderSync), cred, body)
	return err
}

// TestOAuthBearerInitialResponse_RFC7628_3_1: the OAUTHBEARER client response is the GS2
// header with the user as authzid (',' and '=' escaped, RFC 5801 §4), then "auth=Bearer" and
// the closing %x01 pair.
func TestOAuthBearerInitialResponse_RFC7628_3_1(t *testing.T) {
	for user, want := range map[string]string{
		"u@example.org": "n,a=u@example.org,\x01auth=Bearer tok\x01\x01",
		"a,b=c@x.org":   "n,a=a=2Cb=3Dc@x.org,\x01auth=Bearer tok\x01\x01",
	} {
		mech, ir, err := Credentials{User: user, Token: "tok"}.saslClient("OAUTHBEARER").Start()
		if err != nil || mech != "OAUTHBEARER" || string(ir) != want {
			t.Errorf("%s %q %v, want %q", mech, ir, err, want)
		}
	}
}

// TestOAuthSASL_ErrorChallengeAnsweredOnce_RFC7628_3_2_3: both bearer clients answer the
// server's error challenge with the dummy %x01 so the server can send its final NO, and treat
// a second challenge as a protocol error instead of looping.
func TestOAuthSASL_ErrorChallengeAnsweredOnce_RFC7628_3_2_3(t *testing.T) {
	for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
		c := Credentials{User: "u@example.org", Token: "tok"}.saslClient(mech)
		if m, _, _ := c.Start(); m != mech {
			t.Fatalf("saslClient(%s) starts %s", mech, m)
		}
		resp, err := c.Next([]byte(`{"status":"invalid_token","schemes":"bearer","scope":"mail"}`))
		if err != nil || string(resp) != "\x01" {
			t.Fatalf("%s: first challenge answered %q, %v; want %%x01", mech, resp, err)
		}
		if _, err := c.Next([]byte(`{}`)); err == nil || !strings.HasPrefix(err.Error(), "imap: ") {
			t.Fatalf("%s: second challenge: %v, want an imap: error", mech, err)
		}
	}
}
