package oauth

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestBindUserCaseInsensitiveUPN(t *testing.T) {
	id := &Identity{User: "Alice@Contoso.COM"}
	for _, u := range []string{"alice@contoso.com", "ALICE@CONTOSO.COM", " Alice@Contoso.com "} {
		if err := Bind(id, u, "ANYDEVICE"); err != nil {
			t.Errorf("%q: %v", u, err)
		}
	}
}

func TestBindSpoofedUser(t *testing.T) {
	id := &Identity{User: "alice@contoso.com"}
	for _, u := range []string{"bob@contoso.com", "", "CONTOSO\\alice", "alice@contoso.com.evil", "alice"} {
		var be *BindError
		err := Bind(id, u, "D1")
		if !errors.As(err, &be) || be.Field != "user" {
			t.Errorf("%q: %v", u, err)
			continue
		}
		if strings.Contains(err.Error(), "alice") || !strings.HasPrefix(err.Error(), "oauth: ") {
			t.Errorf("error text %q leaks values or lacks the package prefix", err)
		}
		oe := be.OAuthError("r")
		if oe.Status != 401 || oe.Code != CodeInvalidToken {
			t.Errorf("client answer %+v", oe)
		}
	}
	var be *BindError
	if err := Bind(nil, "a", "b"); !errors.As(err, &be) {
		t.Fatal("nil identity bound")
	}
}

// A token bound to one device presented with another user's (or the same user's other)
// device id.
func TestBindTokenForAnotherDevice(t *testing.T) {
	id := &Identity{User: "alice@contoso.com", DeviceID: "ANDROIDC123"}
	if err := Bind(id, "alice@contoso.com", "androidc123"); err != nil {
		t.Fatal(err)
	}
	var be *BindError
	err := Bind(id, "alice@contoso.com", "IPHONEBOB")
	if !errors.As(err, &be) || be.Field != "device" || be.TokenValue != "ANDROIDC123" || be.RequestValue != "IPHONEBOB" {
		t.Fatalf("%v %+v", err, be)
	}
	// No device claim in the token: any device of that user (the decision layer checks the
	// registry).
	if err := Bind(&Identity{User: "alice@contoso.com"}, "alice@contoso.com", "X"); err != nil {
		t.Fatal(err)
	}
}

func TestClaimsChallengeCP1(t *testing.T) {
	claims := []byte(`{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`)
	e := ClaimsChallenge("easgate", claims, "https://gw.example.com/portal/remediate?d=ABC")
	if e.Status != 401 || e.Code != CodeInsufficientClaims {
		t.Fatalf("%+v", e)
	}
	h := e.Challenge()
	want := `Bearer realm="easgate", error="insufficient_claims", error_description="additional claims required", ` +
		`error_uri="https://gw.example.com/portal/remediate?d=ABC", claims="` + base64.StdEncoding.EncodeToString(claims) + `"`
	if h != want {
		t.Fatalf("got  %s\nwant %s", h, want)
	}
	if !SupportsClaimsChallenge(&Identity{Capabilities: []string{"cp1"}}) ||
		SupportsClaimsChallenge(&Identity{Capabilities: []string{"CP1x"}}) || SupportsClaimsChallenge(nil) {
		t.Fatal("capability detection")
	}
	// Unsafe remediation URLs are dropped; non-JSON claims fall back to invalid_token.
	for _, u := range []string{"javascript:alert(1)", "http://evil.example/x", "/relative", "ftp://a/b"} {
		if e := ClaimsChallenge("r", claims, u); e.URI != "" {
			t.Errorf("%q kept as %q", u, e.URI)
		}
	}
	// A quote or CRLF in an accepted URL cannot break out of the attribute.
	h = ClaimsChallenge("r", claims, "https://gw.example.com/p?x=\"%0d%0a").Challenge()
	if strings.Count(h, `"`) != 10 || strings.ContainsAny(h, "\r\n") {
		t.Fatalf("challenge %q", h)
	}
	if e := ClaimsChallenge("r", []byte("not json"), ""); e.Code != CodeInvalidToken || e.Claims != "" {
		t.Fatalf("%+v", e)
	}
}
