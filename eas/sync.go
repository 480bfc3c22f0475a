package eas

import "github.com/easgate/easgate/eas/wbxml"

// Sync is the body of a Sync request or response (MS-ASCMD 2.2.1.21).
type Sync struct {
	Status            Status // response: a request-level failure
	Wait              *int64 // minutes (request)
	HeartbeatInterval *int64 // seconds (request)
	WindowSize        *int64
	Partial           bool
	// Collections is nil when the body has no Collections element (an empty request
	// that repeats the cached one).
	Collections []*SyncCollection

	src  source
	elem *wbxml.Element
}

// SyncCollection is one Collections/Collection element.
type SyncCollection struct {
	SyncKey          string
	CollectionID     string
	Class            string // 2.5 and 12.x requests
	GetChanges       *bool  // an empty GetChanges element reads as true
	WindowSize       *int64
	DeletesAsMoves   *bool // an empty DeletesAsMoves element reads as true
	ConversationMode *bool
	Options          []*SyncOptions
	// Commands holds the client's (request) or server's (response) Add, Change, Delete,
	// SoftDelete and Fetch operations; nil when there is no Commands element.
	Commands []*SyncCommand
	// Responses holds the server's answers to the client's commands (response).
	Responses     []*SyncCommand
	Status        Status // response
	MoreAvailable bool   // response

	elem *wbxml.Element
}

// SyncOptions is one Options element of a collection (MS-ASCMD 2.2.3.125.6).
type SyncOptions struct {
	Class                   string
	FilterType              *int64 // 0 all ... 8 incomplete tasks (MS-ASCMD 2.2.3.70.2)
	Conflict                *int64
	MIMESupport             *int64 // 0 never, 1 S/MIME only, 2 always
	MIMETruncation          *int64
	MaxItems                *int64
	BodyPreferences         []*BodyPreference
	RightsManagementSupport *bool

	elem *wbxml.Element
}

// BodyPreference is airsyncbase:BodyPreference (MS-ASAIRS 2.2.2.7).
type BodyPreference struct {
	Type           int64 // 1 plain text, 2 HTML, 3 RTF, 4 MIME; 0 absent
	TruncationSize *int64
	AllOrNone      *bool
	Preview        *int64
	elem           *wbxml.Element
}

// SyncCommand is one Add, Change, Delete, SoftDelete or Fetch of a collection's Commands
// or Responses. ApplicationData is the item itself, kept as a tree (its schema belongs to
// the item's class: MS-ASEMAIL, MS-ASCAL, ...).
type SyncCommand struct {
	Op              wbxml.Tag // AirSyncAdd, AirSyncChange, AirSyncDelete, AirSyncSoftDelete, AirSyncFetch
	ServerID        string
	ClientID        string
	Class           string
	Status          Status
	ApplicationData *wbxml.Element

	elem *wbxml.Element
}

func isSyncOp(t wbxml.Tag) bool {
	switch t {
	case wbxml.AirSyncAdd, wbxml.AirSyncChange, wbxml.AirSyncDelete, wbxml.AirSyncSoftDelete, wbxml.AirSyncFetch:
		return true
	}
	return false
}

// optFlag reads a boolean element for which an empty element means true.
func optFlag(e *wbxml.Element, t wbxml.Tag) (*bool, error) {
	c := e.Find(t)
	if c == nil {
		return nil, nil
	}
	if c.Text() == "" {
		return Ptr(true), nil
	}
	return optBool(e, t)
}

func setOptFlag(e *wbxml.Element, t wbxml.Tag, v *bool) {
	if cur, err := optFlag(e, t); err == nil && v != nil && cur != nil && *cur == *v {
		return
	}
	setOptBool(e, t, v)
}

// ParseSync reads a Sync request or response body.
func ParseSync(doc *wbxml.Document) (*Sync, error) {
	root, err := rootOf(doc, wbxml.AirSyncSync)
	if err != nil {
		return nil, err
	}
	s := &Sync{elem: root, Partial: has(root, wbxml.AirSyncPartial)}
	s.src.set(doc)
	var fe firstErr
	s.Status = fe.status(root, wbxml.AirSyncStatus)
	s.Wait = fe.int(root, wbxml.AirSyncWait)
	s.HeartbeatInterval = fe.int(root, wbxml.AirSyncHeartbeatInterval)
	s.WindowSize = fe.int(root, wbxml.AirSyncWindowSize)
	if cs := root.Find(wbxml.AirSyncCollections); cs != nil {
		s.Collections = []*SyncCollection{}
		for _, ce := range cs.FindAll(wbxml.AirSyncCollection) {
			s.Collections = append(s.Collections, parseSyncCollection(ce, &fe))
		}
	}
	if fe.err != nil {
		return nil, fe.err
	}
	return s, nil
}

