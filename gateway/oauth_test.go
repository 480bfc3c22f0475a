package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/oauth/oauthtest"
)

// withIssuer trusts a test issuer and enables the gateway's token service.
func withIssuer(is *oauthtest.Issuer, extra ...func(*OAuthIssuer)) gwOption {
	return func(c *Config, _ *decision.Policy) {
		oi := OAuthIssuer{Issuer: is.Issuer, JWKSURL: is.JWKSURL, Audiences: []string{"api://easgate"}, DeviceIDClaim: "deviceid", CapabilitiesClaim: "xms_cc"}
		for _, f := range extra {
			f(&oi)
		}
		c.OAuth = OAuthConfig{Issuers: []OAuthIssuer{oi}, AllowLoopbackHTTP: true, TokenService: OAuthTokenService{Enabled: true}}
	}
}

func (g *testGateway) doBearer(token, query string, body []byte) (*http.Response, []byte) {
	g.t.Helper()
	req, _ := http.NewRequest("POST", "http://"+g.addr+"/Microsoft-Server-ActiveSync?"+query, strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("MS-ASProtocolVersion", "14.1")
	resp, err := g.client.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b := make([]byte, 0, 512)
	buf := make([]byte, 512)
	for {
		n, err := resp.Body.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			break
		}
	}
	return resp, b
}

func TestBearerTokenAuthenticatesAndBindsDevice(t *testing.T) {
	is := oauthtest.New(t, "ES256")
	g := startGateway(t, withIssuer(is))
	claims := is.Claims("jdoe@example.com", "api://easgate", time.Hour)
	claims["deviceid"] = "PHONE1"
	tok := is.Mint(claims)

	resp, _ := g.doBearer(tok, "Cmd=Sync&User=jdoe&DeviceId=PHONE1&DeviceType=Outlook", syncRequest)
	if resp.StatusCode != 200 || g.up.hits.Load() != 1 {
		t.Fatalf("valid bearer: %d", resp.StatusCode)
	}
	if got := g.up.recorded()[0].auth; got != "Bearer "+tok {
		t.Fatalf("upstream credentials: %.30q", got)
	}
	// The same token on another device: spoofing, refused and never forwarded.
	resp, _ = g.doBearer(tok, "Cmd=Sync&User=jdoe&DeviceId=OTHER9&DeviceType=Outlook", syncRequest)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("token for another device: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	waitFor(t, func() bool {
		entries, _ := g.engine.Audit(context.Background(), decision.AuditFilter{User: "jdoe@example.com"})
		for _, e := range entries {
			if e.Reason == decision.SignalSpoofing && e.DeviceID == "OTHER9" {
				return true
			}
		}
		return false
	})
	// The same token naming another EAS user.
	resp, _ = g.doBearer(tok, "Cmd=Sync&User=alice&DeviceId=PHONE1&DeviceType=Outlook", syncRequest)
	if resp.StatusCode != 401 && resp.StatusCode != 403 {
		t.Fatalf("token for another user: %d", resp.StatusCode)
	}
	// A token in the query string is refused (RFC 6750 2.3 is not accepted).
	resp, _ = g.doBearer(tok, "Cmd=Sync&User=jdoe&DeviceId=PHONE1&DeviceType=Outlook&access_token="+tok, syncRequest)
	if resp.StatusCode/100 != 4 {
		t.Fatalf("query token: %d", resp.StatusCode)
	}
	// Garbage and alg=none.
	for _, bad := range []string{"x.y.z", "eyJhbGciOiJub25lIn0.eyJ1cG4iOiJqZG9lQGV4YW1wbGUuY29tIn0."} {
		if resp, _ = g.doBearer(bad, "Cmd=Sync&User=jdoe&DeviceId=PHONE1&DeviceType=Outlook", syncRequest); resp.StatusCode != 401 {
			t.Fatalf("bad token %q: %d", bad, resp.StatusCode)
		}
	}
	if g.up.hits.Load() != 1 {
		t.Fatalf("upstream hits %d", g.up.hits.Load())
	}
}

