// Package oauthtest is a test token issuer: a JWKS and OpenID discovery server on
// 127.0.0.1 with key rotation, token minting for RS256, PS256, ES256 and EdDSA, and fault
// modes (down, slow, poisoned, malformed) for exercising a Validator.
//
// Tokens are signed with the standard library only (not jwx), so tests cross-check the
// validator against an independent JWS implementation (RFC 7515 §5.1, RFC 7518 §3).
package oauthtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Mode is how the issuer's JWKS endpoint behaves.
type Mode int

const (
	// ModeNormal serves the published keys.
	ModeNormal Mode = iota
	// ModeDown answers 503 to every JWKS and discovery request.
	ModeDown
	// ModeSlow delays each answer by the SetSlow delay (or until the client gives up).
	ModeSlow
	// ModePoisoned serves, under each published kid, different key material (what a
	// man in the middle substituting keys would serve).
	ModePoisoned
	// ModeDuplicateKid serves each published key twice under the same kid: once genuine,
	// once attacker material.
	ModeDuplicateKid
	// ModeMalformed serves a truncated JSON document.
	ModeMalformed
)

// Key is one signing key of the issuer.
type Key struct {
	Kid  string
	Alg  string
	Priv crypto.Signer
}

// Issuer is a running test issuer. Its methods are safe for concurrent use.
type Issuer struct {
	Server       *httptest.Server
	Issuer       string // iss value: Server.URL + "/tenant"
	JWKSURL      string
	DiscoveryURL string

	mu        sync.Mutex
	published []*Key
	signing   *Key
	mode      Mode
	delay     time.Duration
	poison    map[string]*Key
	fetches   atomic.Int64
	seq       int
}

// New starts an issuer on 127.0.0.1 with one key of alg, closed by tb.Cleanup.
func New(tb testing.TB, alg string) *Issuer {
	tb.Helper()
	is := &Issuer{poison: map[string]*Key{}}
	is.Server = httptest.NewServer(http.HandlerFunc(is.serve))
	is.Issuer = is.Server.URL + "/tenant"
	is.JWKSURL = is.Server.URL + "/tenant/keys"
	is.DiscoveryURL = is.Server.URL + "/tenant/.well-known/openid-configuration"
	tb.Cleanup(is.Server.Close)
	k, err := is.AddKey(alg)
	if err != nil {
		tb.Fatal(err)
	}
	is.UseKey(k)
	return is
}

// GenerateKey makes a key for alg (RS256/PS256: RSA 2048; ES256: P-256; EdDSA: Ed25519).
func GenerateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case "RS256", "PS256":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, p, err := ed25519.GenerateKey(rand.Reader)
		return p, err
	}
	return nil, fmt.Errorf("oauthtest: unsupported alg %q", alg)
}

