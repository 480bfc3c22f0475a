package postgres_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/easgate/easgate/bench/servers"
	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/decision/postgres"
	"github.com/easgate/easgate/decision/storetest"
)

// TestConformance runs the store conformance suite against a real PostgreSQL started for the
// test, one fresh database per subtest.
func TestConformance(t *testing.T) {
	pg := servers.StartPostgres(t)
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) decision.Store {
		dsn, err := pg.CreateDatabase(fmt.Sprintf("conf%d", n.Add(1)))
		if err != nil {
			t.Fatal(err)
		}
		s, err := postgres.Open(context.Background(), dsn, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestMigrationsTwoNodes: two nodes opening one database migrate it once (advisory lock), and
// a restart keeps the rows.
func TestMigrationsTwoNodes(t *testing.T) {
	ctx := context.Background()
	pg := servers.StartPostgres(t)
	dsn, err := pg.CreateDatabase("fleet")
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	stores := make(chan *postgres.Store, 2)
	for i := 0; i < 2; i++ {
		go func() {
			s, err := postgres.Open(ctx, dsn, postgres.Options{})
			errs <- err
			stores <- s
		}()
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		s := <-stores
		defer s.Close()
		v, err := s.SchemaVersion(ctx)
		if err != nil || v != len(postgres.Dialect.Migrations) {
			t.Fatalf("version %d, %v", v, err)
		}
	}
	s, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateDevice(ctx, decision.Device{User: "ann@example.com", DeviceID: "A1"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Device(ctx, "ann@example.com", "A1"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations").Scan(&n); err != nil || n != len(postgres.Dialect.Migrations) {
		t.Fatalf("schema_migrations rows = %d, %v", n, err)
	}
}
