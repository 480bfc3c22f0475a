package quarantine

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"os"
	"sort"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/easgate/easgate/decision"
)

//go:embed templates/*.tmpl
var embeddedTemplates embed.FS

// Cause is why a device is quarantined, which decides the message it is shown.
type Cause uint8

// Causes. The zero value is not a cause.
const (
	// CauseNotEnrolled: the device is not enrolled in device management
	// (decision.ReasonUnknownDevice); the message explains how to enrol.
	CauseNotEnrolled Cause = iota + 1
	// CauseNotCompliant: compliance rules failed (decision.ReasonNotCompliant); the
	// message lists each failing rule with the steps to fix it.
	CauseNotCompliant
	// CausePendingApproval: any other quarantine (an admin rule, a spoofing signal); the
	// device waits for an administrator.
	CausePendingApproval
)

// String returns the stable name used in templates and the portal ("not_enrolled", ...).
func (c Cause) String() string {
	switch c {
	case CauseNotEnrolled:
		return "not_enrolled"
	case CauseNotCompliant:
		return "not_compliant"
	case CausePendingApproval:
		return "pending_approval"
	}
	return "cause(" + strconv.Itoa(int(c)) + ")"
}

// CauseOf returns the message cause of a Quarantine decision; ok is false for any other
// action, which never shows the remediation message.
func CauseOf(d decision.Decision) (c Cause, ok bool) {
	if d.Action != decision.Quarantine {
		return 0, false
	}
	switch d.Reason {
	case decision.ReasonUnknownDevice:
		return CauseNotEnrolled, true
	case decision.ReasonNotCompliant:
		return CauseNotCompliant, true
	}
	return CausePendingApproval, true
}

// MessageInput is what a remediation message is rendered from.
type MessageInput struct {
	Cause      Cause
	User       string
	DeviceID   string
	DeviceType string
	// Device is the registry record when the caller has it (the notifier path): its
	// friendly name or model names the device in the message. Nil: DeviceType is used.
	Device *decision.Device
	// Failures are the failing compliance rules (CauseNotCompliant).
	Failures []decision.Failure
	// Lang is a language with templates (see Renderer.Languages); others fall back to
	// the default language.
	Lang string
	// PortalURL is the remediation link; empty: no link.
	PortalURL string
	// Date is the message date.
	Date time.Time
}

// FailureItem is one failing rule as templates see it: the decision.Failure fields and
// Fix, the rendered "fix" template (the step the user takes).
type FailureItem struct {
	Rule string
	Want string
	Have string
	Fix  string
}

// MessageData is the data the "subject", "text" and "html" templates receive.
type MessageData struct {
	Cause                                  string // Cause.String()
	NotEnrolled, NotCompliant, Pending     bool
	User, DeviceID, DeviceType, DeviceName string
	Failures                               []FailureItem
	Organization, EnrollURL, PortalURL     string
	Footer                                 string
	Lang                                   string
	Date                                   time.Time
	Subject                                string // set for the "text" and "html" templates
}

// Content is a rendered remediation message: what the quarantine inbox shows and what the
// notifier mails. Text and HTML are complete bodies; Subject is one line.
type Content struct {
	Lang    string
	Subject string
	Text    string
	HTML    string
}

type langTemplates struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// Renderer renders remediation messages from per-language templates. It is safe for
// concurrent use; templates are loaded once by NewRenderer.
type Renderer struct {
	cfg   Config
	langs map[string]*langTemplates
	names []string // sorted language codes
}

var funcs = map[string]any{"inc": func(i int) int { return i + 1 }}

// NewRenderer loads the embedded templates (English and German) and the files cfg.Templates
// names, and checks that each language defines every template.
func NewRenderer(cfg Config) (*Renderer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return newRenderer(cfg)
}

