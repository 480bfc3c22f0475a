package imap

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/easgate/easgate/eas/wbxml"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// GetItemEstimate status values (MS-ASCMD 2.2.3.177.6).
const (
	gieOK         = 1
	gieBadColl    = 2
	gieNotPrimed  = 3
	gieBadSyncKey = 4
)

// getItemEstimate implements GetItemEstimate (MS-ASCMD 2.2.1.9): the number of changes the next
// Sync of each collection would bring.
func (s *session) getItemEstimate(body []byte) (Response, error) {
	root, err := parseBody(body, wbxml.GetItemEstimateGetItemEstimate)
	if err != nil {
		return Response{}, err
	}
	out := wbxml.NewElement(wbxml.GetItemEstimateGetItemEstimate)
	for _, c := range root.Path(wbxml.GetItemEstimateCollections).FindAll(wbxml.GetItemEstimateCollection) {
		id := c.Find(wbxml.GetItemEstimateCollectionId).Text()
		key := c.Find(wbxml.AirSyncSyncKey).Text()
		filter := atoi(c.Path(wbxml.AirSyncOptions, wbxml.AirSyncFilterType).Text())
		if ft := c.Find(wbxml.AirSyncFilterType); ft != nil {
			filter = atoi(ft.Text())
		}
		resp := func(st int, est int) *wbxml.Element {
			r := wbxml.NewElement(wbxml.GetItemEstimateResponse, text(wbxml.GetItemEstimateStatus, st))
			ce := wbxml.NewElement(wbxml.GetItemEstimateCollection, text(wbxml.GetItemEstimateCollectionId, id))
			if st == gieOK {
				ce.Append(text(wbxml.GetItemEstimateEstimate, est))
			}
			return r.Append(ce)
		}
		st, err := s.b.store.Collection(s.ctx, s.user, s.device, id)
		if err != nil {
			return Response{}, internal(err, "collection state")
		}
		k, ok := parseKey(key)
		switch {
		case !ok || (key != "" && k != st.SyncKey && k != 0):
			out.Append(resp(gieBadSyncKey, 0))
			continue
		case st.SyncKey == 0 || k == 0:
			out.Append(resp(gieNotPrimed, 0))
			continue
		}
		f, found, err := s.folderByID(id)
		if err != nil {
			return Response{}, err
		}
		if !found {
			out.Append(resp(gieBadColl, 0))
			continue
		}
		c, err := s.client()
		if err != nil {
			return Response{}, err
		}
		s.reselect()
		sel, err := s.selectMailbox(f.Mailbox)
		if err != nil {
			if isNo(err) {
				out.Append(resp(gieBadColl, 0))
				continue
			}
			return Response{}, s.imapErr(err, "SELECT")
		}
		if sel.UIDValidity != st.UIDValidity && st.UIDValidity != 0 {
			out.Append(resp(gieBadSyncKey, 0))
			continue
		}
		known, err := s.b.store.Items(s.ctx, s.user, s.device, id)
		if err != nil {
			return Response{}, internal(err, "items")
		}
		modseq := uint64(0)
		if st.ModSeq != 0 && st.UIDValidity == sel.UIDValidity {
			modseq = st.ModSeq
		}
		all, flags, err := s.mailboxState(c, sel, filter, modseq)
		if err != nil {
			return Response{}, err
		}
		n := 0
		in := make(map[uint32]bool, len(all))
		for _, u := range all {
			in[uint32(u)] = true
			if f, held := known[uint32(u)]; !held {
				n++
			} else if nf, ok := flags[u]; ok && nf != f {
				n++
			}
		}
		for u := range known {
			if !in[u] {
				n++
			}
		}
		out.Append(resp(gieOK, n))
	}
	return wbxmlResponse(out)
}

// ItemOperations status values (MS-ASCMD 2.2.3.177.8).
const (
	ioOK          = 1
	ioProtocol    = 2
	ioServerError = 3
	ioBadStore    = 9
	ioNotFound    = 6
	ioBadAttach   = 15 // attachment or attachment ID invalid
)

