package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/easgate/easgate/oauth/oauthtest"
)

func TestRFC6750_2_1_ValidTokenEachAlgorithm(t *testing.T) {
	for _, alg := range []string{RS256, PS256, ES256, EdDSA} {
		t.Run(alg, func(t *testing.T) {
			is := newIssuer(t, alg)
			ic := issuerConfig(is)
			ic.GroupsClaim = "groups"
			v := newValidator(t, []IssuerConfig{ic}, nil)
			c := is.Claims("Alice@Example.com", testAud, time.Hour)
			c["groups"] = []string{"g1", "g2"}
			c["xms_cc"] = []string{"cp1"}
			id := mustAuth(t, v, is.Mint(c))
			if id.User != "Alice@Example.com" || id.Issuer != is.Issuer || id.Subject != "sub-Alice@Example.com" {
				t.Fatalf("identity %+v", id)
			}
			if !id.InGroup("g2") || !SupportsClaimsChallenge(id) || !id.HasScope("EAS.AccessAsUser.All") {
				t.Fatalf("claims not mapped: %+v", id)
			}
			if id.Audience != testAud || id.Expiry.IsZero() || id.TokenID == "" {
				t.Fatalf("identity %+v", id)
			}
		})
	}
}

func TestRFC6750_2_1_HeaderParsing(t *testing.T) {
	cases := []struct {
		in     string
		tok    string
		reason Reason
	}{
		{"Bearer abc.def.ghi", "abc.def.ghi", ""},
		{"bearer   abc.def.ghi  ", "abc.def.ghi", ""},
		{"BEARER a+b/c==", "a+b/c==", ""},
		{"", "", ReasonNoToken},
		{"   ", "", ReasonNoToken},
		{"Basic dXNlcjpwYXNz", "", ReasonWrongScheme},
		{"Bearer", "", ReasonMalformedHeader},
		{"Bearer ", "", ReasonMalformedHeader},
		{"Bearer a b", "", ReasonMalformedHeader},
		{"Bearer a=b", "", ReasonMalformedHeader},
		{"Bearer a\r\nX: y", "", ReasonMalformedHeader},
		{"Bearer \"quoted\"", "", ReasonMalformedHeader},
	}
	for _, c := range cases {
		tok, err := ParseAuthorization([]byte(c.in), Limits{})
		if c.reason == "" {
			if err != nil || string(tok) != c.tok {
				t.Errorf("%q: got %q, %v", c.in, tok, err)
			}
			continue
		}
		var oe *Error
		if !errors.As(err, &oe) || oe.Reason != c.reason {
			t.Errorf("%q: got %v, want reason %s", c.in, err, c.reason)
		}
	}
}

func TestRFC6750_2_3_QueryTokenRefused(t *testing.T) {
	yes := []string{"access_token=abc", "User=a&access_token=x", "Cmd=Sync&ACCESS_TOKEN=1", "access%5Ftoken=x", "a=1&access_token"}
	no := []string{"", "User=a&DeviceId=b", "my_access_token=x", "x=access_token"}
	for _, q := range yes {
		if !QueryHasAccessToken(q) {
			t.Errorf("%q: not detected", q)
		}
	}
	for _, q := range no {
		if QueryHasAccessToken(q) {
			t.Errorf("%q: false positive", q)
		}
	}
	if ErrQueryToken.Status != 400 || ErrQueryToken.Code != CodeInvalidRequest {
		t.Fatalf("ErrQueryToken = %+v", ErrQueryToken)
	}
}

func TestRFC6750_3_Challenge(t *testing.T) {
	if got := ErrNoToken.with("corp").Challenge(); got != `Bearer realm="corp"` {
		t.Errorf("no-token challenge %q (RFC 6750 §3.1: no error code)", got)
	}
	got := errExpired.with("corp").Challenge()
	want := `Bearer realm="corp", error="invalid_token", error_description="token expired"`
	if got != want {
		t.Errorf("got %q want %q", got, want)
	}
	e := &Error{Code: CodeInvalidToken, Description: "bad \"x\"\r\nSet-Cookie: a\\b", Realm: "r"}
	if got := e.Challenge(); strings.ContainsAny(got, "\r\n\\") || strings.Count(got, `"`) != 6 {
		t.Errorf("unsafe characters kept: %q", got)
	}
	if errExpired.Status != 401 || errHeaderTooLarge.Status != 400 {
		t.Fatal("status mapping")
	}
	if !errors.Is(errExpired.with("x"), &Error{Code: CodeInvalidToken, Reason: ReasonExpired}) {
		t.Fatal("errors.Is by code and reason")
	}
}

