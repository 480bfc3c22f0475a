package gateway

import (
	"bytes"
	"encoding/base64"
	"strings"
	"unicode/utf8"
)

// Identities reach the gateway in three spellings: "DOMAIN\user" (NTLM-era Basic credentials),
// "user@example.com" (UPN) and a bare "user". Users configures how they fold into one canonical,
// lower-case UPN-like key, which is what the registry is keyed by and what the EAS User must
// match. Folding is deliberately explicit: two spellings are the same person only when the
// configuration says which domain a NetBIOS name or a bare name belongs to.
type UserNames struct {
	// DefaultDomain is appended to a bare user name ("jdoe" → "jdoe@example.com").
	// Empty: bare names stay bare and only match bare names.
	DefaultDomain string `yaml:"default_domain"`
	// NetBIOS maps a NetBIOS domain to its UPN suffix ("CONTOSO" → "contoso.com").
	// An unmapped "DOMAIN\user" becomes "user@domain".
	NetBIOS map[string]string `yaml:"netbios_domains"`
}

// maxUserLen bounds a user name from any source; longer names are refused before any work.
const maxUserLen = 256

// canonicalUser folds a user name into its canonical key. ok is false for names that are
// empty, too long, not UTF-8, or carry control characters or more than one separator.
func (u *UserNames) canonicalUser(s string) (string, bool) {
	if s == "" || len(s) > maxUserLen || !utf8.ValidString(s) {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f || s[i] == ' ' {
			return "", false
		}
	}
	s = strings.ToLower(s)
	if i := strings.IndexByte(s, '\\'); i >= 0 {
		domain, name := s[:i], s[i+1:]
		if domain == "" || name == "" || strings.ContainsAny(name, `\@`) {
			return "", false
		}
		if suffix, ok := u.lookupNetBIOS(domain); ok {
			domain = suffix
		}
		return name + "@" + domain, true
	}
	if i := strings.IndexByte(s, '@'); i >= 0 {
		if i == 0 || i == len(s)-1 || strings.Count(s, "@") != 1 {
			return "", false
		}
		return s, true
	}
	if u.DefaultDomain != "" {
		return s + "@" + strings.ToLower(u.DefaultDomain), true
	}
	return s, true
}

func (u *UserNames) lookupNetBIOS(domain string) (string, bool) {
	for k, v := range u.NetBIOS {
		if strings.EqualFold(k, domain) {
			return strings.ToLower(v), true
		}
	}
	return "", false
}

// parseBasic splits an "Authorization: Basic ..." value into user and password.
// ok is false for any other scheme or a malformed value. The password is returned only to be
// passed on; it is never logged or stored.
func parseBasic(h []byte) (user, password string, ok bool) {
	const prefix = "basic "
	if len(h) <= len(prefix) || !asciiEqualFold(h[:len(prefix)], prefix) {
		return "", "", false
	}
	enc := bytes.TrimSpace(h[len(prefix):])
	if len(enc) > 4*1024 {
		return "", "", false
	}
	// Credentials of ordinary length decode on the stack; only the two strings are kept.
	var buf [384]byte
	var dec []byte
	if n := base64.StdEncoding.DecodedLen(len(enc)); n <= len(buf) {
		dec = buf[:n]
	} else {
		dec = make([]byte, n)
	}
	n, err := base64.StdEncoding.Decode(dec, enc)
	if err != nil {
		return "", "", false
	}
	dec = dec[:n]
	i := bytes.IndexByte(dec, ':')
	if i <= 0 {
		return "", "", false
	}
	return string(dec[:i]), string(dec[i+1:]), true
}

// authScheme classifies an Authorization header value.
type authScheme uint8

const (
	authNone authScheme = iota
	authBasic
	authBearer
	authOther
)

func classifyAuth(h []byte) authScheme {
	switch {
	case len(h) == 0:
		return authNone
	case len(h) > 6 && asciiEqualFold(h[:6], "basic "):
		return authBasic
	case len(h) > 7 && asciiEqualFold(h[:7], "bearer "):
		return authBearer
	default:
		return authOther
	}
}
