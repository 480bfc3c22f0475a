package imap

import (
	"slices"
	"strconv"
	"strings"

	"github.com/easgate/easgate/eas/wbxml"
	"github.com/emersion/go-imap/v2"
)

// EAS folder types (MS-ASCMD 2.2.3.186.3) used for mail.
const (
	typeUserMail = 12
	typeInbox    = 2
	typeDrafts   = 3
	typeDeleted  = 4
	typeSent     = 5
	typeOutbox   = 6
)

// FolderSync status values (MS-ASCMD 2.2.3.177.5) and the FolderCreate/Update/Delete ones
// they share (2.2.3.177.2-4).
const (
	fsOK            = 1
	fsExists        = 2
	fsSpecial       = 3
	fsNotFound      = 4
	fsParentMissing = 5
	fsServerError   = 6
	fsBadKey        = 9
	fsBadRequest    = 10
)

// nameTypes maps well-known mailbox names to EAS types for servers without SPECIAL-USE
// (RFC 6154) — the names Dovecot's, Cyrus's and Thunderbird's defaults use.
var nameTypes = map[string]int{
	"drafts": typeDrafts, "draft": typeDrafts,
	"trash": typeDeleted, "deleted items": typeDeleted, "deleted messages": typeDeleted,
	"sent": typeSent, "sent items": typeSent, "sent messages": typeSent, "sent mail": typeSent,
	"outbox": typeOutbox,
}

// listFolders runs LIST and maps the mailboxes to EAS folders with stable ids. Each special
// type is given to one mailbox only; \Noselect mailboxes are left out.
func (s *session) listFolders() ([]Folder, error) {
	if s.folders != nil {
		return s.folders, nil
	}
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	var opts *imap.ListOptions
	if s.caps().Has(imap.CapSpecialUse) {
		opts = &imap.ListOptions{ReturnSpecialUse: true}
	}
	list, err := c.List("", "*", opts).Collect()
	if err != nil {
		return nil, s.imapErr(err, "LIST")
	}
	slices.SortFunc(list, func(a, b *imap.ListData) int { return strings.Compare(a.Mailbox, b.Mailbox) })
	taken := map[int]bool{}
	type entry struct {
		f     Folder
		delim rune
	}
	var entries []entry
	byName := map[string]string{}
	// Special-use attributes win over names: assign them first.
	typeOf := func(l *imap.ListData, useNames bool) int {
		if strings.EqualFold(l.Mailbox, "INBOX") {
			return typeInbox
		}
		for _, a := range l.Attrs {
			switch a {
			case imap.MailboxAttrDrafts:
				return typeDrafts
			case imap.MailboxAttrTrash:
				return typeDeleted
			case imap.MailboxAttrSent:
				return typeSent
			}
		}
		if useNames && !strings.ContainsRune(l.Mailbox, l.Delim) {
			if t, ok := nameTypes[strings.ToLower(l.Mailbox)]; ok {
				return t
			}
		}
		return typeUserMail
	}
	types := make([]int, len(list))
	for i, l := range list {
		if t := typeOf(l, false); t != typeUserMail && !taken[t] {
			types[i], taken[t] = t, true
		}
	}
	for i, l := range list {
		if types[i] == 0 {
			if t := typeOf(l, true); t != typeUserMail && !taken[t] {
				types[i], taken[t] = t, true
			} else {
				types[i] = typeUserMail
			}
		}
	}
	for i, l := range list {
		if slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) || slices.Contains(l.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		id, err := s.b.store.FolderID(s.ctx, s.user, l.Mailbox)
		if err != nil {
			return nil, internal(err, "folder id")
		}
		name := l.Mailbox
		if l.Delim != 0 {
			if j := strings.LastIndex(name, string(l.Delim)); j >= 0 {
				name = name[j+len(string(l.Delim)):]
			}
		}
		if types[i] == typeInbox {
			name = "Inbox"
		}
		byName[l.Mailbox] = id
		entries = append(entries, entry{f: Folder{ID: id, DisplayName: name, Mailbox: l.Mailbox, Type: types[i]}, delim: l.Delim})
	}
	out := make([]Folder, 0, len(entries))
	for _, e := range entries {
		e.f.ParentID = "0"
		if e.delim != 0 {
			if j := strings.LastIndex(e.f.Mailbox, string(e.delim)); j > 0 {
				if pid, ok := byName[e.f.Mailbox[:j]]; ok {
					e.f.ParentID = pid
				}
			}
		}
		out = append(out, e.f)
	}
	s.folders = out
	return out, nil
}

// delimiter returns the hierarchy separator of the personal namespace.
func (s *session) delimiter() (rune, error) {
	c, err := s.client()
	if err != nil {
		return 0, err
	}
	l, err := c.List("", "", nil).Collect()
	if err != nil {
		return 0, s.imapErr(err, "LIST delimiter")
	}
	if len(l) > 0 && l[0].Delim != 0 {
		return l[0].Delim, nil
	}
	return '/', nil
}