func TestRFC8725_AlgNone(t *testing.T) {
	is := newIssuer(t, ES256)
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, nil)
	c, _ := json.Marshal(is.Claims("a@x", testAud, time.Hour))
	for _, alg := range []string{"none", "None", "NONE"} {
		h, _ := json.Marshal(map[string]string{"alg": alg, "typ": "at+jwt"})
		tok := b64u(h) + "." + b64u(c) + "."
		_, err := auth(t, v, tok)
		wantReason(t, err, CodeInvalidToken, ReasonAlgNone)
		// Also with a bogus signature appended.
		_, err = auth(t, v, tok+"AAAA")
		wantReason(t, err, CodeInvalidToken, ReasonAlgNone)
	}
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestRFC8725_HS256SignedWithRSAPublicKey(t *testing.T) {
	is := newIssuer(t, RS256)
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, nil)
	k := is.SigningKey()
	pub := k.Priv.Public().(*rsa.PublicKey)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	secrets := [][]byte{
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		der,
		pub.N.Bytes(),
		is.JWKS(),
	}
	c, _ := json.Marshal(is.Claims("a@x", testAud, time.Hour))
	for _, alg := range []string{"HS256", "HS384", "HS512"} {
		for _, secret := range secrets {
			h, _ := json.Marshal(map[string]string{"alg": alg, "kid": k.Kid, "typ": "at+jwt"})
			input := b64u(h) + "." + b64u(c)
			m := hmac.New(sha256.New, secret)
			m.Write([]byte(input))
			_, err := auth(t, v, input+"."+b64u(m.Sum(nil)))
			wantReason(t, err, CodeInvalidToken, ReasonAlgNotAllowed)
		}
	}
}

func TestRFC8725_AlgorithmNotAllowedForIssuer(t *testing.T) {
	is := newIssuer(t, RS256)
	ic := issuerConfig(is)
	ic.Algorithms = []string{ES256}
	v := newValidator(t, []IssuerConfig{ic}, nil)
	_, err := auth(t, v, is.Mint(is.Claims("a@x", testAud, time.Hour)))
	wantReason(t, err, CodeInvalidToken, ReasonAlgNotAllowed)
	if is.Fetches() != 0 {
		t.Fatalf("keys fetched for a token refused on its header: %d", is.Fetches())
	}
}

// A header alg compatible with the policy but not with the key named by kid: the RSA key
// must not be used for ES256 (or PS256 with an EC key).
func TestRFC8725_AlgKeyTypeMismatch(t *testing.T) {
	is := newIssuer(t, RS256)
	ec, err := is.AddKey(ES256)
	if err != nil {
		t.Fatal(err)
	}
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, nil)
	rsaKey := is.SigningKey()
	claims := is.Claims("a@x", testAud, time.Hour)
	// ES256 signature under the RSA key's kid.
	tok := oauthtest.MintWith(ec, map[string]any{"kid": rsaKey.Kid, "typ": "at+jwt"}, claims)
	_, err = auth(t, v, tok)
	wantReason(t, err, CodeInvalidToken, ReasonUnknownKey)
	// RS256-signed token labelled PS256: same key type, wrong algorithm: signature fails.
	tok = oauthtest.MintWith(rsaKey, map[string]any{"alg": PS256, "typ": "at+jwt"}, claims)
	_, err = auth(t, v, tok)
	wantReason(t, err, CodeInvalidToken, ReasonBadSignature)
	// Sanity: both genuine tokens pass.
	mustAuth(t, v, oauthtest.MintWith(ec, map[string]any{"typ": "at+jwt"}, claims))
	mustAuth(t, v, is.Mint(claims))
}