// AddKey generates and publishes a key; it does not sign with it until UseKey.
func (is *Issuer) AddKey(alg string) (*Key, error) {
	priv, err := GenerateKey(alg)
	if err != nil {
		return nil, err
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	is.seq++
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	k := &Key{Kid: fmt.Sprintf("key-%d-%s-%s", is.seq, alg, b64(rnd[:])), Alg: alg, Priv: priv}
	is.published = append(is.published, k)
	return k, nil
}

// UseKey makes k the key Mint signs with.
func (is *Issuer) UseKey(k *Key) {
	is.mu.Lock()
	is.signing = k
	is.mu.Unlock()
}

// Rotate publishes a new key of alg and signs with it from now on (the old key stays
// published until RemoveKey).
func (is *Issuer) Rotate(alg string) (*Key, error) {
	k, err := is.AddKey(alg)
	if err != nil {
		return nil, err
	}
	is.UseKey(k)
	return k, nil
}

// RemoveKey unpublishes kid.
func (is *Issuer) RemoveKey(kid string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	out := is.published[:0]
	for _, k := range is.published {
		if k.Kid != kid {
			out = append(out, k)
		}
	}
	is.published = out
}

// SigningKey returns the current signing key.
func (is *Issuer) SigningKey() *Key {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.signing
}

// SetMode switches the endpoint behaviour.
func (is *Issuer) SetMode(m Mode) {
	is.mu.Lock()
	is.mode = m
	is.mu.Unlock()
}

// SetSlow selects ModeSlow with the given delay.
func (is *Issuer) SetSlow(d time.Duration) {
	is.mu.Lock()
	is.mode, is.delay = ModeSlow, d
	is.mu.Unlock()
}

// Fetches counts JWKS requests served (in any mode).
func (is *Issuer) Fetches() int64 { return is.fetches.Load() }

func (is *Issuer) serve(w http.ResponseWriter, r *http.Request) {
	is.mu.Lock()
	mode, delay := is.mode, is.delay
	is.mu.Unlock()
	switch r.URL.Path {
	case "/tenant/keys":
		is.fetches.Add(1)
	case "/tenant/.well-known/openid-configuration":
	default:
		http.NotFound(w, r)
		return
	}
	switch mode {
	case ModeDown:
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	case ModeSlow:
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path != "/tenant/keys" {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": is.Issuer, "jwks_uri": is.JWKSURL})
		return
	}
	if mode == ModeMalformed {
		_, _ = w.Write([]byte(`{"keys":[{"kty":"RSA","n":`))
		return
	}
	_, _ = w.Write(is.jwks(mode))
}

// JWKS returns the published key set as served in ModeNormal.
func (is *Issuer) JWKS() []byte { return is.jwks(ModeNormal) }

func (is *Issuer) jwks(mode Mode) []byte {
	is.mu.Lock()
	defer is.mu.Unlock()
	var keys []map[string]any
	for _, k := range is.published {
		switch mode {
		case ModePoisoned:
			keys = append(keys, PublicJWK(is.poisonLocked(k)))
		case ModeDuplicateKid:
			keys = append(keys, PublicJWK(k), PublicJWK(is.poisonLocked(k)))
		default:
			keys = append(keys, PublicJWK(k))
		}
	}
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return b
}

// poisonLocked returns attacker material under k's kid (stable per kid).
func (is *Issuer) poisonLocked(k *Key) *Key {
	if p, ok := is.poison[k.Kid]; ok {
		return p
	}
	priv, err := GenerateKey(k.Alg)
	if err != nil {
		panic(err)
	}
	p := &Key{Kid: k.Kid, Alg: k.Alg, Priv: priv}
	is.poison[k.Kid] = p
	return p
}

// PoisonKey returns the attacker key the poisoned modes serve under kid's name, so a test
// can sign with it.
func (is *Issuer) PoisonKey(k *Key) *Key {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.poisonLocked(k)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func pad(b []byte, n int) []byte {
	out := make([]byte, n)
	copy(out[n-len(b):], b)
	return out
}

// PublicJWK renders k's public key as a JWK object (RFC 7518 §6) without "alg", as
// Microsoft Entra publishes its keys, so validators must pick keys by kid and kty.
func PublicJWK(k *Key) map[string]any {
	m := map[string]any{"kid": k.Kid, "use": "sig"}
	switch p := k.Priv.Public().(type) {
	case *rsa.PublicKey:
		m["kty"] = "RSA"
		m["n"] = b64(p.N.Bytes())
		m["e"] = b64(big.NewInt(int64(p.E)).Bytes())
	case *ecdsa.PublicKey:
		m["kty"] = "EC"
		m["crv"] = "P-256"
		ecdh, _ := p.ECDH()
		raw := ecdh.Bytes() // 0x04 || X || Y
		m["x"] = b64(raw[1:33])
		m["y"] = b64(raw[33:65])
	case ed25519.PublicKey:
		m["kty"] = "OKP"
		m["crv"] = "Ed25519"
		m["x"] = b64(p)
	}
	return m
}

// Claims returns a valid RFC 9068 claim set for user and aud, expiring in ttl.
func (is *Issuer) Claims(user, aud string, ttl time.Duration) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss":       is.Issuer,
		"sub":       "sub-" + user,
		"aud":       aud,
		"upn":       user,
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"exp":       now.Add(ttl).Unix(),
		"jti":       fmt.Sprintf("jti-%d", now.UnixNano()),
		"scp":       "EAS.AccessAsUser.All",
		"client_id": "test-client",
	}
}

// Mint signs claims with the current key, header {alg, kid, typ: at+jwt}.
func (is *Issuer) Mint(claims map[string]any) string {
	k := is.SigningKey()
	return MintWith(k, map[string]any{"typ": "at+jwt"}, claims)
}

// MintWith signs claims with k. header adds to (or, with a nil value, removes from) the
// default header {alg: k.Alg, kid: k.Kid}.
func MintWith(k *Key, header map[string]any, claims map[string]any) string {
	h := map[string]any{"alg": k.Alg, "kid": k.Kid}
	for name, v := range header {
		if v == nil {
			delete(h, name)
		} else {
			h[name] = v
		}
	}
	hb, err := json.Marshal(h)
	if err != nil {
		panic(err)
	}
	pb, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	return SignRaw(k, hb, pb)
}

// SignRaw builds a compact JWS over the given header and payload JSON, signing with k
// according to k.Alg (RFC 7518 §3.3–3.5, RFC 8037 §3.1), whatever the header says.
func SignRaw(k *Key, headerJSON, payloadJSON []byte) string {
	input := b64(headerJSON) + "." + b64(payloadJSON)
	var sig []byte
	var err error
	digest := sha256.Sum256([]byte(input))
	switch k.Alg {
	case "RS256":
		sig, err = rsa.SignPKCS1v15(rand.Reader, k.Priv.(*rsa.PrivateKey), crypto.SHA256, digest[:])
	case "PS256":
		sig, err = rsa.SignPSS(rand.Reader, k.Priv.(*rsa.PrivateKey), crypto.SHA256, digest[:],
			&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "ES256":
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, k.Priv.(*ecdsa.PrivateKey), digest[:])
		if err == nil {
			sig = append(pad(r.Bytes(), 32), pad(s.Bytes(), 32)...)
		}
	case "EdDSA":
		sig = ed25519.Sign(k.Priv.(ed25519.PrivateKey), []byte(input))
	default:
		err = fmt.Errorf("oauthtest: unsupported alg %q", k.Alg)
	}
	if err != nil {
		panic(err)
	}
	return input + "." + b64(sig)
}
