package portal

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"time"
)

// Token errors. Pages never say more than "invalid" or "expired".
var (
	// ErrTokenInvalid: the token is malformed or its signature does not verify (tampered,
	// or signed with another key).
	ErrTokenInvalid = errors.New("portal: invalid token")
	// ErrTokenExpired: the signature verifies but the expiry has passed.
	ErrTokenExpired = errors.New("portal: token expired")
)

// MinKeyLen is the shortest accepted signing key (bytes): the HMAC-SHA256 block of
// security the tokens rely on.
const MinKeyLen = 32

// maxTokenLen bounds the tokens Verify looks at, before any decoding.
const maxTokenLen = 1024

const tokenVersion = 1

// macContext separates portal tokens from any other use of the same key.
const macContext = "easgate-portal-token\x00"

// Signer issues and verifies the portal's link tokens: HMAC-SHA256 over the user, the device
// id and the expiry, base64url-encoded. It is safe for concurrent use.
type Signer struct {
	key  []byte
	base string
}

// NewSigner returns a signer with key (at least MinKeyLen bytes, from the configuration's
// secret; copied) whose links start with baseURL, the gateway's public origin
// ("https://mail.example.com"; a trailing slash is removed).
func NewSigner(key []byte, baseURL string) (*Signer, error) {
	if len(key) < MinKeyLen {
		return nil, errors.New("portal: signing key shorter than 32 bytes")
	}
	if !strings.HasPrefix(baseURL, "https://") && !strings.HasPrefix(baseURL, "http://") {
		return nil, errors.New("portal: base URL must be an http(s) origin")
	}
	return &Signer{key: append([]byte(nil), key...), base: strings.TrimRight(baseURL, "/")}, nil
}

// Token returns a token for user's device deviceID that is valid until expires.
func (s *Signer) Token(user, deviceID string, expires time.Time) string {
	p := make([]byte, 0, 16+len(user)+len(deviceID))
	p = append(p, tokenVersion)
	p = binary.BigEndian.AppendUint64(p, uint64(expires.Unix()))
	p = binary.AppendUvarint(p, uint64(len(user)))
	p = append(p, user...)
	p = append(p, deviceID...)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(p) + "." + enc.EncodeToString(s.mac(p))
}

// Link returns the portal page URL for the device; it has the signature of
// quarantine.Config.PortalLink.
func (s *Signer) Link(user, deviceID string, expires time.Time) string {
	return s.base + PathPrefix + "d/" + s.Token(user, deviceID, expires)
}

func (s *Signer) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(macContext))
	m.Write(payload)
	return m.Sum(nil)
}

// Verify checks tok at time now and returns what it was issued for. The signature is
// checked in constant time before anything in the payload is believed; the expiry is
// checked only for an authentic token.
func (s *Signer) Verify(tok string, now time.Time) (user, deviceID string, expires time.Time, err error) {
	if len(tok) > maxTokenLen {
		return "", "", time.Time{}, ErrTokenInvalid
	}
	p64, m64, ok := strings.Cut(tok, ".")
	if !ok {
		return "", "", time.Time{}, ErrTokenInvalid
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p64)
	mac, err2 := enc.DecodeString(m64)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, s.mac(payload)) {
		return "", "", time.Time{}, ErrTokenInvalid
	}
	if len(payload) < 10 || payload[0] != tokenVersion {
		return "", "", time.Time{}, ErrTokenInvalid
	}
	exp := int64(binary.BigEndian.Uint64(payload[1:9]))
	n, k := binary.Uvarint(payload[9:])
	if k <= 0 || n > uint64(len(payload)-9-k) {
		return "", "", time.Time{}, ErrTokenInvalid
	}
	rest := payload[9+k:]
	user, deviceID = string(rest[:n]), string(rest[n:])
	if user == "" || deviceID == "" {
		return "", "", time.Time{}, ErrTokenInvalid
	}
	expires = time.Unix(exp, 0)
	if !now.Before(expires) {
		return "", "", expires, ErrTokenExpired
	}
	return user, deviceID, expires, nil
}

// actionContext separates form tokens (ActionMAC) from link tokens under the same key.
const actionContext = "easgate-portal-action\x00"

// maxActionMACLen bounds the form tokens VerifyAction looks at, before any decoding.
const maxActionMACLen = 64

// ActionMAC returns the form token that binds action (such as "wipe") to the link token tok:
// HMAC-SHA256 under the signer's key, in its own context so it can never pass for a link
// token, base64url-encoded. A page puts it in a hidden form field; only a page this gateway
// rendered for tok can have it, which is what makes a cross-site form post fail.
func (s *Signer) ActionMAC(tok, action string) string {
	return base64.RawURLEncoding.EncodeToString(s.actionMAC(tok, action))
}

// VerifyAction reports whether mac is ActionMAC(tok, action), compared in constant time.
func (s *Signer) VerifyAction(tok, action, mac string) bool {
	if mac == "" || len(mac) > maxActionMACLen {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(mac)
	if err != nil {
		return false
	}
	return hmac.Equal(got, s.actionMAC(tok, action))
}

func (s *Signer) actionMAC(tok, action string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(actionContext))
	m.Write(binary.AppendUvarint(nil, uint64(len(tok))))
	m.Write([]byte(tok))
	m.Write([]byte(action))
	return m.Sum(nil)
}
