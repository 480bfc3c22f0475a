package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/oauth"
)

// OAuthConfig configures bearer-token authentication on the EAS path and the gateway's own
// token service. With no issuers and the token service disabled, Bearer credentials are refused.
type OAuthConfig struct {
	// Issuers are the trusted token issuers (Entra ID, an OIDC provider, ...).
	Issuers []OAuthIssuer `yaml:"issuers"`
	// TokenService issues device-bound tokens of the gateway's own at /oauth/token
	// (RFC 8693 token exchange) to registered, compliant devices.
	TokenService OAuthTokenService `yaml:"token_service"`
	// AllowLoopbackHTTP lets JWKS and discovery URLs use plain http on a loopback address.
	// For tests and local demos only. Default false.
	AllowLoopbackHTTP bool `yaml:"allow_loopback_http"`
}

// OAuthIssuer is one trusted issuer; see oauth.IssuerConfig for every field's default.
type OAuthIssuer struct {
	Issuer            string        `yaml:"issuer"`
	JWKSURL           string        `yaml:"jwks_url"`
	DiscoveryURL      string        `yaml:"discovery_url"`
	Audiences         []string      `yaml:"audiences"`
	Algorithms        []string      `yaml:"algorithms"`
	Types             []string      `yaml:"types"`
	ClockSkew         time.Duration `yaml:"clock_skew"`
	RequiredScopes    []string      `yaml:"required_scopes"`
	RequiredRoles     []string      `yaml:"required_roles"`
	UserClaims        []string      `yaml:"user_claims"`
	DeviceIDClaim     string        `yaml:"device_id_claim"`
	GroupsClaim       string        `yaml:"groups_claim"`
	CapabilitiesClaim string        `yaml:"capabilities_claim"`
}

// OAuthTokenService configures the gateway's own issuer.
type OAuthTokenService struct {
	Enabled bool `yaml:"enabled"`
	// Lifetime of an issued token. Default 10m, at most 1h.
	Lifetime time.Duration `yaml:"lifetime"`
	// Algorithm is ES256 (default) or EdDSA.
	Algorithm string `yaml:"algorithm"`
}

func (c *OAuthConfig) enabled() bool { return len(c.Issuers) > 0 || c.TokenService.Enabled }

// setupOAuth builds the validator and the token service from the configuration.
func (s *Server) setupOAuth(devices oauth.DeviceChecker) error {
	oc := s.cfg.OAuth
	if !oc.enabled() {
		return nil
	}
	vc := oauth.ValidatorConfig{Realm: "easgate"}
	vc.Fetch.InsecureAllowLoopbackHTTP = oc.AllowLoopbackHTTP
	for _, is := range oc.Issuers {
		vc.Issuers = append(vc.Issuers, oauth.IssuerConfig{
			Issuer: is.Issuer, JWKSURL: is.JWKSURL, DiscoveryURL: is.DiscoveryURL, Audiences: is.Audiences,
			Algorithms: is.Algorithms, Types: is.Types, ClockSkew: is.ClockSkew, RequiredScopes: is.RequiredScopes,
			RequiredRoles: is.RequiredRoles, UserClaims: is.UserClaims, DeviceIDClaim: is.DeviceIDClaim,
			GroupsClaim: is.GroupsClaim, CapabilitiesClaim: is.CapabilitiesClaim,
		})
	}
	v, err := oauth.NewValidator(vc)
	if err != nil {
		return err
	}
	s.validator = v
	if oc.TokenService.Enabled {
		if devices == nil {
			return errors.New("gateway: oauth token service needs the device registry")
		}
		base := trimSlash(s.cfg.Listen.ExternalURL)
		ts, err := oauth.NewTokenService(oauth.TokenServiceConfig{
			Issuer:        base,
			TokenEndpoint: base + "/oauth/token",
			JWKSURI:       base + "/oauth/jwks",
			Validator:     v,
			Devices:       devices,
			Audiences:     []string{s.easURL},
			Algorithm:     oc.TokenService.Algorithm,
			TokenLifetime: oc.TokenService.Lifetime,
		})
		if err != nil {
			return err
		}
		if err := v.AddIssuer(ts.IssuerConfig()); err != nil {
			return err
		}
		s.tokens = ts
	}
	s.bearer = s.authenticateBearer
	return nil
}

