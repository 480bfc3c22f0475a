package notifier

import (
	"context"
	"time"
)

// Channel is how a queued notification is delivered.
type Channel string

const (
	// ChannelEmail rows carry a complete RFC 5322 message sent over SMTP.
	ChannelEmail Channel = "email"
	// ChannelWebhook rows carry a JSON body POSTed to Target.
	ChannelWebhook Channel = "webhook"
)

// State is where a row is in its life.
type State string

const (
	// StateQueued rows wait for NextAttempt.
	StateQueued State = "queued"
	// StateSending rows are leased by a worker until LeaseUntil; after it they are due again.
	StateSending State = "sending"
	// StateSent rows were delivered (and are purged after Config.Retention).
	StateSent State = "sent"
	// StateDead rows failed permanently or ran out of attempts; Requeue brings them back.
	StateDead State = "dead"
)

// Item is one outbox row. Payload is owned by the Item; an Outbox copies what it stores and
// returns fresh Items, so callers may keep them.
type Item struct {
	// ID is unique and stable; e-mail Message-IDs are derived from it.
	ID      string
	Channel Channel
	// User is the user the notification is about (for listing and limits).
	User string
	// DedupKey, when set, suppresses another Enqueue with the same key within the window.
	DedupKey string
	// Sender is the SMTP envelope sender (e-mail only).
	Sender string
	// Recipients are the SMTP envelope recipients (e-mail), or the URL (webhook, one entry).
	Recipients []string
	// Payload is the complete message (e-mail) or JSON body (webhook).
	Payload []byte

	State       State
	Attempts    int
	NextAttempt time.Time
	LeaseUntil  time.Time
	LastError   string
	CreatedAt   time.Time
	SentAt      time.Time
	// Lease identifies the claim that owns a StateSending row; Mark* calls must present it, so a
	// worker whose lease expired cannot overwrite the outcome of the worker that took over.
	Lease string
}

// ListFilter selects rows for List. Zero fields do not filter; Limit 0 means 100.
type ListFilter struct {
	State State
	User  string
	Limit int
}

// Outbox is the durable queue behind the Notifier. Implementations must be safe for concurrent
// use by several goroutines and several processes sharing the same storage.
type Outbox interface {
	// Enqueue stores it as StateQueued, due at it.NextAttempt, and returns only after the row is
	// durable. If it.DedupKey is set and a row with that key was enqueued less than window ago,
	// nothing is stored and ErrDuplicate is returned. window <= 0 disables deduplication.
	Enqueue(ctx context.Context, it *Item, window time.Duration) error
	// Claim leases one due row (queued and due, or sending with an expired lease) until
	// now+lease, increments its Attempts and returns it; nil, nil when nothing is due.
	Claim(ctx context.Context, now time.Time, lease time.Duration) (*Item, error)
	// MarkSent records a delivery. ErrNotFound if the lease is no longer held.
	MarkSent(ctx context.Context, id, lease string, at time.Time) error
	// MarkRetry puts the row back in the queue, due at next. ErrNotFound if the lease is lost.
	MarkRetry(ctx context.Context, id, lease string, next time.Time, lastErr string) error
	// MarkDead dead-letters the row. ErrNotFound if the lease is lost.
	MarkDead(ctx context.Context, id, lease string, lastErr string) error
	// Requeue moves a dead row back to the queue with zero attempts, due at. ErrNotFound if
	// there is no dead row with that id.
	Requeue(ctx context.Context, id string, at time.Time) error
	// Get returns one row, ErrNotFound if none.
	Get(ctx context.Context, id string) (*Item, error)
	// List returns rows, oldest first.
	List(ctx context.Context, f ListFilter) ([]*Item, error)
	// NextDue returns when the earliest queued row is due (ok false when none is queued).
	NextDue(ctx context.Context) (t time.Time, ok bool, err error)
	// Purge deletes sent rows sent before the time and expired dedup entries, returning the
	// number of rows deleted.
	Purge(ctx context.Context, sentBefore time.Time) (int, error)
}
