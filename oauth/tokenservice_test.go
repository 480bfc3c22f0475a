package oauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/easgate/easgate/oauth/oauthtest"
)

const gatewayIssuer = "https://gateway.example.com"

// fakeRegistry is a DeviceChecker over a fixed table (the real one lives in decision).
type fakeRegistry struct {
	mu        sync.Mutex
	compliant map[string]bool // user|device → compliant
	err       error
	calls     int
}

func (r *fakeRegistry) CheckDevice(_ context.Context, user, deviceID string) (bool, string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.err != nil {
		return false, "", r.err
	}
	ok, registered := r.compliant[strings.ToLower(user)+"|"+deviceID]
	switch {
	case !registered:
		return false, "https://gateway.example.com/portal/enrol?device=" + url.QueryEscape(deviceID), nil
	case !ok:
		return false, "https://gateway.example.com/portal/fix?device=" + url.QueryEscape(deviceID), nil
	}
	return true, "", nil
}

type tsFixture struct {
	is  *oauthtest.Issuer
	v   *Validator
	ts  *TokenService
	reg *fakeRegistry
}

func newTokenService(t *testing.T, mut func(*TokenServiceConfig)) *tsFixture {
	t.Helper()
	return newTokenServiceClock(t, nil, mut)
}

func newTokenServiceClock(t *testing.T, clk *fixedClock, mut func(*TokenServiceConfig)) *tsFixture {
	t.Helper()
	is := newIssuer(t, ES256) // upstream algorithm is irrelevant here; RSA keygen is slow under -race
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, func(c *ValidatorConfig) {
		if clk != nil {
			c.Now = clk.Now
		}
	})
	reg := &fakeRegistry{compliant: map[string]bool{"alice@example.com|ANDROIDC123": true, "alice@example.com|IPHONE9": false}}
	cfg := TokenServiceConfig{
		Issuer:    gatewayIssuer,
		Validator: v,
		Devices:   reg,
		Audiences: []string{gatewayIssuer + "/Microsoft-Server-ActiveSync"},
		Scopes:    []string{"eas"},
	}
	if clk != nil {
		cfg.Now = clk.Now
	}
	if mut != nil {
		mut(&cfg)
	}
	ts, err := NewTokenService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.AddIssuer(ts.IssuerConfig()); err != nil {
		t.Fatal(err)
	}
	return &tsFixture{is: is, v: v, ts: ts, reg: reg}
}

func (f *tsFixture) form(user, device string) url.Values {
	return url.Values{
		"grant_type":         {GrantTypeTokenExchange},
		"subject_token":      {f.is.Mint(f.is.Claims(user, testAud, 4*time.Hour))},
		"subject_token_type": {TokenTypeAccessToken},
		ParamDeviceID:        {device},
	}
}

func decodeBody(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	return m
}

func TestRFC8693_2_2_1_ExchangeIssuesDeviceBoundToken(t *testing.T) {
	f := newTokenService(t, nil)
	form := f.form("Alice@Example.com", "ANDROIDC123")
	form.Set("scope", "eas")
	status, body, hdr := f.ts.Exchange(context.Background(), form)
	if status != 200 {
		t.Fatalf("status %d body %s", status, body)
	}
	if hdr["Cache-Control"] != "no-store" || !strings.HasPrefix(hdr["Content-Type"], "application/json") {
		t.Fatalf("headers %v", hdr)
	}
	m := decodeBody(t, body)
	if m["issued_token_type"] != TokenTypeAccessToken || m["token_type"] != "Bearer" || m["scope"] != "eas" {
		t.Fatalf("body %v", m)
	}
	if exp := m["expires_in"].(float64); exp < 590 || exp > 600 {
		t.Fatalf("expires_in %v", exp)
	}
	tok := m["access_token"].(string)
	hdrJSON, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	var h map[string]any
	_ = json.Unmarshal(hdrJSON, &h)
	if h["typ"] != "at+jwt" || h["alg"] != ES256 || h["kid"] == "" {
		t.Fatalf("header %v", h)
	}
	// The gateway's own issuer is trusted by the Validator like any other, without HTTP.
	id := mustAuth(t, f.v, tok)
	if id.Issuer != gatewayIssuer || id.User != "Alice@Example.com" || id.DeviceID != "ANDROIDC123" || !id.HasScope("eas") {
		t.Fatalf("identity %+v", id)
	}
	if err := Bind(id, "alice@example.com", "ANDROIDC123"); err != nil {
		t.Fatal(err)
	}
	var be *BindError
	if err := Bind(id, "alice@example.com", "OTHERDEVICE"); !errors.As(err, &be) || be.Field != "device" {
		t.Fatalf("token replayed on another device: %v", err)
	}
	// Issued tokens cannot be exchanged again (no lifetime extension by chaining).
	form2 := f.form("x", "ANDROIDC123")
	form2.Set("subject_token", tok)
	status, body, _ = f.ts.Exchange(context.Background(), form2)
	if status != 400 || decodeBody(t, body)["error"] != "invalid_request" {
		t.Fatalf("re-exchange: %d %s", status, body)
	}
}