func newRenderer(cfg Config) (*Renderer, error) {
	r := &Renderer{cfg: cfg, langs: map[string]*langTemplates{}}
	for _, lang := range []string{"en", "de"} {
		txt, err := embeddedTemplates.ReadFile("templates/" + lang + ".txt.tmpl")
		if err != nil {
			return nil, fmt.Errorf("quarantine: embedded templates: %w", err)
		}
		html, err := embeddedTemplates.ReadFile("templates/" + lang + ".html.tmpl")
		if err != nil {
			return nil, fmt.Errorf("quarantine: embedded templates: %w", err)
		}
		lt, err := parseLang(lang, string(txt), string(html))
		if err != nil {
			return nil, err
		}
		r.langs[lang] = lt
	}
	for lang, tf := range cfg.Templates {
		txt, err := os.ReadFile(tf.Text)
		if err != nil {
			return nil, fmt.Errorf("quarantine: templates[%s]: %w", lang, err)
		}
		html, err := os.ReadFile(tf.HTML)
		if err != nil {
			return nil, fmt.Errorf("quarantine: templates[%s]: %w", lang, err)
		}
		lt, err := parseLang(lang, string(txt), string(html))
		if err != nil {
			return nil, err
		}
		r.langs[lang] = lt
	}
	if r.langs[cfg.DefaultLanguage] == nil {
		return nil, fmt.Errorf("quarantine: no templates for default language %q", cfg.DefaultLanguage)
	}
	for l := range r.langs {
		r.names = append(r.names, l)
	}
	sort.Strings(r.names)
	// Render every cause once so that a template that fails at execution time (a missing
	// field, a bad function call) is reported at startup, not to a device.
	for _, l := range r.names {
		for c := CauseNotEnrolled; c <= CausePendingApproval; c++ {
			in := MessageInput{Cause: c, User: "user@example.com", DeviceID: "DEV", DeviceType: "Phone",
				Lang: l, PortalURL: "https://example.com/portal/", Date: time.Unix(0, 0).UTC(),
				Failures: []decision.Failure{{Rule: decision.FailMinPasscodeLength, Want: "6", Have: "4"}}}
			if _, err := r.Render(in); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

func parseLang(lang, txt, html string) (*langTemplates, error) {
	t, err := texttemplate.New(lang).Funcs(funcs).Parse(txt)
	if err != nil {
		return nil, fmt.Errorf("quarantine: templates[%s] text: %w", lang, err)
	}
	h, err := htmltemplate.New(lang).Funcs(funcs).Parse(html)
	if err != nil {
		return nil, fmt.Errorf("quarantine: templates[%s] html: %w", lang, err)
	}
	for _, n := range []string{"subject", "text", "fix"} {
		if t.Lookup(n) == nil {
			return nil, fmt.Errorf("quarantine: templates[%s] text: template %q not defined", lang, n)
		}
	}
	if h.Lookup("html") == nil {
		return nil, fmt.Errorf("quarantine: templates[%s] html: template \"html\" not defined", lang)
	}
	return &langTemplates{text: t, html: h}, nil
}

// Languages returns the languages with templates, sorted.
func (r *Renderer) Languages() []string { return r.names }

// DefaultLanguage returns the configured default language.
func (r *Renderer) DefaultLanguage() string { return r.cfg.DefaultLanguage }

// Fix renders the "fix" template of lang for one failure: the step the user takes, in
// plain words. The portal uses it so that page and message say the same.
func (r *Renderer) Fix(lang string, f decision.Failure) (string, error) {
	lt := r.lang(lang)
	var b bytes.Buffer
	item := FailureItem{Rule: string(f.Rule), Want: f.Want, Have: f.Have}
	if err := lt.text.ExecuteTemplate(&b, "fix", item); err != nil {
		return "", fmt.Errorf("quarantine: render fix: %w", err)
	}
	return strings.TrimSpace(b.String()), nil
}

func (r *Renderer) lang(l string) *langTemplates {
	if lt := r.langs[l]; lt != nil {
		return lt
	}
	return r.langs[r.cfg.DefaultLanguage]
}

// Render renders the message for in: subject, plain text and HTML, from one data value,
// so that the inbox message, the notifier email and the portal agree. The same input
// always gives the same output.
func (r *Renderer) Render(in MessageInput) (Content, error) {
	lang := in.Lang
	if r.langs[lang] == nil {
		lang = r.cfg.DefaultLanguage
	}
	lt := r.langs[lang]
	data := MessageData{
		Cause:        in.Cause.String(),
		NotEnrolled:  in.Cause == CauseNotEnrolled,
		NotCompliant: in.Cause == CauseNotCompliant,
		Pending:      in.Cause != CauseNotEnrolled && in.Cause != CauseNotCompliant,
		User:         in.User,
		DeviceID:     in.DeviceID,
		DeviceType:   in.DeviceType,
		DeviceName:   DeviceName(in.Device, in.DeviceType, in.DeviceID),
		Organization: r.cfg.Organization,
		EnrollURL:    r.cfg.EnrollURL,
		PortalURL:    in.PortalURL,
		Footer:       r.cfg.Footer,
		Lang:         lang,
		Date:         in.Date,
	}
	for _, f := range in.Failures {
		fix, err := r.Fix(lang, f)
		if err != nil {
			return Content{}, err
		}
		data.Failures = append(data.Failures, FailureItem{Rule: string(f.Rule), Want: f.Want, Have: f.Have, Fix: fix})
	}
	var b bytes.Buffer
	if err := lt.text.ExecuteTemplate(&b, "subject", data); err != nil {
		return Content{}, fmt.Errorf("quarantine: render subject: %w", err)
	}
	data.Subject = oneLine(b.String())
	b.Reset()
	if err := lt.text.ExecuteTemplate(&b, "text", data); err != nil {
		return Content{}, fmt.Errorf("quarantine: render text: %w", err)
	}
	text := strings.TrimSpace(b.String()) + "\n"
	b.Reset()
	if err := lt.html.ExecuteTemplate(&b, "html", data); err != nil {
		return Content{}, fmt.Errorf("quarantine: render html: %w", err)
	}
	return Content{Lang: lang, Subject: data.Subject, Text: text, HTML: b.String()}, nil
}

// DeviceName names a device for people: its friendly name, else its model, else the EAS
// DeviceType, else its DeviceId.
func DeviceName(dev *decision.Device, deviceType, deviceID string) string {
	if dev != nil {
		if dev.Info.FriendlyName != "" {
			return dev.Info.FriendlyName
		}
		if dev.Info.Model != "" {
			return dev.Info.Model
		}
		if deviceType == "" {
			deviceType = dev.DeviceType
		}
	}
	if deviceType != "" {
		return deviceType
	}
	return deviceID
}

// oneLine folds white space runs (CR and LF among them) into single spaces, so that a
// subject can never inject a header line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
