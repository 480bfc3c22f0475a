package imap

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime/quotedprintable"
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
	ioBadAttach   = 15
)

// itemOperations implements ItemOperations (MS-ASCMD 2.2.1.10): Fetch of a message (by
// CollectionId + ServerId, or LongId from Search) or of an attachment (FileReference), and
// EmptyFolderContents. With MS-ASAcceptMultiPart the fetched data travels in parts
// (MS-ASCMD 2.2.1.10.1).
func (s *session) itemOperations(body []byte) (Response, error) {
	root, err := parseBody(body, wbxml.ItemOperationsItemOperations)
	if err != nil {
		return Response{}, err
	}
	out := wbxml.NewElement(wbxml.ItemOperationsResponse)
	var parts [][]byte
	for _, op := range root.Children {
		switch op.Tag {
		case wbxml.ItemOperationsFetch:
			el, err := s.ioFetch(op, &parts)
			if err != nil {
				return Response{}, err
			}
			out.Append(el)
		case wbxml.ItemOperationsEmptyFolderContents:
			el, err := s.ioEmpty(op)
			if err != nil {
				return Response{}, err
			}
			out.Append(el)
		default:
			out.Append(wbxml.NewElement(op.Tag, text(wbxml.ItemOperationsStatus, ioProtocol)))
		}
	}
	doc := wbxml.NewElement(wbxml.ItemOperationsItemOperations, text(wbxml.ItemOperationsStatus, ioOK), out)
	if !s.req.AcceptMultiPart {
		return wbxmlResponse(doc)
	}
	head, err := wbxml.NewDocument(doc).Encode(nil)
	if err != nil {
		return Response{}, internal(err, "encode response")
	}
	return Response{Status: http.StatusOK, ContentType: ContentTypeMultipart, Body: multipart(append([][]byte{head}, parts...))}, nil
}

// multipart frames parts as MS-ASCMD 2.2.1.10.1 describes: a little-endian part count, then
// (offset, length) pairs, then the parts.
func multipart(parts [][]byte) []byte {
	le := func(b []byte, v uint32) []byte { return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24)) }
	off := 4 + 8*len(parts)
	out := le(nil, uint32(len(parts)))
	for _, p := range parts {
		out = le(out, uint32(off))
		out = le(out, uint32(len(p)))
		off += len(p)
	}
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func (s *session) ioFetch(op *wbxml.Element, parts *[][]byte) (*wbxml.Element, error) {
	res := wbxml.NewElement(wbxml.ItemOperationsFetch)
	fail := func(st int) *wbxml.Element { return res.Append(text(wbxml.ItemOperationsStatus, st)) }
	if store := op.Find(wbxml.ItemOperationsStore).Text(); !strings.EqualFold(store, "Mailbox") {
		return fail(ioBadStore), nil
	}
	opts := parseItemOptions(op.Find(wbxml.ItemOperationsOptions))
	putData := func(props *wbxml.Element, data []byte) {
		if s.req.AcceptMultiPart {
			*parts = append(*parts, data)
			props.Append(text(wbxml.ItemOperationsPart, len(*parts)))
		} else {
			props.Append(wbxml.NewText(wbxml.ItemOperationsData, base64.StdEncoding.EncodeToString(data)))
		}
	}
	if ref := op.Find(wbxml.AirSyncBaseFileReference); ref != nil {
		data, ctype, st, err := s.attachment(ref.Text())
		if err != nil {
			return nil, err
		}
		if st != ioOK {
			return fail(st), nil
		}
		res.Append(text(wbxml.ItemOperationsStatus, ioOK), text(wbxml.AirSyncBaseFileReference, ref.Text()))
		props := wbxml.NewElement(wbxml.ItemOperationsProperties, text(wbxml.AirSyncBaseContentType, ctype))
		putData(props, data)
		return res.Append(props), nil
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

// attachment fetches and decodes the part a FileReference "collection:uid:part" names.
func (s *session) attachment(ref string) (data []byte, contentType string, status int, err error) {
	i := strings.LastIndexByte(ref, ':')
	if i <= 0 {
		return nil, "", ioBadAttach, nil
	}
	path, ok := parsePart(ref[i+1:])
	coll, uid, ok2 := parseServerID(ref[:i])
	if !ok || !ok2 {
		return nil, "", ioBadAttach, nil
	}
	f, found, err := s.folderByID(coll)
	if err != nil {
		return nil, "", 0, err
	}
	if !found {
		return nil, "", ioBadAttach, nil
	}
	c, err := s.client()
	if err != nil {
		return nil, "", 0, err
	}
	if _, err := s.selectMailbox(f.Mailbox); err != nil {
		if isNo(err) {
			return nil, "", ioBadAttach, nil
		}
		return nil, "", 0, s.imapErr(err, "SELECT")
	}
	sec := &imap.FetchItemBodySection{Part: path, Peek: true}
	bufs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true}, BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
	if err != nil {
		return nil, "", 0, s.imapErr(err, "FETCH attachment")
	}
	if len(bufs) == 0 || bufs[0].BodyStructure == nil {
		return nil, "", ioBadAttach, nil
	}
	var part *imap.BodyStructureSinglePart
	bufs[0].BodyStructure.Walk(func(p []int, bs imap.BodyStructure) bool {
		if sp, ok := bs.(*imap.BodyStructureSinglePart); ok && slices.Equal(p, path) {
			part = sp
		}
		return true
	})
	if part == nil {
		return nil, "", ioBadAttach, nil
	}
	raw := bufs[0].FindBodySection(sec)
	var r io.Reader = bytes.NewReader(raw)
	switch strings.ToLower(part.Encoding) {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, &newlineStripper{r: r})
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	}
	data, err = io.ReadAll(r)
	if err != nil {
		data = raw
	}
	return data, part.MediaType(), ioOK, nil
}

// getAttachment implements the 12.x GetAttachment command: the attachment named by the
// AttachmentName parameter (a FileReference) as the raw response body.
func (s *session) getAttachment() (Response, error) {
	data, ctype, st, err := s.attachment(s.req.AttachmentName)
	if err != nil {
		return Response{}, err
	}
	if st != ioOK {
		return Response{Status: http.StatusInternalServerError}, nil
	}
	return Response{Status: http.StatusOK, ContentType: ctype, Body: data}, nil
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