func TestRFC8693_NonCompliantDeviceGetsRemediationURI(t *testing.T) {
	f := newTokenService(t, nil)
	for device, page := range map[string]string{"IPHONE9": "/portal/fix", "UNKNOWN1": "/portal/enrol"} {
		status, body, _ := f.ts.Exchange(context.Background(), f.form("alice@example.com", device))
		m := decodeBody(t, body)
		if status != 400 || m["error"] != "invalid_grant" || !strings.Contains(m["error_uri"].(string), page) {
			t.Fatalf("%s: %d %v", device, status, m)
		}
		if _, has := m["access_token"]; has {
			t.Fatal("token issued to a non-compliant device")
		}
	}
}

func TestRFC6749_5_2_ExchangeErrors(t *testing.T) {
	f := newTokenService(t, nil)
	good := func() url.Values { return f.form("alice@example.com", "ANDROIDC123") }
	cases := []struct {
		name   string
		mut    func(url.Values)
		status int
		code   string
	}{
		{"no grant_type", func(v url.Values) { v.Del("grant_type") }, 400, "invalid_request"},
		{"wrong grant_type", func(v url.Values) { v.Set("grant_type", "password") }, 400, "unsupported_grant_type"},
		{"no subject_token", func(v url.Values) { v.Del("subject_token") }, 400, "invalid_request"},
		{"invalid subject_token", func(v url.Values) { v.Set("subject_token", "a.b.c") }, 400, "invalid_request"},
		{"expired subject_token", func(v url.Values) {
			c := f.is.Claims("alice@example.com", testAud, time.Hour)
			c["exp"] = time.Now().Add(-time.Hour).Unix()
			v.Set("subject_token", f.is.Mint(c))
		}, 400, "invalid_request"},
		{"no subject_token_type", func(v url.Values) { v.Del("subject_token_type") }, 400, "invalid_request"},
		{"saml subject", func(v url.Values) { v.Set("subject_token_type", "urn:ietf:params:oauth:token-type:saml2") }, 400, "invalid_request"},
		{"repeated param", func(v url.Values) { v.Add("subject_token", "x") }, 400, "invalid_request"},
		{"actor token", func(v url.Values) { v.Set("actor_token", "x") }, 400, "invalid_request"},
		{"refresh token requested", func(v url.Values) {
			v.Set("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token")
		}, 400, "invalid_request"},
		{"no device", func(v url.Values) { v.Del(ParamDeviceID) }, 400, "invalid_request"},
		{"device with quote", func(v url.Values) { v.Set(ParamDeviceID, `AB"C`) }, 400, "invalid_request"},
		{"device too long", func(v url.Values) { v.Set(ParamDeviceID, strings.Repeat("A", 65)) }, 400, "invalid_request"},
		{"foreign audience", func(v url.Values) { v.Set("audience", "https://evil.example") }, 400, "invalid_target"},
		{"audience vs resource", func(v url.Values) {
			v.Set("audience", gatewayIssuer+"/Microsoft-Server-ActiveSync")
			v.Set("resource", "https://other")
		}, 400, "invalid_target"},
		{"unknown scope", func(v url.Values) { v.Set("scope", "eas admin") }, 400, "invalid_scope"},
		{"bad client_id", func(v url.Values) { v.Set("client_id", "a b") }, 400, "invalid_request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			form := good()
			c.mut(form)
			status, body, hdr := f.ts.Exchange(context.Background(), form)
			m := decodeBody(t, body)
			if status != c.status || m["error"] != c.code {
				t.Fatalf("got %d %v, want %d %s", status, m, c.status, c.code)
			}
			if hdr["Cache-Control"] != "no-store" {
				t.Fatal("error response cacheable")
			}
			if d, _ := m["error_description"].(string); strings.Contains(d, "jwx") || strings.Contains(d, "jws") {
				t.Fatalf("library text leaked: %q", d)
			}
		})
	}
	f.reg.err = errors.New("registry down: dial tcp 10.0.0.5:5432")
	status, body, _ := f.ts.Exchange(context.Background(), good())
	if status != 503 || strings.Contains(string(body), "10.0.0.5") {
		t.Fatalf("checker error: %d %s", status, body)
	}
}

func TestTokenServiceSubjectBoundToOtherDevice(t *testing.T) {
	f := newTokenService(t, nil)
	// An upstream issuer that binds devices: the subject token names one device, the
	// request another.
	is2 := newIssuer(t, ES256)
	ic := issuerConfig(is2)
	ic.DeviceIDClaim = "eas_did"
	if err := f.v.AddIssuer(ic); err != nil {
		t.Fatal(err)
	}
	c := is2.Claims("alice@example.com", testAud, time.Hour)
	c["eas_did"] = "IPHONE9"
	form := f.form("alice@example.com", "ANDROIDC123")
	form.Set("subject_token", is2.Mint(c))
	status, body, _ := f.ts.Exchange(context.Background(), form)
	if status != 400 || decodeBody(t, body)["error"] != "invalid_grant" {
		t.Fatalf("%d %s", status, body)
	}
}

