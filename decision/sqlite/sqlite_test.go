package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/decision/sqlite"
	"github.com/easgate/easgate/decision/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) decision.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "registry.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestMigrationsFromEmptyAndReopen: an empty file is migrated to the latest version at Open,
// reopening applies nothing twice and keeps every row, and the database runs in WAL mode.
func TestMigrationsFromEmptyAndReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry.db")
	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.SchemaVersion(ctx)
	if err != nil || v != len(sqlite.Dialect.Migrations) {
		t.Fatalf("schema version %d, %v; want %d", v, err, len(sqlite.Dialect.Migrations))
	}
	var mode string
	if err := s.SQL().QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
	var busy int
	if err := s.SQL().QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil || busy != 5000 {
		t.Fatalf("busy_timeout = %d, %v; want 5000", busy, err)
	}
	if _, _, err := s.CreateDevice(ctx, decision.Device{User: "ann@example.com", DeviceID: "A1", Enrolled: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SavePolicy(ctx, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int
	if err := s.SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations").Scan(&n); err != nil || n != len(sqlite.Dialect.Migrations) {
		t.Fatalf("schema_migrations rows = %d, %v", n, err)
	}
	d, err := s.Device(ctx, "ann@example.com", "A1")
	if err != nil || !d.Enrolled {
		t.Fatalf("after reopen: %+v, %v", d, err)
	}
	if _, rev, err := s.LoadPolicy(ctx); err != nil || rev != 1 {
		t.Fatalf("policy after reopen: rev %d, %v", rev, err)
	}
}
