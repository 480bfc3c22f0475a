// Package servers starts the real third-party servers that easgate's tests and benchmarks run
// against: Dovecot (IMAP, LMTP), Postfix (SMTP), PostgreSQL and nginx, each from its Debian
// package, each on a free 127.0.0.1 port with its configuration and data in t.TempDir(), each
// stopped by t.Cleanup.
//
// Nothing here is a mock: a Start function installs the Debian package with `apt-get install -y`
// when its binary is missing and fails the test (t.Fatal, never t.Skip) when the binary is still
// absent afterwards, so a green run always means the real component was exercised.
//
// The Start functions take a testing.TB, so benchmarks use them too. Returned values expose the
// listening addresses and whatever a test needs to drive the server (users, credentials, a CA
// certificate, a restart for fault tests). They are safe for use by one test goroutine; the
// servers themselves of course accept concurrent clients.
package servers
