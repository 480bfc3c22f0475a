package imap

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// SQLiteStore is the embedded StateStore: a few tables of its own (prefixed "imapstate_") in a
// SQLite database, created and migrated by NewSQLiteStore. It is safe for concurrent use.
type SQLiteStore struct {
	db    *sql.DB
	owned bool
}

var _ StateStore = (*SQLiteStore)(nil)

// migrations are applied in order; imapstate_schema records how many ran. Append only.
var migrations = []string{
	`CREATE TABLE imapstate_hierarchy (
		user TEXT NOT NULL, device TEXT NOT NULL,
		sync_key INTEGER NOT NULL, prev_key INTEGER NOT NULL, counter INTEGER NOT NULL,
		last_answer BLOB, folders TEXT NOT NULL,
		PRIMARY KEY (user, device))`,
	`CREATE TABLE imapstate_folder_ids (
		user TEXT NOT NULL, id INTEGER NOT NULL, mailbox TEXT NOT NULL,
		PRIMARY KEY (user, id), UNIQUE (user, mailbox))`,
	`CREATE TABLE imapstate_collection (
		user TEXT NOT NULL, device TEXT NOT NULL, collection TEXT NOT NULL,
		sync_key INTEGER NOT NULL, prev_key INTEGER NOT NULL, counter INTEGER NOT NULL,
		last_answer BLOB, mailbox TEXT NOT NULL, uid_validity INTEGER NOT NULL,
		mod_seq INTEGER NOT NULL, uid_next INTEGER NOT NULL, count INTEGER NOT NULL,
		complete INTEGER NOT NULL, filter_type INTEGER NOT NULL,
		PRIMARY KEY (user, device, collection))`,
	`CREATE TABLE imapstate_item (
		user TEXT NOT NULL, device TEXT NOT NULL, collection TEXT NOT NULL,
		uid INTEGER NOT NULL, flags INTEGER NOT NULL,
		PRIMARY KEY (user, device, collection, uid)) WITHOUT ROWID`,
	`CREATE TABLE imapstate_request (
		user TEXT NOT NULL, device TEXT NOT NULL, kind TEXT NOT NULL, body BLOB NOT NULL,
		PRIMARY KEY (user, device, kind))`,
}

// OpenSQLiteStore opens (creating if needed) the SQLite database at path and migrates it. The
// store owns the database and closes it in Close.
func OpenSQLiteStore(path string) (*SQLiteStore, error) {
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("imap: open state database: %w", err)
	}
	// One writer at a time is what SQLite does anyway; a single connection avoids SQLITE_BUSY
	// between pooled connections of the same process.
	db.SetMaxOpenConns(1)
	s, err := NewSQLiteStore(context.Background(), db)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.owned = true
	return s, nil
}

// NewSQLiteStore uses an open database (the caller keeps owning it; Close does not close it)
// and applies the store's migrations to it.
func NewSQLiteStore(ctx context.Context, db *sql.DB) (*SQLiteStore, error) {
	s := &SQLiteStore{db: db}
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Close closes the database when the store opened it.
func (s *SQLiteStore) Close() error {
	if s.owned {
		return s.db.Close()
	}
	return nil
}

func (s *SQLiteStore) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("imap: migrate state database: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS imapstate_schema (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("imap: migrate state database: %w", err)
	}
	var v int
	err = tx.QueryRowContext(ctx, `SELECT version FROM imapstate_schema`).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO imapstate_schema (version) VALUES (0)`); err != nil {
			return fmt.Errorf("imap: migrate state database: %w", err)
		}
	case err != nil:
		return fmt.Errorf("imap: migrate state database: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("imap: state database schema version %d is newer than this program (%d)", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("imap: state migration %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE imapstate_schema SET version = ?`, len(migrations)); err != nil {
		return fmt.Errorf("imap: migrate state database: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("imap: migrate state database: %w", err)
	}
	return nil
}

func stateErr(op string, err error) error { return fmt.Errorf("imap: state %s: %w", op, err) }