func TestUnknownKid(t *testing.T) {
	is := newIssuer(t, ES256)
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, nil)
	claims := is.Claims("a@x", testAud, time.Hour)
	mustAuth(t, v, is.Mint(claims))
	stranger, _ := oauthtest.GenerateKey(ES256)
	tok := oauthtest.MintWith(&oauthtest.Key{Kid: "not-published", Alg: ES256, Priv: stranger}, map[string]any{"typ": "at+jwt"}, claims)
	_, err := auth(t, v, tok)
	wantReason(t, err, CodeInvalidToken, ReasonUnknownKey)
	// The forced refresh happened once; a second unknown kid inside MinRefreshInterval
	// does not fetch again.
	n := is.Fetches()
	_, err = auth(t, v, tok)
	wantReason(t, err, CodeInvalidToken, ReasonUnknownKey)
	if is.Fetches() != n || n != 2 {
		t.Fatalf("fetches = %d then %d, want 2 and no more", n, is.Fetches())
	}
}

func TestInjectedKid(t *testing.T) {
	is := newIssuer(t, ES256)
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, nil)
	k := is.SigningKey()
	claims := is.Claims("a@x", testAud, time.Hour)
	kids := []string{
		"../../../../etc/passwd", "..%2f..%2fkeys", "' OR '1'='1", "x'; DROP TABLE keys; --",
		"\x00", "key-1-ES256\x00", "https://evil.example/jwks", "{\"kid\":1}", "$(id)",
		k.Kid + " ", strings.ToUpper(k.Kid),
	}
	for _, kid := range kids {
		tok := oauthtest.MintWith(k, map[string]any{"kid": kid, "typ": "at+jwt"}, claims)
		_, err := auth(t, v, tok)
		wantReason(t, err, CodeInvalidToken, ReasonUnknownKey)
	}
	long := oauthtest.MintWith(k, map[string]any{"kid": strings.Repeat("A", 300), "typ": "at+jwt"}, claims)
	_, err := auth(t, v, long)
	wantReason(t, err, CodeInvalidToken, ReasonMalformedToken)
	nonString := oauthtest.MintWith(k, map[string]any{"kid": 42, "typ": "at+jwt"}, claims)
	_, err = auth(t, v, nonString)
	wantReason(t, err, CodeInvalidToken, ReasonMalformedToken)
	if f := is.Fetches(); f > 2 {
		t.Fatalf("injected kids caused %d fetches", f)
	}
}

func TestRFC8725_KeyURLAndEmbeddedKeyHeadersRefused(t *testing.T) {
	is := newIssuer(t, ES256)
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, nil)
	k := is.SigningKey()
	claims := is.Claims("a@x", testAud, time.Hour)
	attacker, _ := oauthtest.GenerateKey(ES256)
	ak := &oauthtest.Key{Kid: k.Kid, Alg: ES256, Priv: attacker}
	headers := []map[string]any{
		{"jku": is.JWKSURL},
		{"jku": "https://evil.example/jwks.json"},
		{"x5u": "https://evil.example/cert.pem"},
		{"jwk": oauthtest.PublicJWK(ak)},
		{"x5c": []string{"MIIB"}},
	}
	for _, h := range headers {
		h["typ"] = "at+jwt"
		for _, signer := range []*oauthtest.Key{k, ak} {
			_, err := auth(t, v, oauthtest.MintWith(signer, h, claims))
			wantReason(t, err, CodeInvalidToken, ReasonUnsafeHeader)
		}
	}
	if is.Fetches() != 0 {
		t.Fatalf("fetches = %d: refused on header before key lookup", is.Fetches())
	}
}

func TestRFC7515_4_1_11_UnknownCrit(t *testing.T) {
	is := newIssuer(t, ES256)
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, nil)
	k := is.SigningKey()
	claims := is.Claims("a@x", testAud, time.Hour)
	for _, h := range []map[string]any{
		{"crit": []string{"exp"}, "exp": 1},
		{"crit": []string{"b64"}, "b64": false},
		{"crit": []string{}},
		{"crit": "exp"},
		{"b64": false},
	} {
		h["typ"] = "at+jwt"
		_, err := auth(t, v, oauthtest.MintWith(k, h, claims))
		wantReason(t, err, CodeInvalidToken, ReasonCritUnknown)
	}
}