func (s *session) hierarchy() (*HierarchyState, error) {
	if s.hier != nil {
		return s.hier, nil
	}
	h, err := s.b.store.Hierarchy(s.ctx, s.user, s.device)
	if err != nil {
		return nil, internal(err, "hierarchy state")
	}
	s.hier = &h
	return s.hier, nil
}

// folderByID resolves a collection id through the device's hierarchy, falling back to a fresh
// LIST (a folder created by this device may not be in its hierarchy yet).
func (s *session) folderByID(id string) (Folder, bool, error) {
	h, err := s.hierarchy()
	if err != nil {
		return Folder{}, false, err
	}
	for _, f := range h.Folders {
		if f.ID == id {
			return f, true, nil
		}
	}
	fs, err := s.listFolders()
	if err != nil {
		return Folder{}, false, err
	}
	for _, f := range fs {
		if f.ID == id {
			return f, true, nil
		}
	}
	return Folder{}, false, nil
}

// folderOfType returns the first listed folder of an EAS type.
func (s *session) folderOfType(t int) (Folder, bool, error) {
	fs, err := s.listFolders()
	if err != nil {
		return Folder{}, false, err
	}
	for _, f := range fs {
		if f.Type == t {
			return f, true, nil
		}
	}
	return Folder{}, false, nil
}

func folderElem(t wbxml.Tag, f Folder) *wbxml.Element {
	return wbxml.NewElement(t,
		text(wbxml.FolderHierarchyServerId, f.ID),
		text(wbxml.FolderHierarchyParentId, f.ParentID),
		text(wbxml.FolderHierarchyDisplayName, f.DisplayName),
		text(wbxml.FolderHierarchyType, f.Type))
}

func folderStatus(root wbxml.Tag, st int) (Response, error) {
	return wbxmlResponse(wbxml.NewElement(root, text(wbxml.FolderHierarchyStatus, st)))
}

func parseKey(s string) (uint64, bool) {
	if s == "0" {
		return 0, true
	}
	if s == "" || s[0] == '0' {
		return 0, false
	}
	k, err := strconv.ParseUint(s, 10, 64)
	return k, err == nil
}

// folderSync implements FolderSync (MS-ASCMD 2.2.1.5): key 0 sends the whole hierarchy, a
// current key the changes since, the previous key the previous answer again.
func (s *session) folderSync(body []byte) (Response, error) {
	root, err := parseBody(body, wbxml.FolderHierarchyFolderSync)
	if err != nil {
		return Response{}, err
	}
	keyEl := root.Find(wbxml.FolderHierarchySyncKey)
	if keyEl == nil {
		return folderStatus(wbxml.FolderHierarchyFolderSync, fsBadRequest)
	}
	key, ok := parseKey(keyEl.Text())
	if !ok {
		return folderStatus(wbxml.FolderHierarchyFolderSync, fsBadKey)
	}
	h, err := s.hierarchy()
	if err != nil {
		return Response{}, err
	}
	if key != 0 && key == h.PrevKey && h.LastAnswer != nil {
		return Response{Status: 200, ContentType: ContentTypeWBXML, Body: h.LastAnswer}, nil
	}
	if key != 0 && key != h.SyncKey {
		return folderStatus(wbxml.FolderHierarchyFolderSync, fsBadKey)
	}
	cur, err := s.listFolders()
	if err != nil {
		return Response{}, err
	}
	var known []Folder
	if key != 0 {
		known = h.Folders
	}
	changes := wbxml.NewElement(wbxml.FolderHierarchyChanges)
	var adds, updates, deletes []*wbxml.Element
	old := map[string]Folder{}
	for _, f := range known {
		old[f.ID] = f
	}
	seen := map[string]bool{}
	for _, f := range cur {
		seen[f.ID] = true
		o, ok := old[f.ID]
		switch {
		case !ok:
			adds = append(adds, folderElem(wbxml.FolderHierarchyAdd, f))
		case o.DisplayName != f.DisplayName || o.ParentID != f.ParentID || o.Type != f.Type:
			updates = append(updates, folderElem(wbxml.FolderHierarchyUpdate, f))
		}
	}
	for _, f := range known {
		if !seen[f.ID] {
			deletes = append(deletes, wbxml.NewElement(wbxml.FolderHierarchyDelete, text(wbxml.FolderHierarchyServerId, f.ID)))
		}
	}
	n := len(adds) + len(updates) + len(deletes)
	changes.Append(text(wbxml.FolderHierarchyCount, n))
	changes.Append(updates...)
	changes.Append(deletes...)
	changes.Append(adds...)
	newKey := key
	if n > 0 || key == 0 {
		newKey = max(h.Counter, h.SyncKey) + 1
	}
	resp, err := wbxmlResponse(wbxml.NewElement(wbxml.FolderHierarchyFolderSync,
		text(wbxml.FolderHierarchyStatus, fsOK),
		text(wbxml.FolderHierarchySyncKey, newKey),
		changes))
	if err != nil {
		return resp, err
	}
	if newKey != key {
		st := HierarchyState{SyncKey: newKey, PrevKey: key, LastAnswer: resp.Body, Counter: newKey, Folders: cur}
		if key == 0 {
			st.PrevKey, st.LastAnswer = 0, nil
		}
		if err := s.b.store.SaveHierarchy(s.ctx, s.user, s.device, st); err != nil {
			return Response{}, internal(err, "save hierarchy")
		}
	}
	return resp, nil
}

