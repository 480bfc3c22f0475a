package imap

import (
	"context"
	"testing"
)

// TestSQLiteStore_CommitBatches: a commit larger than one statement batch (itemBatch) writes,
// updates and drops every item, keeps other devices' and collections' items, and a failed
// commit leaves nothing of itself behind.
func TestSQLiteStore_CommitBatches(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	const n = 3*itemBatch + 7
	up := map[uint32]ItemFlags{}
	for u := uint32(1); u <= n; u++ {
		up[u] = ItemFlags(u % 4)
	}
	st := CollectionState{SyncKey: 2, Counter: 2, Mailbox: "INBOX", UIDValidity: 1}
	if err := s.CommitCollection(ctx, "u", "d", "1", st, false, up, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitCollection(ctx, "u", "d", "2", st, false, map[uint32]ItemFlags{5: FlagSeen}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitCollection(ctx, "u", "d2", "1", st, false, map[uint32]ItemFlags{5: FlagSeen}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.Items(ctx, "u", "d", "1")
	if err != nil || len(got) != n {
		t.Fatalf("%d items stored of %d: %v", len(got), n, err)
	}
	for u, f := range up {
		if got[u] != f {
			t.Fatalf("item %d: flags %d, want %d", u, got[u], f)
		}
	}
	// Change the flags of every item and drop every second one, across batch boundaries.
	change := map[uint32]ItemFlags{}
	var drop []uint32
	for u := uint32(1); u <= n; u++ {
		if u%2 == 0 {
			drop = append(drop, u)
		} else {
			change[u] = FlagSeen | FlagFlagged
		}
	}
	st.SyncKey, st.PrevKey, st.Counter = 3, 2, 3
	if err := s.CommitCollection(ctx, "u", "d", "1", st, false, change, drop); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Items(ctx, "u", "d", "1")
	if len(got) != len(change) {
		t.Fatalf("%d items after dropping %d of %d", len(got), len(drop), n)
	}
	for u := range change {
		if got[u] != FlagSeen|FlagFlagged {
			t.Fatalf("item %d: flags %d after update", u, got[u])
		}
	}
	for _, other := range [][2]string{{"d", "2"}, {"d2", "1"}} {
		if m, _ := s.Items(ctx, "u", other[0], other[1]); len(m) != 1 || m[5] != FlagSeen {
			t.Fatalf("items of device %s collection %s touched: %v", other[0], other[1], m)
		}
	}
	// A cancelled commit fails as a whole: state and items stay as they were.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	st.SyncKey = 9
	if err := s.CommitCollection(cctx, "u", "d", "1", st, true, up, nil); err == nil {
		t.Fatal("commit with a cancelled context succeeded")
	}
	if cur, _ := s.Collection(ctx, "u", "d", "1"); cur.SyncKey != 3 {
		t.Fatalf("failed commit stored SyncKey %d", cur.SyncKey)
	}
	if m, _ := s.Items(ctx, "u", "d", "1"); len(m) != len(change) {
		t.Fatalf("failed commit changed the items: %d", len(m))
	}
}