func TestRFC9068_2_1_Typ(t *testing.T) {
	is := newIssuer(t, ES256)
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, nil)
	k := is.SigningKey()
	claims := is.Claims("a@x", testAud, time.Hour)
	for _, typ := range []any{"JWT", "jwt", nil, "at+jwt+x", "id_token"} {
		_, err := auth(t, v, oauthtest.MintWith(k, map[string]any{"typ": typ}, claims))
		wantReason(t, err, CodeInvalidToken, ReasonWrongType)
	}
	for _, typ := range []string{"at+jwt", "AT+JWT", "application/at+jwt"} {
		mustAuth(t, v, oauthtest.MintWith(k, map[string]any{"typ": typ}, claims))
	}
}

// Entra access tokens are typed "JWT"; ID tokens are too, but carry nonce / at_hash.
func TestIDTokenIsNotAccessToken(t *testing.T) {
	is := newIssuer(t, RS256)
	ic := issuerConfig(is)
	ic.Types = []string{"JWT"}
	v := newValidator(t, []IssuerConfig{ic}, nil)
	k := is.SigningKey()
	claims := is.Claims("a@x", testAud, time.Hour)
	mustAuth(t, v, oauthtest.MintWith(k, map[string]any{"typ": "JWT"}, claims))
	for _, extra := range []string{"nonce", "at_hash"} {
		c := is.Claims("b@x", testAud, time.Hour)
		c[extra] = "abc"
		_, err := auth(t, v, oauthtest.MintWith(k, map[string]any{"typ": "JWT"}, c))
		wantReason(t, err, CodeInvalidToken, ReasonIDToken)
	}
}

func TestRFC7519_4_1_4_MissingExp(t *testing.T) {
	is := newIssuer(t, ES256)
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, nil)
	c := is.Claims("a@x", testAud, time.Hour)
	delete(c, "exp")
	_, err := auth(t, v, is.Mint(c))
	wantReason(t, err, CodeInvalidToken, ReasonMissingExp)
	c["exp"] = "tomorrow"
	_, err = auth(t, v, is.Mint(c))
	wantReason(t, err, CodeInvalidToken, ReasonBadClaim)
}

func TestRFC7519_TimeBoundariesAroundSkew(t *testing.T) {
	is := newIssuer(t, ES256)
	ic := issuerConfig(is)
	ic.ClockSkew = 30 * time.Second
	clk := &fixedClock{t: time.Unix(1_800_000_000, 0)}
	v := newValidator(t, []IssuerConfig{ic}, func(c *ValidatorConfig) {
		c.Now = clk.Now
		c.TokenCacheEntries = -1
	})
	now := clk.Now().Unix()
	base := func() map[string]any {
		c := is.Claims("a@x", testAud, time.Hour)
		c["iat"], c["nbf"], c["exp"] = now-60, now-60, now+600
		return c
	}
	cases := []struct {
		name   string
		claim  string
		value  int64
		reason Reason
	}{
		{"exp inside skew", "exp", now - 29, ""},
		{"exp at skew edge", "exp", now - 30, ReasonExpired},
		{"exp past skew", "exp", now - 31, ReasonExpired},
		{"nbf inside skew", "nbf", now + 29, ""},
		{"nbf at skew edge", "nbf", now + 30, ""},
		{"nbf past skew", "nbf", now + 31, ReasonNotYetValid},
		{"iat inside skew", "iat", now + 29, ""},
		{"iat at skew edge", "iat", now + 30, ""},
		{"iat in future", "iat", now + 31, ReasonIssuedInFuture},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := base()
			cl[c.claim] = c.value
			_, err := auth(t, v, is.Mint(cl))
			if c.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantReason(t, err, CodeInvalidToken, c.reason)
		})
	}
	// Fractional NumericDate (RFC 7519 §2).
	cl := base()
	cl["exp"] = float64(now) + 0.5
	mustAuth(t, v, is.Mint(cl))
}

