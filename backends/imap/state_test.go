package imap

import (
	"bytes"
	"context"
	"testing"
)

// TestSQLiteStore_SurvivesReopen: what a commit stored is there after the database is closed
// and opened again, and a reset commit drops the old items.
func TestSQLiteStore_SurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openStore(t, dir)
	st := CollectionState{SyncKey: 3, PrevKey: 2, Counter: 3, LastAnswer: []byte{1, 2, 3}, Mailbox: "INBOX", UIDValidity: 7, ModSeq: 99, UIDNext: 12, Count: 2, Complete: true}
	if err := s.CommitCollection(ctx, "u", "d", "1", st, false, map[uint32]ItemFlags{10: FlagSeen, 11: FlagFlagged}, nil); err != nil {
		t.Fatal(err)
	}
	id1, _ := s.FolderID(ctx, "u", "INBOX")
	id2, _ := s.FolderID(ctx, "u", "Work")
	if err := s.RenameFolder(ctx, "u", "Work", "Jobs", '/'); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openStore(t, dir)
	got, err := s.Collection(ctx, "u", "d", "1")
	if err != nil || got.SyncKey != 3 || got.PrevKey != 2 || !bytes.Equal(got.LastAnswer, []byte{1, 2, 3}) || got.ModSeq != 99 || !got.Complete {
		t.Fatalf("collection after reopen: %+v, %v", got, err)
	}
	items, _ := s.Items(ctx, "u", "d", "1")
	if len(items) != 2 || items[10] != FlagSeen || items[11] != FlagFlagged {
		t.Fatalf("items %v", items)
	}
	if again, _ := s.FolderID(ctx, "u", "INBOX"); again != id1 {
		t.Fatalf("folder id changed: %s → %s", id1, again)
	}
	if renamed, _ := s.FolderID(ctx, "u", "Jobs"); renamed != id2 {
		t.Fatalf("rename lost the id: %s → %s", id2, renamed)
	}
	if err := s.CommitCollection(ctx, "u", "d", "1", st, true, map[uint32]ItemFlags{20: 0}, nil); err != nil {
		t.Fatal(err)
	}
	if items, _ := s.Items(ctx, "u", "d", "1"); len(items) != 1 {
		t.Fatalf("reset kept %v", items)
	}
	if other, _ := s.Items(ctx, "u", "other-device", "1"); len(other) != 0 {
		t.Fatal("state leaked across devices")
	}
}

// TestReadHeaderOffsetBeyondBuffer is the regression test for a message larger than the header
// reader's buffer: the body offset must count what the buffer has not yet consumed.
func TestReadHeaderOffsetBeyondBuffer(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef\r\n"), 1000)
	msg := append([]byte("To: a@b.c\r\nSubject: big\r\n\r\n"), body...)
	_, off, err := readHeader(msg)
	if err != nil || !bytes.Equal(msg[off:], body) {
		t.Fatalf("offset %d, err %v", off, err)
	}
}
