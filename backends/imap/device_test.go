package imap

import (
	"bytes"
	"context"
	"encoding/base64"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// device simulates an EAS client: it keeps its own SyncKeys and the items it holds, as a
// phone does, and talks to the Backend through Serve.
type device struct {
	t       testing.TB
	b       *Backend
	cred    Credentials
	id      string
	ver     eas.Version
	fkey    string
	folders map[string]Folder // by id
	keys    map[string]string
	items   map[string]map[string]*wbxml.Element // collection → ServerId → ApplicationData
	lastRaw []byte
}

func newDevice(t testing.TB, b *Backend, user, pass, id string) *device {
	return &device{t: t, b: b, cred: Credentials{User: user, Password: pass}, id: id, ver: eas.V141,
		fkey: "0", folders: map[string]Folder{}, keys: map[string]string{}, items: map[string]map[string]*wbxml.Element{}}
}

func (d *device) request(cmd eas.Command) *eas.Request {
	return &eas.Request{Cmd: cmd, User: d.cred.User, DeviceID: d.id, DeviceType: "TestPhone", Version: d.ver}
}

// do sends a WBXML command and returns the parsed answer (nil for an empty body).
func (d *device) do(cmd eas.Command, root *wbxml.Element) *wbxml.Element {
	d.t.Helper()
	var body []byte
	if root != nil {
		var err error
		if body, err = wbxml.NewDocument(root).Encode(nil); err != nil {
			d.t.Fatal(err)
		}
	}
	return d.doRaw(d.request(cmd), body)
}

func (d *device) doRaw(req *eas.Request, body []byte) *wbxml.Element {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := d.b.Serve(ctx, req, d.cred, body)
	if err != nil {
		d.t.Fatalf("%s: %v", req.Cmd, err)
	}
	if resp.Status != 200 {
		d.t.Fatalf("%s: HTTP %d", req.Cmd, resp.Status)
	}
	d.lastRaw = resp.Body
	if len(resp.Body) == 0 {
		return nil
	}
	doc, err := wbxml.Parse(resp.Body, wbxml.Limits{})
	if err != nil {
		d.t.Fatalf("%s: answer: %v", req.Cmd, err)
	}
	return doc.Root
}

func (d *device) folderSync() *wbxml.Element {
	d.t.Helper()
	r := d.do(eas.CmdFolderSync, wbxml.NewElement(wbxml.FolderHierarchyFolderSync, wbxml.NewText(wbxml.FolderHierarchySyncKey, d.fkey)))
	if st := r.Find(wbxml.FolderHierarchyStatus).Text(); st != "1" {
		d.t.Fatalf("FolderSync status %s", st)
	}
	d.fkey = r.Find(wbxml.FolderHierarchySyncKey).Text()
	for _, c := range kids(r.Find(wbxml.FolderHierarchyChanges)) {
		id := c.Find(wbxml.FolderHierarchyServerId).Text()
		switch c.Tag {
		case wbxml.FolderHierarchyAdd, wbxml.FolderHierarchyUpdate:
			d.folders[id] = Folder{ID: id, ParentID: c.Find(wbxml.FolderHierarchyParentId).Text(),
				DisplayName: c.Find(wbxml.FolderHierarchyDisplayName).Text(), Type: atoi(c.Find(wbxml.FolderHierarchyType).Text())}
		case wbxml.FolderHierarchyDelete:
			delete(d.folders, id)
		}
	}
	return r
}

func (d *device) folder(typ int, name string) string {
	d.t.Helper()
	for id, f := range d.folders {
		if f.Type == typ && (name == "" || f.DisplayName == name) {
			return id
		}
	}
	d.t.Fatalf("device has no folder of type %d named %q: %+v", typ, name, d.folders)
	return ""
}

// syncReq builds a Sync request for one collection with the device's key.
func (d *device) syncReq(coll string, window int, commands ...*wbxml.Element) *wbxml.Element {
	key := d.keys[coll]
	if key == "" {
		key = "0"
	}
	c := wbxml.NewElement(wbxml.AirSyncCollection, wbxml.NewText(wbxml.AirSyncSyncKey, key), wbxml.NewText(wbxml.AirSyncCollectionId, coll))
	if key != "0" {
		c.Append(&wbxml.Element{Tag: wbxml.AirSyncDeletesAsMoves}, &wbxml.Element{Tag: wbxml.AirSyncGetChanges})
		if window > 0 {
			c.Append(text(wbxml.AirSyncWindowSize, window))
		}
	}
	c.Append(wbxml.NewElement(wbxml.AirSyncOptions,
		text(wbxml.AirSyncFilterType, 0),
		wbxml.NewElement(wbxml.AirSyncBaseBodyPreference, text(wbxml.AirSyncBaseType, 1), text(wbxml.AirSyncBaseTruncationSize, 20000))))
	if len(commands) > 0 {
		c.Append(wbxml.NewElement(wbxml.AirSyncCommands, commands...))
	}
	return wbxml.NewElement(wbxml.AirSyncSync, wbxml.NewElement(wbxml.AirSyncCollections, c))
}

type syncResult struct {
	status                 string
	adds, changes, deletes []*wbxml.Element
	responses              []*wbxml.Element
	more                   bool
	raw                    []byte
}

// sync runs one Sync of coll and applies the answer to the device's items.
func (d *device) sync(coll string, window int, commands ...*wbxml.Element) syncResult {
	d.t.Helper()
	r := d.do(eas.CmdSync, d.syncReq(coll, window, commands...))
	res := d.apply(coll, r)
	if res.status == "1" {
		for _, c := range commands {
			id := c.Find(wbxml.AirSyncServerId).Text()
			switch c.Tag {
			case wbxml.AirSyncDelete:
				delete(d.items[coll], id) // the device removes it itself
			case wbxml.AirSyncChange:
				if old := d.items[coll][id]; old != nil { // and applies its own change
					for _, p := range c.Find(wbxml.AirSyncApplicationData).Children {
						for i, o := range old.Children {
							if o.Tag == p.Tag {
								old.Children[i] = p
							}
						}
					}
				}
			}
		}
	}
	return res
}

func (d *device) apply(coll string, r *wbxml.Element) syncResult {
	d.t.Helper()
	c := r.Path(wbxml.AirSyncCollections, wbxml.AirSyncCollection)
	res := syncResult{status: c.Find(wbxml.AirSyncStatus).Text(), raw: d.lastRaw}
	if res.status != "1" {
		return res
	}
	d.keys[coll] = c.Find(wbxml.AirSyncSyncKey).Text()
	if d.items[coll] == nil {
		d.items[coll] = map[string]*wbxml.Element{}
	}
	res.more = c.Find(wbxml.AirSyncMoreAvailable) != nil
	for _, x := range kids(c.Find(wbxml.AirSyncCommands)) {
		id := x.Find(wbxml.AirSyncServerId).Text()
		switch x.Tag {
		case wbxml.AirSyncAdd:
			if _, dup := d.items[coll][id]; dup {
				d.t.Fatalf("Sync added %s twice", id)
			}
			d.items[coll][id] = x.Find(wbxml.AirSyncApplicationData)
			res.adds = append(res.adds, x)
		case wbxml.AirSyncChange:
			res.changes = append(res.changes, x)
			if old := d.items[coll][id]; old != nil {
				for _, p := range x.Find(wbxml.AirSyncApplicationData).Children {
					for i, o := range old.Children {
						if o.Tag == p.Tag {
							old.Children[i] = p
						}
					}
				}
			} else {
				d.t.Fatalf("Sync changed %s the device does not hold", id)
			}
		case wbxml.AirSyncDelete:
			if _, ok := d.items[coll][id]; !ok {
				d.t.Fatalf("Sync deleted %s the device does not hold", id)
			}
			delete(d.items[coll], id)
			res.deletes = append(res.deletes, x)
		}
	}
	res.responses = kids(c.Find(wbxml.AirSyncResponses))
	return res
}

// syncAll syncs until no MoreAvailable, returning the number of round trips.
func (d *device) syncAll(coll string, window int) int {
	d.t.Helper()
	if d.keys[coll] == "" {
		if r := d.sync(coll, 0); r.status != "1" {
			d.t.Fatalf("initial Sync status %s", r.status)
		}
	}
	for n := 1; ; n++ {
		r := d.sync(coll, window)
		if r.status != "1" {
			d.t.Fatalf("Sync status %s", r.status)
		}
		if !r.more {
			return n
		}
		if n > 10000 {
			d.t.Fatal("Sync never completes")
		}
	}
}

func (d *device) findSubject(coll, subject string) (string, *wbxml.Element) {
	for id, ad := range d.items[coll] {
		if ad.Find(wbxml.EmailSubject).Text() == subject {
			return id, ad
		}
	}
	return "", nil
}

func changeCmd(id string, props ...*wbxml.Element) *wbxml.Element {
	return wbxml.NewElement(wbxml.AirSyncChange, wbxml.NewText(wbxml.AirSyncServerId, id), wbxml.NewElement(wbxml.AirSyncApplicationData, props...))
}

func deleteCmd(id string) *wbxml.Element {
	return wbxml.NewElement(wbxml.AirSyncDelete, wbxml.NewText(wbxml.AirSyncServerId, id))
}

// desktop is a plain IMAP client standing for the user's desktop mail program.
func desktop(t testing.TB, addr, user, pass string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// appendMessages APPENDs msgs to mailbox in one pipelined batch.
func appendMessages(t testing.TB, c *imapclient.Client, mailbox string, msgs [][]byte) {
	t.Helper()
	cmds := make([]*imapclient.AppendCommand, 0, len(msgs))
	for _, m := range msgs {
		cmd := c.Append(mailbox, int64(len(m)), nil)
		cmd.Write(m)
		cmd.Close()
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
}

func sampleMessage(i int, to string) []byte {
	return []byte("From: Sender " + itoaT(i) + " <sender" + itoaT(i) + "@example.org>\r\nTo: " + to +
		"\r\nSubject: message " + itoaT(i) + "\r\nDate: " + time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Minute).Format(time.RFC1123Z) +
		"\r\nMessage-ID: <m" + itoaT(i) + "@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBody of message " + itoaT(i) + ".\r\nSecond line.\r\n")
}

func attachmentMessage(to, subject string, att []byte) []byte {
	var b bytes.Buffer
	b.WriteString("From: sender@example.org\r\nTo: " + to + "\r\nSubject: " + subject + "\r\nMessage-ID: <att-" + strings.ReplaceAll(subject, " ", "-") + "@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n")
	b.WriteString("--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the attached report.\r\n")
	b.WriteString("--b1\r\nContent-Type: application/octet-stream; name=\"report.bin\"\r\nContent-Disposition: attachment; filename=\"report.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := make([]byte, 0, len(att)*2)
	enc = appendBase64Lines(enc, att)
	b.Write(enc)
	b.WriteString("--b1--\r\n")
	return b.Bytes()
}

func appendBase64Lines(dst, src []byte) []byte {
	const line = 57
	for len(src) > 0 {
		n := min(line, len(src))
		dst = append(dst, []byte(base64.StdEncoding.EncodeToString(src[:n]))...)
		dst = append(dst, '\r', '\n')
		src = src[n:]
	}
	return dst
}

func itoaT(i int) string { return strconv.Itoa(i) }

func openStore(t testing.TB, dir string) *SQLiteStore {
	t.Helper()
	s, err := OpenSQLiteStore(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func flagsOfUID(t testing.TB, c *imapclient.Client, mailbox string, uid imap.UID) []imap.Flag {
	t.Helper()
	if _, err := c.Select(mailbox, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	bufs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{Flags: true, UID: true}).Collect()
	if err != nil || len(bufs) != 1 {
		t.Fatalf("FETCH FLAGS of %d: %v (%d)", uid, err, len(bufs))
	}
	return bufs[0].Flags
}

func hasFlag(fl []imap.Flag, f string) bool {
	for _, x := range fl {
		if string(x) == f {
			return true
		}
	}
	return false
}

func storeFlag(t testing.TB, c *imapclient.Client, uid imap.UID, f string) {
	t.Helper()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.Flag(f)}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
}

func kids(e *wbxml.Element) []*wbxml.Element {
	if e == nil {
		return nil
	}
	return e.Children
}
