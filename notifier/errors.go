package notifier

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package match them with errors.Is.
var (
	// ErrInvalidHeader: a value bound for a header field holds CR, LF or NUL, is not valid
	// UTF-8, or is too long. Nothing was queued.
	ErrInvalidHeader = errors.New("notifier: invalid header value")
	// ErrInvalidAddress: an e-mail address is not a plain RFC 5322 addr-spec. Nothing was queued.
	ErrInvalidAddress = errors.New("notifier: invalid address")
	// ErrTooLarge: a body exceeds Limits. Nothing was queued.
	ErrTooLarge = errors.New("notifier: content too large")
	// ErrDuplicate: a notification with the same dedup key was queued within the dedup window;
	// this one was suppressed. Not a failure for callers that fire on every request.
	ErrDuplicate = errors.New("notifier: duplicate suppressed")
	// ErrRateLimited: the per-user rate limit suppressed this notification.
	ErrRateLimited = errors.New("notifier: rate limited")
	// ErrNotFound: no outbox row with that id (or not in a state the operation applies to).
	ErrNotFound = errors.New("notifier: not found")
	// ErrClosed: the Notifier was closed.
	ErrClosed = errors.New("notifier: closed")
)

// FieldError says which input field failed validation and why. It matches its Kind
// (ErrInvalidHeader, ErrInvalidAddress or ErrTooLarge) with errors.Is.
type FieldError struct {
	Field  string // e.g. "Subject", "To", "Event.User"
	Reason string
	Kind   error
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%v: %s: %s", e.Kind, e.Field, e.Reason)
}

func (e *FieldError) Unwrap() error { return e.Kind }

// DeliveryError is the outcome of one failed delivery attempt. Permanent failures dead-letter
// the row at once; temporary ones are retried.
type DeliveryError struct {
	// Permanent is true for SMTP 5xx replies to MAIL/RCPT/DATA and webhook 4xx answers
	// (other than 408 and 429).
	Permanent bool
	// Code is the SMTP reply code or HTTP status, 0 for network and TLS failures.
	Code int
	Err  error
}

func (e *DeliveryError) Error() string {
	kind := "temporary"
	if e.Permanent {
		kind = "permanent"
	}
	if e.Code != 0 {
		return fmt.Sprintf("notifier: %s delivery failure (%d): %v", kind, e.Code, e.Err)
	}
	return fmt.Sprintf("notifier: %s delivery failure: %v", kind, e.Err)
}

func (e *DeliveryError) Unwrap() error { return e.Err }
