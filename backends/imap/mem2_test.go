package imap

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/easgate/easgate/backends/imap/demo"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
)

// TestMem_BodyPreferences_MS_ASAIRS_2_2_2_9 checks the three body types, TruncationSize with
// Truncated and EstimatedDataSize, and AllOrNone, through ItemOperations Fetch by ServerId.
func TestMem_BodyPreferences_MS_ASAIRS_2_2_2_9(t *testing.T) {
	d, b, _ := startDemo(t)
	user := "demo@" + demo.Domain
	html := "<html><body><p>Hello <b>HTML</b> world</p><p>second &amp; last</p></body></html>"
	msg := "From: x@example.org\r\nTo: " + user + "\r\nSubject: alt\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=zz\r\n\r\n" +
		"--zz\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nHello plain caf=E9 world\r\n" +
		"--zz\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n--zz--\r\n"
	if err := d.Deliver(user, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	dev := newDevice(t, b, user, "demo", "bodydev")
	dev.folderSync()
	inbox := dev.folder(typeInbox, "")
	dev.syncAll(inbox, 10)
	id, _ := dev.findSubject(inbox, "alt")
	fetch := func(typ, trunc int, allOrNone bool) *wbxml.Element {
		bp := wbxml.NewElement(wbxml.AirSyncBaseBodyPreference, text(wbxml.AirSyncBaseType, typ))
		if trunc > 0 {
			bp.Append(text(wbxml.AirSyncBaseTruncationSize, trunc))
		}
		if allOrNone {
			bp.Append(text(wbxml.AirSyncBaseAllOrNone, 1))
		}
		r := dev.do(eas.CmdItemOperations, wbxml.NewElement(wbxml.ItemOperationsItemOperations, wbxml.NewElement(wbxml.ItemOperationsFetch,
			wbxml.NewText(wbxml.ItemOperationsStore, "Mailbox"), wbxml.NewText(wbxml.AirSyncCollectionId, inbox), wbxml.NewText(wbxml.AirSyncServerId, id),
			wbxml.NewElement(wbxml.ItemOperationsOptions, bp))))
		f := r.Path(wbxml.ItemOperationsResponse, wbxml.ItemOperationsFetch)
		if f.Find(wbxml.ItemOperationsStatus).Text() != "1" {
			t.Fatalf("fetch status %s", f.Find(wbxml.ItemOperationsStatus).Text())
		}
		return f.Path(wbxml.ItemOperationsProperties, wbxml.AirSyncBaseBody)
	}
	if body := fetch(bodyPlain, 0, false); body.Find(wbxml.AirSyncBaseData).Text() != "Hello plain café world" {
		t.Fatalf("plain (charset, QP): %q", body.Find(wbxml.AirSyncBaseData).Text())
	}
	if body := fetch(bodyHTML, 0, false); body.Find(wbxml.AirSyncBaseData).Text() != html {
		t.Fatalf("html: %q", body.Find(wbxml.AirSyncBaseData).Text())
	}
	body := fetch(bodyHTML, 10, false)
	if body.Find(wbxml.AirSyncBaseTruncated).Text() != "1" || len(body.Find(wbxml.AirSyncBaseData).Value) != 10 ||
		body.Find(wbxml.AirSyncBaseEstimatedDataSize).Text() != itoaT(len(html)) {
		t.Fatalf("truncated html: %+v", body)
	}
	if body := fetch(bodyHTML, 10, true); body.Find(wbxml.AirSyncBaseData) != nil || body.Find(wbxml.AirSyncBaseTruncated).Text() != "1" {
		t.Fatal("AllOrNone sent a truncated body")
	}
	mime := fetch(bodyMIME, 0, false).Find(wbxml.AirSyncBaseData).Text()
	if !strings.Contains(mime, "multipart/alternative") || !strings.Contains(mime, "caf=E9") {
		t.Fatalf("MIME body: %q", mime)
	}
}

// TestMem_SearchMailbox_2_2_1_16 finds messages by free text, newest first, with Range and
// Total, and fetches a result by LongId.
func TestMem_SearchMailbox_2_2_1_16(t *testing.T) {
	_, b, _ := startDemo(t)
	user := "demo@" + demo.Domain
	dev := newDevice(t, b, user, "demo", "searchdev")
	dev.folderSync()
	r := dev.do(eas.CmdSearch, wbxml.NewElement(wbxml.SearchSearch, wbxml.NewElement(wbxml.SearchStore,
		wbxml.NewText(wbxml.SearchName, "Mailbox"),
		wbxml.NewElement(wbxml.SearchQuery, wbxml.NewElement(wbxml.SearchAnd,
			wbxml.NewText(wbxml.AirSyncClass, "Email"), wbxml.NewText(wbxml.SearchFreeText, "compliant"))),
		wbxml.NewElement(wbxml.SearchOptions, wbxml.NewText(wbxml.SearchRange, "0-9")))))
	st := r.Path(wbxml.SearchResponse, wbxml.SearchStore)
	if st.Find(wbxml.SearchStatus).Text() != "1" || st.Find(wbxml.SearchTotal).Text() != "1" {
		t.Fatalf("search: status %s total %s", st.Find(wbxml.SearchStatus).Text(), st.Find(wbxml.SearchTotal).Text())
	}
	res := st.Find(wbxml.SearchResult)
	if res.Path(wbxml.SearchProperties, wbxml.EmailSubject).Text() != "Your device is compliant" || st.Find(wbxml.SearchRange).Text() != "0-0" {
		t.Fatalf("result %v", res)
	}
	long := res.Find(wbxml.SearchLongId).Text()
	io := dev.do(eas.CmdItemOperations, wbxml.NewElement(wbxml.ItemOperationsItemOperations, wbxml.NewElement(wbxml.ItemOperationsFetch,
		wbxml.NewText(wbxml.ItemOperationsStore, "Mailbox"), wbxml.NewText(wbxml.SearchLongId, long))))
	if s := io.Path(wbxml.ItemOperationsResponse, wbxml.ItemOperationsFetch, wbxml.ItemOperationsProperties, wbxml.EmailSubject).Text(); s != "Your device is compliant" {
		t.Fatalf("fetch by LongId: %q", s)
	}
}

// TestMem_FolderEditsAndEmpty: FolderCreate, FolderUpdate (rename keeps the id), FolderDelete,
// special folders refused (Status 3), EmptyFolderContents moving to Trash.
func TestMem_FolderEditsAndEmpty(t *testing.T) {
	_, b, _ := startDemo(t)
	user := "demo@" + demo.Domain
	dev := newDevice(t, b, user, "demo", "folderdev")
	dev.folderSync()
	edit := func(root wbxml.Tag, kids ...*wbxml.Element) *wbxml.Element {
		r := dev.do(map[wbxml.Tag]eas.Command{wbxml.FolderHierarchyFolderCreate: eas.CmdFolderCreate, wbxml.FolderHierarchyFolderUpdate: eas.CmdFolderUpdate,
			wbxml.FolderHierarchyFolderDelete: eas.CmdFolderDelete}[root],
			wbxml.NewElement(root, append([]*wbxml.Element{wbxml.NewText(wbxml.FolderHierarchySyncKey, dev.fkey)}, kids...)...))
		if k := r.Find(wbxml.FolderHierarchySyncKey); k != nil {
			dev.fkey = k.Text()
		}
		return r
	}
	r := edit(wbxml.FolderHierarchyFolderCreate, wbxml.NewText(wbxml.FolderHierarchyParentId, "0"), wbxml.NewText(wbxml.FolderHierarchyDisplayName, "Receipts"), text(wbxml.FolderHierarchyType, 12))
	id := r.Find(wbxml.FolderHierarchyServerId).Text()
	if r.Find(wbxml.FolderHierarchyStatus).Text() != "1" || id == "" {
		t.Fatalf("create: %v", r)
	}
	if r := edit(wbxml.FolderHierarchyFolderCreate, wbxml.NewText(wbxml.FolderHierarchyParentId, "0"), wbxml.NewText(wbxml.FolderHierarchyDisplayName, "Receipts"), text(wbxml.FolderHierarchyType, 12)); r.Find(wbxml.FolderHierarchyStatus).Text() != "2" {
		t.Fatal("duplicate create accepted")
	}
	if r := edit(wbxml.FolderHierarchyFolderUpdate, wbxml.NewText(wbxml.FolderHierarchyServerId, id), wbxml.NewText(wbxml.FolderHierarchyParentId, "0"), wbxml.NewText(wbxml.FolderHierarchyDisplayName, "Invoices")); r.Find(wbxml.FolderHierarchyStatus).Text() != "1" {
		t.Fatalf("rename status %s", r.Find(wbxml.FolderHierarchyStatus).Text())
	}
	other := newDevice(t, b, user, "demo", "folderdev-2")
	other.folderSync()
	if f := other.folders[id]; f.DisplayName != "Invoices" {
		t.Fatalf("renamed folder seen by another device as %+v", f)
	}
	if r := edit(wbxml.FolderHierarchyFolderDelete, wbxml.NewText(wbxml.FolderHierarchyServerId, dev.folder(typeInbox, ""))); r.Find(wbxml.FolderHierarchyStatus).Text() != "3" {
		t.Fatal("deleting the Inbox accepted")
	}
	if r := edit(wbxml.FolderHierarchyFolderDelete, wbxml.NewText(wbxml.FolderHierarchyServerId, id)); r.Find(wbxml.FolderHierarchyStatus).Text() != "1" {
		t.Fatal("delete failed")
	}
	if r := dev.folderSync(); r.Path(wbxml.FolderHierarchyChanges, wbxml.FolderHierarchyCount).Text() != "0" {
		t.Fatal("own edits reported back")
	}
	other.folderSync()
	if _, ok := other.folders[id]; ok {
		t.Fatal("deleted folder still known to the other device")
	}
	inbox := dev.folder(typeInbox, "")
	eo := dev.do(eas.CmdItemOperations, wbxml.NewElement(wbxml.ItemOperationsItemOperations, wbxml.NewElement(wbxml.ItemOperationsEmptyFolderContents,
		wbxml.NewText(wbxml.AirSyncCollectionId, inbox))))
	if s := eo.Path(wbxml.ItemOperationsResponse, wbxml.ItemOperationsEmptyFolderContents, wbxml.ItemOperationsStatus).Text(); s != "1" {
		t.Fatalf("EmptyFolderContents status %s", s)
	}
	dev.syncAll(inbox, 10)
	trash := dev.folder(typeDeleted, "")
	dev.syncAll(trash, 10)
	if len(dev.items[inbox]) != 0 || len(dev.items[trash]) != 3 {
		t.Fatalf("inbox %d, trash %d", len(dev.items[inbox]), len(dev.items[trash]))
	}
}

// TestMem_EmptySyncAndGetAttachment: an empty Sync repeats the last one with the current keys
// (MS-ASCMD 2.2.3.166.4); without a previous Sync it is Status 13. GetAttachment (12.1) and
// multipart ItemOperations return the attachment bytes.
func TestMem_EmptySyncAndGetAttachment(t *testing.T) {
	d, b, _ := startDemo(t)
	user := "demo@" + demo.Domain
	dev := newDevice(t, b, user, "demo", "emptydev")
	if r := dev.do(eas.CmdSync, nil); r.Find(wbxml.AirSyncStatus).Text() != "13" {
		t.Fatalf("empty first Sync: %v", r)
	}
	dev.folderSync()
	inbox := dev.folder(typeInbox, "")
	dev.syncAll(inbox, 10)
	att := []byte("%PDF-1.4 fake pdf bytes")
	if err := d.Deliver(user, attachmentMessage(user, "pdf", att)); err != nil {
		t.Fatal(err)
	}
	r := dev.apply(inbox, dev.do(eas.CmdSync, nil))
	if len(r.adds) != 1 {
		t.Fatalf("empty Sync brought %d adds", len(r.adds))
	}
	ref := r.adds[0].Path(wbxml.AirSyncApplicationData, wbxml.AirSyncBaseAttachments, wbxml.AirSyncBaseAttachment, wbxml.AirSyncBaseFileReference).Text()
	req := dev.request(eas.CmdGetAttachment)
	req.Version, req.AttachmentName = eas.V121, ref
	resp, err := b.Serve(t.Context(), req, dev.cred, nil)
	if err != nil || string(resp.Body) != string(att) || resp.ContentType != "application/octet-stream" {
		t.Fatalf("GetAttachment: %q %q %v", resp.Body, resp.ContentType, err)
	}
	req = dev.request(eas.CmdItemOperations)
	req.AcceptMultiPart = true
	body, _ := wbxml.NewDocument(wbxml.NewElement(wbxml.ItemOperationsItemOperations, wbxml.NewElement(wbxml.ItemOperationsFetch,
		wbxml.NewText(wbxml.ItemOperationsStore, "Mailbox"), wbxml.NewText(wbxml.AirSyncBaseFileReference, ref)))).Encode(nil)
	resp, err = b.Serve(t.Context(), req, dev.cred, body)
	if err != nil || resp.ContentType != ContentTypeMultipart {
		t.Fatalf("multipart: %v %s", err, resp.ContentType)
	}
	le := func(o int) int {
		return int(resp.Body[o]) | int(resp.Body[o+1])<<8 | int(resp.Body[o+2])<<16 | int(resp.Body[o+3])<<24
	}
	if le(0) != 2 || string(resp.Body[le(12):le(12)+le(16)]) != string(att) {
		t.Fatalf("multipart parts: %d, part 1 %q", le(0), resp.Body[le(12):])
	}
	_ = base64.StdEncoding
}

// TestMem_SettingsUserInformation answers the address the device authenticated as.
func TestMem_SettingsUserInformation(t *testing.T) {
	_, b, _ := startDemo(t)
	user := "demo@" + demo.Domain
	dev := newDevice(t, b, user, "demo", "settingsdev")
	r := dev.do(eas.CmdSettings, wbxml.NewElement(wbxml.SettingsSettings,
		wbxml.NewElement(wbxml.SettingsUserInformation, &wbxml.Element{Tag: wbxml.SettingsGet})))
	if a := r.Path(wbxml.SettingsUserInformation, wbxml.SettingsGet, wbxml.SettingsAccounts, wbxml.SettingsAccount, wbxml.SettingsEmailAddresses, wbxml.SettingsPrimarySmtpAddress).Text(); a != user {
		t.Fatalf("address %q", a)
	}
}
