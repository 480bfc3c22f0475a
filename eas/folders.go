package eas

import (
	"strconv"

	"github.com/easgate/easgate/eas/wbxml"
)

// FolderSync is the body of a FolderSync request (SyncKey) or response (Status, SyncKey,
// Changes) (MS-ASCMD 2.2.1.5).
type FolderSync struct {
	Status  Status
	SyncKey string
	// Changes is nil when the body has no Changes element.
	Changes *FolderChanges

	src  source
	elem *wbxml.Element
}

// FolderChanges is FolderSync's Changes element: the Count and the Add, Update and Delete
// entries in document order.
type FolderChanges struct {
	Count   *int64
	Entries []*FolderChange
	elem    *wbxml.Element
}

// FolderChange is one Add, Update or Delete of a FolderSync response. Delete carries only
// ServerId.
type FolderChange struct {
	Op          wbxml.Tag // FolderHierarchyAdd, FolderHierarchyUpdate or FolderHierarchyDelete
	ServerID    string
	ParentID    string
	DisplayName string
	// Type is the folder type (MS-ASCMD 2.2.3.186.3: 1 user-created generic, 2 Inbox,
	// ... 12 user-created mail, 19 user-created contacts); 0 absent, -1 sent empty.
	Type int
	elem *wbxml.Element
}

// ParseFolderSync reads a FolderSync request or response body.
func ParseFolderSync(doc *wbxml.Document) (*FolderSync, error) {
	root, err := rootOf(doc, wbxml.FolderHierarchyFolderSync)
	if err != nil {
		return nil, err
	}
	f := &FolderSync{elem: root, SyncKey: text(root, wbxml.FolderHierarchySyncKey)}
	f.src.set(doc)
	var fe firstErr
	f.Status = fe.status(root, wbxml.FolderHierarchyStatus)
	if ch := root.Find(wbxml.FolderHierarchyChanges); ch != nil {
		f.Changes = &FolderChanges{elem: ch, Count: fe.int(ch, wbxml.FolderHierarchyCount)}
		for _, c := range ch.Children {
			switch c.Tag {
			case wbxml.FolderHierarchyAdd, wbxml.FolderHierarchyUpdate, wbxml.FolderHierarchyDelete:
				fc := &FolderChange{elem: c, Op: c.Tag, ServerID: text(c, wbxml.FolderHierarchyServerId),
					ParentID: text(c, wbxml.FolderHierarchyParentId), DisplayName: text(c, wbxml.FolderHierarchyDisplayName)}
				if t := fe.int(c, wbxml.FolderHierarchyType); t != nil {
					fc.Type = int(*t)
				}
				f.Changes.Entries = append(f.Changes.Entries, fc)
			}
		}
	}
	if fe.err != nil {
		return nil, fe.err
	}
	return f, nil
}

func (c *FolderChange) element() *wbxml.Element {
	e := c.elem
	if e == nil || e.Tag != c.Op {
		e = wbxml.NewElement(c.Op)
	}
	c.elem = e
	setText(e, wbxml.FolderHierarchyServerId, c.ServerID)
	setText(e, wbxml.FolderHierarchyParentId, c.ParentID)
	setText(e, wbxml.FolderHierarchyDisplayName, c.DisplayName)
	switch cur, _ := optInt(e, wbxml.FolderHierarchyType); {
	case cur != nil && *cur == int64(c.Type):
	case c.Type == 0:
		remove(e, wbxml.FolderHierarchyType)
	default:
		setTextPresent(e, wbxml.FolderHierarchyType, strconv.Itoa(c.Type))
	}
	return e
}

func isFolderChange(t wbxml.Tag) bool {
	return t == wbxml.FolderHierarchyAdd || t == wbxml.FolderHierarchyUpdate || t == wbxml.FolderHierarchyDelete
}