// Hierarchy implements StateStore.
func (s *SQLiteStore) Hierarchy(ctx context.Context, user, device string) (HierarchyState, error) {
	var st HierarchyState
	var folders string
	err := s.db.QueryRowContext(ctx, `SELECT sync_key, prev_key, counter, last_answer, folders
		FROM imapstate_hierarchy WHERE user = ? AND device = ?`, user, device).
		Scan(&st.SyncKey, &st.PrevKey, &st.Counter, &st.LastAnswer, &folders)
	if errors.Is(err, sql.ErrNoRows) {
		return HierarchyState{}, nil
	}
	if err != nil {
		return st, stateErr("read hierarchy", err)
	}
	if err := json.Unmarshal([]byte(folders), &st.Folders); err != nil {
		return st, stateErr("decode hierarchy", err)
	}
	return st, nil
}

// SaveHierarchy implements StateStore.
func (s *SQLiteStore) SaveHierarchy(ctx context.Context, user, device string, st HierarchyState) error {
	folders, err := json.Marshal(st.Folders)
	if err != nil {
		return stateErr("encode hierarchy", err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO imapstate_hierarchy
		(user, device, sync_key, prev_key, counter, last_answer, folders) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (user, device) DO UPDATE SET sync_key = excluded.sync_key, prev_key = excluded.prev_key,
		counter = excluded.counter, last_answer = excluded.last_answer, folders = excluded.folders`,
		user, device, st.SyncKey, st.PrevKey, st.Counter, st.LastAnswer, string(folders))
	if err != nil {
		return stateErr("save hierarchy", err)
	}
	return nil
}

// FolderID implements StateStore.
func (s *SQLiteStore) FolderID(ctx context.Context, user, mailbox string) (string, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, `SELECT id FROM imapstate_folder_ids WHERE user = ? AND mailbox = ?`, user, mailbox).Scan(&id)
	if err == nil {
		return strconv.FormatInt(id, 10), nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", stateErr("read folder id", err)
	}
	// Ids start at 1; "0" is the hierarchy root in FolderSync.
	err = s.db.QueryRowContext(ctx, `INSERT INTO imapstate_folder_ids (user, id, mailbox)
		SELECT ?, COALESCE(MAX(id), 0) + 1, ? FROM imapstate_folder_ids WHERE user = ?
		ON CONFLICT (user, mailbox) DO UPDATE SET mailbox = excluded.mailbox
		RETURNING id`, user, mailbox, user).Scan(&id)
	if err != nil {
		return "", stateErr("assign folder id", err)
	}
	return strconv.FormatInt(id, 10), nil
}

// RenameFolder implements StateStore.
func (s *SQLiteStore) RenameFolder(ctx context.Context, user, oldName, newName string, delim rune) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return stateErr("rename folder", err)
	}
	defer tx.Rollback()
	// A stale id for newName (a mailbox deleted earlier) must give way.
	if _, err := tx.ExecContext(ctx, `DELETE FROM imapstate_folder_ids WHERE user = ? AND mailbox = ?`, user, newName); err != nil {
		return stateErr("rename folder", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE imapstate_folder_ids SET mailbox = ? WHERE user = ? AND mailbox = ?`, newName, user, oldName); err != nil {
		return stateErr("rename folder", err)
	}
	if delim != 0 {
		prefix := oldName + string(delim)
		rows, err := tx.QueryContext(ctx, `SELECT id, mailbox FROM imapstate_folder_ids WHERE user = ? AND substr(mailbox, 1, ?) = ?`, user, len(prefix), prefix)
		if err != nil {
			return stateErr("rename folder", err)
		}
		type ren struct {
			id   int64
			name string
		}
		var rs []ren
		for rows.Next() {
			var r ren
			if err := rows.Scan(&r.id, &r.name); err != nil {
				rows.Close()
				return stateErr("rename folder", err)
			}
			rs = append(rs, r)
		}
		rows.Close()
		for _, r := range rs {
			n := newName + string(delim) + strings.TrimPrefix(r.name, prefix)
			if _, err := tx.ExecContext(ctx, `DELETE FROM imapstate_folder_ids WHERE user = ? AND mailbox = ?`, user, n); err != nil {
				return stateErr("rename folder", err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE imapstate_folder_ids SET mailbox = ? WHERE user = ? AND id = ?`, n, user, r.id); err != nil {
				return stateErr("rename folder", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return stateErr("rename folder", err)
	}
	return nil
}

// Collection implements StateStore.
func (s *SQLiteStore) Collection(ctx context.Context, user, device, collection string) (CollectionState, error) {
	var st CollectionState
	var complete int
	err := s.db.QueryRowContext(ctx, `SELECT sync_key, prev_key, counter, last_answer, mailbox, uid_validity,
		mod_seq, uid_next, count, complete, filter_type FROM imapstate_collection
		WHERE user = ? AND device = ? AND collection = ?`, user, device, collection).
		Scan(&st.SyncKey, &st.PrevKey, &st.Counter, &st.LastAnswer, &st.Mailbox, &st.UIDValidity,
			&st.ModSeq, &st.UIDNext, &st.Count, &complete, &st.FilterType)
	if errors.Is(err, sql.ErrNoRows) {
		return CollectionState{}, nil
	}
	if err != nil {
		return st, stateErr("read collection", err)
	}
	st.Complete = complete != 0
	return st, nil
}

// Items implements StateStore.
func (s *SQLiteStore) Items(ctx context.Context, user, device, collection string) (map[uint32]ItemFlags, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT uid, flags FROM imapstate_item
		WHERE user = ? AND device = ? AND collection = ?`, user, device, collection)
	if err != nil {
		return nil, stateErr("read items", err)
	}
	defer rows.Close()
	m := make(map[uint32]ItemFlags)
	for rows.Next() {
		// int64 destinations take database/sql's conversion fast path; named integer types
		// such as ItemFlags go through reflection, which dominated reading a large folder.
		var uid, f int64
		if err := rows.Scan(&uid, &f); err != nil {
			return nil, stateErr("read items", err)
		}
		m[uint32(uid)] = ItemFlags(f)
	}
	if err := rows.Err(); err != nil {
		return nil, stateErr("read items", err)
	}
	return m, nil
}

// CommitCollection implements StateStore.
func (s *SQLiteStore) CommitCollection(ctx context.Context, user, device, collection string, st CollectionState, reset bool, upsert map[uint32]ItemFlags, drop []uint32) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return stateErr("commit collection", err)
	}
	defer tx.Rollback()
	complete := 0
	if st.Complete {
		complete = 1
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO imapstate_collection (user, device, collection,
		sync_key, prev_key, counter, last_answer, mailbox, uid_validity, mod_seq, uid_next, count, complete, filter_type)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (user, device, collection) DO UPDATE SET sync_key = excluded.sync_key,
		prev_key = excluded.prev_key, counter = excluded.counter, last_answer = excluded.last_answer,
		mailbox = excluded.mailbox, uid_validity = excluded.uid_validity, mod_seq = excluded.mod_seq,
		uid_next = excluded.uid_next, count = excluded.count, complete = excluded.complete,
		filter_type = excluded.filter_type`,
		user, device, collection, st.SyncKey, st.PrevKey, st.Counter, st.LastAnswer, st.Mailbox,
		st.UIDValidity, st.ModSeq, st.UIDNext, st.Count, complete, st.FilterType); err != nil {
		return stateErr("commit collection", err)
	}
	if reset {
		if _, err := tx.ExecContext(ctx, `DELETE FROM imapstate_item WHERE user = ? AND device = ? AND collection = ?`, user, device, collection); err != nil {
			return stateErr("commit collection", err)
		}
	}
	if err := upsertItems(ctx, tx, user, device, collection, upsert); err != nil {
		return stateErr("commit collection", err)
	}
	if err := dropItems(ctx, tx, user, device, collection, drop); err != nil {
		return stateErr("commit collection", err)
	}
	if err := tx.Commit(); err != nil {
		return stateErr("commit collection", err)
	}
	return nil
}

// itemBatch is how many items one INSERT or DELETE statement carries. A Sync window (up to
// 512 items) then costs a few statements instead of one per item; each row binds two
// parameters beside the three shared ones, far below SQLite's limit of 32766.
const itemBatch = 256

// upsertItems writes upsert in batches, in UID order (the primary key's order, so each batch
// fills neighbouring B-tree pages).
func upsertItems(ctx context.Context, tx *sql.Tx, user, device, collection string, upsert map[uint32]ItemFlags) error {
	if len(upsert) == 0 {
		return nil
	}
	uids := make([]uint32, 0, len(upsert))
	for u := range upsert {
		uids = append(uids, u)
	}
	slices.Sort(uids)
	var q strings.Builder
	args := make([]any, 0, 3+2*min(len(uids), itemBatch))
	for len(uids) > 0 {
		batch := uids[:min(len(uids), itemBatch)]
		uids = uids[len(batch):]
		q.Reset()
		q.WriteString(`INSERT INTO imapstate_item (user, device, collection, uid, flags) VALUES `)
		args = append(args[:0], user, device, collection)
		for i, u := range batch {
			if i > 0 {
				q.WriteByte(',')
			}
			fmt.Fprintf(&q, "(?1, ?2, ?3, ?%d, ?%d)", 4+2*i, 5+2*i)
			args = append(args, int64(u), int64(upsert[u]))
		}
		q.WriteString(` ON CONFLICT (user, device, collection, uid) DO UPDATE SET flags = excluded.flags`)
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// dropItems deletes the items drop in batches.
func dropItems(ctx context.Context, tx *sql.Tx, user, device, collection string, drop []uint32) error {
	var q strings.Builder
	args := make([]any, 0, 3+min(len(drop), itemBatch))
	for len(drop) > 0 {
		batch := drop[:min(len(drop), itemBatch)]
		drop = drop[len(batch):]
		q.Reset()
		q.WriteString(`DELETE FROM imapstate_item WHERE user = ?1 AND device = ?2 AND collection = ?3 AND uid IN (`)
		args = append(args[:0], user, device, collection)
		for i, u := range batch {
			if i > 0 {
				q.WriteByte(',')
			}
			fmt.Fprintf(&q, "?%d", 4+i)
			args = append(args, int64(u))
		}
		q.WriteByte(')')
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// DeleteCollection implements StateStore.
func (s *SQLiteStore) DeleteCollection(ctx context.Context, user, device, collection string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return stateErr("delete collection", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM imapstate_item WHERE user = ? AND device = ? AND collection = ?`, user, device, collection); err != nil {
		return stateErr("delete collection", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM imapstate_collection WHERE user = ? AND device = ? AND collection = ?`, user, device, collection); err != nil {
		return stateErr("delete collection", err)
	}
	if err := tx.Commit(); err != nil {
		return stateErr("delete collection", err)
	}
	return nil
}

// SaveRequest implements StateStore.
func (s *SQLiteStore) SaveRequest(ctx context.Context, user, device, kind string, body []byte) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO imapstate_request (user, device, kind, body) VALUES (?, ?, ?, ?)
		ON CONFLICT (user, device, kind) DO UPDATE SET body = excluded.body`, user, device, kind, body)
	if err != nil {
		return stateErr("save request", err)
	}
	return nil
}

// LastRequest implements StateStore.
func (s *SQLiteStore) LastRequest(ctx context.Context, user, device, kind string) ([]byte, error) {
	var b []byte
	err := s.db.QueryRowContext(ctx, `SELECT body FROM imapstate_request WHERE user = ? AND device = ? AND kind = ?`, user, device, kind).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, stateErr("read request", err)
	}
	return b, nil
}
