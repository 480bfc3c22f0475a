// Package sqlstore is the SQL implementation of decision.Store shared by decision/sqlite and
// decision/postgres; a Dialect carries their few differences (placeholders, DDL, row locking).
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/easgate/easgate/decision"
)

// Dialect describes one SQL engine.
type Dialect struct {
	// Name prefixes error strings ("sqlite", "postgres").
	Name string
	// Dollar: placeholders are $1, $2 ... instead of ?.
	Dollar bool
	// ForUpdate is appended to the SELECT that starts a read-modify-write ("FOR UPDATE" for
	// PostgreSQL; SQLite locks the database with BEGIN IMMEDIATE instead).
	ForUpdate string
	// Migrations are applied in order; index+1 is the schema version. Never edit an applied
	// migration, append a new one.
	Migrations [][]string
	// LockMigrations runs first inside the migration transaction (PostgreSQL: an advisory lock
	// so concurrently starting nodes migrate one at a time).
	LockMigrations string
	// SerializeWrites queues writers in the process (SQLite: one writer at a time; without
	// this, concurrent writers spin in SQLite's busy handler, sleeping up to 100 ms a try, and
	// a burst of new devices times out instead of queueing for microseconds).
	SerializeWrites bool
}

// DB implements decision.Store on a database/sql handle.
type DB struct {
	db     *sql.DB
	d      Dialect
	closed atomic.Bool
	wsem   chan struct{} // with Dialect.SerializeWrites: the write token
}

