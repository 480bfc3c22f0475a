package oauth_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/easgate/easgate/oauth"
)

type registry struct{}

func (registry) CheckDevice(_ context.Context, user, deviceID string) (bool, string, error) {
	return false, "https://gateway.example.com/portal/enrol?device=" + url.QueryEscape(deviceID), nil
}

// The gateway's wiring: trust Entra (v2 issuer) and the gateway's own token service,
// authenticate a request, bind it to the EAS User and DeviceId, and map failures to the
// wire. The handler owns HTTP; oauth only returns values.
func Example_gatewayWiring() {
	const tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	v, err := oauth.NewValidator(oauth.ValidatorConfig{
		Realm: "easgate",
		Issuers: []oauth.IssuerConfig{{
			Issuer:         oauth.EntraV2Issuer(tenant),
			JWKSURL:        oauth.EntraJWKSURL(tenant),
			Audiences:      []string{"api://easgate"},
			Types:          []string{"JWT"}, // Entra access tokens are typed "JWT"
			RequiredScopes: []string{"EAS.AccessAsUser.All"},
		}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer v.Close()
	ts, err := oauth.NewTokenService(oauth.TokenServiceConfig{
		Issuer:    "https://gateway.example.com",
		Validator: v,
		Devices:   registry{},
		Audiences: []string{"https://gateway.example.com/Microsoft-Server-ActiveSync"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := v.AddIssuer(ts.IssuerConfig()); err != nil { // trusted without HTTP
		fmt.Println(err)
		return
	}

	// Per request (header bytes from fasthttp's Peek are fine: only read during the call).
	rawQuery, authz := "Cmd=Sync&User=alice@contoso.com&DeviceId=ABC", []byte("Bearer not-a-jwt")
	if oauth.QueryHasAccessToken(rawQuery) {
		fmt.Println(oauth.ErrQueryToken.Status, oauth.ErrQueryToken.Challenge())
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	id, err := v.Authenticate(ctx, authz)
	var oe *oauth.Error
	if errors.As(err, &oe) {
		// Status and WWW-Authenticate go to the client; oe.Reason to the audit log.
		fmt.Println(oe.Status, oe.Reason)
		fmt.Println(oe.Challenge())
		return
	}
	if err := oauth.Bind(id, "alice@contoso.com", "ABC"); err != nil {
		var be *oauth.BindError
		if errors.As(err, &be) {
			fmt.Println(be.OAuthError("easgate").Challenge())
		}
	}
	// Output:
	// 401 malformed_token
	// Bearer realm="easgate", error="invalid_token", error_description="malformed token"
}