func TestServiceCredentialReplacesDeviceToken(t *testing.T) {
	is := oauthtest.New(t, "ES256")
	g := startGateway(t, withIssuer(is), func(c *Config, _ *decision.Policy) {
		c.Backend.EAS.ServiceAuthorization = "Bearer service-principal-token"
	})
	tok := is.Mint(is.Claims("jdoe@example.com", "api://easgate", time.Hour))
	if resp, _ := g.doBearer(tok, "Cmd=Sync&User=jdoe&DeviceId=SVC1&DeviceType=Outlook", syncRequest); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := g.up.recorded()[0].auth; got != "Bearer service-principal-token" {
		t.Fatalf("upstream got %.30q", got)
	}
}

func TestClaimsChallengeForCapableClient(t *testing.T) {
	is := oauthtest.New(t, "RS256")
	g := startGateway(t, withIssuer(is), func(_ *Config, p *decision.Policy) { p.UnknownDevice = decision.Quarantine })
	claims := is.Claims("jdoe@example.com", "api://easgate", time.Hour)
	claims["xms_cc"] = []string{"cp1"}
	resp, _ := g.doBearer(is.Mint(claims), "Cmd=Sync&User=jdoe&DeviceId=NEWPHONE&DeviceType=Outlook", syncRequest)
	www := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != 401 || !strings.Contains(www, `error="insufficient_claims"`) || !strings.Contains(www, "claims=") || !strings.Contains(www, "/portal/") {
		t.Fatalf("claims challenge: %d %q", resp.StatusCode, www)
	}
	// A client without cp1 gets the quarantine experience (a local WBXML answer).
	delete(claims, "xms_cc")
	resp, body := g.doBearer(is.Mint(claims), "Cmd=Sync&User=jdoe&DeviceId=NEWPHONE&DeviceType=Outlook", syncRequest)
	if resp.StatusCode != 200 || len(body) == 0 {
		t.Fatalf("non-cp1 client: %d", resp.StatusCode)
	}
	if g.up.hits.Load() != 0 {
		t.Fatal("quarantined device reached upstream")
	}
}

func TestTokenExchangeIssuesDeviceBoundToken(t *testing.T) {
	is := oauthtest.New(t, "ES256")
	g := startGateway(t, withIssuer(is), func(_ *Config, p *decision.Policy) { p.UnknownDevice = decision.Quarantine })
	subject := is.Mint(is.Claims("jdoe@example.com", "api://easgate", time.Hour))
	exchange := func(device string) (int, map[string]any) {
		form := url.Values{
			"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"subject_token":      {subject},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
			"device_id":          {device},
		}
		resp, err := g.client.PostForm("http://"+g.addr+"/oauth/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	// Not registered: invalid_grant with the remediation page.
	code, m := exchange("PHONE7")
	if code != 400 || m["error"] != "invalid_grant" || !strings.Contains(m["error_uri"].(string), "/portal/") {
		t.Fatalf("unregistered device: %d %v", code, m)
	}
	if _, err := g.engine.Register(context.Background(), decision.Registration{User: "jdoe@example.com", DeviceID: "PHONE7"}, "test"); err != nil {
		t.Fatal(err)
	}
	code, m = exchange("PHONE7")
	tok, _ := m["access_token"].(string)
	if code != 200 || tok == "" {
		t.Fatalf("registered device: %d %v", code, m)
	}
	// The gateway's own token works on the EAS path for that device, and only for it.
	resp, _ := g.doBearer(tok, "Cmd=Sync&User=jdoe&DeviceId=PHONE7&DeviceType=Outlook", syncRequest)
	if resp.StatusCode != 200 || g.up.hits.Load() != 1 {
		t.Fatalf("own token: %d", resp.StatusCode)
	}
	resp, _ = g.doBearer(tok, "Cmd=Sync&User=jdoe&DeviceId=PHONE8&DeviceType=Outlook", syncRequest)
	if resp.StatusCode != 401 {
		t.Fatalf("own token on another device: %d", resp.StatusCode)
	}
	for _, p := range []string{"/oauth/jwks", "/.well-known/oauth-authorization-server"} {
		r, err := g.client.Get("http://" + g.addr + p)
		if err != nil || r.StatusCode != 200 {
			t.Fatalf("%s: %v %v", p, err, r)
		}
		r.Body.Close()
	}
}