// itemOperations implements ItemOperations (MS-ASCMD 2.2.1.10): Fetch of a message (by
// CollectionId + ServerId, or LongId from Search) or of an attachment (FileReference), and
// EmptyFolderContents. With MS-ASAcceptMultiPart the fetched data travels in parts
// (MS-ASCMD 2.2.1.10.1); large parts are spooled to temporary files and streamed from there
// (see stream.go), so the response is a Response.Reader.
func (s *session) itemOperations(body []byte) (resp Response, err error) {
	root, err := parseBody(body, wbxml.ItemOperationsItemOperations)
	if err != nil {
		return Response{}, err
	}
	st := &ioState{inlineLeft: s.b.cfg.MaxInlineAttachment, spoolLeft: s.b.cfg.MaxAttachment}
	defer func() {
		if err != nil || resp.Reader == nil {
			st.closeFiles()
		}
	}()
	out := wbxml.NewElement(wbxml.ItemOperationsResponse)
	for _, op := range root.Children {
		switch op.Tag {
		case wbxml.ItemOperationsFetch:
			el, err := s.ioFetch(op, st)
			if err != nil {
				return Response{}, err
			}
			out.Append(el)
		case wbxml.ItemOperationsEmptyFolderContents:
			// Operations run in order: a pending attachment is fetched before the folder
			// holding it may be emptied.
			if err := s.fetchPending(st, false); err != nil {
				return Response{}, err
			}
			el, err := s.ioEmpty(op)
			if err != nil {
				return Response{}, err
			}
			out.Append(el)
		default:
			out.Append(wbxml.NewElement(op.Tag, text(wbxml.ItemOperationsStatus, ioProtocol)))
		}
	}
	if err := s.fetchPending(st, true); err != nil {
		return Response{}, err
	}
	doc := wbxml.NewElement(wbxml.ItemOperationsItemOperations, text(wbxml.ItemOperationsStatus, ioOK), out)
	if !s.req.AcceptMultiPart {
		return wbxmlResponse(doc)
	}
	head, err := wbxml.NewDocument(doc).Encode(nil)
	if err != nil {
		return Response{}, internal(err, "encode response")
	}
	parts := append([]spool{{data: head, size: int64(len(head))}}, st.parts...)
	frame := multipartHeader(parts)
	if !st.streams() {
		b := frame
		for _, p := range parts {
			b = append(b, p.data...)
		}
		return Response{Status: http.StatusOK, ContentType: ContentTypeMultipart, Body: b}, nil
	}
	readers := []io.Reader{bytes.NewReader(frame)}
	length := int64(len(frame))
	ms := &multipartStream{}
	for _, p := range parts {
		readers = append(readers, p.reader())
		length += p.size
		if c := p.closer(); c != nil {
			ms.closers = append(ms.closers, c)
		}
	}
	ms.Reader = io.MultiReader(readers...)
	return Response{Status: http.StatusOK, ContentType: ContentTypeMultipart, Reader: ms, Length: length}, nil
}

// ioState is what the operations of one ItemOperations request share: the multipart parts,
// the attachment whose fetch waits for the end of the request, and what is left of the
// inline and spool budgets.
type ioState struct {
	parts      []spool
	last       *pendingPart
	inlineLeft int64 // decoded attachment bytes still allowed inline (Config.MaxInlineAttachment)
	spoolLeft  int64 // decoded attachment bytes still allowed in parts (Config.MaxAttachment)
}

// pendingPart is the latest attachment of a multipart response. It is fetched when the next
// attachment comes (spooled) or after the last operation (streamed when its exact size is
// known at the literal's start); its Fetch element is filled in then, and it holds the last
// slot of parts.
type pendingPart struct {
	p    *partRef
	ref  string
	res  *wbxml.Element
	slot int
}

func (st *ioState) streams() bool {
	return slices.ContainsFunc(st.parts, func(p spool) bool { return p.file != nil || p.stream != nil })
}

func (st *ioState) closeFiles() {
	for _, p := range st.parts {
		if c := p.closer(); c != nil {
			c.Close()
		}
	}
}

// fetchPending fetches the pending attachment part; last is true after the final operation.
func (s *session) fetchPending(st *ioState, last bool) error {
	d := st.last
	if d == nil {
		return nil
	}
	st.last = nil
	var sp spool
	status := ioOK
	if last && d.p.exact() && !d.p.small() {
		pr, stt, err := s.openStream(d.p)
		if err != nil {
			return err
		}
		status = stt
		if status == ioOK && pr.size > st.spoolLeft {
			pr.close(s.cn)
			s.dropBroken()
			status = ioTooLarge
		}
		if status == ioOK {
			a, err := s.handOff(pr)
			if err != nil {
				return err
			}
			sp = spool{stream: a, size: pr.size}
		}
	} else {
		var err error
		if sp, status, err = s.spoolPart(d.p, st.spoolLeft); err != nil {
			return err
		}
	}
	if status != ioOK {
		if status == ioTooLarge {
			s.b.log.Info("imap: attachment over the multipart budget", "ref", d.ref, "left", st.spoolLeft)
		}
		st.parts = st.parts[:d.slot]
		d.res.Append(text(wbxml.ItemOperationsStatus, status))
		return nil
	}
	st.spoolLeft -= sp.size
	st.parts[d.slot] = sp
	d.res.Append(text(wbxml.ItemOperationsStatus, ioOK), text(wbxml.AirSyncBaseFileReference, d.ref),
		wbxml.NewElement(wbxml.ItemOperationsProperties, text(wbxml.AirSyncBaseContentType, d.p.ctype),
			text(wbxml.ItemOperationsPart, d.slot+1)))
	return nil
}

