package eas

import (
	"errors"
	"strconv"
	"time"
)

// Kind classifies an upstream failure. The gateway maps each kind to one wire response; the
// kind's String is safe to log or count, while Error.Unwrap holds the internal cause, which must
// never reach a client.
type Kind uint8

const (
	// KindDown: the upstream could not be reached or dropped the connection before answering
	// (refused, reset, TLS failure). Answer 502.
	KindDown Kind = iota + 1
	// KindTimeout: the upstream did not answer (or stopped sending the body) within the deadline
	// of the request's class. Answer 504.
	KindTimeout
	// KindCircuitOpen: the circuit breaker is open; Forward did not try. Answer 503 with
	// Retry-After.
	KindCircuitOpen
	// KindTooLarge: the response body exceeds Config.MaxResponseBodyBytes. Answer 502.
	KindTooLarge
	// KindBadResponse: the upstream answered with invalid HTTP (garbage, oversized headers,
	// broken chunking, a body shorter than its Content-Length). Answer 502.
	KindBadResponse
	// KindSaturated: all Config.MaxConns connections are busy. Answer 503 with Retry-After.
	KindSaturated
	// KindCanceled: the caller's context was cancelled (the device went away). Nothing is
	// answered; the client connection is gone.
	KindCanceled
)

var kindNames = [...]string{
	KindDown:        "upstream_down",
	KindTimeout:     "upstream_timeout",
	KindCircuitOpen: "circuit_open",
	KindTooLarge:    "response_too_large",
	KindBadResponse: "bad_response",
	KindSaturated:   "upstream_saturated",
	KindCanceled:    "canceled",
}

// String returns a stable, client-safe name for the kind, suitable as a metric label.
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "unknown"
}

// StatusCode is the HTTP status the gateway answers for this kind. KindCanceled returns 499
// (nginx's "client closed request"), a code for logs only: nobody is left to receive it.
func (k Kind) StatusCode() int {
	switch k {
	case KindTimeout:
		return 504
	case KindCircuitOpen, KindSaturated:
		return 503
	case KindCanceled:
		return 499
	default:
		return 502
	}
}

// Error is the only error type Forward and the response body stream return.
//
// errors.Is(err, ErrUpstreamTimeout) and friends compare the Kind only, so callers switch on the
// sentinels; errors.As gives the RetryAfter of KindCircuitOpen and KindSaturated.
type Error struct {
	Kind Kind
	// RetryAfter is how long the client should wait before retrying (KindCircuitOpen: the rest of
	// the breaker's cool-down, at least one second; KindSaturated: one second). Zero otherwise.
	RetryAfter time.Duration
	// Op says where it failed ("dial", "write", "read header", "read body", ...): internal.
	Op  string
	Err error // internal cause, for logs only
}

// Sentinels to compare with errors.Is. They carry no cause.
var (
	ErrUpstreamDown     = &Error{Kind: KindDown}
	ErrUpstreamTimeout  = &Error{Kind: KindTimeout}
	ErrCircuitOpen      = &Error{Kind: KindCircuitOpen}
	ErrResponseTooLarge = &Error{Kind: KindTooLarge}
	ErrBadResponse      = &Error{Kind: KindBadResponse}
	ErrSaturated        = &Error{Kind: KindSaturated}
	ErrCanceled         = &Error{Kind: KindCanceled}
)

func (e *Error) Error() string {
	s := "eas backend: " + e.Kind.String()
	if e.Op != "" {
		s += " (" + e.Op + ")"
	}
	if e.RetryAfter > 0 {
		s += ", retry after " + e.RetryAfter.String()
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error of the same Kind.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind
}

// StatusCode is e.Kind.StatusCode().
func (e *Error) StatusCode() int { return e.Kind.StatusCode() }

// RetryAfterHeader is the Retry-After header value in whole seconds (rounded up), or "" when
// RetryAfter is zero.
func (e *Error) RetryAfterHeader() string {
	if e.RetryAfter <= 0 {
		return ""
	}
	s := int64((e.RetryAfter + time.Second - 1) / time.Second)
	return strconv.FormatInt(s, 10)
}

// KindOf returns the Kind of err if it is (or wraps) an *Error, else 0.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

func newErr(k Kind, op string, err error) *Error { return &Error{Kind: k, Op: op, Err: err} }
