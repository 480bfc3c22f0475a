package servers

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/easgate/easgate/oauth/oauthtest"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
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

// TestDovecotOAuth_LocalJWTValidation: with DovecotOptions.OAuth, Dovecot's oauth2 passdb
// verifies JWT access tokens locally (ES256 and RS256 keys, RFC 7515/7518) and logs their user
// in with AUTHENTICATE XOAUTH2 and OAUTHBEARER (RFC 7628), while password LOGIN keeps working;
// a forged signature, an unknown kid, an expired token, a token of another user, a foreign
// issuer and a non-JWT are refused with a tagged NO.
func TestDovecotOAuth_LocalJWTValidation(t *testing.T) {
	is := oauthtest.New(t, "ES256")
	es := is.SigningKey()
	rs, err := is.AddKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	var keys []DovecotOAuthKey
	for _, k := range []*oauthtest.Key{es, rs} {
		keys = append(keys, DovecotOAuthKey{Kid: k.Kid, Alg: k.Alg, PublicKey: k.Priv.Public()})
	}
	// The RS256 key also goes in as PEM under a second kid, to prove that form.
	der, err := x509.MarshalPKIXPublicKey(rs.Priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	rsPEM := &oauthtest.Key{Kid: "pem-" + rs.Kid, Alg: rs.Alg, Priv: rs.Priv}
	keys = append(keys, DovecotOAuthKey{Kid: rsPEM.Kid, Alg: "RS256", PEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})})
	d := StartDovecot(t, DovecotOptions{
		Users: []DovecotUser{{Name: "alice", Password: "pw-a"}, {Name: "bob", Password: "pw-b"}},
		OAuth: &DovecotOAuth{Keys: keys, Issuers: []string{is.Issuer}},
	})
	alice, bob := "alice@"+d.Domain, "bob@"+d.Domain
	mint := func(k *oauthtest.Key, user string, ttl time.Duration) string {
		return oauthtest.MintWith(k, map[string]any{"typ": "JWT"}, is.Claims(user, "https://eas.easgate.test", ttl))
	}

	for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
		for _, k := range []*oauthtest.Key{es, rs, rsPEM} {
			t.Run(mech+"/"+k.Alg+"/"+k.Kid, func(t *testing.T) {
				c := dialDovecot(t, d)
				if err := c.Authenticate(bearerSASL(mech, alice, mint(k, alice, time.Hour))); err != nil {
					t.Fatalf("good token refused: %v", err)
				}
				if _, err := c.Select("INBOX", nil).Wait(); err != nil {
					t.Fatalf("SELECT after bearer login: %v", err)
				}
			})
		}

		expired := is.Claims(alice, "https://eas.easgate.test", time.Hour)
		expired["iat"], expired["nbf"], expired["exp"] = time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
		foreign := is.Claims(alice, "https://eas.easgate.test", time.Hour)
		foreign["iss"] = "https://evil.example/tenant"
		unknown := &oauthtest.Key{Kid: "not-published", Alg: es.Alg, Priv: es.Priv}
		// reason is what Dovecot 2.3.19 logs for the refusal, so each case is known to be refused
		// for its own reason and not for a broken setup.
		for _, tc := range []struct{ name, token, reason string }{
			{"forged signature", mint(is.PoisonKey(es), alice, time.Hour), "Bad signature"},
			{"unknown kid", mint(unknown, alice, time.Hour), "ES256 key 'not-published' not found"},
			{"expired", oauthtest.MintWith(es, map[string]any{"typ": "JWT"}, expired), "Token has expired"},
			{"other user", mint(es, bob, time.Hour), "Username '" + alice + "' did not match '" + bob + "'"},
			{"foreign issuer", oauthtest.MintWith(es, map[string]any{"typ": "JWT"}, foreign), "Issuer 'https://evil.example/tenant' is not allowed"},
			{"not a JWT", "pw-a", "Not a JWT token"},
			// Dovecot 2.3.19 accepts only typ "JWT" (Entra's access tokens), not RFC 9068's.
			{"typ at+jwt", oauthtest.MintWith(es, map[string]any{"typ": "at+jwt"}, is.Claims(alice, "https://eas.easgate.test", time.Hour)), "Cannot find 'typ' field"},
		} {
			t.Run(mech+"/refused/"+tc.name, func(t *testing.T) {
				before := dovecotLogCount(t, d, tc.reason)
				c := dialDovecot(t, d)
				err := c.Authenticate(bearerSASL(mech, alice, tc.token))
				var ie *imap.Error
				if !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeNo {
					t.Fatalf("want a tagged NO, got %v", err)
				}
				waitDovecotLog(t, d, tc.reason, before+1)
				// The connection is still usable: the SASL exchange was completed, not abandoned.
				if err := c.Login(alice, "pw-a").Wait(); err != nil {
					t.Fatalf("password LOGIN after refused token: %v", err)
				}
			})
		}
	}
	// bob's own token works for bob; passwords still work beside OAuth.
	c := dialDovecot(t, d)
	if err := c.Authenticate(bearerSASL("OAUTHBEARER", bob, mint(es, bob, time.Hour))); err != nil {
		t.Fatal(err)
	}
	if err := dialDovecot(t, d).Login(bob, "pw-b").Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestDovecotOAuth_BadOptions(t *testing.T) {
	d := &Dovecot{Dir: t.TempDir()}
	pub := mustECKey(t)
	for name, o := range map[string]*DovecotOAuth{
		"no keys":       {},
		"no alg":        {Keys: []DovecotOAuthKey{{Kid: "k", PublicKey: pub}}},
		"HS256":         {Keys: []DovecotOAuthKey{{Kid: "k", Alg: "HS256", PublicKey: pub}}},
		"no key":        {Keys: []DovecotOAuthKey{{Kid: "k", Alg: "ES256"}}},
		"both":          {Keys: []DovecotOAuthKey{{Kid: "k", Alg: "ES256", PublicKey: pub, PEM: []byte("x")}}},
		"bad PEM":       {Keys: []DovecotOAuthKey{{Kid: "k", Alg: "ES256", PEM: []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")}}},
		"kid traversal": {Keys: []DovecotOAuthKey{{Kid: "../../etc", Alg: "ES256", PublicKey: pub}}},
		"value only":    {Keys: []DovecotOAuthKey{{Kid: "k", Alg: "ES256", PublicKey: pub}}, ActiveValue: "true"},
		"issuer space":  {Keys: []DovecotOAuthKey{{Kid: "k", Alg: "ES256", PublicKey: pub}}, Issuers: []string{"a b"}},
	} {
		if _, err := d.writeOAuth(o, "no"); err == nil || !strings.HasPrefix(err.Error(), "servers: ") {
			t.Errorf("%s: err = %v, want a servers: error", name, err)
		}
	}
}

func dovecotLogCount(t *testing.T, d *Dovecot, s string) int {
	t.Helper()
	b, err := os.ReadFile(d.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "oauth2 failed: Local validation failed: "+s)
}

// waitDovecotLog waits (bounded) until the log holds n refusals for reason s: the log service
// writes asynchronously to the client's answer.
func waitDovecotLog(t *testing.T, d *Dovecot, s string, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if dovecotLogCount(t, d, s) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dovecot did not log the refusal %q", s)
		}
	}
}

func mustECKey(t *testing.T) crypto.PublicKey {
	t.Helper()
	k, err := oauthtest.GenerateKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

func dialDovecot(t *testing.T, d *Dovecot) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(d.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// bearerSASL is a minimal client of both bearer mechanisms that, unlike go-sasl's OAUTHBEARER
// client, completes a failed exchange: it answers the server's JSON error challenge with the
// dummy response (RFC 7628 §3.2.3: %x01; XOAUTH2: empty), so the server ends with its tagged NO.
func bearerSASL(mech, user, token string) sasl.Client {
	return &testBearer{mech: mech, user: user, token: token}
}

type testBearer struct{ mech, user, token string }

func (b *testBearer) Start() (string, []byte, error) {
	if b.mech == "OAUTHBEARER" {
		return b.mech, []byte("n,a=" + b.user + ",\x01auth=Bearer " + b.token + "\x01\x01"), nil
	}
	return b.mech, []byte("user=" + b.user + "\x01auth=Bearer " + b.token + "\x01\x01"), nil
}

func (b *testBearer) Next([]byte) ([]byte, error) {
	if b.mech == "OAUTHBEARER" {
		return []byte{0x01}, nil
	}
	return []byte{0x01}, nil
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
