package notifier

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
)

// BenchmarkComposeEmail measures building one remediation message (header validation,
// RFC 2047 subject, multipart/alternative with two quoted-printable parts).
func BenchmarkComposeEmail(b *testing.B) {
	from, _ := parseAddress("Mail Access <noreply@easgate.test>")
	to, _ := parseAddress("alice@easgate.test")
	c := Content{Subject: "Ihr Gerät ist gesperrt", Text: "Please enrol your device.\r\n", HTML: "<p>Please enrol your device.</p>"}
	lim := Config{}.Defaults().Limits
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := composeEmail(envelope{From: from, To: []*mail.Address{to}, MessageID: "easgate.x@easgate.test", Date: time.Now()}, c, lim); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRemediate measures a full Remediate: validation, per-user limit, compose, dedup
// and a committed SQLite row (WAL, synchronous=NORMAL). Workers are not started.
func BenchmarkRemediate(b *testing.B) {
	n, err := New(testConfig("127.0.0.1:25"), openTestOutbox(b))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := n.Remediate(ctx, remediation(fmt.Sprint("dev", i))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSQLiteInsertBaseline is the floor for BenchmarkRemediate: one plain INSERT
// committed in its own transaction on the same database setup.
func BenchmarkSQLiteInsertBaseline(b *testing.B) {
	ob := openTestOutbox(b)
	ctx := context.Background()
	payload := make([]byte, 1300)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tx, err := ob.db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO notifier_outbox (id, channel, user, recipients, payload, state, next_attempt, created_at)
			VALUES (?, 'email', 'u', 'a@b.test', ?, 'queued', 0, 0)`, fmt.Sprint("id", i), payload); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRemediateRateLimited measures the suppressed path: a flood of one user's devices
// after the bucket is empty costs no rendering and no database write.
func BenchmarkRemediateRateLimited(b *testing.B) {
	cfg := testConfig("127.0.0.1:25")
	cfg.PerUser = RateLimit{Burst: 1, Every: time.Hour}
	n, err := New(cfg, openTestOutbox(b))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	n.Remediate(ctx, remediation("first"))
	r := remediation("flood")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := n.Remediate(ctx, r); err != ErrRateLimited {
			b.Fatal(err)
		}
	}
}
