package notifier

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-message/mail"
)

// EventKind is what happened to a device.
type EventKind string

// The admin events.
const (
	EventQuarantine EventKind = "quarantine"
	EventRelease    EventKind = "release"
	EventBlock      EventKind = "block"
	EventWipe       EventKind = "wipe"
)

// Event is an admin notification: a device changed state.
type Event struct {
	Kind EventKind `json:"kind"`
	// User is the account (EAS User / identity) the device belongs to.
	User string `json:"user"`
	// DeviceID is the EAS DeviceId.
	DeviceID string `json:"device_id"`
	// Reason is the decision's stable reason code (e.g. "not-enrolled").
	Reason string `json:"reason"`
	// Time is when it happened. Zero means now.
	Time time.Time `json:"time"`
}

// Remediation is an e-mail to a user about one of their devices.
type Remediation struct {
	// User is the account the device belongs to: the per-user limit and dedup key use it.
	User string
	// DeviceID is the EAS DeviceId.
	DeviceID string
	// Cause is the stable reason code: one e-mail per (User, DeviceID, Cause) per DedupWindow.
	Cause string
	// To is the user's mailbox address.
	To string
	// Content is the rendered message.
	Content Content
}

// Stats are counters since New. Safe to read at any time.
type Stats struct {
	Enqueued, Duplicates, RateLimited, Sent, Retried, Dead uint64
}

// Notifier queues notifications in an Outbox and delivers them with a worker pool. Methods are
// safe for concurrent use.
type Notifier struct {
	cfg     Config
	ob      Outbox
	log     *slog.Logger
	smtp    *smtpSender
	webhook *webhookSender
	from    *mail.Address
	admins  []*mail.Address
	perUser *limiter
	global  *limiter

	wake    chan struct{}
	mu      sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	enqueued, duplicates, rateLimited, sent, retried, dead atomic.Uint64
}

// Option adjusts a Notifier beyond Config.
type Option func(*Notifier)

// WithLogger logs delivery failures and dead letters to l. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(n *Notifier) { n.log = l } }