// hierarchyEdit checks the FolderCreate/Update/Delete SyncKey and returns the state to edit.
func (s *session) hierarchyEdit(root *wbxml.Element) (*HierarchyState, int) {
	key, ok := parseKey(root.Find(wbxml.FolderHierarchySyncKey).Text())
	h, err := s.hierarchy()
	if err != nil {
		return nil, fsServerError
	}
	if !ok || key == 0 || key != h.SyncKey {
		return nil, fsBadKey
	}
	return h, fsOK
}

// commitHierarchyEdit advances the hierarchy key after a device's own folder change, so that
// the change is not reported back to it by the next FolderSync.
func (s *session) commitHierarchyEdit(h *HierarchyState, folders []Folder) (uint64, error) {
	k := max(h.Counter, h.SyncKey) + 1
	st := HierarchyState{SyncKey: k, Counter: k, Folders: folders}
	if err := s.b.store.SaveHierarchy(s.ctx, s.user, s.device, st); err != nil {
		return 0, internal(err, "save hierarchy")
	}
	*h = st
	return k, nil
}

func (s *session) folderCreate(body []byte) (Response, error) {
	root, err := parseBody(body, wbxml.FolderHierarchyFolderCreate)
	if err != nil {
		return Response{}, err
	}
	h, st := s.hierarchyEdit(root)
	if st != fsOK {
		return folderStatus(wbxml.FolderHierarchyFolderCreate, st)
	}
	parent := root.Find(wbxml.FolderHierarchyParentId).Text()
	name := root.Find(wbxml.FolderHierarchyDisplayName).Text()
	if name == "" {
		return folderStatus(wbxml.FolderHierarchyFolderCreate, fsBadRequest)
	}
	delim, err := s.delimiter()
	if err != nil {
		return Response{}, err
	}
	if strings.ContainsRune(name, delim) {
		return folderStatus(wbxml.FolderHierarchyFolderCreate, fsBadRequest)
	}
	mbox := name
	if parent != "" && parent != "0" {
		p, ok, err := s.folderByID(parent)
		if err != nil {
			return Response{}, err
		}
		if !ok {
			return folderStatus(wbxml.FolderHierarchyFolderCreate, fsParentMissing)
		}
		mbox = p.Mailbox + string(delim) + name
	}
	fs, err := s.listFolders()
	if err != nil {
		return Response{}, err
	}
	for _, f := range fs {
		if f.Mailbox == mbox {
			return folderStatus(wbxml.FolderHierarchyFolderCreate, fsExists)
		}
	}
	c, _ := s.client()
	if err := c.Create(mbox, nil).Wait(); err != nil {
		if isNo(err) {
			return folderStatus(wbxml.FolderHierarchyFolderCreate, fsExists)
		}
		return Response{}, s.imapErr(err, "CREATE")
	}
	c.Subscribe(mbox).Wait()
	s.folders = nil
	fs, err = s.listFolders()
	if err != nil {
		return Response{}, err
	}
	var created Folder
	for _, f := range fs {
		if f.Mailbox == mbox {
			created = f
		}
	}
	if created.ID == "" {
		return folderStatus(wbxml.FolderHierarchyFolderCreate, fsServerError)
	}
	k, err := s.commitHierarchyEdit(h, append(slices.Clone(h.Folders), created))
	if err != nil {
		return Response{}, err
	}
	return wbxmlResponse(wbxml.NewElement(wbxml.FolderHierarchyFolderCreate,
		text(wbxml.FolderHierarchyStatus, fsOK),
		text(wbxml.FolderHierarchySyncKey, k),
		text(wbxml.FolderHierarchyServerId, created.ID)))
}

