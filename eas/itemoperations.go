package eas

import "github.com/easgate/easgate/eas/wbxml"

// ItemOperations is the body of an ItemOperations request or response (MS-ASCMD
// 2.2.1.10). A request lists Fetch, EmptyFolderContents and Move operations under the root;
// a response has a global Status and the per-operation results under Response.
type ItemOperations struct {
	Status     Status // response
	Operations []*ItemOperation
	// Response records that Operations live under a Response element (a response body).
	Response bool

	src  source
	elem *wbxml.Element
}

// ItemOperation is one Fetch, EmptyFolderContents or Move.
type ItemOperation struct {
	Op            wbxml.Tag // ItemOperationsFetch, ItemOperationsEmptyFolderContents, ItemOperationsMove
	Store         string    // Fetch: "Mailbox" or "DocumentLibrary"
	ServerID      string    // airsync:ServerId
	CollectionID  string    // airsync:CollectionId (Fetch, EmptyFolderContents)
	LongID        string    // search:LongId
	FileReference string    // airsyncbase:FileReference
	LinkID        string    // documentlibrary:LinkId
	// Options is the Fetch or EmptyFolderContents Options element (BodyPreference,
	// Range, Schema, rm:RightsManagementSupport, DeleteSubFolders ...), kept as a tree.
	Options        *wbxml.Element
	ConversationID string // Move
	DstFldID       string // Move
	Status         Status // response
	// Properties is a Fetch result's Properties element (the item or the attachment's
	// Data), kept as a tree.
	Properties *wbxml.Element

	elem *wbxml.Element
}

func isItemOp(t wbxml.Tag) bool {
	return t == wbxml.ItemOperationsFetch || t == wbxml.ItemOperationsEmptyFolderContents || t == wbxml.ItemOperationsMove
}

// ParseItemOperations reads an ItemOperations request or response body.
func ParseItemOperations(doc *wbxml.Document) (*ItemOperations, error) {
	root, err := rootOf(doc, wbxml.ItemOperationsItemOperations)
	if err != nil {
		return nil, err
	}
	io := &ItemOperations{elem: root}
	io.src.set(doc)
	var fe firstErr
	io.Status = fe.status(root, wbxml.ItemOperationsStatus)
	parent := root
	if r := root.Find(wbxml.ItemOperationsResponse); r != nil {
		parent, io.Response = r, true
	}
	for _, c := range parent.Children {
		if !isItemOp(c.Tag) {
			continue
		}
		io.Operations = append(io.Operations, &ItemOperation{elem: c, Op: c.Tag,
			Store: text(c, wbxml.ItemOperationsStore), ServerID: text(c, wbxml.AirSyncServerId),
			CollectionID: text(c, wbxml.AirSyncCollectionId), LongID: text(c, wbxml.SearchLongId),
			FileReference: text(c, wbxml.AirSyncBaseFileReference), LinkID: text(c, wbxml.DocumentLibraryLinkId),
			Options: c.Find(wbxml.ItemOperationsOptions), ConversationID: text(c, wbxml.ItemOperationsConversationId),
			DstFldID: text(c, wbxml.ItemOperationsDstFldId), Status: fe.status(c, wbxml.ItemOperationsStatus),
			Properties: c.Find(wbxml.ItemOperationsProperties)})
	}
	if fe.err != nil {
		return nil, fe.err
	}
	return io, nil
}

func (o *ItemOperation) element() *wbxml.Element {
	e := o.elem
	if e == nil || e.Tag != o.Op {
		e = wbxml.NewElement(o.Op)
	}
	o.elem = e
	setStatus(e, wbxml.ItemOperationsStatus, o.Status)
	setText(e, wbxml.ItemOperationsStore, o.Store)
	setText(e, wbxml.AirSyncCollectionId, o.CollectionID)
	setText(e, wbxml.AirSyncServerId, o.ServerID)
	setText(e, wbxml.SearchLongId, o.LongID)
	setText(e, wbxml.AirSyncBaseFileReference, o.FileReference)
	setText(e, wbxml.DocumentLibraryLinkId, o.LinkID)
	setText(e, wbxml.ItemOperationsConversationId, o.ConversationID)
	setText(e, wbxml.ItemOperationsDstFldId, o.DstFldID)
	setChild(e, wbxml.ItemOperationsOptions, o.Options)
	setChild(e, wbxml.ItemOperationsProperties, o.Properties)
	return e
}

// Document builds the ItemOperations body, reusing the parsed tree when there is one.
func (io *ItemOperations) Document() *wbxml.Document {
	e := elemOr(io.elem, wbxml.ItemOperationsItemOperations)
	io.elem = e
	setStatus(e, wbxml.ItemOperationsStatus, io.Status)
	parent := e
	if io.Response {
		parent = e.Find(wbxml.ItemOperationsResponse)
		if parent == nil {
			parent = wbxml.NewElement(wbxml.ItemOperationsResponse)
			e.Append(parent)
		}
	}
	items := make([]*wbxml.Element, len(io.Operations))
	for i, op := range io.Operations {
		items[i] = op.element()
	}
	replaceMatching(parent, isItemOp, items)
	return io.src.document(e)
}

// AppendTo encodes the body (see Document) and appends it to dst.
func (io *ItemOperations) AppendTo(dst []byte) ([]byte, error) { return io.Document().Encode(dst) }