// New validates cfg (every error at once) and returns a Notifier on ob. Call Start to deliver.
// The caller keeps ownership of ob.
func New(cfg Config, ob Outbox, opts ...Option) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ob == nil {
		return nil, errors.New("notifier: nil Outbox")
	}
	cfg = cfg.Defaults()
	n := &Notifier{
		cfg:     cfg,
		ob:      ob,
		log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		perUser: newLimiter(cfg.PerUser, cfg.MaxTrackedUsers),
		global:  newLimiter(cfg.Global, 1),
		wake:    make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(n)
	}
	var err error
	if cfg.From != "" {
		if n.from, err = parseAddress(cfg.From); err != nil {
			return nil, err
		}
		if n.smtp, err = newSMTPSender(cfg.SMTP); err != nil {
			return nil, err
		}
	}
	for _, a := range cfg.AdminRecipients {
		addr, err := parseAddress(a)
		if err != nil {
			return nil, err
		}
		n.admins = append(n.admins, addr)
	}
	if cfg.Webhook.URL != "" {
		if n.webhook, err = newWebhookSender(cfg.Webhook); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Outbox returns the outbox (the admin API lists and re-queues dead letters through it).
func (n *Notifier) Outbox() Outbox { return n.ob }

// Stats returns the counters.
func (n *Notifier) Stats() Stats {
	return Stats{Enqueued: n.enqueued.Load(), Duplicates: n.duplicates.Load(), RateLimited: n.rateLimited.Load(),
		Sent: n.sent.Load(), Retried: n.retried.Load(), Dead: n.dead.Load()}
}

// Remediate queues a remediation e-mail and returns its outbox id once the row is committed.
// It returns ErrDuplicate when the same (User, DeviceID, Cause) was queued within DedupWindow,
// ErrRateLimited when the user's budget is spent (both mean: nothing to do), and a *FieldError
// (ErrInvalidHeader, ErrInvalidAddress, ErrTooLarge) for bad input.
func (n *Notifier) Remediate(ctx context.Context, r Remediation) (string, error) {
	if n.smtp == nil {
		return "", errors.New("notifier: remediation e-mail needs Config.From and Config.SMTP")
	}
	for _, f := range []struct{ name, v string }{{"User", r.User}, {"DeviceID", r.DeviceID}, {"Cause", r.Cause}} {
		if err := checkHeaderValue(f.name, f.v, 256); err != nil {
			return "", err
		}
	}
	to, err := parseAddress(r.To)
	if err != nil {
		return "", withField(err, "To")
	}
	if err := validateContent(r.Content, n.cfg.Limits); err != nil {
		return "", err
	}
	return n.enqueueEmail(ctx, "remediation", r.User, dedupKey("remediation", r.User, r.DeviceID, r.Cause), []*mail.Address{to}, func() Content { return r.Content })
}

// Notify queues the admin notifications for ev: an e-mail to AdminRecipients and a webhook
// POST, each configured one durable in the outbox. It returns the ids queued. A channel
// suppressed by dedup or the per-user limit is skipped; the error is ErrDuplicate or
// ErrRateLimited only when every channel was suppressed.
func (n *Notifier) Notify(ctx context.Context, ev Event) ([]string, error) {
	switch ev.Kind {
	case EventQuarantine, EventRelease, EventBlock, EventWipe:
	default:
		return nil, &FieldError{Field: "Event.Kind", Reason: fmt.Sprintf("unknown kind %q", ev.Kind), Kind: ErrInvalidHeader}
	}
	for _, f := range []struct{ name, v string }{{"Event.User", ev.User}, {"Event.DeviceID", ev.DeviceID}, {"Event.Reason", ev.Reason}} {
		if err := checkHeaderValue(f.name, f.v, 256); err != nil {
			return nil, err
		}
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Time = ev.Time.UTC().Truncate(time.Second)
	var ids []string
	var suppressed error
	if len(n.admins) > 0 {
		id, err := n.enqueueEmail(ctx, "admin-email", ev.User,
			dedupKey("admin-email", string(ev.Kind), ev.User, ev.DeviceID, ev.Reason), n.admins, func() Content { return adminContent(ev) })
		switch {
		case err == nil:
			ids = append(ids, id)
		case errors.Is(err, ErrDuplicate) || errors.Is(err, ErrRateLimited):
			suppressed = err
		default:
			return ids, err
		}
	}
	if n.webhook != nil {
		id, err := n.enqueueWebhook(ctx, ev)
		switch {
		case err == nil:
			ids = append(ids, id)
		case errors.Is(err, ErrDuplicate) || errors.Is(err, ErrRateLimited):
			suppressed = err
		default:
			return ids, err
		}
	}
	if len(ids) == 0 && suppressed != nil {
		return nil, suppressed
	}
	return ids, nil
}

// webhookBody is the JSON POSTed for an event.
type webhookBody struct {
	ID string `json:"id"`
	Event
}

func (n *Notifier) enqueueWebhook(ctx context.Context, ev Event) (string, error) {
	limKey, err := n.admit("webhook", ev.User)
	if err != nil {
		return "", err
	}
	id, err := newID()
	if err != nil {
		n.perUser.refund(limKey)
		return "", err
	}
	body, err := json.Marshal(webhookBody{ID: id, Event: ev})
	if err != nil {
		n.perUser.refund(limKey)
		return "", fmt.Errorf("notifier: webhook body: %w", err)
	}
	it := &Item{ID: id, Channel: ChannelWebhook, User: ev.User, Recipients: []string{n.cfg.Webhook.URL}, Payload: body,
		DedupKey: dedupKey("webhook", string(ev.Kind), ev.User, ev.DeviceID, ev.Reason)}
	return id, n.store(ctx, limKey, it)
}

// enqueueEmail composes (content is rendered only once the per-user limit admitted it, so a
// flood costs no rendering) and stores an e-mail.
func (n *Notifier) enqueueEmail(ctx context.Context, channel, user, key string, to []*mail.Address, content func() Content) (string, error) {
	if len(to) > n.cfg.Limits.MaxRecipients {
		return "", &FieldError{Field: "To", Reason: "too many recipients", Kind: ErrTooLarge}
	}
	limKey, err := n.admit(channel, user)
	if err != nil {
		return "", err
	}
	id, err := newID()
	if err != nil {
		n.perUser.refund(limKey)
		return "", err
	}
	msg, err := composeEmail(envelope{
		From:      n.from,
		To:        to,
		MessageID: messageID(id, n.cfg.MessageIDDomain),
		Date:      time.Now(),
	}, content(), n.cfg.Limits)
	if err != nil {
		n.perUser.refund(limKey)
		return "", err
	}
	rcpts := make([]string, len(to))
	for i, a := range to {
		rcpts[i] = a.Address
	}
	it := &Item{ID: id, Channel: ChannelEmail, User: user, DedupKey: key, Sender: n.from.Address, Recipients: rcpts, Payload: msg}
	return id, n.store(ctx, limKey, it)
}

// admit takes a token from the user's bucket for channel, returning the bucket key for refund.
func (n *Notifier) admit(channel, user string) (string, error) {
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return "", ErrClosed
	}
	limKey := channel + "\x00" + user
	if !n.perUser.allow(limKey) {
		n.rateLimited.Add(1)
		return "", ErrRateLimited
	}
	return limKey, nil
}

// store writes the row (the outbox applies dedup) and wakes a worker. A row not stored gives
// its token back.
func (n *Notifier) store(ctx context.Context, limKey string, it *Item) error {
	window := n.cfg.DedupWindow
	if window < 0 {
		window = 0
	}
	if err := n.ob.Enqueue(ctx, it, window); err != nil {
		n.perUser.refund(limKey)
		if errors.Is(err, ErrDuplicate) {
			n.duplicates.Add(1)
		}
		return err
	}
	n.enqueued.Add(1)
	select {
	case n.wake <- struct{}{}:
	default:
	}
	return nil
}

// MessageID returns the Message-ID (without angle brackets) of the e-mail stored under outbox
// id: stable across resends.
func (n *Notifier) MessageID(id string) string { return messageID(id, n.cfg.MessageIDDomain) }

func messageID(id, domain string) string { return "easgate." + id + "@" + domain }

func dedupKey(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:])
}

