package notifier

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// SQLiteOutbox is the Outbox on SQLite (modernc.org/sqlite, no cgo). It owns the tables
// notifier_outbox, notifier_dedup and notifier_schema and may share its database file with the
// gateway's registry. Safe for concurrent use by goroutines and by processes sharing the file.
type SQLiteOutbox struct {
	db    *sql.DB
	owned bool
	// wmu serialises this process's writes. SQLite allows one writer at a time and makes a
	// second one sleep-poll on its busy handler (steps of up to 100 ms); queueing in Go instead
	// keeps claim latency flat under load. Writers in other processes still meet the busy
	// timeout.
	wmu sync.Mutex
	// Statements of the delivery loop, prepared once: preparing costs as much as running them.
	claimStmt, sentStmt, retryStmt, deadStmt, nextDueStmt *sql.Stmt
}

var _ Outbox = (*SQLiteOutbox)(nil)

// OpenSQLite opens (creating if needed) the database file at path in WAL mode with a 10 s busy
// timeout and synchronous=NORMAL (a committed row survives the process being killed; the last
// commits may be lost only if the machine itself crashes), and migrates it. Close closes it.
func OpenSQLite(ctx context.Context, path string) (*SQLiteOutbox, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("notifier: open %s: %w", path, err)
	}
	o, err := NewSQLiteOutbox(ctx, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	o.owned = true
	return o, nil
}

// NewSQLiteOutbox uses an open database (e.g. the gateway's own) and migrates it. The caller
// keeps ownership of db: Close does not close it. For concurrent writers the DSN should set a
// busy timeout and "_txlock=immediate", as OpenSQLite does.
func NewSQLiteOutbox(ctx context.Context, db *sql.DB) (*SQLiteOutbox, error) {
	o := &SQLiteOutbox{db: db}
	if err := o.migrate(ctx); err != nil {
		return nil, err
	}
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&o.claimStmt, `UPDATE notifier_outbox
			SET state = 'sending', lease = ?, lease_until = ?, attempts = attempts + 1
			WHERE id = COALESCE(
				(SELECT id FROM notifier_outbox WHERE state = 'sending' AND lease_until <= ? ORDER BY lease_until LIMIT 1),
				(SELECT id FROM notifier_outbox WHERE state = 'queued' AND next_attempt <= ? ORDER BY next_attempt LIMIT 1))
			RETURNING ` + itemColumns},
		{&o.sentStmt, `UPDATE notifier_outbox SET state = 'sent', sent_at = ?, lease = '', lease_until = 0, last_error = ''
			WHERE id = ? AND state = 'sending' AND lease = ?`},
		{&o.retryStmt, `UPDATE notifier_outbox SET state = 'queued', next_attempt = ?, lease = '', lease_until = 0, last_error = ?
			WHERE id = ? AND state = 'sending' AND lease = ?`},
		{&o.deadStmt, `UPDATE notifier_outbox SET state = 'dead', lease = '', lease_until = 0, last_error = ?
			WHERE id = ? AND state = 'sending' AND lease = ?`},
		{&o.nextDueStmt, `SELECT MIN(t) FROM (
			SELECT MIN(next_attempt) AS t FROM notifier_outbox WHERE state = 'queued'
			UNION ALL SELECT MIN(lease_until) FROM notifier_outbox WHERE state = 'sending')`},
	} {
		st, err := db.PrepareContext(ctx, p.query)
		if err != nil {
			o.closeStmts()
			return nil, fmt.Errorf("notifier: prepare: %w", err)
		}
		*p.dst = st
	}
	return o, nil
}

func (o *SQLiteOutbox) closeStmts() {
	for _, st := range []*sql.Stmt{o.claimStmt, o.sentStmt, o.retryStmt, o.deadStmt, o.nextDueStmt} {
		if st != nil {
			st.Close()
		}
	}
}

// Close releases the prepared statements and closes the database if OpenSQLite opened it.
func (o *SQLiteOutbox) Close() error {
	o.closeStmts()
	if o.owned {
		return o.db.Close()
	}
	return nil
}

