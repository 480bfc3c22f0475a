package portal

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

var key = []byte("0123456789abcdef0123456789abcdef")

func signer(t testing.TB) *Signer {
	s, err := NewSigner(key, "https://mail.example.com/")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenRoundTrip(t *testing.T) {
	s := signer(t)
	now := time.Unix(1_800_000_000, 0)
	tok := s.Token("alice@example.com", "ABC123", now.Add(time.Hour))
	u, d, exp, err := s.Verify(tok, now)
	if err != nil || u != "alice@example.com" || d != "ABC123" || !exp.Equal(now.Add(time.Hour)) {
		t.Fatalf("Verify = %q %q %v %v", u, d, exp, err)
	}
	if l := s.Link("alice@example.com", "ABC123", now.Add(time.Hour)); l != "https://mail.example.com/portal/d/"+tok {
		t.Fatalf("Link = %q", l)
	}
}

func TestTokenExpired(t *testing.T) {
	s := signer(t)
	now := time.Unix(1_800_000_000, 0)
	tok := s.Token("alice@example.com", "ABC123", now)
	if _, _, _, err := s.Verify(tok, now); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("token at its expiry: %v, want ErrTokenExpired", err)
	}
	if _, _, _, err := s.Verify(tok, now.Add(-time.Second)); err != nil {
		t.Fatalf("token before its expiry: %v", err)
	}
}

// Every tampering is rejected as invalid — never as another user's or device's token.
func TestTokenTampered(t *testing.T) {
	s := signer(t)
	now := time.Unix(1_800_000_000, 0)
	tok := s.Token("alice@example.com", "ABC123", now.Add(time.Hour))
	p64, m64, _ := strings.Cut(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(p64)

	forge := func(mut func([]byte)) string {
		p := append([]byte(nil), payload...)
		mut(p)
		return base64.RawURLEncoding.EncodeToString(p) + "." + m64
	}
	other, _ := NewSigner([]byte("another key of at least 32 bytes!!"), "https://mail.example.com")
	bobTok := s.Token("bob@example.com", "ABC123", now.Add(time.Hour))
	_, bobMAC, _ := strings.Cut(bobTok, ".")
	cases := map[string]string{
		"empty":               "",
		"no dot":              p64 + m64,
		"user changed":        forge(func(p []byte) { p[len(p)-8] ^= 1 }),
		"device changed":      forge(func(p []byte) { p[len(p)-1] = 'X' }),
		"expiry extended":     forge(func(p []byte) { p[1]++ }),
		"mac truncated":       p64 + "." + m64[:len(m64)-2],
		"mac of another user": p64 + "." + bobMAC,
		"other key":           other.Token("alice@example.com", "ABC123", now.Add(time.Hour)),
		"bad base64":          p64 + "!." + m64,
		"huge":                strings.Repeat("A", 5000) + "." + m64,
		"two dots":            tok + ".x",
	}
	for name, bad := range cases {
		if u, d, _, err := s.Verify(bad, now); !errors.Is(err, ErrTokenInvalid) || u != "" || d != "" {
			t.Errorf("%s: Verify = %q %q %v, want ErrTokenInvalid", name, u, d, err)
		}
	}
}

func TestNewSignerRejectsShortKey(t *testing.T) {
	if _, err := NewSigner([]byte("short"), "https://x"); err == nil {
		t.Fatal("short key accepted")
	}
	if _, err := NewSigner(key, "mail.example.com"); err == nil {
		t.Fatal("base URL without scheme accepted")
	}
}

// The wipe form token is bound to its link token and its action, and is no link token.
func TestSignerActionMAC(t *testing.T) {
	s, err := NewSigner(key, "https://mail.example.com")
	if err != nil {
		t.Fatal(err)
	}
	tok := s.Token("alice@example.com", "ABC123", time.Now().Add(time.Hour))
	tok2 := s.Token("alice@example.com", "ABC124", time.Now().Add(time.Hour))
	mac := s.ActionMAC(tok, "wipe")
	if !s.VerifyAction(tok, "wipe", mac) {
		t.Fatal("own MAC refused")
	}
	other, _ := NewSigner(append([]byte("x"), key...), "https://mail.example.com")
	for name, ok := range map[string]bool{
		"other action":     s.VerifyAction(tok, "wip", mac),
		"other token":      s.VerifyAction(tok2, "wipe", mac),
		"other key":        other.VerifyAction(tok, "wipe", mac),
		"empty":            s.VerifyAction(tok, "wipe", ""),
		"padded":           s.VerifyAction(tok, "wipe", mac+"="),
		"too long":         s.VerifyAction(tok, "wipe", mac+strings.Repeat("A", 64)),
		"link token's MAC": s.VerifyAction(tok, "wipe", tok[strings.IndexByte(tok, '.')+1:]),
	} {
		if ok {
			t.Errorf("%s: accepted", name)
		}
	}
}
