package gateway

import (
	"errors"
	"log/slog"
	"strconv"

	"github.com/valyala/fasthttp"

	upstream "github.com/easgate/easgate/backends/eas"
	imapbackend "github.com/easgate/easgate/backends/imap"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/oauth"
)

// Errors of the gateway's own making, each answered by writeError.
var (
	errAuthMissing   = &httpError{status: 401, text: "authentication required", metric: "missing"}
	errAuthMalformed = &httpError{status: 401, text: "malformed credentials", metric: "malformed"}
	errAuthScheme    = &httpError{status: 401, text: "unsupported authentication scheme", metric: "scheme"}
	errUserMismatch  = &httpError{status: 403, text: "the EAS User does not match the authenticated identity", metric: "user_mismatch"}
	errBadMethod     = &httpError{status: 405, text: "method not allowed"}
	errNotFound      = &httpError{status: 404, text: "not found"}
	errPingCapacity  = &httpError{status: 503, text: "too many held requests", retryAfter: 60}
	errDraining      = &httpError{status: 503, text: "shutting down", retryAfter: 5}
)

// httpError is an answer the gateway gives on its own: an HTTP status and a short, safe text.
type httpError struct {
	status     int
	text       string
	retryAfter int    // seconds; 0: no Retry-After header
	metric     string // auth failure reason for metrics, "" for other errors
}

func (e *httpError) Error() string { return "gateway: " + e.text }

// writeError is the one place where an error becomes a wire response. Internal error text never
// reaches the client: protocol errors carry their own safe code, everything unknown is a 500 with
// the request ID, logged here.
func (s *Server) writeError(resp *fasthttp.Response, rid string, err error) {
	resp.ResetBody()
	resp.Header.SetContentType("text/plain; charset=utf-8")
	var he *httpError
	var ee *eas.Error
	var ue *upstream.Error
	var oe *oauth.Error
	var ie *imapbackend.Error
	switch {
	case errors.As(err, &ie):
		resp.SetStatusCode(ie.HTTPStatus)
		switch ie.HTTPStatus {
		case 503:
			resp.Header.Set("Retry-After", "30")
		case 401:
			resp.Header.Set("WWW-Authenticate", `Basic realm="easgate", charset="UTF-8"`)
		}
		resp.SetBodyString(fasthttp.StatusMessage(ie.HTTPStatus) + "\n")
		if ie.HTTPStatus >= 500 {
			s.log.Warn("mail server error", slog.String("rid", rid), slog.String("err", err.Error()))
		}
	case errors.As(err, &oe):
		resp.SetStatusCode(oe.Status)
		resp.Header.Set("WWW-Authenticate", oe.Challenge())
		resp.SetBodyString(fasthttp.StatusMessage(oe.Status) + "\n")
		s.metrics.authFail.WithLabelValues("bearer_" + oe.Code).Inc()
	case errors.As(err, &he):
		resp.SetStatusCode(he.status)
		if he.status == 401 {
			resp.Header.Set("WWW-Authenticate", `Basic realm="easgate", charset="UTF-8"`)
		}
		if he.retryAfter > 0 {
			resp.Header.Set("Retry-After", strconv.Itoa(he.retryAfter))
		}
		if he.metric != "" {
			s.metrics.authFail.WithLabelValues(he.metric).Inc()
		}
		resp.SetBodyString(he.text + "\n")
	case errors.As(err, &ee):
		resp.SetStatusCode(ee.HTTPStatus)
		resp.SetBodyString(ee.Error() + "\n")
	case errors.As(err, &ue):
		resp.SetStatusCode(ue.StatusCode())
		if ra := ue.RetryAfterHeader(); ra != "" {
			resp.Header.Set("Retry-After", ra)
		}
		resp.SetBodyString(fasthttp.StatusMessage(ue.StatusCode()) + "\n")
		s.log.Warn("upstream error", slog.String("rid", rid), slog.String("err", err.Error()))
	default:
		resp.SetStatusCode(500)
		resp.SetBodyString("internal error, request " + rid + "\n")
		s.log.Error("internal error", slog.String("rid", rid), slog.String("err", err.Error()))
	}
}