func TestRFC7519_4_1_1_WrongIssuer(t *testing.T) {
	is := newIssuer(t, ES256)
	other := newIssuer(t, ES256)
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, nil)
	// Token from an untrusted issuer.
	_, err := auth(t, v, other.Mint(other.Claims("a@x", testAud, time.Hour)))
	wantReason(t, err, CodeInvalidToken, ReasonUnknownIssuer)
	// Untrusted key claiming the trusted issuer: the key is not in the trusted JWKS.
	c := is.Claims("a@x", testAud, time.Hour)
	_, err = auth(t, v, other.Mint(c))
	wantReason(t, err, CodeInvalidToken, ReasonUnknownKey)
	// Issuer compared exactly (trailing slash, case).
	c["iss"] = is.Issuer + "/"
	_, err = auth(t, v, is.Mint(c))
	wantReason(t, err, CodeInvalidToken, ReasonUnknownIssuer)
	c["iss"] = strings.ToUpper(is.Issuer)
	_, err = auth(t, v, is.Mint(c))
	wantReason(t, err, CodeInvalidToken, ReasonUnknownIssuer)
}

func TestRFC7519_4_1_3_Audience(t *testing.T) {
	is := newIssuer(t, ES256)
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, nil)
	c := is.Claims("a@x", "api://other", time.Hour)
	_, err := auth(t, v, is.Mint(c))
	wantReason(t, err, CodeInvalidToken, ReasonWrongAudience)
	delete(c, "aud")
	_, err = auth(t, v, is.Mint(c))
	wantReason(t, err, CodeInvalidToken, ReasonWrongAudience)
	c["aud"] = []string{"api://other", testAud}
	if id := mustAuth(t, v, is.Mint(c)); id.Audience != testAud {
		t.Fatalf("audience %q", id.Audience)
	}
}

func TestRFC6750_3_1_InsufficientScope(t *testing.T) {
	is := newIssuer(t, ES256)
	ic := issuerConfig(is)
	ic.RequiredScopes = []string{"EAS.AccessAsUser.All"}
	ic.RequiredRoles = []string{"Mail.Sync"}
	v := newValidator(t, []IssuerConfig{ic}, nil)
	c := is.Claims("a@x", testAud, time.Hour)
	c["scp"] = "Mail.Read"
	_, err := auth(t, v, is.Mint(c))
	oe := wantReason(t, err, CodeInsufficientScope, ReasonMissingScope)
	if oe.Status != 403 || !strings.Contains(oe.Challenge(), `scope="EAS.AccessAsUser.All"`) {
		t.Fatalf("status %d challenge %q", oe.Status, oe.Challenge())
	}
	c["scp"] = "Mail.Read EAS.AccessAsUser.All"
	_, err = auth(t, v, is.Mint(c))
	wantReason(t, err, CodeInsufficientScope, ReasonMissingRole)
	c["roles"] = []string{"Mail.Sync"}
	mustAuth(t, v, is.Mint(c))
	// RFC 9068 "scope" claim works too.
	delete(c, "scp")
	c["scope"] = "EAS.AccessAsUser.All"
	mustAuth(t, v, is.Mint(c))
}

func TestUserClaimMapping(t *testing.T) {
	is := newIssuer(t, ES256)
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, nil)
	c := is.Claims("a@x", testAud, time.Hour)
	delete(c, "upn")
	c["preferred_username"] = "pref@x"
	c["email"] = "mail@x"
	if id := mustAuth(t, v, is.Mint(c)); id.User != "pref@x" {
		t.Fatalf("user %q", id.User)
	}
	delete(c, "preferred_username")
	delete(c, "email")
	if id := mustAuth(t, v, is.Mint(c)); id.User != "sub-a@x" {
		t.Fatalf("user %q", id.User)
	}
	delete(c, "sub")
	_, err := auth(t, v, is.Mint(c))
	wantReason(t, err, CodeInvalidToken, ReasonNoUser)
	c["upn"] = 17
	_, err = auth(t, v, is.Mint(c))
	wantReason(t, err, CodeInvalidToken, ReasonBadClaim)
}

