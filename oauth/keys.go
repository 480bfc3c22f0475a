package oauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// algKty maps each supported JWS algorithm to the JWK key type it needs.
var algKty = map[string]jwa.KeyType{
	RS256: jwa.RSA,
	PS256: jwa.RSA,
	ES256: jwa.EC,
	EdDSA: jwa.OKP,
}

// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3 requires 2048).
const minRSABits = 2048

// verKey is one public verification key from a JWKS.
type verKey struct {
	kid string
	kty jwa.KeyType
	alg string // "" when the JWK has no "alg"
	raw any    // *rsa.PublicKey, *ecdsa.PublicKey (P-256) or ed25519.PublicKey
}

func (k *verKey) compatible(alg string) bool {
	if algKty[alg] != k.kty {
		return false
	}
	return k.alg == "" || k.alg == alg
}

// keySet is an immutable, parsed JWKS.
type keySet struct {
	byKid   map[string][]*verKey
	all     []*verKey
	fetched time.Time
}

// lookup returns the key for kid usable with alg. With no kid, the set must hold exactly
// one compatible key (RFC 7515 §4.1.4 makes kid optional; guessing among several keys
// would let a token choose).
func (s *keySet) lookup(kid, alg string) *verKey {
	if s == nil {
		return nil
	}
	if kid != "" {
		for _, k := range s.byKid[kid] {
			if k.compatible(alg) {
				return k
			}
		}
		return nil
	}
	var found *verKey
	for _, k := range s.all {
		if k.compatible(alg) {
			if found != nil {
				return nil
			}
			found = k
		}
	}
	return found
}

// errBadJWKS is the cause recorded when a fetched set is refused; the previous set stays.
var errBadJWKS = errors.New("oauth: jwks rejected")

// parseKeySet parses and vets a JWKS document. A set is refused as a whole (and the last
// good set keeps serving) when it is not valid JSON, holds private key material, or holds
// two keys with the same kid and key type (an ambiguous set: picking either would let the
// publisher — or someone in the middle — choose which key a token is checked with).
// Keys of other types (oct), with "use" other than "sig", weak RSA, or curves other than
// P-256 / Ed25519 are skipped.
func parseKeySet(body []byte, maxKeys int, now time.Time) (*keySet, error) {
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed", errBadJWKS)
	}
	if set.Len() > maxKeys {
		return nil, fmt.Errorf("%w: %d keys exceeds limit %d", errBadJWKS, set.Len(), maxKeys)
	}
	ks := &keySet{byKid: map[string][]*verKey{}, fetched: now}
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		if priv, err := jwk.IsPrivateKey(k); err == nil && priv {
			return nil, fmt.Errorf("%w: contains private key material", errBadJWKS)
		}
		if u := k.KeyUsage(); u != "" && u != string(jwk.ForSignature) {
			continue
		}
		vk := &verKey{kid: k.KeyID(), kty: k.KeyType()}
		if a := k.Algorithm(); a != nil && a.String() != "" {
			vk.alg = a.String()
			if _, ok := algKty[vk.alg]; !ok {
				continue
			}
		}
		var raw any
		if err := k.Raw(&raw); err != nil {
			continue
		}
		switch pk := raw.(type) {
		case *rsa.PublicKey:
			if pk.N.BitLen() < minRSABits {
				continue
			}
			vk.raw = pk
		case *ecdsa.PublicKey:
			if pk.Curve != elliptic.P256() {
				continue
			}
			vk.raw = pk
		case ed25519.PublicKey:
			vk.raw = pk
		default:
			continue
		}
		for _, other := range ks.byKid[vk.kid] {
			if vk.kid != "" && other.kty == vk.kty {
				return nil, fmt.Errorf("%w: duplicate kid %q", errBadJWKS, vk.kid)
			}
		}
		if vk.kid != "" {
			ks.byKid[vk.kid] = append(ks.byKid[vk.kid], vk)
		}
		ks.all = append(ks.all, vk)
	}
	if len(ks.all) == 0 {
		return nil, fmt.Errorf("%w: no usable signing keys", errBadJWKS)
	}
	return ks, nil
}
