package notifier

import (
	"bytes"
	"fmt"
	"io"
	netmail "net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/mail"
)

// Content is what a message says. The caller renders it (quarantine renders its templates);
// notifier puts it in a multipart/alternative body: Text as text/plain, HTML as text/html, both
// UTF-8 and quoted-printable. Both bodies are required.
type Content struct {
	Subject string
	Text    string
	HTML    string
}

// envelope is everything notifier itself puts in the header.
type envelope struct {
	From      *mail.Address
	To        []*mail.Address
	MessageID string // without angle brackets
	Date      time.Time
}

// composeEmail writes the full RFC 5322 message. All inputs must have been validated by
// validateContent and parseAddress; compose checks again, so a bug upstream cannot turn into a
// header injection.
func composeEmail(env envelope, c Content, lim Limits) ([]byte, error) {
	if err := validateContent(c, lim); err != nil {
		return nil, err
	}
	for _, a := range append([]*mail.Address{env.From}, env.To...) {
		if err := checkHeaderValue("address", a.Name, 256); err != nil {
			return nil, err
		}
		if err := checkHeaderValue("address", a.Address, 320); err != nil {
			return nil, err
		}
	}
	if err := checkHeaderValue("Message-ID", env.MessageID, 250); err != nil {
		return nil, err
	}

	var h mail.Header
	h.SetDate(env.Date)
	h.SetAddressList("From", []*mail.Address{env.From})
	h.SetAddressList("To", env.To)
	// SetSubject encodes non-ASCII text as RFC 2047 encoded words.
	h.SetSubject(c.Subject)
	h.SetMessageID(env.MessageID)
	// RFC 3834: automatic replies must not answer us; Exchange/Outlook honour the X- field.
	h.Set("Auto-Submitted", "auto-generated")
	h.Set("X-Auto-Response-Suppress", "All")

	var buf bytes.Buffer
	w, err := mail.CreateInlineWriter(&buf, h)
	if err != nil {
		return nil, fmt.Errorf("notifier: compose: %w", err)
	}
	for _, part := range []struct{ ctype, body string }{
		{"text/plain", c.Text},
		{"text/html", c.HTML},
	} {
		var ph mail.InlineHeader
		ph.SetContentType(part.ctype, map[string]string{"charset": "utf-8"})
		ph.Set("Content-Transfer-Encoding", "quoted-printable")
		pw, err := w.CreatePart(ph)
		if err != nil {
			return nil, fmt.Errorf("notifier: compose: %w", err)
		}
		if _, err := io.WriteString(pw, part.body); err != nil {
			return nil, fmt.Errorf("notifier: compose: %w", err)
		}
		if err := pw.Close(); err != nil {
			return nil, fmt.Errorf("notifier: compose: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("notifier: compose: %w", err)
	}
	return buf.Bytes(), nil
}

// validateContent checks the caller's content against the limits. The subject becomes a header
// value; the bodies are transfer-encoded, so only their size and encoding matter.
func validateContent(c Content, lim Limits) error {
	if err := checkHeaderValue("Subject", c.Subject, lim.MaxSubjectBytes); err != nil {
		return err
	}
	for _, b := range []struct{ name, v string }{{"Text", c.Text}, {"HTML", c.HTML}} {
		if b.v == "" {
			return &FieldError{Field: b.name, Reason: "empty body", Kind: ErrTooLarge}
		}
		if len(b.v) > lim.MaxBodyBytes {
			return &FieldError{Field: b.name, Reason: fmt.Sprintf("%d bytes, limit %d", len(b.v), lim.MaxBodyBytes), Kind: ErrTooLarge}
		}
		if !utf8.ValidString(b.v) {
			return &FieldError{Field: b.name, Reason: "not valid UTF-8", Kind: ErrInvalidHeader}
		}
		if strings.IndexByte(b.v, 0) >= 0 {
			return &FieldError{Field: b.name, Reason: "contains NUL", Kind: ErrInvalidHeader}
		}
	}
	return nil
}

// checkHeaderValue rejects what could break out of a header field: CR, LF, NUL (and other C0
// controls but TAB), invalid UTF-8, and values longer than max bytes.
func checkHeaderValue(field, v string, max int) error {
	if len(v) > max {
		return &FieldError{Field: field, Reason: fmt.Sprintf("%d bytes, limit %d", len(v), max), Kind: ErrInvalidHeader}
	}
	if !utf8.ValidString(v) {
		return &FieldError{Field: field, Reason: "not valid UTF-8", Kind: ErrInvalidHeader}
	}
	for i := 0; i < len(v); i++ {
		switch b := v[i]; {
		case b == '\r' || b == '\n':
			return &FieldError{Field: field, Reason: "contains a line break", Kind: ErrInvalidHeader}
		case b == 0:
			return &FieldError{Field: field, Reason: "contains NUL", Kind: ErrInvalidHeader}
		case b < 0x20 && b != '\t', b == 0x7f:
			return &FieldError{Field: field, Reason: fmt.Sprintf("contains control byte %#02x", b), Kind: ErrInvalidHeader}
		}
	}
	return nil
}

// parseAddress accepts one RFC 5322 mailbox ("Name <a@b>" or "a@b") and nothing else: no
// groups, no lists, no control characters, an addr-spec with a local part and a dotted-or-plain
// domain, and no characters that SMTP's MAIL/RCPT syntax cannot carry.
func parseAddress(s string) (*mail.Address, error) {
	if err := checkHeaderValue("address", s, 320); err != nil {
		return nil, &FieldError{Field: "address", Reason: err.(*FieldError).Reason, Kind: ErrInvalidAddress}
	}
	if unquoted(s, ":;") {
		return nil, &FieldError{Field: "address", Reason: fmt.Sprintf("%q: groups are not accepted", s), Kind: ErrInvalidAddress}
	}
	a, err := netmail.ParseAddress(s)
	if err != nil {
		return nil, &FieldError{Field: "address", Reason: fmt.Sprintf("%q: %v", s, err), Kind: ErrInvalidAddress}
	}
	at := strings.LastIndexByte(a.Address, '@')
	if at <= 0 || at == len(a.Address)-1 {
		return nil, &FieldError{Field: "address", Reason: fmt.Sprintf("%q has no local part or domain", s), Kind: ErrInvalidAddress}
	}
	if strings.ContainsAny(a.Address, " \t<>()[],;:\\\"") || strings.ContainsAny(a.Address[at+1:], "@") {
		return nil, &FieldError{Field: "address", Reason: fmt.Sprintf("%q is not a plain addr-spec", s), Kind: ErrInvalidAddress}
	}
	if err := checkHeaderValue("address", a.Name, 256); err != nil {
		return nil, &FieldError{Field: "address", Reason: "display name " + err.(*FieldError).Reason, Kind: ErrInvalidAddress}
	}
	return &mail.Address{Name: a.Name, Address: a.Address}, nil
}

// withField renames the Field of a FieldError so the caller learns which input was wrong.
func withField(err error, field string) error {
	if fe, ok := err.(*FieldError); ok {
		return &FieldError{Field: field, Reason: fe.Reason, Kind: fe.Kind}
	}
	return err
}

// unquoted reports whether s holds one of chars outside double-quoted strings.
func unquoted(s, chars string) bool {
	inQuote, esc := false, false
	for _, r := range s {
		switch {
		case esc:
			esc = false
		case r == '\\':
			esc = true
		case r == '"':
			inQuote = !inQuote
		case !inQuote && strings.ContainsRune(chars, r):
			return true
		}
	}
	return false
}