func TestOneMegabyteTokenRejectedBeforeParsing(t *testing.T) {
	is := newIssuer(t, ES256)
	rejects := 0
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, func(c *ValidatorConfig) {
		c.Hooks.OnReject = func(string, Reason) { rejects++ }
	})
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = 'A'
	}
	copy(big, "Bearer ")
	big[1000] = '.'
	big[2000] = '.'
	_, err := v.Authenticate(context.Background(), big)
	oe := wantReason(t, err, CodeInvalidRequest, ReasonHeaderTooLarge)
	if oe.Status != 400 || rejects != 1 || is.Fetches() != 0 {
		t.Fatalf("status %d rejects %d fetches %d", oe.Status, rejects, is.Fetches())
	}
	_, err = v.AuthenticateString(context.Background(), string(big))
	wantReason(t, err, CodeInvalidRequest, ReasonHeaderTooLarge)
	_, err = v.ValidateToken(context.Background(), big[7:])
	wantReason(t, err, CodeInvalidRequest, ReasonHeaderTooLarge)
	allocs := testing.AllocsPerRun(20, func() { _, _ = ParseAuthorization(big, Limits{}) })
	if allocs != 0 {
		t.Fatalf("size check allocated %v times", allocs)
	}
}

func TestMalformedTokens(t *testing.T) {
	is := newIssuer(t, ES256)
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, nil)
	good := is.Mint(is.Claims("a@x", testAud, time.Hour))
	parts := strings.Split(good, ".")
	cases := map[string]Reason{
		"abc":                             ReasonMalformedToken,
		"a.b":                             ReasonMalformedToken,
		"a.b.c.d":                         ReasonTokenTooManyParts,
		"a.b.c.d.e":                       ReasonEncryptedToken,
		"." + parts[1] + "." + parts[2]:   ReasonMalformedToken,
		parts[0] + ".." + parts[2]:        ReasonMalformedToken,
		parts[0] + "." + parts[1] + ".":   ReasonMalformedToken,
		parts[0] + "=." + parts[1] + ".x": ReasonMalformedHeader,
		b64u([]byte(`{"alg":"ES256"`)) + "." + parts[1] + "." + parts[2]:                   ReasonMalformedToken,
		b64u([]byte(`{"alg":"RSA-OAEP","enc":"A256GCM"}`)) + "." + parts[1] + ".x":         ReasonEncryptedToken,
		b64u([]byte(`{"alg":"ES256","typ":"at+jwt","cty":"JWT"}`)) + "." + parts[1] + ".x": ReasonMalformedToken,
		parts[0] + "." + b64u([]byte(`[1,2]`)) + "." + parts[2]:                            ReasonMalformedToken,
		parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-4] + "AAAA":              ReasonBadSignature,
	}
	for tok, reason := range cases {
		_, err := auth(t, v, tok)
		var oe *Error
		if !errors.As(err, &oe) || oe.Reason != reason {
			t.Errorf("%.40q: got %v, want %s", tok, err, reason)
		}
	}
	// Payload swapped between two genuine tokens: signature must fail.
	other := strings.Split(is.Mint(is.Claims("admin@x", testAud, time.Hour)), ".")
	_, err := auth(t, v, parts[0]+"."+other[1]+"."+parts[2])
	wantReason(t, err, CodeInvalidToken, ReasonBadSignature)
}

func TestRevokedUserRefusedEvenWhenCached(t *testing.T) {
	is := newIssuer(t, ES256)
	var revokedByCallback string
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, func(c *ValidatorConfig) {
		c.Revoked = func(id *Identity) bool { return id.User == revokedByCallback }
	})
	tok := is.Mint(is.Claims("Bob@x", testAud, time.Hour))
	mustAuth(t, v, tok)
	v.waitCache()
	v.RevokeUser("bob@X")
	_, err := auth(t, v, tok)
	wantReason(t, err, CodeInvalidToken, ReasonRevoked)
	v.UnrevokeUser("BOB@x")
	mustAuth(t, v, tok)
	revokedByCallback = "Bob@x"
	_, err = auth(t, v, tok)
	wantReason(t, err, CodeInvalidToken, ReasonRevoked)
	// A new (uncached) token of the revoked user is refused too.
	_, err = auth(t, v, is.Mint(is.Claims("Bob@x", testAud, 2*time.Hour)))
	wantReason(t, err, CodeInvalidToken, ReasonRevoked)
}

