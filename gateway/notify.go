package gateway

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/notifier"
	"github.com/easgate/easgate/quarantine"
)

// NotifyConfig configures the remediation e-mail to users and the admin alerts. Disabled when
// no SMTP address and no webhook are given.
type NotifyConfig struct {
	// From is the sender of every e-mail, e.g. "it-help@example.com".
	From string `yaml:"from"`
	// AdminRecipients get an e-mail on quarantine, release, block and wipe events.
	AdminRecipients []string `yaml:"admin_recipients"`
	// Outbox is the SQLite file of the durable outbox. Default: beside the registry,
	// "<store dir>/easgate-outbox.db".
	Outbox string     `yaml:"outbox"`
	SMTP   NotifySMTP `yaml:"smtp"`
	// Webhook receives a JSON event, HMAC-SHA256 signed with Secret (X-Easgate-Signature).
	Webhook struct {
		URL    string `yaml:"url"`
		Secret string `yaml:"secret"`
	} `yaml:"webhook"`
	// DedupWindow: one remediation e-mail per user, device and cause in this window. Default 24h.
	DedupWindow time.Duration `yaml:"dedup_window"`
}

// NotifySMTP is the relay remediation e-mail is submitted to (see notifier.SMTPConfig).
type NotifySMTP struct {
	Addr     string `yaml:"addr"`
	TLS      string `yaml:"tls"` // starttls (default), implicit or none
	CAFile   string `yaml:"ca_file"`
	Username string `yaml:"username"`
	Password string `yaml:"password"` // give it as ${ENV_NAME}
}

func (c *NotifyConfig) enabled() bool { return c.SMTP.Addr != "" || c.Webhook.URL != "" }

func (c *NotifyConfig) notifierConfig() notifier.Config {
	return notifier.Config{
		From:            c.From,
		AdminRecipients: c.AdminRecipients,
		SMTP: notifier.SMTPConfig{Addr: c.SMTP.Addr, TLS: notifier.TLSMode(c.SMTP.TLS), CAFile: c.SMTP.CAFile,
			Username: c.SMTP.Username, Password: c.SMTP.Password},
		Webhook:     notifier.WebhookConfig{URL: c.Webhook.URL, Secret: c.Webhook.Secret},
		DedupWindow: c.DedupWindow,
	}
}

// notices turns decisions into notifications. A quarantined device's user gets the remediation
// message in their real mailbox once per device and cause (the notifier's outbox deduplicates
// durably; the map here only spares it the work on every poll), and the admins hear of
// quarantines, releases, blocks and wipes.
type notices struct {
	n         *notifier.Notifier
	responder *quarantine.Responder
	email     map[string]string // canonical user → mailbox
	window    time.Duration
	onError   func(op string, err error)

	mu     sync.RWMutex
	recent map[deviceKey]noticeState
	sem    chan struct{} // bounds notifications being prepared at once
}

type noticeState struct {
	reason decision.Reason
	at     time.Time
}

func newNotices(n *notifier.Notifier, r *quarantine.Responder, email map[string]string, window time.Duration, onError func(string, error)) *notices {
	if window <= 0 {
		window = 24 * time.Hour
	}
	return &notices{n: n, responder: r, email: email, window: window, onError: onError,
		recent: make(map[deviceKey]noticeState), sem: make(chan struct{}, 16)}
}

// quarantined is called for every request answered with the quarantine inbox.
func (ns *notices) quarantined(req *reqState, lang string) {
	k := deviceKey{req.user, req.req.DeviceID}
	now := time.Now()
	ns.mu.Lock()
	last, seen := ns.recent[k]
	fresh := !seen || last.reason != req.dec.Reason || now.Sub(last.at) > ns.window
	if fresh {
		if len(ns.recent) > 100000 {
			clear(ns.recent) // a bound, not a correctness matter: the outbox deduplicates too
		}
		k.device = strings.Clone(k.device)
		ns.recent[k] = noticeState{req.dec.Reason, now}
	}
	ns.mu.Unlock()
	if !fresh {
		return
	}
	mr := quarantine.MessageRequest{User: k.user, DeviceID: k.device, DeviceType: strings.Clone(req.req.DeviceType), Lang: lang}
	d := req.dec
	ns.async(func(ctx context.Context) error {
		c, ok, err := ns.responder.Message(mr, d, now)
		if err != nil || !ok {
			return err
		}
		to := ns.mailbox(mr.User)
		if to != "" {
			_, err = ns.n.Remediate(ctx, notifier.Remediation{User: mr.User, DeviceID: mr.DeviceID, Cause: string(d.Reason), To: to,
				Content: notifier.Content{Subject: c.Subject, Text: c.Text, HTML: c.HTML}})
			if err != nil && !errors.Is(err, notifier.ErrDuplicate) && !errors.Is(err, notifier.ErrRateLimited) {
				return err
			}
		}
		return ns.event(ctx, notifier.EventQuarantine, mr.User, mr.DeviceID, string(d.Reason))
	})
}

// allowed is called for allowed requests of devices this node saw quarantined: their release.
func (ns *notices) allowed(user, device string) {
	k := deviceKey{user, device}
	ns.mu.RLock()
	_, was := ns.recent[k]
	ns.mu.RUnlock()
	if !was {
		return // the common case: a read lock and a map miss, no allocation
	}
	ns.mu.Lock()
	_, was = ns.recent[k]
	delete(ns.recent, k)
	ns.mu.Unlock()
	if was {
		user, device = strings.Clone(user), strings.Clone(device)
		ns.async(func(ctx context.Context) error { return ns.event(ctx, notifier.EventRelease, user, device, "allowed") })
	}
}

// admin records an administrator's action (block, wipe, release) as an admin event.
func (ns *notices) admin(kind notifier.EventKind, user, device, reason string) {
	ns.async(func(ctx context.Context) error { return ns.event(ctx, kind, user, device, reason) })
}

func (ns *notices) event(ctx context.Context, kind notifier.EventKind, user, device, reason string) error {
	_, err := ns.n.Notify(ctx, notifier.Event{Kind: kind, User: user, DeviceID: device, Reason: reason, Time: time.Now()})
	if errors.Is(err, notifier.ErrDuplicate) || errors.Is(err, notifier.ErrRateLimited) {
		return nil
	}
	return err
}

// async runs f off the request path; when too many are already running it is dropped (and
// reported), never queued without bound: the next poll of the device tries again.
func (ns *notices) async(f func(context.Context) error) {
	select {
	case ns.sem <- struct{}{}:
	default:
		ns.onError("notify", errors.New("gateway: notification dropped, too many in preparation"))
		return
	}
	go func() {
		defer func() { <-ns.sem }()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := f(ctx); err != nil {
			ns.onError("notify", err)
		}
	}()
}

// mailbox is where a user's remediation mail goes: the configured address, else the canonical
// user name when it is an address.
func (ns *notices) mailbox(user string) string {
	if a := ns.email[user]; a != "" {
		return a
	}
	if strings.Contains(user, "@") {
		return user
	}
	return ""
}