// migrations are applied in order; notifier_schema records how many ran. Append only.
var migrations = []string{
	`CREATE TABLE notifier_outbox (
		id           TEXT PRIMARY KEY,
		channel      TEXT NOT NULL,
		user         TEXT NOT NULL,
		dedup_key    TEXT NOT NULL DEFAULT '',
		sender       TEXT NOT NULL DEFAULT '',
		recipients   TEXT NOT NULL,
		payload      BLOB NOT NULL,
		state        TEXT NOT NULL,
		attempts     INTEGER NOT NULL DEFAULT 0,
		next_attempt INTEGER NOT NULL,
		lease        TEXT NOT NULL DEFAULT '',
		lease_until  INTEGER NOT NULL DEFAULT 0,
		last_error   TEXT NOT NULL DEFAULT '',
		created_at   INTEGER NOT NULL,
		sent_at      INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX notifier_outbox_due ON notifier_outbox(state, next_attempt);
	CREATE INDEX notifier_outbox_lease ON notifier_outbox(state, lease_until);
	CREATE INDEX notifier_outbox_user ON notifier_outbox(user, created_at);
	CREATE TABLE notifier_dedup (
		key      TEXT PRIMARY KEY,
		until_ms INTEGER NOT NULL
	);`,
}

func (o *SQLiteOutbox) migrate(ctx context.Context) error {
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("notifier: migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS notifier_schema (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("notifier: migrate: %w", err)
	}
	var version int
	err = tx.QueryRowContext(ctx, `SELECT version FROM notifier_schema`).Scan(&version)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO notifier_schema(version) VALUES (0)`); err != nil {
			return fmt.Errorf("notifier: migrate: %w", err)
		}
	case err != nil:
		return fmt.Errorf("notifier: migrate: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("notifier: migrate: database schema version %d is newer than this binary's %d", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("notifier: migration %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE notifier_schema SET version = ?`, len(migrations)); err != nil {
		return fmt.Errorf("notifier: migrate: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("notifier: migrate: %w", err)
	}
	return nil
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

// Enqueue implements Outbox.
func (o *SQLiteOutbox) Enqueue(ctx context.Context, it *Item, window time.Duration) error {
	for _, r := range it.Recipients {
		if strings.ContainsAny(r, "\r\n") {
			return &FieldError{Field: "Recipients", Reason: "contains a line break", Kind: ErrInvalidAddress}
		}
	}
	now := time.Now()
	if it.CreatedAt.IsZero() {
		it.CreatedAt = now
	}
	if it.NextAttempt.IsZero() {
		it.NextAttempt = it.CreatedAt
	}
	it.State = StateQueued
	o.wmu.Lock()
	defer o.wmu.Unlock()
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("notifier: enqueue: %w", err)
	}
	defer tx.Rollback()
	if it.DedupKey != "" && window > 0 {
		// One statement decides: a live entry makes the upsert a no-op (0 rows changed).
		res, err := tx.ExecContext(ctx, `INSERT INTO notifier_dedup(key, until_ms) VALUES (?, ?)
			ON CONFLICT(key) DO UPDATE SET until_ms = excluded.until_ms WHERE notifier_dedup.until_ms <= ?`,
			it.DedupKey, ms(now.Add(window)), ms(now))
		if err != nil {
			return fmt.Errorf("notifier: enqueue: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("notifier: enqueue: %w", err)
		} else if n == 0 {
			return ErrDuplicate
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO notifier_outbox
		(id, channel, user, dedup_key, sender, recipients, payload, state, attempts, next_attempt, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
		it.ID, string(it.Channel), it.User, it.DedupKey, it.Sender, strings.Join(it.Recipients, "\n"),
		it.Payload, string(StateQueued), ms(it.NextAttempt), ms(it.CreatedAt))
	if err != nil {
		return fmt.Errorf("notifier: enqueue: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("notifier: enqueue: commit: %w", err)
	}
	return nil
}

const itemColumns = `id, channel, user, dedup_key, sender, recipients, payload, state, attempts,
	next_attempt, lease, lease_until, last_error, created_at, sent_at`

type scanner interface{ Scan(...any) error }

func scanItem(s scanner) (*Item, error) {
	var it Item
	var channel, state, recipients string
	var next, leaseUntil, created, sent int64
	if err := s.Scan(&it.ID, &channel, &it.User, &it.DedupKey, &it.Sender, &recipients, &it.Payload,
		&state, &it.Attempts, &next, &it.Lease, &leaseUntil, &it.LastError, &created, &sent); err != nil {
		return nil, err
	}
	it.Channel, it.State = Channel(channel), State(state)
	if recipients != "" {
		it.Recipients = strings.Split(recipients, "\n")
	}
	it.NextAttempt, it.LeaseUntil, it.CreatedAt, it.SentAt = fromMS(next), fromMS(leaseUntil), fromMS(created), fromMS(sent)
	return &it, nil
}

// Claim implements Outbox. The single UPDATE … RETURNING runs under SQLite's write lock, so two
// workers (or processes) never claim the same row. Expired leases go first (they are the
// oldest work); each candidate is found through its own index, without a scan.
func (o *SQLiteOutbox) Claim(ctx context.Context, now time.Time, lease time.Duration) (*Item, error) {
	token, err := newID()
	if err != nil {
		return nil, err
	}
	o.wmu.Lock()
	defer o.wmu.Unlock()
	row := o.claimStmt.QueryRowContext(ctx, token, ms(now.Add(lease)), ms(now), ms(now))
	it, err := scanItem(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("notifier: claim: %w", err)
	}
	return it, nil
}

func (o *SQLiteOutbox) finish(ctx context.Context, op string, stmt *sql.Stmt, args ...any) error {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	res, err := stmt.ExecContext(ctx, args...)
	if err != nil {
		return fmt.Errorf("notifier: %s: %w", op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("notifier: %s: %w", op, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s: lease lost or row gone", ErrNotFound, op)
	}
	return nil
}

// MarkSent implements Outbox. The payload is kept until Purge, for the audit trail.
func (o *SQLiteOutbox) MarkSent(ctx context.Context, id, lease string, at time.Time) error {
	return o.finish(ctx, "mark sent", o.sentStmt, ms(at), id, lease)
}

// MarkRetry implements Outbox.
func (o *SQLiteOutbox) MarkRetry(ctx context.Context, id, lease string, next time.Time, lastErr string) error {
	return o.finish(ctx, "mark retry", o.retryStmt, ms(next), lastErr, id, lease)
}

// MarkDead implements Outbox.
func (o *SQLiteOutbox) MarkDead(ctx context.Context, id, lease string, lastErr string) error {
	return o.finish(ctx, "mark dead", o.deadStmt, lastErr, id, lease)
}

// Requeue implements Outbox.
func (o *SQLiteOutbox) Requeue(ctx context.Context, id string, at time.Time) error {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	res, err := o.db.ExecContext(ctx, `UPDATE notifier_outbox SET state = 'queued', attempts = 0, next_attempt = ?, last_error = ''
		WHERE id = ? AND state = 'dead'`, ms(at), id)
	if err != nil {
		return fmt.Errorf("notifier: requeue: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("notifier: requeue: %w", err)
	} else if n == 0 {
		return fmt.Errorf("%w: no dead row %s", ErrNotFound, id)
	}
	return nil
}

// Get implements Outbox.
func (o *SQLiteOutbox) Get(ctx context.Context, id string) (*Item, error) {
	it, err := scanItem(o.db.QueryRowContext(ctx, `SELECT `+itemColumns+` FROM notifier_outbox WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("notifier: get: %w", err)
	}
	return it, nil
}

// List implements Outbox.
func (o *SQLiteOutbox) List(ctx context.Context, f ListFilter) ([]*Item, error) {
	q := `SELECT ` + itemColumns + ` FROM notifier_outbox WHERE 1 = 1`
	var args []any
	if f.State != "" {
		q += ` AND state = ?`
		args = append(args, string(f.State))
	}
	if f.User != "" {
		q += ` AND user = ?`
		args = append(args, f.User)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q += ` ORDER BY created_at, id LIMIT ?`
	args = append(args, limit)
	rows, err := o.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("notifier: list: %w", err)
	}
	defer rows.Close()
	var out []*Item
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, fmt.Errorf("notifier: list: %w", err)
		}
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("notifier: list: %w", err)
	}
	return out, nil
}

// NextDue implements Outbox. Leased rows count at their lease expiry.
func (o *SQLiteOutbox) NextDue(ctx context.Context) (time.Time, bool, error) {
	var v sql.NullInt64
	err := o.nextDueStmt.QueryRowContext(ctx).Scan(&v)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("notifier: next due: %w", err)
	}
	if !v.Valid {
		return time.Time{}, false, nil
	}
	return fromMS(v.Int64), true, nil
}

// Purge implements Outbox.
func (o *SQLiteOutbox) Purge(ctx context.Context, sentBefore time.Time) (int, error) {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	res, err := o.db.ExecContext(ctx, `DELETE FROM notifier_outbox WHERE state = 'sent' AND sent_at < ?`, ms(sentBefore))
	if err != nil {
		return 0, fmt.Errorf("notifier: purge: %w", err)
	}
	n, _ := res.RowsAffected()
	if _, err := o.db.ExecContext(ctx, `DELETE FROM notifier_dedup WHERE until_ms <= ?`, ms(time.Now())); err != nil {
		return int(n), fmt.Errorf("notifier: purge dedup: %w", err)
	}
	return int(n), nil
}