// New wraps db and applies pending migrations.
func New(ctx context.Context, db *sql.DB, d Dialect) (*DB, error) {
	s := &DB{db: db, d: d, wsem: make(chan struct{}, 1)}
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// writeLock takes the write token when writes are serialised, honouring ctx while it waits.
func (s *DB) writeLock(ctx context.Context) (func(), error) {
	if !s.d.SerializeWrites {
		return func() {}, nil
	}
	select {
	case s.wsem <- struct{}{}:
		return func() { <-s.wsem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// SQL returns the underlying handle (for tests and maintenance).
func (s *DB) SQL() *sql.DB { return s.db }

// SchemaVersion returns the highest applied migration.
func (s *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	if err != nil {
		return 0, s.wrap("schema version", err)
	}
	return int(v.Int64), nil
}

func (s *DB) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap("migrate", err)
	}
	defer tx.Rollback()
	// Lock first: concurrent CREATE TABLE IF NOT EXISTS races in PostgreSQL.
	if s.d.LockMigrations != "" {
		if _, err := tx.ExecContext(ctx, s.d.LockMigrations); err != nil {
			return s.wrap("migrate", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return s.wrap("migrate", err)
	}
	var cur sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&cur); err != nil {
		return s.wrap("migrate", err)
	}
	if int(cur.Int64) > len(s.d.Migrations) {
		return fmt.Errorf("%s: schema version %d is newer than this program knows (%d)", s.d.Name, cur.Int64, len(s.d.Migrations))
	}
	for v := int(cur.Int64) + 1; v <= len(s.d.Migrations); v++ {
		for _, stmt := range s.d.Migrations[v-1] {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("%s: migration %d: %v", s.d.Name, v, err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`),
			v, time.Now().UnixMicro()); err != nil {
			return s.wrap("migrate", err)
		}
	}
	return s.wrap("migrate", tx.Commit())
}

// q rewrites ? placeholders for the dialect.
func (s *DB) q(query string) string {
	if !s.d.Dollar {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

func (s *DB) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, decision.ErrNotFound) || errors.Is(err, decision.ErrClosed) {
		return err
	}
	if s.closed.Load() {
		return fmt.Errorf("%s: %s: %w", s.d.Name, op, decision.ErrClosed)
	}
	return fmt.Errorf("%s: %s: %w", s.d.Name, op, err)
}

func (s *DB) check() error {
	if s.closed.Load() {
		return fmt.Errorf("%s: %w", s.d.Name, decision.ErrClosed)
	}
	return nil
}

// Close closes the database.
func (s *DB) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	return s.db.Close()
}

func micro(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicro(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

const deviceCols = `user_name, device_id, device_type, user_agent, first_seen, last_seen, last_command,
	client_addr, enrolled, wipe_status, override, suspicious, last_action, last_reason, last_decision_at, doc`

type scanner interface{ Scan(...any) error }

func scanDevice(r scanner) (decision.Device, error) {
	var d decision.Device
	var first, last, decAt int64
	var enrolled, wipe, override, suspicious, action int
	var reason, doc string
	var user, id, typ, ua, cmd, addr string
	if err := r.Scan(&user, &id, &typ, &ua, &first, &last, &cmd, &addr, &enrolled, &wipe, &override,
		&suspicious, &action, &reason, &decAt, &doc); err != nil {
		return d, err
	}
	if doc != "" {
		if err := json.Unmarshal([]byte(doc), &d); err != nil {
			return d, fmt.Errorf("device document: %v", err)
		}
	}
	// Columns are authoritative for what RecordSightings updates without rewriting doc.
	d.User, d.DeviceID, d.DeviceType, d.UserAgent = user, id, typ, ua
	d.FirstSeen, d.LastSeen, d.LastCommand, d.ClientAddr = fromMicro(first), fromMicro(last), cmd, addr
	d.LastAction, d.LastReason, d.LastDecisionAt = decision.Action(action), decision.Reason(reason), fromMicro(decAt)
	return d, nil
}

func deviceArgs(d *decision.Device) ([]any, error) {
	doc, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	return []any{d.User, d.DeviceID, d.DeviceType, d.UserAgent, micro(d.FirstSeen), micro(d.LastSeen), d.LastCommand,
		d.ClientAddr, b2i(d.Enrolled), int(d.Wipe.Status), int(d.Override), b2i(d.Suspicion.Signal != ""),
		int(d.LastAction), string(d.LastReason), micro(d.LastDecisionAt), string(doc)}, nil
}

// Device implements decision.Store.
func (s *DB) Device(ctx context.Context, user, deviceID string) (decision.Device, error) {
	if err := s.check(); err != nil {
		return decision.Device{}, err
	}
	row := s.db.QueryRowContext(ctx, s.q(`SELECT `+deviceCols+` FROM devices WHERE user_name = ? AND device_id = ?`), user, deviceID)
	d, err := scanDevice(row)
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("%s: device %s/%s: %w", s.d.Name, user, deviceID, decision.ErrNotFound)
	}
	return d, s.wrap("get device", err)
}

// CreateDevice implements decision.Store.
func (s *DB) CreateDevice(ctx context.Context, d decision.Device) (decision.Device, bool, error) {
	if err := s.check(); err != nil {
		return d, false, err
	}
	unlock, err := s.writeLock(ctx)
	if err != nil {
		return d, false, s.wrap("create device", err)
	}
	defer unlock()
	args, err := deviceArgs(&d)
	if err != nil {
		return d, false, s.wrap("create device", err)
	}
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO devices (`+deviceCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_name, device_id) DO NOTHING`), args...)
	if err != nil {
		return d, false, s.wrap("create device", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return d, false, s.wrap("create device", err)
	}
	stored, err := s.Device(ctx, d.User, d.DeviceID)
	return stored, n == 1, err
}

// UpdateDevice implements decision.Store.
func (s *DB) UpdateDevice(ctx context.Context, user, deviceID string, create bool, fn func(*decision.Device) error) (decision.Device, error) {
	if err := s.check(); err != nil {
		return decision.Device{}, err
	}
	unlock, err := s.writeLock(ctx)
	if err != nil {
		return decision.Device{}, s.wrap("update device", err)
	}
	defer unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return decision.Device{}, s.wrap("update device", err)
	}
	defer tx.Rollback()
	row := tx.QueryRowContext(ctx, s.q(`SELECT `+deviceCols+` FROM devices WHERE user_name = ? AND device_id = ? `+s.d.ForUpdate), user, deviceID)
	d, err := scanDevice(row)
	exists := true
	if errors.Is(err, sql.ErrNoRows) {
		if !create {
			return decision.Device{}, fmt.Errorf("%s: device %s/%s: %w", s.d.Name, user, deviceID, decision.ErrNotFound)
		}
		exists = false
		d = decision.Device{User: user, DeviceID: deviceID}
	} else if err != nil {
		return decision.Device{}, s.wrap("update device", err)
	}
	if err := fn(&d); err != nil {
		return decision.Device{}, err
	}
	d.User, d.DeviceID = user, deviceID
	args, err := deviceArgs(&d)
	if err != nil {
		return decision.Device{}, s.wrap("update device", err)
	}
	if exists {
		_, err = tx.ExecContext(ctx, s.q(`UPDATE devices SET device_type = ?, user_agent = ?, first_seen = ?, last_seen = ?,
			last_command = ?, client_addr = ?, enrolled = ?, wipe_status = ?, override = ?, suspicious = ?, last_action = ?,
			last_reason = ?, last_decision_at = ?, doc = ? WHERE user_name = ? AND device_id = ?`),
			append(args[2:], user, deviceID)...)
	} else {
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO devices (`+deviceCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`), args...)
	}
	if err != nil {
		return decision.Device{}, s.wrap("update device", err)
	}
	if err := tx.Commit(); err != nil {
		return decision.Device{}, s.wrap("update device", err)
	}
	return d, nil
}

// DeleteDevice implements decision.Store.
func (s *DB) DeleteDevice(ctx context.Context, user, deviceID string) error {
	if err := s.check(); err != nil {
		return err
	}
	unlock, err := s.writeLock(ctx)
	if err != nil {
		return s.wrap("delete device", err)
	}
	defer unlock()
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM devices WHERE user_name = ? AND device_id = ?`), user, deviceID)
	if err != nil {
		return s.wrap("delete device", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return s.wrap("delete device", err)
	} else if n == 0 {
		return fmt.Errorf("%s: device %s/%s: %w", s.d.Name, user, deviceID, decision.ErrNotFound)
	}
	return nil
}

func limit(n int) int {
	if n <= 0 || n > decision.MaxListLimit {
		return decision.MaxListLimit
	}
	return n
}

// ListDevices implements decision.Store.
func (s *DB) ListDevices(ctx context.Context, f decision.DeviceFilter) ([]decision.Device, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var where []string
	var args []any
	add := func(cond string, a ...any) { where = append(where, cond); args = append(args, a...) }
	if f.User != "" {
		add("user_name = ?", f.User)
	}
	if f.DeviceID != "" {
		add("device_id = ?", f.DeviceID)
	}
	switch f.State {
	case "":
	case decision.StateEnrolled:
		add("enrolled = 1")
	case decision.StateUnenrolled:
		add("enrolled = 0")
	case decision.StateWipe:
		add("wipe_status IN (?, ?)", int(decision.WipePending), int(decision.WipeDelivered))
	case decision.StateOverridden:
		add("override <> 0")
	case decision.StateSuspicious:
		add("suspicious = 1")
	default:
		return nil, fmt.Errorf("%s: list devices: unknown state %q", s.d.Name, f.State)
	}
	if f.LastAction != nil {
		add("last_action = ? AND last_decision_at <> 0", int(*f.LastAction))
	}
	if f.AfterUser != "" || f.AfterDeviceID != "" {
		add("(user_name > ? OR (user_name = ? AND device_id > ?))", f.AfterUser, f.AfterUser, f.AfterDeviceID)
	}
	query := `SELECT ` + deviceCols + ` FROM devices`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY user_name, device_id LIMIT ?"
	args = append(args, limit(f.Limit))
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, s.wrap("list devices", err)
	}
	defer rows.Close()
	var out []decision.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, s.wrap("list devices", err)
		}
		out = append(out, d)
	}
	return out, s.wrap("list devices", rows.Err())
}

// CountDevices implements decision.Store.
func (s *DB) CountDevices(ctx context.Context, user string, since time.Time) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	var n int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM devices WHERE user_name = ? AND first_seen >= ?`),
		user, micro(since)).Scan(&n)
	return n, s.wrap("count devices", err)
}

// RecordSightings implements decision.Store.
func (s *DB) RecordSightings(ctx context.Context, ss []decision.Sighting) error {
	if err := s.check(); err != nil {
		return err
	}
	unlock, err := s.writeLock(ctx)
	if err != nil {
		return s.wrap("record sightings", err)
	}
	defer unlock()
	if len(ss) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap("record sightings", err)
	}
	defer tx.Rollback()
	seen, err := tx.PrepareContext(ctx, s.q(`UPDATE devices SET last_seen = ?,
		last_command = COALESCE(NULLIF(?, ''), last_command), client_addr = COALESCE(NULLIF(?, ''), client_addr)
		WHERE user_name = ? AND device_id = ? AND last_seen <= ?`))
	if err != nil {
		return s.wrap("record sightings", err)
	}
	defer seen.Close()
	dec, err := tx.PrepareContext(ctx, s.q(`UPDATE devices SET last_action = ?, last_reason = ?, last_decision_at = ?
		WHERE user_name = ? AND device_id = ? AND last_decision_at <= ?`))
	if err != nil {
		return s.wrap("record sightings", err)
	}
	defer dec.Close()
	for _, x := range ss {
		if !x.LastSeen.IsZero() {
			t := micro(x.LastSeen)
			if _, err := seen.ExecContext(ctx, t, x.LastCommand, x.ClientAddr, x.User, x.DeviceID, t); err != nil {
				return s.wrap("record sightings", err)
			}
		}
		if !x.DecidedAt.IsZero() {
			t := micro(x.DecidedAt)
			if _, err := dec.ExecContext(ctx, int(x.Action), string(x.Reason), t, x.User, x.DeviceID, t); err != nil {
				return s.wrap("record sightings", err)
			}
		}
	}
	return s.wrap("record sightings", tx.Commit())
}

// AppendAudit implements decision.Store.
func (s *DB) AppendAudit(ctx context.Context, es []decision.AuditEntry) error {
	if err := s.check(); err != nil {
		return err
	}
	unlock, err := s.writeLock(ctx)
	if err != nil {
		return s.wrap("append audit", err)
	}
	defer unlock()
	if len(es) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap("append audit", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, s.q(`INSERT INTO audit (at, user_name, device_id, actor, event, action, reason, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`))
	if err != nil {
		return s.wrap("append audit", err)
	}
	defer st.Close()
	for _, e := range es {
		action := -1 // no action: not a decision event
		if e.Action != nil {
			action = int(*e.Action)
		}
		if _, err := st.ExecContext(ctx, micro(e.Time), e.User, e.DeviceID, e.Actor, string(e.Event), action,
			string(e.Reason), e.Detail); err != nil {
			return s.wrap("append audit", err)
		}
	}
	return s.wrap("append audit", tx.Commit())
}

// Audit implements decision.Store.
func (s *DB) Audit(ctx context.Context, f decision.AuditFilter) ([]decision.AuditEntry, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var where []string
	var args []any
	add := func(cond string, a any) { where = append(where, cond); args = append(args, a) }
	if f.User != "" {
		add("user_name = ?", f.User)
	}
	if f.DeviceID != "" {
		add("device_id = ?", f.DeviceID)
	}
	if !f.Since.IsZero() {
		add("at >= ?", micro(f.Since))
	}
	if !f.Until.IsZero() {
		add("at < ?", micro(f.Until))
	}
	if f.BeforeID > 0 {
		add("id < ?", f.BeforeID)
	}
	query := `SELECT id, at, user_name, device_id, actor, event, action, reason, detail FROM audit`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit(f.Limit))
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, s.wrap("audit", err)
	}
	defer rows.Close()
	var out []decision.AuditEntry
	for rows.Next() {
		var e decision.AuditEntry
		var at int64
		var action int
		var event, reason string
		if err := rows.Scan(&e.ID, &at, &e.User, &e.DeviceID, &e.Actor, &event, &action, &reason, &e.Detail); err != nil {
			return nil, s.wrap("audit", err)
		}
		e.Time, e.Event, e.Reason = fromMicro(at), decision.Event(event), decision.Reason(reason)
		if action >= 0 {
			e.Action = decision.ActionPtr(decision.Action(action))
		}
		out = append(out, e)
	}
	return out, s.wrap("audit", rows.Err())
}

// PruneAudit implements decision.Store.
func (s *DB) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	unlock, err := s.writeLock(ctx)
	if err != nil {
		return 0, s.wrap("prune audit", err)
	}
	defer unlock()
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM audit WHERE at < ?`), micro(before))
	if err != nil {
		return 0, s.wrap("prune audit", err)
	}
	n, err := res.RowsAffected()
	return n, s.wrap("prune audit", err)
}