// newID returns 128 random bits in hex: the outbox row id.
func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("notifier: random id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Start starts the delivery workers and the janitor that purges old sent rows. Start after
// Close does nothing.
func (n *Notifier) Start() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started || n.closed {
		return
	}
	n.started = true
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	for i := 0; i < n.cfg.Workers; i++ {
		n.wg.Add(1)
		go n.worker(ctx)
	}
	n.wg.Add(1)
	go n.janitor(ctx)
}

// Close stops the workers. A delivery in flight is aborted and its row retried later (by this
// or another process); nothing queued is lost. Close waits for the workers to return.
func (n *Notifier) Close() error {
	n.mu.Lock()
	n.closed = true
	cancel := n.cancel
	n.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	n.wg.Wait()
	return nil
}

func (n *Notifier) worker(ctx context.Context) {
	defer n.wg.Done()
	for ctx.Err() == nil {
		it, err := n.ob.Claim(ctx, time.Now(), n.cfg.Lease)
		if err != nil {
			if ctx.Err() == nil {
				n.log.Warn("notifier: claim failed", "err", err)
			}
			n.sleep(ctx, n.cfg.PollInterval)
			continue
		}
		if it == nil {
			n.idle(ctx)
			continue
		}
		n.deliver(ctx, it)
	}
}

// idle waits for an Enqueue in this process, the next due row, or the poll interval.
func (n *Notifier) idle(ctx context.Context) {
	d := n.cfg.PollInterval
	if t, ok, err := n.ob.NextDue(ctx); err == nil && ok {
		if until := time.Until(t); until < d {
			d = max(until, time.Millisecond)
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-n.wake:
	case <-timer.C:
	}
}

func (n *Notifier) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (n *Notifier) deliver(ctx context.Context, it *Item) {
	// Outcomes are recorded even when ctx was cancelled mid-delivery.
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := n.global.wait(ctx, ""); err != nil {
		// Shutting down: give the row back as it was (the attempt did not happen).
		_ = n.ob.MarkRetry(mctx, it.ID, it.Lease, time.Now(), it.LastError)
		return
	}
	var err error
	switch it.Channel {
	case ChannelEmail:
		if n.smtp == nil {
			err = &DeliveryError{Err: errors.New("no SMTP relay configured")}
		} else {
			err = n.smtp.send(ctx, it.Sender, it.Recipients, it.Payload)
		}
	case ChannelWebhook:
		if n.webhook == nil || len(it.Recipients) != 1 {
			err = &DeliveryError{Err: errors.New("no webhook configured")}
		} else {
			err = n.webhook.send(ctx, it.ID, it.Recipients[0], it.Payload)
		}
	default:
		err = &DeliveryError{Permanent: true, Err: fmt.Errorf("unknown channel %q", it.Channel)}
	}
	if err == nil {
		if merr := n.ob.MarkSent(mctx, it.ID, it.Lease, time.Now()); merr != nil {
			n.log.Warn("notifier: mark sent failed; the row will be delivered again after its lease", "id", it.ID, "err", merr)
			return
		}
		n.sent.Add(1)
		return
	}
	var de *DeliveryError
	permanent := errors.As(err, &de) && de.Permanent
	if permanent || it.Attempts >= n.cfg.Retry.MaxAttempts {
		if merr := n.ob.MarkDead(mctx, it.ID, it.Lease, err.Error()); merr != nil {
			n.log.Warn("notifier: mark dead failed", "id", it.ID, "err", merr)
			return
		}
		n.dead.Add(1)
		n.log.Error("notifier: dead letter", "id", it.ID, "channel", it.Channel, "user", it.User, "attempts", it.Attempts, "err", err)
		return
	}
	next := time.Now().Add(n.backoff(it.Attempts))
	if ctx.Err() != nil {
		next = time.Now()
	}
	if merr := n.ob.MarkRetry(mctx, it.ID, it.Lease, next, err.Error()); merr != nil {
		n.log.Warn("notifier: mark retry failed", "id", it.ID, "err", merr)
		return
	}
	n.retried.Add(1)
	n.log.Info("notifier: delivery failed, will retry", "id", it.ID, "attempt", it.Attempts, "next", next, "err", err)
}

// backoff is InitialBackoff·2^(attempt-1), capped at MaxBackoff, ± Jitter.
func (n *Notifier) backoff(attempt int) time.Duration {
	r := n.cfg.Retry
	d := float64(r.InitialBackoff) * math.Pow(2, float64(max(attempt-1, 0)))
	if d > float64(r.MaxBackoff) {
		d = float64(r.MaxBackoff)
	}
	if r.Jitter > 0 {
		d *= 1 + r.Jitter*(2*mrand.Float64()-1)
	}
	return time.Duration(d)
}

func (n *Notifier) janitor(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		if _, err := n.ob.Purge(ctx, time.Now().Add(-n.cfg.Retention)); err != nil && ctx.Err() == nil {
			n.log.Warn("notifier: purge failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