// multipartHeader frames parts as MS-ASCMD 2.2.1.10.1 describes: a little-endian part count,
// then (offset, length) pairs; the parts follow it. Config.MaxAttachment (below 4 GiB, checked
// by New) keeps every offset within 32 bits.
func multipartHeader(parts []spool) []byte {
	le := func(b []byte, v uint32) []byte { return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24)) }
	off := int64(4 + 8*len(parts))
	out := le(make([]byte, 0, 4+8*len(parts)), uint32(len(parts)))
	for _, p := range parts {
		out = le(out, uint32(off))
		out = le(out, uint32(p.size))
		off += p.size
	}
	return out
}

func (s *session) ioFetch(op *wbxml.Element, st *ioState) (*wbxml.Element, error) {
	res := wbxml.NewElement(wbxml.ItemOperationsFetch)
	fail := func(st int) *wbxml.Element { return res.Append(text(wbxml.ItemOperationsStatus, st)) }
	if store := op.Find(wbxml.ItemOperationsStore).Text(); !strings.EqualFold(store, "Mailbox") {
		return fail(ioBadStore), nil
	}
	opts := parseItemOptions(op.Find(wbxml.ItemOperationsOptions))
	if ref := op.Find(wbxml.AirSyncBaseFileReference); ref != nil {
		return s.ioFetchAttachment(ref.Text(), st)
	}
	id := op.Find(wbxml.AirSyncServerId).Text()
	long := op.Find(wbxml.SearchLongId).Text()
	if long != "" {
		id = long
	}
	coll, uid, ok := parseServerID(id)
	if !ok {
		return fail(ioNotFound), nil
	}
	if cid := op.Find(wbxml.AirSyncCollectionId).Text(); cid != "" && cid != coll {
		return fail(ioNotFound), nil
	}
	f, found, err := s.folderByID(coll)
	if err != nil {
		return nil, err
	}
	if !found {
		return fail(ioNotFound), nil
	}
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	if _, err := s.selectMailbox(f.Mailbox); err != nil {
		if isNo(err) {
			return fail(ioNotFound), nil
		}
		return nil, s.imapErr(err, "SELECT")
	}
	msgs, err := s.fetchMessages(c, []imap.UID{uid}, opts)
	if err != nil {
		return nil, err
	}
	m := msgs[uid]
	if m == nil {
		return fail(ioNotFound), nil
	}
	res.Append(text(wbxml.ItemOperationsStatus, ioOK))
	if long != "" {
		res.Append(text(wbxml.SearchLongId, long))
	} else {
		res.Append(text(wbxml.AirSyncCollectionId, coll), text(wbxml.AirSyncServerId, id))
	}
	res.Append(text(wbxml.AirSyncClass, "Email"))
	return res.Append(m.appData(wbxml.ItemOperationsProperties, coll)), nil
}

// ioFetchAttachment answers a Fetch of a FileReference (MS-ASCMD 2.2.3.67.1): the decoded
// attachment as a part of the multipart response, or base64 in Data. Status 11 answers an
// attachment beyond what remains of the response's budget.
func (s *session) ioFetchAttachment(ref string, st *ioState) (*wbxml.Element, error) {
	res := wbxml.NewElement(wbxml.ItemOperationsFetch)
	p, status, err := s.locateAttachment(ref)
	if err != nil {
		return nil, err
	}
	if status != ioOK {
		return res.Append(text(wbxml.ItemOperationsStatus, status)), nil
	}
	if s.req.AcceptMultiPart {
		if err := s.fetchPending(st, false); err != nil {
			return nil, err
		}
		st.parts = append(st.parts, spool{})
		st.last = &pendingPart{p: p, ref: ref, res: res, slot: len(st.parts) - 1}
		return res, nil
	}
	var b bytesWriter
	_, tooLarge, gone, err := s.readPart(p, &b, st.inlineLeft)
	switch {
	case err != nil:
		return nil, err
	case gone:
		return res.Append(text(wbxml.ItemOperationsStatus, ioBadAttach)), nil
	case tooLarge:
		s.b.log.Info("imap: attachment over the inline budget", "ref", ref, "left", st.inlineLeft)
		return res.Append(text(wbxml.ItemOperationsStatus, ioTooLarge)), nil
	}
	st.inlineLeft -= int64(len(b.b))
	return res.Append(text(wbxml.ItemOperationsStatus, ioOK), text(wbxml.AirSyncBaseFileReference, ref),
		wbxml.NewElement(wbxml.ItemOperationsProperties, text(wbxml.AirSyncBaseContentType, p.ctype),
			wbxml.NewText(wbxml.ItemOperationsData, base64.StdEncoding.EncodeToString(b.b)))), nil
}

