// Package notifier sends easgate's remediation and admin notifications: e-mail composed with
// emersion/go-message (RFC 5322 header, RFC 2045/2046 multipart/alternative with a text and an
// HTML part, RFC 2047 encoded words for non-ASCII subjects, RFC 3834 Auto-Submitted) and
// delivered over SMTP with emersion/go-smtp (RFC 5321, RFC 3207 STARTTLS, RFC 8314 implicit TLS,
// RFC 4954 AUTH), and admin webhooks (JSON, HMAC-SHA256 signed).
//
// Every notification is written to a durable Outbox before anything is sent: Notify* returns
// after the row is committed. A pool of workers claims due rows with a lease, delivers them and
// marks them sent; a worker that dies (kill -9) leaves its row leased, and the row is claimed
// again when the lease runs out. Delivery is therefore at least once, and a resend carries the
// same Message-ID (derived from the row id), so a receiver can tell a duplicate from a new
// message.
//
// Failures are classified: SMTP 4xx replies, connection, TLS and AUTH failures and webhook 5xx,
// 408 and 429 answers are retried with exponential backoff and jitter up to MaxAttempts; SMTP
// 5xx replies to MAIL, RCPT or DATA and webhook 4xx answers dead-letter the row at once. Dead
// rows are listed and re-queued through the Outbox (the admin API does this).
//
// Floods are held back twice: a dedup key (user, device, cause) suppresses a repeat within
// DedupWindow, and per-user token buckets (in memory, per process) suppress more than a few
// notifications per user, whatever the device ids; a global token bucket paces delivery so a
// burst never overruns the MTA.
//
// The message content (subject, text and HTML bodies) is the caller's (quarantine renders its
// templates); notifier owns the envelope, every header and the delivery. Header values are built
// from validated data only: CR, LF and NUL and malformed addresses are rejected, so no caller
// input can inject a header.
//
// The package imports nothing else of easgate.
package notifier
