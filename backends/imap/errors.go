package imap

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/easgate/easgate/eas"
)

// ErrorKind classifies the errors Serve returns, for the gateway's one error mapper.
type ErrorKind uint8

// Error kinds.
const (
	// KindUnavailable: the IMAP or SMTP server is down, unreachable or timed out (HTTP 503).
	KindUnavailable ErrorKind = iota + 1
	// KindAuthFailed: the mail server refused the device's credentials (HTTP 401).
	KindAuthFailed
	// KindBadRequest: the request body is not what the command needs (HTTP 400, or the EAS
	// status in Status where the command has one).
	KindBadRequest
	// KindInternal: a state store failure or an unexpected server answer (HTTP 500).
	KindInternal
)

// Error is the typed error Serve returns. Its text is for logs, never for the client: the
// gateway answers with HTTPStatus (and, for KindBadRequest, may answer with the EAS Status).
type Error struct {
	Kind       ErrorKind
	HTTPStatus int
	// Status is the MS-ASCMD common status (2.2.2) that describes the failure, 0 if none.
	Status eas.Status
	msg    string
	err    error
}

func (e *Error) Error() string {
	if e.err != nil {
		return "imap: " + e.msg + ": " + e.err.Error()
	}
	return "imap: " + e.msg
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.err }

// Is matches the sentinels by Kind, so errors.Is(err, ErrUnavailable) holds for every
// unavailable error whatever its detail.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.msg == "" && t.err == nil && t.Kind == e.Kind
}

// Sentinels for errors.Is; every error Serve returns is an *Error of one of these kinds.
var (
	ErrUnavailable = &Error{Kind: KindUnavailable, HTTPStatus: http.StatusServiceUnavailable, Status: eas.StatusMailboxServerOffline}
	ErrAuthFailed  = &Error{Kind: KindAuthFailed, HTTPStatus: http.StatusUnauthorized}
	ErrBadRequest  = &Error{Kind: KindBadRequest, HTTPStatus: http.StatusBadRequest, Status: eas.StatusInvalidContent}
	ErrInternal    = &Error{Kind: KindInternal, HTTPStatus: http.StatusInternalServerError, Status: eas.StatusServerError}
)

func newErr(kind *Error, err error, format string, args ...any) *Error {
	e := *kind
	e.msg = fmt.Sprintf(format, args...)
	e.err = err
	return &e
}

func badRequest(format string, args ...any) *Error {
	return newErr(ErrBadRequest, nil, format, args...)
}

func badWBXML(err error) *Error {
	e := newErr(ErrBadRequest, err, "request body")
	e.Status = eas.StatusInvalidWBXML
	return e
}

func internal(err error, what string) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return newErr(ErrInternal, err, "%s", what)
}
