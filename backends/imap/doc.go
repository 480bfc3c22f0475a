// Package imap makes easgate the Exchange ActiveSync server for a plain IMAP + SMTP mail
// system (the job Z-Push does in PHP): FolderSync, FolderCreate/Update/Delete (MS-ASCMD
// 2.2.1.2-2.2.1.5), Sync for the Email class (2.2.1.21) with windows, retries and client-side
// changes, GetItemEstimate (2.2.1.9), ItemOperations (2.2.1.10), MoveItems (2.2.1.12), Ping via
// IMAP IDLE (2.2.1.13, RFC 2177), Search of the Mailbox store (2.2.1.16), Settings (2.2.1.18),
// SendMail, SmartReply and SmartForward in the 12.x MIME and 14.0+ WBXML forms (2.2.1.17,
// 2.2.1.19, 2.2.1.20) sent with SMTP AUTH, and GetAttachment (12.x).
//
// Synchronisation state lives in a StateStore (SQLiteStore is the embedded one): per (user,
// device, collection) the SyncKey, the IMAP UIDVALIDITY, the items the device holds with their
// read/flag state, and the last answer, so a request retried with the previous SyncKey gets the
// same answer again (MS-ASCMD 2.2.3.166.4). Incremental Sync uses CONDSTORE (RFC 7162) where the
// server has it and compares flags otherwise; a changed UIDVALIDITY (RFC 3501 2.3.1.1) makes the
// device resync the folder (Sync Status 3).
//
// ServerIds are "collection:uid", FileReferences "collection:uid:part"; collection ids are
// stable per user and mailbox name and survive renames done through FolderUpdate.
//
// The gateway calls New once, Options for HTTP OPTIONS and Serve for every allowed POST, and
// maps the *Error values Serve returns (ErrUnavailable → 503, ErrAuthFailed → 401,
// ErrBadRequest → 400 or its EAS Status).
package imap
