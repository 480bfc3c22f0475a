package imap

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/easgate/easgate/bench/servers"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
	"github.com/emersion/go-imap/v2"
)

func dovecotBackend(t *testing.T, d *servers.Dovecot, smtpAddr string, dir string) (*Backend, *SQLiteStore) {
	t.Helper()
	st := openStore(t, dir)
	b, err := New(Config{IMAPAddr: d.IMAPAddr, SMTPAddr: smtpAddr, Domain: d.Domain,
		MinHeartbeat: time.Second, PollInterval: time.Second}, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, st
}

// TestDovecot_SyncCycle is the device life cycle against a real Dovecot (CONDSTORE, SPECIAL-USE,
// MOVE, UIDPLUS): windows with MoreAvailable, an identical answer to a retried SyncKey
// (MS-ASCMD 2.2.3.166.4), a backend restart mid-sync on the same state database with nothing
// lost or duplicated, read/flag both ways, MoveItems, delete as move to Trash, a desktop
// expunge, attachments by FileReference, GetItemEstimate, a Dovecot restart and a UIDVALIDITY
// change that makes the device resync the folder.
func TestDovecot_SyncCycle(t *testing.T) {
	d := servers.StartDovecot(t, servers.DovecotOptions{Users: []servers.DovecotUser{{Name: "alice", Password: "pw-a"}}})
	alice := "alice@" + d.Domain
	dir := t.TempDir()
	b, st := dovecotBackend(t, d, "", dir)
	dc := desktop(t, d.IMAPAddr, alice, "pw-a")
	var msgs [][]byte
	for i := 1; i <= 25; i++ {
		msgs = append(msgs, sampleMessage(i, alice))
	}
	att := bytes.Repeat([]byte("attachment-bytes-\x00\x01\x02"), 500)
	msgs = append(msgs, attachmentMessage(alice, "with attachment", att))
	appendMessages(t, dc, "INBOX", msgs)

	dev := newDevice(t, b, alice, "pw-a", "phone1")
	dev.folderSync()
	inbox := dev.folder(typeInbox, "Inbox")
	dev.folder(typeSent, "Sent")
	dev.folder(typeDrafts, "Drafts")
	trash := dev.folder(typeDeleted, "Trash")

	if r := dev.sync(inbox, 0); r.status != "1" || len(r.adds) != 0 || dev.keys[inbox] == "0" {
		t.Fatalf("SyncKey 0: %+v", r)
	}
	// First window, then the same request again: the same bytes come back.
	req := dev.syncReq(inbox, 10)
	r1 := dev.apply(inbox, dev.do(eas.CmdSync, req))
	if len(r1.adds) != 10 || !r1.more {
		t.Fatalf("first window: %d adds, more=%v", len(r1.adds), r1.more)
	}
	raw2 := func() []byte { dev.do(eas.CmdSync, req); return dev.lastRaw }()
	if !bytes.Equal(r1.raw, raw2) {
		t.Fatal("retried SyncKey answered differently")
	}
	// Backend restart on the same database, mid-sync.
	b.Close()
	st.Close()
	b, _ = dovecotBackend(t, d, "", dir) // closed by the test's cleanup
	dev.b = b
	dev.syncAll(inbox, 10)
	if n := len(dev.items[inbox]); n != 26 {
		t.Fatalf("device holds %d items after restart and full sync, want 26", n)
	}
	// Newest first: the first window held the last 10 appended.
	if _, ad := dev.findSubject(inbox, "with attachment"); ad == nil {
		t.Fatal("attachment message missing")
	}

	tablet := newDevice(t, b, alice, "pw-a", "tablet1")
	tablet.folderSync()
	tablet.syncAll(inbox, 100)

	// Device marks read + flagged; IMAP sees it; nothing echoes back.
	id5, _ := dev.findSubject(inbox, "message 5")
	if r := dev.sync(inbox, 50, changeCmd(id5, wbxml.NewText(wbxml.EmailRead, "1"),
		wbxml.NewElement(wbxml.EmailFlag, wbxml.NewText(wbxml.EmailFlagStatus, "2")))); len(r.changes) != 0 || len(r.responses) != 0 {
		t.Fatalf("change echoed: %+v", r)
	}
	_, uid5, _ := parseServerID(id5)
	if fl := flagsOfUID(t, dc, "INBOX", uid5); !hasFlag(fl, `\Seen`) || !hasFlag(fl, `\Flagged`) {
		t.Fatalf("IMAP flags %v", fl)
	}
	// Desktop flags message 6: Change with Flag Status 2 (CONDSTORE path).
	id6, _ := dev.findSubject(inbox, "message 6")
	_, uid6, _ := parseServerID(id6)
	storeFlag(t, dc, uid6, `\Flagged`)
	r := dev.sync(inbox, 50)
	if len(r.changes) != 1 || r.changes[0].Path(wbxml.AirSyncApplicationData, wbxml.EmailFlag, wbxml.EmailFlagStatus).Text() != "2" {
		t.Fatalf("desktop flag: %+v", r)
	}

	// Attachment by FileReference.
	_, ad := dev.findSubject(inbox, "with attachment")
	ref := ad.Path(wbxml.AirSyncBaseAttachments, wbxml.AirSyncBaseAttachment, wbxml.AirSyncBaseFileReference).Text()
	io := dev.do(eas.CmdItemOperations, wbxml.NewElement(wbxml.ItemOperationsItemOperations, wbxml.NewElement(wbxml.ItemOperationsFetch,
		wbxml.NewText(wbxml.ItemOperationsStore, "Mailbox"), wbxml.NewText(wbxml.AirSyncBaseFileReference, ref))))
	data, _ := base64.StdEncoding.DecodeString(io.Path(wbxml.ItemOperationsResponse, wbxml.ItemOperationsFetch, wbxml.ItemOperationsProperties, wbxml.ItemOperationsData).Text())
	if !bytes.Equal(data, att) {
		t.Fatalf("attachment via ItemOperations: %d bytes, want %d", len(data), len(att))
	}

	// MoveItems to a folder the device creates.
	fc := dev.do(eas.CmdFolderCreate, wbxml.NewElement(wbxml.FolderHierarchyFolderCreate,
		wbxml.NewText(wbxml.FolderHierarchySyncKey, dev.fkey), wbxml.NewText(wbxml.FolderHierarchyParentId, "0"),
		wbxml.NewText(wbxml.FolderHierarchyDisplayName, "Projects"), text(wbxml.FolderHierarchyType, typeUserMail)))
	if fc.Find(wbxml.FolderHierarchyStatus).Text() != "1" {
		t.Fatalf("FolderCreate: %v", fc.Find(wbxml.FolderHierarchyStatus).Text())
	}
	dev.fkey = fc.Find(wbxml.FolderHierarchySyncKey).Text()
	projects := fc.Find(wbxml.FolderHierarchyServerId).Text()
	if r := dev.folderSync(); r.Path(wbxml.FolderHierarchyChanges, wbxml.FolderHierarchyCount).Text() != "0" {
		t.Fatal("FolderSync reports the device's own FolderCreate")
	}
	dev.syncAll(projects, 10)
	id7, ad7 := dev.findSubject(inbox, "message 7")
	mv := dev.do(eas.CmdMoveItems, wbxml.NewElement(wbxml.MoveMoveItems, wbxml.NewElement(wbxml.MoveMove,
		wbxml.NewText(wbxml.MoveSrcMsgId, id7), wbxml.NewText(wbxml.MoveSrcFldId, inbox), wbxml.NewText(wbxml.MoveDstFldId, projects))))
	if s := mv.Path(wbxml.MoveResponse, wbxml.MoveStatus).Text(); s != "3" {
		t.Fatalf("MoveItems status %s", s)
	}
	dst := mv.Path(wbxml.MoveResponse, wbxml.MoveDstMsgId).Text()
	delete(dev.items[inbox], id7)
	dev.items[projects][dst] = ad7
	if r := dev.sync(inbox, 50); len(r.deletes) != 0 {
		t.Fatalf("moved item deleted again by Sync: %+v", r)
	}
	if r := dev.sync(projects, 50); len(r.adds) != 0 {
		t.Fatalf("moved item added again by Sync: %+v", r)
	}

	// Device delete → Trash; desktop expunge → device Delete.
	id8, _ := dev.findSubject(inbox, "message 8")
	dev.sync(inbox, 50, deleteCmd(id8))
	dev.syncAll(trash, 50)
	if _, ad := dev.findSubject(trash, "message 8"); ad == nil {
		t.Fatal("deleted item not in Trash")
	}
	id9, _ := dev.findSubject(inbox, "message 9")
	_, uid9, _ := parseServerID(id9)
	storeFlag(t, dc, uid9, `\Deleted`)
	if err := dc.UIDExpunge(imap.UIDSetNum(uid9)).Close(); err != nil {
		t.Fatal(err)
	}
	if r := dev.sync(inbox, 50); len(r.deletes) != 1 || r.deletes[0].Find(wbxml.AirSyncServerId).Text() != id9 {
		t.Fatalf("desktop expunge: %+v", r)
	}

	// GetItemEstimate counts what the next Sync brings.
	appendMessages(t, dc, "INBOX", [][]byte{sampleMessage(101, alice), sampleMessage(102, alice), sampleMessage(103, alice)})
	gie := dev.do(eas.CmdGetItemEstimate, wbxml.NewElement(wbxml.GetItemEstimateGetItemEstimate, wbxml.NewElement(wbxml.GetItemEstimateCollections,
		wbxml.NewElement(wbxml.GetItemEstimateCollection, wbxml.NewText(wbxml.AirSyncSyncKey, dev.keys[inbox]), wbxml.NewText(wbxml.GetItemEstimateCollectionId, inbox)))))
	if e := gie.Path(wbxml.GetItemEstimateResponse, wbxml.GetItemEstimateCollection, wbxml.GetItemEstimateEstimate).Text(); e != "3" {
		t.Fatalf("estimate %q, want 3", e)
	}
	if r := dev.sync(inbox, 50); len(r.adds) != 3 {
		t.Fatalf("new mail: %+v", r)
	}

	// A second device of the same user, synced before the changes above, converges on the
	// same items and states through Changes, Deletes and Adds.
	tablet.syncAll(inbox, 100)
	if len(tablet.items[inbox]) != len(dev.items[inbox]) {
		t.Fatalf("tablet holds %d items, phone %d", len(tablet.items[inbox]), len(dev.items[inbox]))
	}
	for id, ad := range dev.items[inbox] {
		tad := tablet.items[inbox][id]
		if tad == nil {
			t.Fatalf("tablet lacks %s", id)
		}
		if tad.Find(wbxml.EmailRead).Text() != ad.Find(wbxml.EmailRead).Text() ||
			tad.Path(wbxml.EmailFlag, wbxml.EmailFlagStatus).Text() != ad.Path(wbxml.EmailFlag, wbxml.EmailFlagStatus).Text() {
			t.Fatalf("tablet and phone disagree on %s", id)
		}
	}
	if _, t5 := tablet.findSubject(inbox, "message 5"); t5.Find(wbxml.EmailRead).Text() != "1" || t5.Path(wbxml.EmailFlag, wbxml.EmailFlagStatus).Text() != "2" {
		t.Fatal("the phone's read/flag did not reach the tablet")
	}

	// Dovecot restart: the pooled connections die with it; the pool notices (the client's
	// reader sees the hang-up) and the next request logs in again instead of failing.
	d.Restart()
	appendAfter := desktop(t, d.IMAPAddr, alice, "pw-a")
	appendMessages(t, appendAfter, "INBOX", [][]byte{sampleMessage(104, alice)})
	body, _ := wbxml.NewDocument(dev.syncReq(inbox, 50)).Encode(nil)
	if _, err := b.Serve(context.Background(), dev.request(eas.CmdSync), dev.cred, body); err != nil {
		t.Fatalf("first request after the Dovecot restart: %v", err)
	}
	if r := dev.sync(inbox, 50); r.status != "1" {
		t.Fatalf("Sync after Dovecot restart: %+v", r)
	}
	if _, ad := dev.findSubject(inbox, "message 104"); ad == nil {
		t.Fatal("message delivered across the Dovecot restart not synced")
	}

	// UIDVALIDITY change: the folder is recreated behind the device's back.
	work := "Work"
	if err := appendAfter.Create(work, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	appendMessages(t, appendAfter, work, [][]byte{sampleMessage(201, alice), sampleMessage(202, alice)})
	dev.folderSync()
	workID := dev.folder(typeUserMail, "Work")
	dev.syncAll(workID, 10)
	if len(dev.items[workID]) != 2 {
		t.Fatalf("Work holds %d", len(dev.items[workID]))
	}
	if err := appendAfter.Delete(work).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := appendAfter.Create(work, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	appendMessages(t, appendAfter, work, [][]byte{sampleMessage(203, alice)})
	if r := dev.sync(workID, 10); r.status != "3" {
		t.Fatalf("after UIDVALIDITY change: status %s, want 3", r.status)
	}
	dev.keys[workID], dev.items[workID] = "", nil
	dev.syncAll(workID, 10)
	if len(dev.items[workID]) != 1 {
		t.Fatalf("Work after resync holds %d, want 1", len(dev.items[workID]))
	}
	if _, ad := dev.findSubject(workID, "message 203"); ad == nil {
		t.Fatal("resynced folder lacks the new message")
	}
}

// TestDovecot_SendReplyForward: two users on two devices; alice sends (14.1 WBXML SendMail with
// an attachment, SaveInSentItems) through a real Postfix submission port with her own
// credentials; bob receives it by Sync, answers with a 12.1 raw-MIME SmartReply and forwards it
// with SmartForward (14.1), and alice receives both, the forward with the original attachment.
func TestDovecot_SendReplyForward(t *testing.T) {
	d := servers.StartDovecot(t, servers.DovecotOptions{Users: []servers.DovecotUser{{Name: "alice", Password: "pw-a"}, {Name: "bob", Password: "pw-b"}}})
	p := servers.StartPostfix(t, servers.PostfixOptions{Dovecot: d, Submission: true})
	alice, bob := "alice@"+d.Domain, "bob@"+d.Domain
	b, _ := dovecotBackend(t, d, p.SubmissionAddr, t.TempDir())
	da := newDevice(t, b, alice, "pw-a", "alicephone")
	db := newDevice(t, b, bob, "pw-b", "bobphone")
	for _, x := range []*device{da, db} {
		x.folderSync()
		x.sync(x.folder(typeInbox, ""), 0)
	}
	att := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 3000)
	mime := attachmentMessage(bob, "quarterly report", att)
	mime = bytes.Replace(mime, []byte("From: sender@example.org"), []byte("From: Alice <"+alice+">"), 1)
	if r := da.do(eas.CmdSendMail, wbxml.NewElement(wbxml.ComposeMailSendMail, wbxml.NewText(wbxml.ComposeMailClientId, "s1"),
		&wbxml.Element{Tag: wbxml.ComposeMailSaveInSentItems}, wbxml.NewOpaque(wbxml.ComposeMailMime, mime))); r != nil {
		t.Fatalf("SendMail: %v", r.Find(wbxml.ComposeMailStatus).Text())
	}
	binbox := db.folder(typeInbox, "")
	id := waitFor(t, db, binbox, "quarterly report")
	_, ad := db.findSubject(binbox, "quarterly report")
	ref := ad.Path(wbxml.AirSyncBaseAttachments, wbxml.AirSyncBaseAttachment, wbxml.AirSyncBaseFileReference).Text()
	io := db.do(eas.CmdItemOperations, wbxml.NewElement(wbxml.ItemOperationsItemOperations, wbxml.NewElement(wbxml.ItemOperationsFetch,
		wbxml.NewText(wbxml.ItemOperationsStore, "Mailbox"), wbxml.NewText(wbxml.AirSyncBaseFileReference, ref))))
	got, _ := base64.StdEncoding.DecodeString(io.Path(wbxml.ItemOperationsResponse, wbxml.ItemOperationsFetch, wbxml.ItemOperationsProperties, wbxml.ItemOperationsData).Text())
	if !bytes.Equal(got, att) {
		t.Fatalf("received attachment: %d bytes (ref %q, answer status %s)", len(got), ref, io.Path(wbxml.ItemOperationsResponse, wbxml.ItemOperationsFetch, wbxml.ItemOperationsStatus).Text())
	}
	asent := da.folder(typeSent, "")
	da.syncAll(asent, 10)
	if _, x := da.findSubject(asent, "quarterly report"); x == nil {
		t.Fatal("no copy in alice's Sent")
	}

	// 12.1 SmartReply: raw MIME body, ItemId/CollectionId/SaveInSent in the query.
	req := db.request(eas.CmdSmartReply)
	req.Version, req.ItemID, req.CollectionID, req.SaveInSent, req.ContentType = eas.V121, id, binbox, true, "message/rfc822"
	db.doRaw(req, []byte("From: "+bob+"\r\nTo: "+alice+"\r\nSubject: Re: quarterly report\r\nContent-Type: text/plain\r\n\r\nThanks, looks good.\r\n"))
	ainbox := da.folder(typeInbox, "")
	waitFor(t, da, ainbox, "Re: quarterly report")
	_, re := da.findSubject(ainbox, "Re: quarterly report")
	if body := re.Path(wbxml.AirSyncBaseBody, wbxml.AirSyncBaseData).Text(); !strings.Contains(body, "Thanks, looks good.") || !strings.Contains(body, "> See the attached report.") {
		t.Fatalf("reply body lacks new or quoted text:\n%s", body)
	}

	// 14.1 SmartForward: the original's attachment travels with the forward.
	if r := db.do(eas.CmdSmartForward, wbxml.NewElement(wbxml.ComposeMailSmartForward, wbxml.NewText(wbxml.ComposeMailClientId, "f1"),
		wbxml.NewElement(wbxml.ComposeMailSource, wbxml.NewText(wbxml.ComposeMailFolderId, binbox), wbxml.NewText(wbxml.ComposeMailItemId, id)),
		wbxml.NewOpaque(wbxml.ComposeMailMime, []byte("From: "+bob+"\r\nTo: "+alice+"\r\nSubject: Fwd: quarterly report\r\n\r\nFYI\r\n")))); r != nil {
		t.Fatalf("SmartForward: %v", r.Find(wbxml.ComposeMailStatus).Text())
	}
	waitFor(t, da, ainbox, "Fwd: quarterly report")
	_, fw := da.findSubject(ainbox, "Fwd: quarterly report")
	fref := fw.Path(wbxml.AirSyncBaseAttachments, wbxml.AirSyncBaseAttachment, wbxml.AirSyncBaseFileReference).Text()
	if fref == "" {
		t.Fatal("forward has no attachment")
	}
	io = da.do(eas.CmdItemOperations, wbxml.NewElement(wbxml.ItemOperationsItemOperations, wbxml.NewElement(wbxml.ItemOperationsFetch,
		wbxml.NewText(wbxml.ItemOperationsStore, "Mailbox"), wbxml.NewText(wbxml.AirSyncBaseFileReference, fref))))
	got, _ = base64.StdEncoding.DecodeString(io.Path(wbxml.ItemOperationsResponse, wbxml.ItemOperationsFetch, wbxml.ItemOperationsProperties, wbxml.ItemOperationsData).Text())
	if !bytes.Equal(got, att) {
		t.Fatalf("forwarded attachment: %d bytes", len(got))
	}
	// MeetingResponse is refused with Status 2.
	mr := db.do(eas.CmdMeetingResponse, wbxml.NewElement(wbxml.MeetingResponseMeetingResponse, wbxml.NewElement(wbxml.MeetingResponseRequest,
		text(wbxml.MeetingResponseUserResponse, 1), wbxml.NewText(wbxml.MeetingResponseCollectionId, binbox), wbxml.NewText(wbxml.MeetingResponseRequestId, id))))
	if s := mr.Path(wbxml.MeetingResponseResult, wbxml.MeetingResponseStatus).Text(); s != "2" {
		t.Fatalf("MeetingResponse status %s", s)
	}
}

// waitFor syncs coll until a message with subject arrives (delivery through Postfix is
// asynchronous), at most 20 s.
func waitFor(t *testing.T, dev *device, coll, subject string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		dev.sync(coll, 50)
		if id, ad := dev.findSubject(coll, subject); ad != nil {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q not delivered within 20 s", subject)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestDovecot_PingIdle: a message APPENDed by a desktop client ends a Ping with Status 2 and
// the folder; a quiet heartbeat ends with Status 1; cancelling the context ends Ping at once.
func TestDovecot_PingIdle(t *testing.T) {
	d := servers.StartDovecot(t, servers.DovecotOptions{Users: []servers.DovecotUser{{Name: "carol", Password: "pw-c"}}})
	carol := "carol@" + d.Domain
	b, _ := dovecotBackend(t, d, "", t.TempDir())
	dev := newDevice(t, b, carol, "pw-c", "carolphone")
	dev.folderSync()
	inbox := dev.folder(typeInbox, "")
	dev.syncAll(inbox, 10)
	pingReq := func(hb int) *wbxml.Element {
		return wbxml.NewElement(wbxml.PingPing, text(wbxml.PingHeartbeatInterval, hb), wbxml.NewElement(wbxml.PingFolders,
			wbxml.NewElement(wbxml.PingFolder, wbxml.NewText(wbxml.PingId, inbox), wbxml.NewText(wbxml.PingClass, "Email"))))
	}
	if r := dev.do(eas.CmdPing, pingReq(1)); r.Find(wbxml.PingStatus).Text() != "1" {
		t.Fatalf("quiet Ping status %s", r.Find(wbxml.PingStatus).Text())
	}
	done := make(chan *wbxml.Element, 1)
	start := time.Now()
	go func() {
		body, _ := wbxml.NewDocument(pingReq(120)).Encode(nil)
		resp, err := b.Serve(context.Background(), dev.request(eas.CmdPing), dev.cred, body)
		if err != nil {
			t.Error(err)
			done <- nil
			return
		}
		doc, _ := wbxml.Parse(resp.Body, wbxml.Limits{})
		done <- doc.Root
	}()
	time.Sleep(500 * time.Millisecond)
	dc := desktop(t, d.IMAPAddr, carol, "pw-c")
	appendMessages(t, dc, "INBOX", [][]byte{sampleMessage(1, carol)})
	select {
	case r := <-done:
		if r == nil || r.Find(wbxml.PingStatus).Text() != "2" || r.Path(wbxml.PingFolders, wbxml.PingFolder).Text() != inbox {
			t.Fatalf("Ping answer %v", r)
		}
		t.Logf("Ping saw the new message after %v", time.Since(start))
	case <-time.After(30 * time.Second):
		t.Fatal("Ping did not report the desktop's APPEND")
	}
	if r := dev.sync(inbox, 10); len(r.adds) != 1 {
		t.Fatalf("Sync after Ping: %+v", r)
	}
	// Sync with HeartbeatInterval: quiet → empty answer; a desktop APPEND → the Add.
	quiet := dev.syncReq(inbox, 10).Append(text(wbxml.AirSyncHeartbeatInterval, 1))
	if r := dev.do(eas.CmdSync, quiet); r != nil {
		t.Fatalf("quiet long-poll Sync answered %v", r)
	}
	syncDone := make(chan *wbxml.Element, 1)
	go func() {
		body, _ := wbxml.NewDocument(dev.syncReq(inbox, 10).Append(text(wbxml.AirSyncHeartbeatInterval, 120))).Encode(nil)
		resp, err := b.Serve(context.Background(), dev.request(eas.CmdSync), dev.cred, body)
		if err != nil || len(resp.Body) == 0 {
			t.Error(err, len(resp.Body))
			syncDone <- nil
			return
		}
		doc, _ := wbxml.Parse(resp.Body, wbxml.Limits{})
		syncDone <- doc.Root
	}()
	time.Sleep(500 * time.Millisecond)
	appendMessages(t, dc, "INBOX", [][]byte{sampleMessage(2, carol)})
	select {
	case r := <-syncDone:
		if r == nil {
			t.Fatal("long-poll Sync failed")
		}
		if res := dev.apply(inbox, r); len(res.adds) != 1 {
			t.Fatalf("long-poll Sync: %+v", res)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("long-poll Sync did not report the APPEND")
	}
	// Cancellation ends a long Ping promptly.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		body, _ := wbxml.NewDocument(pingReq(600)).Encode(nil)
		_, err := b.Serve(ctx, dev.request(eas.CmdPing), dev.cred, body)
		errc <- err
	}()
	time.Sleep(300 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("cancelled Ping: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Ping ignored ctx cancellation")
	}
	// An empty Ping reuses the last parameters.
	dev.do(eas.CmdPing, pingReq(1))
	if r := dev.do(eas.CmdPing, nil); r.Find(wbxml.PingStatus).Text() != "1" && r.Find(wbxml.PingStatus).Text() != "2" {
		t.Fatalf("empty Ping status %s", r.Find(wbxml.PingStatus).Text())
	}
}