// authenticateBearer validates an OAuth bearer token and binds it to the EAS request: the
// token's user must be the EAS User and a device id in the token must be the EAS DeviceId.
func (s *Server) authenticateBearer(ctx *fasthttp.RequestCtx, st *reqState) (string, error) {
	if oauth.QueryHasAccessToken(string(ctx.URI().QueryString())) {
		return "", oauth.ErrQueryToken
	}
	// A verified token is cached; only a miss can wait on a key-set fetch, which the validator
	// bounds by its own fetch timeout.
	id, err := s.validator.Authenticate(s.baseCtx, st.hdr.v[hdrAuthorization])
	if err != nil {
		return "", err
	}
	user, ok := s.names.canonicalUser(id.User)
	if !ok {
		return "", &oauth.Error{Code: "invalid_token", Status: 401, Description: "token names no usable user", Reason: "bad_user_claim"}
	}
	// The user binding is bindUser's, with the configured name folding (a bare EAS User and a
	// UPN in the token are one person when the default domain says so); Bind checks the device.
	if st.req.DeviceID != "" {
		if err := oauth.Bind(id, id.User, st.req.DeviceID); err != nil {
			var be *oauth.BindError
			if errors.As(err, &be) {
				s.log.Warn("bearer token bound to another user or device", "rid", st.rid(), "field", be.Field, "user", user, "device", st.req.DeviceID)
				s.auditSpoofing(user, st.req.DeviceID, "bearer token bound to another "+be.Field)
				return "", be.OAuthError("easgate")
			}
			return "", err
		}
	}
	st.identity = id
	return user, nil
}

// claimsChallenge answers a device that is not allowed, when its client declared the
// claims-challenge capability (cp1): a 401 that tells the client to obtain a compliant token,
// with the remediation page. Other clients get the quarantine experience instead.
func (s *Server) claimsChallenge(st *reqState) error {
	if st.identity == nil || !oauth.SupportsClaimsChallenge(st.identity) || st.dec.Action == decision.Allow {
		return nil
	}
	if st.dec.Action != decision.Quarantine {
		return nil
	}
	claims := `{"access_token":{"xms_cc":{"values":["cp1"]},"acrs":{"essential":true,"value":"compliant-device"}}}`
	return oauth.ClaimsChallenge("easgate", []byte(claims), s.remediationURL(st.user, st.req.DeviceID))
}

// remediationURL is the portal page for a device: a signed, expiring link when the portal is
// configured, else the portal's landing page.
func (s *Server) remediationURL(user, device string) string {
	if s.portalLink != nil {
		return s.portalLink(user, device)
	}
	return trimSlash(s.cfg.Listen.ExternalURL) + "/portal/?device=" + url.QueryEscape(device)
}

// serveOAuth answers /oauth/token, /oauth/jwks and the RFC 8414 metadata document.
func (s *Server) serveOAuth(ctx *fasthttp.RequestCtx, rt route) bool {
	if s.tokens == nil {
		return false
	}
	switch rt {
	case routeOAuthToken:
		if !ctx.IsPost() {
			ctx.Response.Header.Set("Allow", "POST")
			ctx.SetStatusCode(405)
			return true
		}
		if !bytesHasPrefixFold(ctx.Request.Header.ContentType(), "application/x-www-form-urlencoded") {
			ctx.SetStatusCode(400)
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"error":"invalid_request","error_description":"form body required"}`)
			return true
		}
		form, err := url.ParseQuery(string(ctx.PostBody()))
		if err != nil {
			ctx.SetStatusCode(400)
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"error":"invalid_request","error_description":"malformed form"}`)
			return true
		}
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		code, body, headers := s.tokens.Exchange(c, form)
		for k, v := range headers {
			ctx.Response.Header.Set(k, v)
		}
		ctx.SetStatusCode(code)
		ctx.SetBody(body)
	case routeOAuthJWKS:
		ctx.SetContentType("application/jwk-set+json")
		ctx.Response.Header.Set("Cache-Control", "public, max-age=300")
		ctx.SetBody(s.tokens.JWKS())
	case routeOAuthMetadata:
		ctx.SetContentType("application/json")
		ctx.Response.Header.Set("Cache-Control", "public, max-age=300")
		ctx.SetBody(s.tokens.Metadata())
	default:
		return false
	}
	return true
}

func bytesHasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && asciiEqualFold(b[:len(prefix)], prefix)
}

// registryDevices answers the token service: is this device registered to this user and
// allowed right now? It asks the same decision the EAS path asks.
type registryDevices struct {
	s *Server
}

func (r registryDevices) CheckDevice(ctx context.Context, user, deviceID string) (bool, string, error) {
	cu, ok := r.s.names.canonicalUser(user)
	if !ok {
		return false, "", fmt.Errorf("gateway: unusable user %q", user)
	}
	d, err := r.s.decider.Decide(ctx, &decision.Input{User: cu, DeviceID: deviceID, Command: "TokenExchange", Now: time.Now()})
	if err != nil {
		return false, "", err
	}
	return d.Action == decision.Allow, r.s.remediationURL(cu, deviceID), nil
}
