package imap

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/easgate/easgate/backends/imap/demo"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
)

// TestPool_CapsAndReuse: with MaxConnsPerUser 1 a Ping holding the user's connection makes a
// concurrent request wait, and fail with ErrUnavailable when its context ends first; once the
// Ping ends, the connection is reused (never more than one is open) and requests go through.
func TestPool_CapsAndReuse(t *testing.T) {
	d, err := demo.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b, err := New(Config{IMAPAddr: d.IMAPAddr, MaxConnsPerUser: 1, MaxConns: 2, MinHeartbeat: time.Second, PollInterval: time.Second}, openStore(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	user := "demo@" + demo.Domain
	dev := newDevice(t, b, user, "demo", "pooldev")
	dev.folderSync()
	inbox := dev.folder(typeInbox, "")
	dev.syncAll(inbox, 10)
	if b.pool.open() != 1 {
		t.Fatalf("%d connections open after sequential requests, want 1 reused", b.pool.open())
	}
	pctx, stopPing := context.WithCancel(context.Background())
	pingDone := make(chan error, 1)
	go func() {
		body, _ := wbxml.NewDocument(wbxml.NewElement(wbxml.PingPing, text(wbxml.PingHeartbeatInterval, 300), wbxml.NewElement(wbxml.PingFolders,
			wbxml.NewElement(wbxml.PingFolder, wbxml.NewText(wbxml.PingId, inbox), wbxml.NewText(wbxml.PingClass, "Email"))))).Encode(nil)
		_, err := b.Serve(pctx, dev.request(eas.CmdPing), dev.cred, body)
		pingDone <- err
	}()
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	body, _ := wbxml.NewDocument(wbxml.NewElement(wbxml.FolderHierarchyFolderSync, wbxml.NewText(wbxml.FolderHierarchySyncKey, dev.fkey))).Encode(nil)
	if _, err := b.Serve(ctx, dev.request(eas.CmdFolderSync), dev.cred, body); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("request over the per-user cap: %v, want ErrUnavailable", err)
	}
	stopPing()
	if err := <-pingDone; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("cancelled Ping: %v", err)
	}
	dev.folderSync()
	if b.pool.open() > 1 {
		t.Fatalf("%d connections open, cap is 1", b.pool.open())
	}
	// Another user fits within MaxConns (2).
	other := newDevice(t, b, "alice@"+demo.Domain, "alice", "pooldev2")
	other.folderSync()
}

func TestXOAUTH2InitialResponse(t *testing.T) {
	mech, ir, err := (&xoauth2Client{user: "u@example.org", token: "tok"}).Start()
	if err != nil || mech != "XOAUTH2" || string(ir) != "user=u@example.org\x01auth=Bearer tok\x01\x01" {
		t.Fatalf("%s %q %v", mech, ir, err)
	}
}
