// Package postgres is the device registry for fleets of gateway nodes sharing one PostgreSQL
// database (jackc/pgx/v5). Schema migrations are applied at Open under an advisory lock, so
// nodes starting together migrate once.
//
// Cache coherence between nodes: each node invalidates its own cache on its own writes; a write
// made by another node becomes visible when the cached record expires (decision.Options.CacheTTL,
// default 30s), and a policy change within decision.Options.PolicyRefresh.
package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/decision/internal/sqlstore"
)

// Store is a decision.Store in PostgreSQL, safe for concurrent use by many processes.
type Store struct {
	*sqlstore.DB
}

var _ decision.Store = (*Store)(nil)

// Options tunes Open. Zero values take the defaults.
type Options struct {
	// MaxOpenConns bounds the connection pool. Default 16.
	MaxOpenConns int
	// ConnectTimeout bounds establishing one connection. Default 5s.
	ConnectTimeout time.Duration
}

// Open connects with a libpq-style DSN or postgres:// URL and migrates the schema.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if opts.MaxOpenConns <= 0 {
		opts.MaxOpenConns = 16
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse DSN: %v", err)
	}
	cfg.ConnectTimeout = opts.ConnectTimeout
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(opts.MaxOpenConns)
	db.SetMaxIdleConns(opts.MaxOpenConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: connect: %v", err)
	}
	s, err := sqlstore.New(ctx, db, Dialect)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Store{s}, nil
}

// Dialect is the PostgreSQL dialect.
var Dialect = sqlstore.Dialect{
	Name:       "postgres",
	Dollar:     true,
	ForUpdate:  "FOR UPDATE",
	Migrations: sqlstore.Migrations("BIGSERIAL PRIMARY KEY"),
	// One fixed advisory lock ID for easgate's schema migrations.
	LockMigrations: "SELECT pg_advisory_xact_lock(1700885351)",
}