// getAttachment implements the 12.x GetAttachment command (MS-ASCMD 2.2.1.8): the attachment
// named by the AttachmentName parameter (a FileReference) as the raw response body. A small
// one is answered as Body; a larger one is a Reader streaming from the IMAP connection, which
// leaves this session with it (see attachStream). Attachments beyond Config.MaxAttachment, and
// references naming nothing, answer HTTP 500 as Exchange does for a failed GetAttachment.
func (s *session) getAttachment() (Response, error) {
	p, status, err := s.locateAttachment(s.req.AttachmentName)
	if err != nil {
		return Response{}, err
	}
	if status != ioOK {
		return Response{Status: http.StatusInternalServerError}, nil
	}
	if p.small() {
		var b bytesWriter
		_, tooLarge, gone, err := s.readPart(p, &b, s.b.cfg.MaxAttachment)
		switch {
		case err != nil:
			return Response{}, err
		case gone || tooLarge:
			return Response{Status: http.StatusInternalServerError}, nil
		}
		return Response{Status: http.StatusOK, ContentType: p.ctype, Body: b.b}, nil
	}
	pr, status, err := s.openStream(p)
	if err != nil {
		return Response{}, err
	}
	if status != ioOK {
		return Response{Status: http.StatusInternalServerError}, nil
	}
	if pr.size > s.b.cfg.MaxAttachment {
		s.b.log.Info("imap: GetAttachment over Config.MaxAttachment", "size", pr.size)
		pr.close(s.cn)
		return Response{Status: http.StatusInternalServerError}, nil
	}
	a, err := s.handOff(pr)
	if err != nil {
		return Response{}, err
	}
	return Response{Status: http.StatusOK, ContentType: p.ctype, Reader: a, Length: pr.size}, nil
}

func (s *session) ioEmpty(op *wbxml.Element) (*wbxml.Element, error) {
	id := op.Find(wbxml.AirSyncCollectionId).Text()
	res := wbxml.NewElement(wbxml.ItemOperationsEmptyFolderContents)
	f, found, err := s.folderByID(id)
	if err != nil {
		return nil, err
	}
	if !found {
		return res.Append(text(wbxml.ItemOperationsStatus, ioNotFound), text(wbxml.AirSyncCollectionId, id)), nil
	}
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	s.reselect()
	sel, err := s.selectMailbox(f.Mailbox)
	if err != nil {
		return nil, s.imapErr(err, "SELECT")
	}
	if sel.NumMessages > 0 {
		trash, hasTrash, err := s.folderOfType(typeDeleted)
		if err != nil {
			return nil, err
		}
		move := hasTrash && trash.Mailbox != f.Mailbox
		if move {
			if _, err := c.Move(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, trash.Mailbox).Wait(); err != nil {
				return nil, s.imapErr(err, "MOVE")
			}
		} else {
			if err := c.Store(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
				return nil, s.imapErr(err, "STORE")
			}
			if err := c.Expunge().Close(); err != nil {
				return nil, s.imapErr(err, "EXPUNGE")
			}
		}
		s.reselect()
	}
	if op.Path(wbxml.ItemOperationsOptions, wbxml.ItemOperationsDeleteSubFolders) != nil {
		delim, err := s.delimiter()
		if err != nil {
			return nil, err
		}
		fs, err := s.listFolders()
		if err != nil {
			return nil, err
		}
		var subs []Folder
		for _, x := range fs {
			if strings.HasPrefix(x.Mailbox, f.Mailbox+string(delim)) {
				subs = append(subs, x)
			}
		}
		slices.SortFunc(subs, func(a, b Folder) int { return len(b.Mailbox) - len(a.Mailbox) })
		for _, x := range subs {
			if err := c.Delete(x.Mailbox).Wait(); err != nil && !isNo(err) {
				return nil, s.imapErr(err, "DELETE")
			}
		}
		s.folders = nil
	}
	return res.Append(text(wbxml.ItemOperationsStatus, ioOK), text(wbxml.AirSyncCollectionId, id)), nil
}

