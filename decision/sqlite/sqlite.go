// Package sqlite is the embedded default device registry: one SQLite file (modernc.org/sqlite,
// pure Go), write-ahead logging, a busy timeout, and schema migrations applied at Open.
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/decision/internal/sqlstore"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// Store is a decision.Store in one SQLite file. It is safe for concurrent use by one process;
// do not share the file between processes (use decision/postgres for several nodes).
type Store struct {
	*sqlstore.DB
}

var _ decision.Store = (*Store)(nil)

// Options tunes Open. Zero values take the defaults.
type Options struct {
	// BusyTimeout is how long a writer waits for the database lock. Default 5s.
	BusyTimeout time.Duration
	// MaxOpenConns bounds connections (WAL allows concurrent readers). Default 8.
	MaxOpenConns int
}

// Open opens (creating if needed) the database file at path and migrates it to the current
// schema version.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	if opts.MaxOpenConns <= 0 {
		opts.MaxOpenConns = 8
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", opts.BusyTimeout.Milliseconds()))
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	// Read-modify-write transactions take the write lock up front, so two writers never both
	// read and then fail to upgrade (SQLITE_BUSY without waiting).
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %v", path, err)
	}
	db.SetMaxOpenConns(opts.MaxOpenConns)
	db.SetMaxIdleConns(opts.MaxOpenConns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %v", path, err)
	}
	s, err := sqlstore.New(ctx, db, Dialect)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Store{s}, nil
}

// Dialect is the SQLite dialect; exported for the migration tests.
var Dialect = sqlstore.Dialect{
	Name:            "sqlite",
	Migrations:      sqlstore.Migrations("INTEGER PRIMARY KEY AUTOINCREMENT"),
	SerializeWrites: true,
}