func parseSyncCollection(e *wbxml.Element, fe *firstErr) *SyncCollection {
	c := &SyncCollection{elem: e, SyncKey: text(e, wbxml.AirSyncSyncKey), CollectionID: text(e, wbxml.AirSyncCollectionId),
		Class: text(e, wbxml.AirSyncClass), MoreAvailable: has(e, wbxml.AirSyncMoreAvailable)}
	var err error
	c.GetChanges, err = optFlag(e, wbxml.AirSyncGetChanges)
	fe.keep(err)
	c.DeletesAsMoves, err = optFlag(e, wbxml.AirSyncDeletesAsMoves)
	fe.keep(err)
	c.ConversationMode, err = optFlag(e, wbxml.AirSyncConversationMode)
	fe.keep(err)
	c.WindowSize = fe.int(e, wbxml.AirSyncWindowSize)
	c.Status = fe.status(e, wbxml.AirSyncStatus)
	for _, o := range e.FindAll(wbxml.AirSyncOptions) {
		opt := &SyncOptions{elem: o, Class: text(o, wbxml.AirSyncClass), FilterType: fe.int(o, wbxml.AirSyncFilterType),
			Conflict: fe.int(o, wbxml.AirSyncConflict), MIMESupport: fe.int(o, wbxml.AirSyncMIMESupport),
			MIMETruncation: fe.int(o, wbxml.AirSyncMIMETruncation), MaxItems: fe.int(o, wbxml.AirSyncMaxItems),
			RightsManagementSupport: fe.bool(o, wbxml.RightsManagementRightsManagementSupport)}
		for _, bp := range o.FindAll(wbxml.AirSyncBaseBodyPreference) {
			p := &BodyPreference{elem: bp, TruncationSize: fe.int(bp, wbxml.AirSyncBaseTruncationSize),
				AllOrNone: fe.bool(bp, wbxml.AirSyncBaseAllOrNone), Preview: fe.int(bp, wbxml.AirSyncBasePreview)}
			if t := fe.int(bp, wbxml.AirSyncBaseType); t != nil {
				p.Type = *t
			}
			opt.BodyPreferences = append(opt.BodyPreferences, p)
		}
		c.Options = append(c.Options, opt)
	}
	c.Commands = parseSyncOps(e.Find(wbxml.AirSyncCommands), fe)
	c.Responses = parseSyncOps(e.Find(wbxml.AirSyncResponses), fe)
	return c
}

func parseSyncOps(e *wbxml.Element, fe *firstErr) []*SyncCommand {
	if e == nil {
		return nil
	}
	out := []*SyncCommand{}
	for _, op := range e.Children {
		if !isSyncOp(op.Tag) {
			continue
		}
		out = append(out, &SyncCommand{elem: op, Op: op.Tag, ServerID: text(op, wbxml.AirSyncServerId),
			ClientID: text(op, wbxml.AirSyncClientId), Class: text(op, wbxml.AirSyncClass),
			Status: fe.status(op, wbxml.AirSyncStatus), ApplicationData: op.Find(wbxml.AirSyncApplicationData)})
	}
	return out
}

func (c *SyncCommand) element() *wbxml.Element {
	e := c.elem
	if e == nil || e.Tag != c.Op {
		e = wbxml.NewElement(c.Op)
	}
	c.elem = e
	setText(e, wbxml.AirSyncClass, c.Class)
	setText(e, wbxml.AirSyncServerId, c.ServerID)
	setText(e, wbxml.AirSyncClientId, c.ClientID)
	setStatus(e, wbxml.AirSyncStatus, c.Status)
	setChild(e, wbxml.AirSyncApplicationData, c.ApplicationData)
	return e
}

func setSyncOps(parent *wbxml.Element, t wbxml.Tag, ops []*SyncCommand) {
	if ops == nil {
		remove(parent, t)
		return
	}
	e := parent.Find(t)
	if e == nil {
		e = wbxml.NewElement(t)
		parent.Append(e)
	}
	items := make([]*wbxml.Element, len(ops))
	for i, op := range ops {
		items[i] = op.element()
	}
	replaceMatching(e, isSyncOp, items)
}