func (s *session) folderUpdate(body []byte) (Response, error) {
	root, err := parseBody(body, wbxml.FolderHierarchyFolderUpdate)
	if err != nil {
		return Response{}, err
	}
	h, st := s.hierarchyEdit(root)
	if st != fsOK {
		return folderStatus(wbxml.FolderHierarchyFolderUpdate, st)
	}
	f, ok, err := s.folderByID(root.Find(wbxml.FolderHierarchyServerId).Text())
	if err != nil {
		return Response{}, err
	}
	if !ok {
		return folderStatus(wbxml.FolderHierarchyFolderUpdate, fsNotFound)
	}
	if f.Type != typeUserMail {
		return folderStatus(wbxml.FolderHierarchyFolderUpdate, fsSpecial)
	}
	name := root.Find(wbxml.FolderHierarchyDisplayName).Text()
	parent := root.Find(wbxml.FolderHierarchyParentId).Text()
	delim, err := s.delimiter()
	if err != nil {
		return Response{}, err
	}
	if name == "" || strings.ContainsRune(name, delim) {
		return folderStatus(wbxml.FolderHierarchyFolderUpdate, fsBadRequest)
	}
	newName := name
	if parent != "" && parent != "0" {
		p, ok, err := s.folderByID(parent)
		if err != nil {
			return Response{}, err
		}
		if !ok || p.ID == f.ID {
			return folderStatus(wbxml.FolderHierarchyFolderUpdate, fsParentMissing)
		}
		newName = p.Mailbox + string(delim) + name
	}
	if newName != f.Mailbox {
		c, _ := s.client()
		if err := c.Rename(f.Mailbox, newName, nil).Wait(); err != nil {
			if isNo(err) {
				return folderStatus(wbxml.FolderHierarchyFolderUpdate, fsExists)
			}
			return Response{}, s.imapErr(err, "RENAME")
		}
		if err := s.b.store.RenameFolder(s.ctx, s.user, f.Mailbox, newName, delim); err != nil {
			return Response{}, internal(err, "rename folder state")
		}
	}
	s.folders = nil
	fs, err := s.listFolders()
	if err != nil {
		return Response{}, err
	}
	// The device now knows the renamed folder and its children under their new names.
	known := slices.Clone(h.Folders)
	for i := range known {
		for _, cur := range fs {
			if cur.ID == known[i].ID {
				known[i] = cur
			}
		}
	}
	k, err := s.commitHierarchyEdit(h, known)
	if err != nil {
		return Response{}, err
	}
	return wbxmlResponse(wbxml.NewElement(wbxml.FolderHierarchyFolderUpdate,
		text(wbxml.FolderHierarchyStatus, fsOK),
		text(wbxml.FolderHierarchySyncKey, k)))
}

func (s *session) folderDelete(body []byte) (Response, error) {
	root, err := parseBody(body, wbxml.FolderHierarchyFolderDelete)
	if err != nil {
		return Response{}, err
	}
	h, st := s.hierarchyEdit(root)
	if st != fsOK {
		return folderStatus(wbxml.FolderHierarchyFolderDelete, st)
	}
	f, ok, err := s.folderByID(root.Find(wbxml.FolderHierarchyServerId).Text())
	if err != nil {
		return Response{}, err
	}
	if !ok {
		return folderStatus(wbxml.FolderHierarchyFolderDelete, fsNotFound)
	}
	if f.Type != typeUserMail {
		return folderStatus(wbxml.FolderHierarchyFolderDelete, fsSpecial)
	}
	delim, err := s.delimiter()
	if err != nil {
		return Response{}, err
	}
	fs, err := s.listFolders()
	if err != nil {
		return Response{}, err
	}
	// IMAP DELETE leaves children (RFC 3501 6.3.4); EAS deletes the subtree. Children first.
	prefix := f.Mailbox + string(delim)
	var victims []Folder
	for _, x := range fs {
		if strings.HasPrefix(x.Mailbox, prefix) {
			victims = append(victims, x)
		}
	}
	slices.SortFunc(victims, func(a, b Folder) int { return len(b.Mailbox) - len(a.Mailbox) })
	victims = append(victims, f)
	c, _ := s.client()
	gone := map[string]bool{}
	for _, v := range victims {
		if err := c.Delete(v.Mailbox).Wait(); err != nil {
			if isNo(err) {
				return folderStatus(wbxml.FolderHierarchyFolderDelete, fsServerError)
			}
			return Response{}, s.imapErr(err, "DELETE")
		}
		gone[v.ID] = true
		if err := s.b.store.DeleteCollection(s.ctx, s.user, s.device, v.ID); err != nil {
			return Response{}, internal(err, "delete collection state")
		}
	}
	s.folders = nil
	known := slices.DeleteFunc(slices.Clone(h.Folders), func(x Folder) bool { return gone[x.ID] })
	k, err := s.commitHierarchyEdit(h, known)
	if err != nil {
		return Response{}, err
	}
	return wbxmlResponse(wbxml.NewElement(wbxml.FolderHierarchyFolderDelete,
		text(wbxml.FolderHierarchyStatus, fsOK),
		text(wbxml.FolderHierarchySyncKey, k)))
}
