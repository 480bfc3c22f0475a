// Package eas is the upstream client of the gateway's EAS proxy mode: it forwards allowed
// Exchange ActiveSync requests (MS-ASHTTP POST/OPTIONS to /Microsoft-Server-ActiveSync) to the
// real EAS server (Exchange, Exchange Online, Z-Push, grommunio-sync) over valyala/fasthttp and
// hands the answer back in place.
//
// The package does not import the gateway: the gateway's fasthttp handler calls
// [Upstream.Forward] with its own *fasthttp.Request and *fasthttp.Response, and maps the typed
// [*Error] values returned here to wire responses (502, 503 + Retry-After, 504). Import it under a
// name such as upstream, since the top-level eas package (the protocol model) has the same name.
//
// What Forward does, in order:
//
//   - fails fast with [ErrCircuitOpen] while the per-upstream circuit breaker is open;
//   - rewrites the request URI onto the upstream base path, keeping the original query string byte
//     for byte (it carries the MS-ASHTTP plain or base64 command parameters);
//   - strips hop-by-hop headers (RFC 9110 section 7.6.1) both ways and sets X-Forwarded-For,
//     X-Forwarded-Proto and X-Forwarded-Host;
//   - sends the request on a pooled keep-alive connection with a deadline chosen by request class
//     (a held Ping or Sync with Wait gets a long one, everything else a short one);
//   - retries an idempotent request once if the connection was reset before any response byte
//     (a stale keep-alive connection); SendMail, SmartReply and SmartForward are never retried;
//   - hands the response body back as a stream that the fasthttp server copies to the client, so a
//     100 MB attachment is never buffered whole; small bodies with a known length are read at once
//     so their connection goes back to the pool early.
//
// fasthttp's HostClient.Do cannot be cancelled and hides the connection it uses, so Forward uses a
// HostClient only as the connection pool (AcquireConn/ReleaseConn/CloseConn) and does the exchange
// itself; fasthttp's own retry loop is disabled (MaxIdemponentCallAttempts 1, RetryIfErr never).
// That gives Forward the connection, so a cancelled context closes it at once and nothing waits.
package eas
