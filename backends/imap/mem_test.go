package imap

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/easgate/easgate/backends/imap/demo"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
)

func startDemo(t *testing.T) (*demo.Demo, *Backend, *SQLiteStore) {
	t.Helper()
	d, err := demo.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	st := openStore(t, t.TempDir())
	b, err := New(Config{IMAPAddr: d.IMAPAddr, SMTPAddr: d.SMTPAddr}, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return d, b, st
}

// TestMem_FolderSync_2_2_1_5 checks the hierarchy of a server without SPECIAL-USE (types by
// name), the unchanged answer for the current key and Status 9 for an unknown key.
func TestMem_FolderSync_2_2_1_5(t *testing.T) {
	_, b, _ := startDemo(t)
	dev := newDevice(t, b, "demo@"+demo.Domain, "demo", "memdev1")
	dev.folderSync()
	for _, want := range []struct {
		typ  int
		name string
	}{{typeInbox, "Inbox"}, {typeSent, "Sent"}, {typeDrafts, "Drafts"}, {typeDeleted, "Trash"}, {typeUserMail, "Archive"}} {
		dev.folder(want.typ, want.name)
	}
	r := dev.folderSync()
	if n := r.Path(wbxml.FolderHierarchyChanges, wbxml.FolderHierarchyCount).Text(); n != "0" {
		t.Fatalf("second FolderSync reports %s changes", n)
	}
	bad := dev.do(eas.CmdFolderSync, wbxml.NewElement(wbxml.FolderHierarchyFolderSync, wbxml.NewText(wbxml.FolderHierarchySyncKey, "999")))
	if st := bad.Find(wbxml.FolderHierarchyStatus).Text(); st != "9" {
		t.Fatalf("unknown key: status %s, want 9", st)
	}
}

// TestMem_SyncReadFlagDelete runs the mail cycle against the in-memory server (no CONDSTORE):
// initial sync, read/flag from the device, delete as move to Trash, and the change of a
// desktop client reaching the device.
func TestMem_SyncReadFlagDelete(t *testing.T) {
	d, b, _ := startDemo(t)
	user := "demo@" + demo.Domain
	dev := newDevice(t, b, user, "demo", "memdev2")
	dev.folderSync()
	inbox := dev.folder(typeInbox, "")
	trash := dev.folder(typeDeleted, "")
	dev.syncAll(inbox, 2)
	if n := len(dev.items[inbox]); n != 3 {
		t.Fatalf("device holds %d items, want the 3 samples", n)
	}
	id, ad := dev.findSubject(inbox, "Lunch on Friday?")
	if ad == nil || ad.Find(wbxml.EmailRead).Text() != "0" {
		t.Fatalf("sample not found or read: %v", ad)
	}
	if body := ad.Path(wbxml.AirSyncBaseBody, wbxml.AirSyncBaseData).Text(); !bytes.Contains([]byte(body), []byte("new place")) {
		t.Fatalf("body %q", body)
	}
	r := dev.sync(inbox, 10, changeCmd(id, wbxml.NewText(wbxml.EmailRead, "1"),
		wbxml.NewElement(wbxml.EmailFlag, wbxml.NewText(wbxml.EmailFlagStatus, "2"))))
	if r.status != "1" || len(r.changes) != 0 {
		t.Fatalf("client change echoed back: %+v", r)
	}
	_, uid, _ := parseServerID(id)
	dc := desktop(t, d.IMAPAddr, user, "demo")
	fl := flagsOfUID(t, dc, "INBOX", uid)
	if !hasFlag(fl, `\Seen`) || !hasFlag(fl, `\Flagged`) {
		t.Fatalf("IMAP flags after device change: %v", fl)
	}
	// The desktop marks another message read: the device sees a Change.
	other, _ := dev.findSubject(inbox, "Welcome to easgate")
	_, ouid, _ := parseServerID(other)
	storeFlag(t, dc, ouid, `\Seen`)
	r = dev.sync(inbox, 10)
	if len(r.changes) != 1 || r.changes[0].Find(wbxml.AirSyncServerId).Text() != other {
		t.Fatalf("desktop change not synced: %+v", r)
	}
	// Device deletes: the message moves to Trash.
	r = dev.sync(inbox, 10, deleteCmd(id))
	if r.status != "1" || len(dev.items[inbox]) != 2 {
		t.Fatalf("delete: %+v, %d left", r, len(dev.items[inbox]))
	}
	dev.syncAll(trash, 10)
	if _, ad := dev.findSubject(trash, "Lunch on Friday?"); ad == nil {
		t.Fatal("deleted message not in Trash")
	}
	// A message sent through the demo's SMTP sink arrives by Sync.
	send := dev.do(eas.CmdSendMail, wbxml.NewElement(wbxml.ComposeMailSendMail,
		wbxml.NewText(wbxml.ComposeMailClientId, "c1"), &wbxml.Element{Tag: wbxml.ComposeMailSaveInSentItems},
		wbxml.NewOpaque(wbxml.ComposeMailMime, []byte("To: "+user+"\r\nSubject: note to self\r\n\r\nremember the milk\r\n"))))
	if send != nil {
		t.Fatalf("SendMail answered %v", send)
	}
	again := dev.do(eas.CmdSendMail, wbxml.NewElement(wbxml.ComposeMailSendMail,
		wbxml.NewText(wbxml.ComposeMailClientId, "c1"), &wbxml.Element{Tag: wbxml.ComposeMailSaveInSentItems},
		wbxml.NewOpaque(wbxml.ComposeMailMime, []byte("To: "+user+"\r\nSubject: note to self\r\n\r\nremember the milk\r\n"))))
	if again == nil || again.Find(wbxml.ComposeMailStatus).Text() != "118" {
		t.Fatalf("resent ClientId not refused with 118: %v", again)
	}
	r = dev.sync(inbox, 10)
	if n := len(r.adds); n != 1 {
		t.Fatalf("%d messages arrived, want 1 (the resend must not go out)", n)
	}
	if _, ad := dev.findSubject(inbox, "note to self"); ad == nil {
		t.Fatalf("sent message not delivered: %+v", r)
	}
	dev.syncAll(dev.folder(typeSent, ""), 10)
	if _, ad := dev.findSubject(dev.folder(typeSent, ""), "note to self"); ad == nil {
		t.Fatal("SaveInSentItems did not store a copy")
	}
}

// TestMem_AuthFailedIsTyped: a wrong password is ErrAuthFailed (the gateway answers 401).
func TestMem_AuthFailedIsTyped(t *testing.T) {
	_, b, _ := startDemo(t)
	dev := newDevice(t, b, "demo@"+demo.Domain, "wrong", "memdev3")
	body, _ := wbxml.NewDocument(wbxml.NewElement(wbxml.FolderHierarchyFolderSync, wbxml.NewText(wbxml.FolderHierarchySyncKey, "0"))).Encode(nil)
	_, err := b.Serve(context.Background(), dev.request(eas.CmdFolderSync), dev.cred, body)
	if !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("err = %v, want ErrAuthFailed", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.HTTPStatus != 401 {
		t.Fatalf("err = %#v", err)
	}
}

// TestMem_UnreachableIsTyped: a dead IMAP server is ErrUnavailable (503).
func TestMem_UnreachableIsTyped(t *testing.T) {
	st := openStore(t, t.TempDir())
	b, err := New(Config{IMAPAddr: "127.0.0.1:1"}, st)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	body, _ := wbxml.NewDocument(wbxml.NewElement(wbxml.FolderHierarchyFolderSync, wbxml.NewText(wbxml.FolderHierarchySyncKey, "0"))).Encode(nil)
	_, err = b.Serve(context.Background(), &eas.Request{Cmd: eas.CmdFolderSync, User: "u", DeviceID: "d", DeviceType: "t", Version: eas.V141}, Credentials{User: "u", Password: "p"}, body)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

// TestMem_BadBodyIsTyped: garbage is ErrBadRequest with InvalidWBXML.
func TestMem_BadBodyIsTyped(t *testing.T) {
	_, b, _ := startDemo(t)
	_, err := b.Serve(context.Background(), &eas.Request{Cmd: eas.CmdSync, User: "demo@" + demo.Domain, DeviceID: "d", DeviceType: "t", Version: eas.V141},
		Credentials{User: "demo@" + demo.Domain, Password: "demo"}, []byte{0x03, 0x01, 0x6a, 0x00, 0xff, 0xff})
	var e *Error
	if !errors.Is(err, ErrBadRequest) || !errors.As(err, &e) || e.Status != eas.StatusInvalidWBXML {
		t.Fatalf("err = %v", err)
	}
}

func TestOptionsAdvertisesVersionsAndCommands(t *testing.T) {
	st := openStore(t, t.TempDir())
	b, err := New(Config{IMAPAddr: "127.0.0.1:1"}, st)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	o := b.Options()
	if v := o.Header["MS-ASProtocolVersions"]; v != "12.1,14.0,14.1,16.0,16.1" {
		t.Fatalf("versions %q", v)
	}
	for _, c := range []string{"Sync", "FolderSync", "Ping", "ItemOperations", "SendMail", "SmartReply", "SmartForward", "MoveItems", "Search", "GetItemEstimate"} {
		if !bytes.Contains([]byte(o.Header["MS-ASProtocolCommands"]), []byte(c)) {
			t.Errorf("commands lack %s: %s", c, o.Header["MS-ASProtocolCommands"])
		}
	}
}

func TestConfigValidationReportsAll(t *testing.T) {
	_, err := New(Config{OAuthMechanism: "PLAIN", MaxConnsPerUser: 10, MaxConns: 2}, openStore(t, t.TempDir()))
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"IMAPAddr", "OAuthMechanism", "MaxConnsPerUser"} {
		if !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("error lacks %s: %v", want, err)
		}
	}
}
