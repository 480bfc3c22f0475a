// Package quarantine answers Exchange ActiveSync devices that are not allowed to reach the
// mail server — blocked, wipe-pending or quarantined — per command and per protocol
// version, without contacting the mail server. It also renders the remediation message
// that a quarantined device shows in its one-message inbox and that the notifier mails to
// the user.
//
// # What the gateway calls, and when
//
// After decision.Decide, for a request whose decision is not Allow:
//
//  1. PassThrough(req.Cmd, d): true for Provision and Settings of a quarantined device
//     and for Provision of a wipe-pending one — forward (or hand to the provisioning
//     code) as if allowed; the device must be able to accept the policy, report its
//     DeviceInformation and receive the wipe.
//  2. Otherwise Responder.Answer(req, d, body, now) → Answer. Copy Status, ContentType,
//     Headers and Body into the HTTP response; when Answer.Hold > 0 write it only after
//     Hold has passed (or drop it when the client goes away) — Pings and waiting Syncs
//     of a quarantined device with nothing new.
//
// For an ALLOWED FolderSync, Sync, GetItemEstimate or Ping, call Stale(req.Cmd, body)
// before forwarding: a device just released still holds the quarantine inbox's keys; Stale
// answers them locally with the status that makes the device resynchronise the real
// mailbox. It is allocation-free when the body has no quarantine identifier.
//
// When the notifier is to mail the remediation message, Responder.Message renders it with
// the same templates, language and portal link as the inbox.
//
// # Blocked, wipe-pending and over-limit devices (MS-ASCMD 2.2.2, MS-ASHTTP 2.2.2.1.1.1)
//
// EAS 14.0 and later carry the common status codes (101–177) in the top-level Status of
// the command's own response element, with HTTP 200: Sync (MS-ASCMD 2.2.3.177.17),
// FolderSync (.5), FolderCreate (.2), FolderDelete (.3), FolderUpdate (.6),
// GetItemEstimate (.7), ItemOperations (.8), MoveItems (.10), Ping (.11),
// ResolveRecipients (.12), Search (.13), SendMail (.14), Settings (.15), SmartForward
// and SmartReply (.16, ComposeMail namespace), ValidateCert (.18), Find (.4) and
// Provision (MS-ASPROV 2.2.2.54.2). MeetingResponse has no top-level Status: every
// Request gets a Result with its RequestId and the status (MS-ASCMD 2.2.3.177.9).
// Blocked devices get 129 (DeviceIsBlockedForThisUser), wipe-pending ones 140
// (RemoteWipeRequested, so that they Provision and receive the wipe), devices over the
// per-user limit 177 (MaximumDevicesReached; 129 for 14.0, which predates the code),
// disabled users 126, and a registry outage 111 (ServerErrorRetryLater) — see
// Config.StatusByReason. EAS 2.5, 12.0 and 12.1 learn the same through the HTTP status:
// 403 (blocked), 449 (provision: wipe) and 503 with Retry-After (retry later).
//
// # The quarantine inbox
//
// A quarantined device sees a mailbox with one folder and one message:
//
//   - FolderSync (MS-ASCMD 2.2.1.5): SyncKey 0 → an Inbox (Type 2) and FolderSyncKey;
//     that key → no changes; any other key → Status 9, and the device starts over.
//   - Sync (2.2.1.21): SyncKey 0 → a primed key and no items; then the message as one
//     Add; then no changes. Keys are stateless, Prefix + message version + step, so a
//     device's key alone tells what it holds: when the message changes (the failure list,
//     the language, the daily refresh) the device gets a Delete of the old item and an Add
//     of the new one. Unknown keys get Status 3, real-mailbox folders Status 12 (top-level
//     from 12.1, per collection for 2.5 and 12.0).
//   - GetItemEstimate (2.2.1.9) and ItemOperations Fetch (2.2.1.10) agree with Sync.
//   - Ping (2.2.1.13): Status 2 with the Inbox at once when the device has not yet
//     synchronised the current message, else Status 1 after Config.PingHold, so that a
//     released device checks back soon.
//   - Everything else (SendMail, SmartReply, SmartForward, Search, MoveItems, the Folder
//     commands, MeetingResponse, ResolveRecipients, ValidateCert, Find) gets the blocking
//     status of the version.
//
// The message (MS-ASEMAIL 2.2.2) honours AirSyncBase BodyPreference (MS-ASAIRS 2.2.2.7):
// plain text (Type 1), HTML (Type 2) or MIME (Type 4), TruncationSize with Truncated and
// EstimatedDataSize, AllOrNone and Preview; EAS 2.5 gets Email:Body limited by
// AirSync:Truncation.
//
// # Messages
//
// Two causes have their own message (CauseOf): a device that is not enrolled is told how
// to enrol (Config.EnrollURL), a device that is not compliant gets each failing rule in
// plain words with the step to fix it (the "fix" template, from decision.Failure). Other
// quarantines (admin rules, spoofing signals) say the device waits for approval. Templates
// are Go text/template ("subject", "text", "fix") and html/template ("html"), embedded for
// English and German and overridable per language from files (Config.Templates). The
// language is the request's MS-LCID, else its Accept-Language, else the default. The
// portal link (Config.PortalLink, wired to portal.Signer.Link) expires LinkTTL after the
// start of the refresh period, and the message is re-issued every RefreshEvery.
//
// Blocked and wipe-pending devices never see the inbox or a remediation message.
//
// # Concurrency and buffers
//
// Responder, Renderer and Stale are safe for concurrent use. Answer reads the request and
// body only during the call; the returned Answer owns its Body.
package quarantine