func (o *SyncOptions) element() *wbxml.Element {
	e := elemOr(o.elem, wbxml.AirSyncOptions)
	o.elem = e
	setText(e, wbxml.AirSyncClass, o.Class)
	setOptInt(e, wbxml.AirSyncFilterType, o.FilterType)
	setOptInt(e, wbxml.AirSyncConflict, o.Conflict)
	setOptInt(e, wbxml.AirSyncMIMESupport, o.MIMESupport)
	setOptInt(e, wbxml.AirSyncMIMETruncation, o.MIMETruncation)
	setOptInt(e, wbxml.AirSyncMaxItems, o.MaxItems)
	bps := make([]*wbxml.Element, len(o.BodyPreferences))
	for i, bp := range o.BodyPreferences {
		be := elemOr(bp.elem, wbxml.AirSyncBaseBodyPreference)
		bp.elem = be
		if cur, _ := optInt(be, wbxml.AirSyncBaseType); bp.Type != 0 || (cur != nil && *cur != 0) {
			setOptInt(be, wbxml.AirSyncBaseType, &bp.Type)
		}
		setOptInt(be, wbxml.AirSyncBaseTruncationSize, bp.TruncationSize)
		setOptBool(be, wbxml.AirSyncBaseAllOrNone, bp.AllOrNone)
		setOptInt(be, wbxml.AirSyncBasePreview, bp.Preview)
		bps[i] = be
	}
	setList(e, wbxml.AirSyncBaseBodyPreference, bps)
	setOptBool(e, wbxml.RightsManagementRightsManagementSupport, o.RightsManagementSupport)
	return e
}

func (c *SyncCollection) element() *wbxml.Element {
	e := elemOr(c.elem, wbxml.AirSyncCollection)
	c.elem = e
	setText(e, wbxml.AirSyncClass, c.Class)
	setText(e, wbxml.AirSyncSyncKey, c.SyncKey)
	setText(e, wbxml.AirSyncCollectionId, c.CollectionID)
	setStatus(e, wbxml.AirSyncStatus, c.Status)
	setOptFlag(e, wbxml.AirSyncDeletesAsMoves, c.DeletesAsMoves)
	setOptFlag(e, wbxml.AirSyncGetChanges, c.GetChanges)
	setOptInt(e, wbxml.AirSyncWindowSize, c.WindowSize)
	setOptFlag(e, wbxml.AirSyncConversationMode, c.ConversationMode)
	opts := make([]*wbxml.Element, len(c.Options))
	for i, o := range c.Options {
		opts[i] = o.element()
	}
	setList(e, wbxml.AirSyncOptions, opts)
	setFlag(e, wbxml.AirSyncMoreAvailable, c.MoreAvailable)
	setSyncOps(e, wbxml.AirSyncCommands, c.Commands)
	setSyncOps(e, wbxml.AirSyncResponses, c.Responses)
	return e
}

// Document builds the Sync body, reusing the parsed tree when there is one.
func (s *Sync) Document() *wbxml.Document {
	e := elemOr(s.elem, wbxml.AirSyncSync)
	s.elem = e
	setStatus(e, wbxml.AirSyncStatus, s.Status)
	if s.Collections == nil {
		remove(e, wbxml.AirSyncCollections)
	} else {
		cs := e.Find(wbxml.AirSyncCollections)
		if cs == nil {
			cs = wbxml.NewElement(wbxml.AirSyncCollections)
			e.Append(cs)
		}
		items := make([]*wbxml.Element, len(s.Collections))
		for i, c := range s.Collections {
			items[i] = c.element()
		}
		setList(cs, wbxml.AirSyncCollection, items)
	}
	setOptInt(e, wbxml.AirSyncWait, s.Wait)
	setOptInt(e, wbxml.AirSyncHeartbeatInterval, s.HeartbeatInterval)
	setOptInt(e, wbxml.AirSyncWindowSize, s.WindowSize)
	setFlag(e, wbxml.AirSyncPartial, s.Partial)
	return s.src.document(e)
}

// AppendTo encodes the body (see Document) and appends it to dst.
func (s *Sync) AppendTo(dst []byte) ([]byte, error) { return s.Document().Encode(dst) }