// MoveItems status values (MS-ASCMD 2.2.3.177.9).
const (
	mvBadSource = 1
	mvBadDest   = 2
	mvOK        = 3
	mvSame      = 4
	mvFailed    = 5
)

// moveItems implements MoveItems (MS-ASCMD 2.2.1.12) with UID MOVE; the new ServerId comes
// from COPYUID (RFC 4315). The device's item state follows the move so that the next Sync
// neither deletes the item from the source nor adds it again to the destination.
func (s *session) moveItems(body []byte) (Response, error) {
	root, err := parseBody(body, wbxml.MoveMoveItems)
	if err != nil {
		return Response{}, err
	}
	out := wbxml.NewElement(wbxml.MoveMoveItems)
	for _, mv := range root.FindAll(wbxml.MoveMove) {
		src := mv.Find(wbxml.MoveSrcMsgId).Text()
		srcF := mv.Find(wbxml.MoveSrcFldId).Text()
		dstF := mv.Find(wbxml.MoveDstFldId).Text()
		resp := func(st int, dst string) *wbxml.Element {
			r := wbxml.NewElement(wbxml.MoveResponse, text(wbxml.MoveStatus, st), text(wbxml.MoveSrcMsgId, src))
			if dst != "" {
				r.Append(text(wbxml.MoveDstMsgId, dst))
			}
			return r
		}
		coll, uid, ok := parseServerID(src)
		if !ok || coll != srcF {
			out.Append(resp(mvBadSource, ""))
			continue
		}
		if srcF == dstF {
			out.Append(resp(mvSame, ""))
			continue
		}
		sf, ok1, err := s.folderByID(srcF)
		if err != nil {
			return Response{}, err
		}
		df, ok2, err := s.folderByID(dstF)
		if err != nil {
			return Response{}, err
		}
		if !ok1 {
			out.Append(resp(mvBadSource, ""))
			continue
		}
		if !ok2 {
			out.Append(resp(mvBadDest, ""))
			continue
		}
		c, err := s.client()
		if err != nil {
			return Response{}, err
		}
		if _, err := s.selectMailbox(sf.Mailbox); err != nil {
			if isNo(err) {
				out.Append(resp(mvBadSource, ""))
				continue
			}
			return Response{}, s.imapErr(err, "SELECT")
		}
		md, err := c.Move(imap.UIDSetNum(uid), df.Mailbox).Wait()
		if err != nil {
			if isNo(err) {
				out.Append(resp(mvFailed, ""))
				continue
			}
			return Response{}, s.imapErr(err, "MOVE")
		}
		var newUID imap.UID
		if dst, ok := md.DestUIDs.(imap.UIDSet); ok {
			if nums, ok := dst.Nums(); ok && len(nums) == 1 {
				newUID = nums[0]
			}
		}
		if newUID == 0 {
			// The message was not there (MOVE of a vanished UID succeeds with no COPYUID).
			out.Append(resp(mvBadSource, ""))
			continue
		}
		if err := s.followMove(srcF, uint32(uid), dstF, md.UIDValidity, uint32(newUID)); err != nil {
			return Response{}, err
		}
		out.Append(resp(mvOK, serverID(dstF, newUID)))
	}
	return wbxmlResponse(out)
}

func (s *session) followMove(srcColl string, uid uint32, dstColl string, dstValidity, newUID uint32) error {
	st, err := s.b.store.Collection(s.ctx, s.user, s.device, srcColl)
	if err != nil {
		return internal(err, "collection state")
	}
	var flags ItemFlags
	if st.SyncKey != 0 {
		items, err := s.b.store.Items(s.ctx, s.user, s.device, srcColl)
		if err != nil {
			return internal(err, "items")
		}
		flags = items[uid]
		if err := s.b.store.CommitCollection(s.ctx, s.user, s.device, srcColl, st, false, nil, []uint32{uid}); err != nil {
			return internal(err, "commit collection")
		}
	}
	dt, err := s.b.store.Collection(s.ctx, s.user, s.device, dstColl)
	if err != nil {
		return internal(err, "collection state")
	}
	if dt.SyncKey != 0 && dt.UIDValidity == dstValidity && dt.UIDValidity != 0 {
		if err := s.b.store.CommitCollection(s.ctx, s.user, s.device, dstColl, dt, false, map[uint32]ItemFlags{newUID: flags}, nil); err != nil {
			return internal(err, "commit collection")
		}
	}
	return nil
}

// selectedClient is a helper for handlers that only need the connection.
func (s *session) selectedClient(mailbox string) (*imapclient.Client, error) {
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	if _, err := s.selectMailbox(mailbox); err != nil {
		return nil, err
	}
	return c, nil
}