func TestTokenServiceLifetimeCappedBySubject(t *testing.T) {
	f := newTokenService(t, nil)
	form := f.form("alice@example.com", "ANDROIDC123")
	c := f.is.Claims("alice@example.com", testAud, time.Hour)
	c["exp"] = time.Now().Add(2 * time.Minute).Unix()
	form.Set("subject_token", f.is.Mint(c))
	status, body, _ := f.ts.Exchange(context.Background(), form)
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	if exp := decodeBody(t, body)["expires_in"].(float64); exp > 120 {
		t.Fatalf("issued token outlives its subject token: %v", exp)
	}
}

func TestTokenServiceKeyRotationOverlap(t *testing.T) {
	clk := &fixedClock{t: time.Now()}
	f := newTokenServiceClock(t, clk, func(c *TokenServiceConfig) {
		c.Algorithm = EdDSA
		c.RotationPeriod = time.Hour
	})
	kids := func() []string {
		var set struct {
			Keys []struct {
				Kid, Alg, Use, Crv string
				D                  string `json:"d"`
			}
		}
		if err := json.Unmarshal(f.ts.JWKS(), &set); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range set.Keys {
			if k.D != "" || k.Alg != EdDSA || k.Use != "sig" || k.Crv != "Ed25519" {
				t.Fatalf("published key %+v", k)
			}
			out = append(out, k.Kid)
		}
		return out
	}
	if n := len(kids()); n != 2 {
		t.Fatalf("want current + pre-published next key, got %d", n)
	}
	exchange := func() string {
		status, body, _ := f.ts.Exchange(context.Background(), f.form("alice@example.com", "ANDROIDC123"))
		if status != 200 {
			t.Fatalf("%d %s", status, body)
		}
		return decodeBody(t, body)["access_token"].(string)
	}
	tok1 := exchange()
	// Past the rotation period: the next key signs; the old one stays published.
	clk.Set(clk.Now().Add(61 * time.Minute))
	tok2 := exchange()
	if kidOf(tok1) == kidOf(tok2) {
		t.Fatal("key did not rotate")
	}
	if k := kids(); len(k) != 3 || !contains(k, kidOf(tok1)) || !contains(k, kidOf(tok2)) {
		t.Fatalf("jwks after rotation %v", k)
	}
	// Both tokens validate, uncached, through the local key source: tok1 with the retired
	// key, tok2 with the new one.
	f.v.cache.Clear()
	mustAuth(t, f.v, tok2)
	clk.Set(clk.Now().Add(-61 * time.Minute))
	mustAuth(t, f.v, tok1)
	clk.Set(clk.Now().Add(62 * time.Minute))
	// After TokenLifetime + skew the retired key is dropped.
	clk.Set(clk.Now().Add(DefaultTokenLifetime + DefaultClockSkew + time.Minute))
	if k := kids(); contains(k, kidOf(tok1)) {
		t.Fatalf("retired key still published: %v", k)
	}
	if err := f.ts.AddSigningKey(nil); err == nil {
		t.Fatal("AddSigningKey on auto-rotating service")
	}
}

func TestTokenServiceManualKeys(t *testing.T) {
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f := newTokenService(t, func(c *TokenServiceConfig) { c.SigningKeys = []crypto.Signer{k1} })
	status, body, _ := f.ts.Exchange(context.Background(), f.form("alice@example.com", "ANDROIDC123"))
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	tok1 := decodeBody(t, body)["access_token"].(string)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := f.ts.AddSigningKey(k2); err != nil {
		t.Fatal(err)
	}
	_, body, _ = f.ts.Exchange(context.Background(), f.form("alice@example.com", "ANDROIDC123"))
	tok2 := decodeBody(t, body)["access_token"].(string)
	if kidOf(tok1) == kidOf(tok2) {
		t.Fatal("AddSigningKey did not switch keys")
	}
	f.v.cache.Clear()
	mustAuth(t, f.v, tok1)
	mustAuth(t, f.v, tok2) // unknown kid → immediate refresh from the local source
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	bad := TokenServiceConfig{Issuer: "http://gateway.example.com", Algorithm: "RS256",
		SigningKeys: []crypto.Signer{edPriv}, TokenLifetime: 2 * time.Hour}
	err := bad.Validate()
	for _, want := range []string{"issuer must be", "no validator", "no device checker", "no audiences", "RS256", "lifetime"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate missing %q: %v", want, err)
		}
	}
}

func TestRFC8414_Metadata(t *testing.T) {
	f := newTokenService(t, nil)
	m := decodeBody(t, f.ts.Metadata())
	if m["issuer"] != gatewayIssuer || m["token_endpoint"] != gatewayIssuer+"/oauth/token" ||
		m["jwks_uri"] != gatewayIssuer+"/oauth/jwks" {
		t.Fatalf("metadata %v", m)
	}
	gt := m["grant_types_supported"].([]any)
	if len(gt) != 1 || gt[0] != GrantTypeTokenExchange {
		t.Fatalf("grant types %v", gt)
	}
}

func kidOf(tok string) string {
	h, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	var m map[string]string
	_ = json.Unmarshal(h, &m)
	return m["kid"]
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