// Document builds the FolderSync body, reusing the parsed tree when there is one.
func (f *FolderSync) Document() *wbxml.Document {
	e := elemOr(f.elem, wbxml.FolderHierarchyFolderSync)
	f.elem = e
	setStatus(e, wbxml.FolderHierarchyStatus, f.Status)
	setText(e, wbxml.FolderHierarchySyncKey, f.SyncKey)
	if f.Changes == nil {
		remove(e, wbxml.FolderHierarchyChanges)
	} else {
		ch := elemOr(f.Changes.elem, wbxml.FolderHierarchyChanges)
		f.Changes.elem = ch
		setOptInt(ch, wbxml.FolderHierarchyCount, f.Changes.Count)
		items := make([]*wbxml.Element, len(f.Changes.Entries))
		for i, fc := range f.Changes.Entries {
			items[i] = fc.element()
		}
		replaceMatching(ch, isFolderChange, items)
		setChild(e, wbxml.FolderHierarchyChanges, ch)
	}
	return f.src.document(e)
}

// AppendTo encodes the body (see Document) and appends it to dst.
func (f *FolderSync) AppendTo(dst []byte) ([]byte, error) { return f.Document().Encode(dst) }

// Ping is the body of a Ping request (HeartbeatInterval, Folders) or response (Status,
// Folders with the changed folder IDs, HeartbeatInterval, MaxFolders) (MS-ASCMD 2.2.1.13).
// A request may have no body at all: the server then reuses the previous one.
type Ping struct {
	Status            Status
	HeartbeatInterval *int64 // seconds
	MaxFolders        *int64
	// Folders is nil when the body has no Folders element.
	Folders []PingFolder

	src  source
	elem *wbxml.Element
}

// PingFolder is one monitored folder: Folder/Id and Folder/Class in a request, Folder
// holding just the folder ID in a response.
type PingFolder struct {
	ID    string
	Class string // "Email", "Calendar", "Contacts", "Tasks", "Notes"; request only
}

// ParsePing reads a Ping request or response body.
func ParsePing(doc *wbxml.Document) (*Ping, error) {
	root, err := rootOf(doc, wbxml.PingPing)
	if err != nil {
		return nil, err
	}
	p := &Ping{elem: root}
	p.src.set(doc)
	var fe firstErr
	p.Status = fe.status(root, wbxml.PingStatus)
	p.HeartbeatInterval = fe.int(root, wbxml.PingHeartbeatInterval)
	p.MaxFolders = fe.int(root, wbxml.PingMaxFolders)
	if fs := root.Find(wbxml.PingFolders); fs != nil {
		p.Folders = []PingFolder{}
		for _, f := range fs.FindAll(wbxml.PingFolder) {
			if len(f.Children) == 0 {
				p.Folders = append(p.Folders, PingFolder{ID: f.Text()})
				continue
			}
			p.Folders = append(p.Folders, PingFolder{ID: text(f, wbxml.PingId), Class: text(f, wbxml.PingClass)})
		}
	}
	if fe.err != nil {
		return nil, fe.err
	}
	return p, nil
}

func (p *Ping) foldersFrom(e *wbxml.Element) []PingFolder {
	pp, _ := ParsePing(&wbxml.Document{Root: e})
	if pp == nil {
		return nil
	}
	return pp.Folders
}

// Document builds the Ping body, reusing the parsed tree when there is one.
func (p *Ping) Document() *wbxml.Document {
	e := elemOr(p.elem, wbxml.PingPing)
	p.elem = e
	setStatus(e, wbxml.PingStatus, p.Status)
	setOptInt(e, wbxml.PingHeartbeatInterval, p.HeartbeatInterval)
	if p.Folders == nil {
		remove(e, wbxml.PingFolders)
	} else if old := p.foldersFrom(e); old == nil || !equalPingFolders(old, p.Folders) {
		fs := wbxml.NewElement(wbxml.PingFolders)
		for _, f := range p.Folders {
			if f.Class == "" {
				fs.Append(wbxml.NewText(wbxml.PingFolder, f.ID))
				continue
			}
			fs.Append(wbxml.NewElement(wbxml.PingFolder, wbxml.NewText(wbxml.PingId, f.ID), wbxml.NewText(wbxml.PingClass, f.Class)))
		}
		setChild(e, wbxml.PingFolders, fs)
	}
	setOptInt(e, wbxml.PingMaxFolders, p.MaxFolders)
	return p.src.document(e)
}

func equalPingFolders(a, b []PingFolder) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// AppendTo encodes the body (see Document) and appends it to dst.
func (p *Ping) AppendTo(dst []byte) ([]byte, error) { return p.Document().Encode(dst) }
