package quarantine

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
)

// Config configures a Responder. It is plain data; New validates all of it and reports
// every problem at once. Every zero value has the documented default.
type Config struct {
	// DefaultLanguage is used when neither the request's MS-LCID nor its Accept-Language
	// names a language that has templates. Default "en".
	DefaultLanguage string `yaml:"default_language"`
	// Templates overrides or adds message templates per language (lower-case ISO 639-1
	// code). Each entry names a text/template file (defining "subject", "text" and "fix")
	// and an html/template file (defining "html"); see the embedded templates/en.*.tmpl
	// for the data they receive. A language given here replaces the embedded one.
	Templates map[string]TemplateFiles `yaml:"templates"`
	// Organization is the name shown as the sender and in the message ("Example Corp IT").
	// Default "IT".
	Organization string `yaml:"organization"`
	// From is the address the quarantine message appears to come from. Default
	// "noreply@invalid".
	From string `yaml:"from"`
	// EnrollURL is where a user enrols a device (the MDM's enrolment page); it appears in
	// the not-enrolled message. Empty: the message tells the user to contact IT.
	EnrollURL string `yaml:"enroll_url"`
	// Footer is an admin-defined paragraph appended to every message (plain text; it is
	// HTML-escaped in the HTML form).
	Footer string `yaml:"footer"`
	// PortalLink builds the remediation link for a user's device, valid until expires;
	// the gateway wires the portal's Signer.Link here. Nil: messages carry no link.
	PortalLink func(user, deviceID string, expires time.Time) string `yaml:"-"`
	// RefreshEvery is the period after which the quarantine message is re-issued (a new
	// item with a fresh date and a fresh portal link), so a device that stays
	// quarantined sees a reminder and never holds an expired link. Default 24h.
	RefreshEvery time.Duration `yaml:"refresh_every"`
	// LinkTTL is how long a portal link stays valid after the refresh period in which it
	// was issued began. It must be at least RefreshEvery. Default 7 days.
	LinkTTL time.Duration `yaml:"link_ttl"`
	// PingHold is how long a Ping (or a waiting Sync) with nothing new is held before it
	// is answered with "no changes", capped by the heartbeat the device asked for. Short,
	// so the device checks back soon after it is released. Default 3 minutes.
	PingHold time.Duration `yaml:"ping_hold"`
	// StatusByReason overrides the EAS status a blocked device is answered with, per
	// decision reason (EAS 14.0 and later). Defaults: max_devices → 177
	// (MaximumDevicesReached; 129 before 14.1), user_disabled → 126 (UserDisabledForSync),
	// store_unavailable → 111 (ServerErrorRetryLater; HTTP 503 before 14.0); every other
	// reason → 129 (DeviceIsBlockedForThisUser).
	StatusByReason map[decision.Reason]eas.Status `yaml:"status_by_reason"`
	// Limits bound the parsing of request bodies. Zero fields: wbxml.DefaultLimits, except
	// MaxDocumentSize, which defaults to 1 MiB here (a quarantined device has nothing
	// large to send that the responder reads).
	Limits wbxml.Limits `yaml:"-"`
	// MaxDevices bounds the in-memory record of which message version each quarantined
	// device has synchronised (used to answer Ping); the oldest half is dropped when it
	// is full. Default 100000.
	MaxDevices int `yaml:"max_devices"`
}

// TemplateFiles names the two template files of one language.
type TemplateFiles struct {
	Text string `yaml:"text"` // text/template: "subject", "text", "fix"
	HTML string `yaml:"html"` // html/template: "html"
}

// ReasonUserDisabled is the decision reason a directory integration may use for an account
// that is disabled for mobile sync; the responder answers it with status 126.
const ReasonUserDisabled decision.Reason = "user_disabled"

func (c Config) withDefaults() Config {
	if c.DefaultLanguage == "" {
		c.DefaultLanguage = "en"
	}
	if c.Organization == "" {
		c.Organization = "IT"
	}
	if c.From == "" {
		c.From = "noreply@invalid"
	}
	if c.RefreshEvery == 0 {
		c.RefreshEvery = 24 * time.Hour
	}
	if c.LinkTTL == 0 {
		c.LinkTTL = 7 * 24 * time.Hour
	}
	if c.PingHold == 0 {
		c.PingHold = 3 * time.Minute
	}
	if c.Limits.MaxDocumentSize == 0 {
		c.Limits.MaxDocumentSize = 1 << 20
	}
	if c.MaxDevices == 0 {
		c.MaxDevices = 100000
	}
	st := map[decision.Reason]eas.Status{
		decision.ReasonMaxDevices:       eas.StatusMaximumDevicesReached,
		ReasonUserDisabled:              eas.StatusUserDisabledForSync,
		decision.ReasonStoreUnavailable: eas.StatusServerErrorRetryLater,
	}
	for k, v := range c.StatusByReason {
		st[k] = v
	}
	c.StatusByReason = st
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.RefreshEvery < time.Minute {
		errs = append(errs, errors.New("quarantine: refresh_every must be at least 1m"))
	}
	if c.LinkTTL < c.RefreshEvery {
		errs = append(errs, errors.New("quarantine: link_ttl must be at least refresh_every"))
	}
	if c.PingHold < 0 {
		errs = append(errs, errors.New("quarantine: ping_hold must not be negative"))
	}
	if c.MaxDevices < 0 {
		errs = append(errs, errors.New("quarantine: max_devices must not be negative"))
	}
	if strings.ContainsAny(c.From, "\r\n<>") || !strings.Contains(c.From, "@") {
		errs = append(errs, fmt.Errorf("quarantine: from %q is not a plain address", c.From))
	}
	if strings.ContainsAny(c.Organization, "\r\n") {
		errs = append(errs, errors.New("quarantine: organization must be one line"))
	}
	for r, s := range c.StatusByReason {
		if !s.IsCommon() {
			errs = append(errs, fmt.Errorf("quarantine: status_by_reason[%s] = %d is not a common status (101-177)", r, s))
		}
	}
	for lang, tf := range c.Templates {
		if lang == "" || lang != strings.ToLower(lang) || strings.ContainsAny(lang, "-_ ") {
			errs = append(errs, fmt.Errorf("quarantine: template language %q must be a lower-case ISO 639-1 code", lang))
		}
		if tf.Text == "" || tf.HTML == "" {
			errs = append(errs, fmt.Errorf("quarantine: templates[%s] needs both text and html files", lang))
		}
	}
	return errors.Join(errs...)
}
