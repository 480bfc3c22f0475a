package eas

// Error is a rejected request: the HTTP status the gateway answers with and, where the
// protocol defines one, the EAS Status (MS-ASCMD 2.2.2) to put in the response body. The
// sentinels below are instances; errors returned by the parsers either are a sentinel or
// wrap one with detail, so errors.Is(err, ErrDuplicateParameter) works for both. The
// message is for logs: it can quote client input and must not be sent to the client.
type Error struct {
	HTTPStatus int
	Status     Status // 0 when no EAS status applies
	msg        string
	kind       *Error // the sentinel a detailed error is an instance of; nil for sentinels
}

func (e *Error) Error() string { return "eas: " + e.msg }

// Is reports whether e is an instance of target, a sentinel.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && (e == t || (e.kind != nil && e.kind == t))
}

// Kind returns the sentinel e is an instance of (e itself for a sentinel).
func (e *Error) Kind() *Error {
	if e.kind != nil {
		return e.kind
	}
	return e
}

func newErr(http int, st Status, msg string) *Error {
	return &Error{HTTPStatus: http, Status: st, msg: msg}
}

// detail returns an instance of sentinel e whose message names the offending item.
func (e *Error) detail(what string) *Error {
	return &Error{HTTPStatus: e.HTTPStatus, Status: e.Status, msg: e.msg + ": " + what, kind: e}
}

// Sentinel errors of request parsing and validation (MS-ASHTTP 2.2.1.1).
var (
	ErrQueryTooLong        = newErr(414, 0, "query exceeds the size limit")
	ErrMalformedQuery      = newErr(400, 0, "malformed query")
	ErrMixedQueryForms     = newErr(400, 0, "query mixes the plain and base64 forms")
	ErrInvalidCharacter    = newErr(400, 0, "control character (CR, LF, NUL, ...) in request")
	ErrDuplicateParameter  = newErr(400, 0, "duplicated query parameter")
	ErrUnknownParameter    = newErr(400, 0, "unknown base64 query parameter tag")
	ErrInvalidParameter    = newErr(400, 0, "invalid query parameter value")
	ErrTruncated           = newErr(400, 0, "base64 query field runs past the end")
	ErrTrailingData        = newErr(400, 0, "trailing data after the base64 query")
	ErrMissingCommand      = newErr(400, 0, "missing Cmd parameter")
	ErrUnknownCommand      = newErr(501, StatusCommandNotSupported, "unknown command")
	ErrMissingUser         = newErr(400, 0, "missing User parameter")
	ErrInvalidUser         = newErr(400, 0, "invalid User parameter")
	ErrMissingDeviceID     = newErr(400, StatusDeviceIDMissingOrInvalid, "missing DeviceId parameter")
	ErrInvalidDeviceID     = newErr(400, StatusDeviceIDMissingOrInvalid, "invalid DeviceId parameter")
	ErrMissingDeviceType   = newErr(400, StatusDeviceTypeMissingOrInvalid, "missing DeviceType parameter")
	ErrInvalidDeviceType   = newErr(400, StatusDeviceTypeMissingOrInvalid, "invalid DeviceType parameter")
	ErrMissingVersion      = newErr(400, 0, "missing protocol version")
	ErrUnknownVersion      = newErr(400, StatusVersionNotSupported, "unknown protocol version")
	ErrVersionConflict     = newErr(400, 0, "protocol version in query and MS-ASProtocolVersion header disagree")
	ErrCommandNotInVersion = newErr(400, StatusVersionNotSupported, "command not defined in the requested protocol version")
	ErrInvalidPolicyKey    = newErr(400, 0, "invalid policy key")
	ErrPolicyKeyConflict   = newErr(400, 0, "policy key in query and X-MS-PolicyKey header disagree")
	ErrInvalidHeader       = newErr(400, 0, "invalid request header")
)

// Errors of building a query (AppendPlainQuery, AppendBase64Query). They describe a
// caller's mistake, not a client's, and carry HTTP status 500.
var (
	ErrCannotEncode = newErr(500, 0, "request cannot be encoded in this query form")
)