// LoadPolicy implements decision.Store.
func (s *DB) LoadPolicy(ctx context.Context) ([]byte, int64, error) {
	if err := s.check(); err != nil {
		return nil, 0, err
	}
	var doc string
	var rev int64
	err := s.db.QueryRowContext(ctx, `SELECT doc, revision FROM policy WHERE id = 1`).Scan(&doc, &rev)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("%s: policy: %w", s.d.Name, decision.ErrNotFound)
	}
	if err != nil {
		return nil, 0, s.wrap("load policy", err)
	}
	return []byte(doc), rev, nil
}

// SavePolicy implements decision.Store.
func (s *DB) SavePolicy(ctx context.Context, doc []byte) (int64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	unlock, err := s.writeLock(ctx)
	if err != nil {
		return 0, s.wrap("save policy", err)
	}
	defer unlock()
	var rev int64
	err = s.db.QueryRowContext(ctx, s.q(`INSERT INTO policy (id, doc, revision, updated_at) VALUES (1, ?, 1, ?)
		ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, revision = policy.revision + 1, updated_at = excluded.updated_at
		RETURNING revision`), string(doc), time.Now().UnixMicro()).Scan(&rev)
	return rev, s.wrap("save policy", err)
}

// Migrations shared by both dialects apart from the audit ID column.
func Migrations(auditID string) [][]string {
	return [][]string{{
		`CREATE TABLE devices (
			user_name TEXT NOT NULL,
			device_id TEXT NOT NULL,
			device_type TEXT NOT NULL DEFAULT '',
			user_agent TEXT NOT NULL DEFAULT '',
			first_seen BIGINT NOT NULL DEFAULT 0,
			last_seen BIGINT NOT NULL DEFAULT 0,
			last_command TEXT NOT NULL DEFAULT '',
			client_addr TEXT NOT NULL DEFAULT '',
			enrolled INTEGER NOT NULL DEFAULT 0,
			wipe_status INTEGER NOT NULL DEFAULT 0,
			override INTEGER NOT NULL DEFAULT 0,
			suspicious INTEGER NOT NULL DEFAULT 0,
			last_action INTEGER NOT NULL DEFAULT 0,
			last_reason TEXT NOT NULL DEFAULT '',
			last_decision_at BIGINT NOT NULL DEFAULT 0,
			doc TEXT NOT NULL DEFAULT '',
			PRIMARY KEY (user_name, device_id))`,
		`CREATE INDEX devices_user_first_seen ON devices (user_name, first_seen)`,
		`CREATE TABLE audit (
			id ` + auditID + `,
			at BIGINT NOT NULL,
			user_name TEXT NOT NULL DEFAULT '',
			device_id TEXT NOT NULL DEFAULT '',
			actor TEXT NOT NULL DEFAULT '',
			event TEXT NOT NULL,
			action INTEGER NOT NULL DEFAULT -1,
			reason TEXT NOT NULL DEFAULT '',
			detail TEXT NOT NULL DEFAULT '')`,
		`CREATE INDEX audit_device ON audit (user_name, device_id, id)`,
		`CREATE INDEX audit_at ON audit (at)`,
		`CREATE TABLE policy (
			id INTEGER PRIMARY KEY CHECK (id = 1),
			doc TEXT NOT NULL,
			revision BIGINT NOT NULL,
			updated_at BIGINT NOT NULL)`,
	}}
}