func TestVerifiedTokenCache(t *testing.T) {
	is := newIssuer(t, ES256)
	clk := &fixedClock{t: time.Now()}
	v := newValidator(t, []IssuerConfig{issuerConfig(is)}, func(c *ValidatorConfig) { c.Now = clk.Now })
	c := is.Claims("a@x", testAud, time.Hour)
	c["exp"] = clk.Now().Add(10 * time.Minute).Unix()
	tok := is.Mint(c)
	id1 := mustAuth(t, v, tok)
	v.waitCache()
	// Take the keys away: only a cache hit can still succeed.
	ik := (*v.issuers.Load())[is.Issuer]
	ik.set.Store(&keySet{byKid: map[string][]*verKey{}, fetched: clk.Now()})
	id2 := mustAuth(t, v, tok)
	if id1 != id2 {
		t.Fatal("second validation did not come from the cache")
	}
	// Never served past exp: at exp the entry is ignored and full validation refuses.
	clk.Set(time.Unix(c["exp"].(int64), 0).Add(DefaultClockSkew))
	_, err := auth(t, v, tok)
	wantReason(t, err, CodeInvalidToken, ReasonExpired)
	// A token differing in one signature byte is a different key.
	clk.Set(time.Now())
	_, err = auth(t, v, tok[:len(tok)-2]+"AA")
	if err == nil {
		t.Fatal("altered token accepted from cache")
	}
}

func TestConfigValidateReportsAllErrors(t *testing.T) {
	cfg := ValidatorConfig{Issuers: []IssuerConfig{
		{Issuer: "", JWKSURL: "http://evil.example/keys", Algorithms: []string{"HS256", "none"}, ClockSkew: time.Hour},
		{Issuer: "x", JWKSURL: "https://a/keys", DiscoveryURL: "https://a/.well-known", Audiences: []string{"a"}},
		{Issuer: "x", Keys: KeySourceFunc(nil), Audiences: []string{"a"}},
	}}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	msg := err.Error()
	for _, want := range []string{"issuer is empty", "http not allowed", "HS256", `"none"`, "clock skew",
		"no accepted audiences", "exactly one of", "configured twice"} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	for _, line := range strings.Split(msg, "\n") {
		if !strings.HasPrefix(line, "oauth: ") {
			t.Errorf("error %q does not start with the package name", line)
		}
	}
	// http on loopback only with the explicit option, and only for IP literals.
	ok := ValidatorConfig{Issuers: []IssuerConfig{{Issuer: "i", JWKSURL: "http://127.0.0.1:1/k", Audiences: []string{"a"}}},
		Fetch: FetchConfig{InsecureAllowLoopbackHTTP: true}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	ok.Issuers[0].JWKSURL = "http://localhost:1/k"
	if err := ok.Validate(); err == nil {
		t.Fatal("http://localhost accepted: names can resolve anywhere")
	}
	ok.Issuers[0].JWKSURL = "http://10.0.0.1/k"
	if err := ok.Validate(); err == nil {
		t.Fatal("http to a non-loopback address accepted")
	}
}

// KeySourceFunc adapts a function to KeySource (tests).
type KeySourceFunc func(context.Context) ([]byte, error)

func (f KeySourceFunc) FetchJWKS(ctx context.Context) ([]byte, error) { return f(ctx) }

func TestEntraIssuerForms(t *testing.T) {
	tid := "72f988bf-86f1-41af-91ab-2d7cd011db47"
	if EntraV1Issuer(tid) != "https://sts.windows.net/"+tid+"/" ||
		EntraV2Issuer(tid) != "https://login.microsoftonline.com/"+tid+"/v2.0" {
		t.Fatal("issuer forms")
	}
	// Both forms can be trusted at once, sharing one key endpoint.
	cfg := ValidatorConfig{Issuers: []IssuerConfig{
		{Issuer: EntraV1Issuer(tid), JWKSURL: EntraJWKSURL(tid), Audiences: []string{"00000002-0000-0ff1-ce00-000000000000"}, Types: []string{"JWT"}},
		{Issuer: EntraV2Issuer(tid), JWKSURL: EntraJWKSURL(tid), Audiences: []string{"api://easgate"}, Types: []string{"JWT"}},
	}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
