// Package oauth validates OAuth 2.0 bearer access tokens for the gateway, maps them to an
// Identity, binds that identity to the Exchange ActiveSync User and DeviceId, builds
// claims challenges, and issues the gateway's own device-bound tokens by token exchange.
//
// Specifications implemented:
//   - RFC 6750 §2.1 (Authorization request header; §2.2 form body and §2.3 URI query are
//     NOT accepted: see QueryHasAccessToken) and §3 (WWW-Authenticate, error codes).
//   - RFC 7519 (JWT) with the RFC 8725 best current practices: the algorithm comes from
//     the issuer's allow-list (RS256, PS256, ES256, EdDSA — never "none" or HMAC), the key
//     from the issuer's JWKS by kid and key type; jku, x5u, jwk and x5c headers are refused,
//     never followed; unknown "crit" is refused; "exp" is required; "typ" is enforced.
//   - RFC 9068 (JWT access tokens: typ "at+jwt", scope, roles, groups).
//   - RFC 7517 / RFC 7638 (JWKS, thumbprint kids), RFC 8414 (metadata),
//     RFC 8693 (token exchange), RFC 6749 §5.2 (token error responses).
//
// lestrrat-go/jwx/v2 parses keys and checks signatures; none of its types or errors leave
// the package. Callers see *Error (RFC 6750 code + HTTP status + challenge) or *BindError.
//
// Nothing here imports net/http servers or fasthttp: handlers take parsed inputs and
// return status, body and headers. The gateway owns the wire.
//
// Caching: a Validator keeps, per issuer, the last good JWKS (lock-free reads; refresh is
// single-flight and rate-limited) and a bounded cache of verified tokens keyed by the
// SHA-256 of the token (the token is never stored), each entry expiring no later than the
// token's exp. Revocation is checked on every request, cached or not.
package oauth
