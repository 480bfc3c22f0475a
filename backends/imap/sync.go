package imap

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/easgate/easgate/eas/wbxml"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Sync status values (MS-ASCMD 2.2.3.177.17).
const (
	syncOK             = 1
	syncBadKey         = 3
	syncProtocolError  = 4
	syncServerError    = 5
	syncConversion     = 6
	syncNotFound       = 8
	syncHierarchy      = 12
	syncIncomplete     = 13
	syncBadWait        = 14
	syncTooManyCollect = 15
)

// maxSyncCollections bounds the collections of one Sync request.
const maxSyncCollections = 100

// syncReq is one Collection of a Sync request.
type syncReq struct {
	key            string
	id             string
	getChanges     bool
	window         int
	deletesAsMoves bool
	filter         int
	opts           itemOptions
	commands       *wbxml.Element
}

// filterSince maps Email FilterType (MS-ASCMD 2.2.3.68.2) to the oldest date to sync.
func filterSince(ft int, now time.Time) time.Time {
	days := map[int]int{1: 1, 2: 3, 3: 7, 4: 14, 5: 30}[ft]
	if days == 0 {
		return time.Time{}
	}
	return now.AddDate(0, 0, -days)
}

// serverID is "collection:uid".
func serverID(coll string, uid imap.UID) string {
	return coll + ":" + strconv.FormatUint(uint64(uid), 10)
}

// parseServerID splits "collection:uid"; ok is false for anything else.
func parseServerID(id string) (coll string, uid imap.UID, ok bool) {
	i := strings.LastIndexByte(id, ':')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(id[i+1:], 10, 32)
	if err != nil || n == 0 {
		return "", 0, false
	}
	return id[:i], imap.UID(n), true
}

func syncStatus(st int) (Response, error) {
	return wbxmlResponse(wbxml.NewElement(wbxml.AirSyncSync, text(wbxml.AirSyncStatus, st)))
}

// sync implements Sync for the Email class (MS-ASCMD 2.2.1.21).
func (s *session) sync(body []byte) (Response, error) {
	var root *wbxml.Element
	if len(body) == 0 {
		// An empty Sync repeats the previous one with the current keys (MS-ASCMD 2.2.3.166.4).
		last, err := s.b.store.LastRequest(s.ctx, s.user, s.device, "Sync")
		if err != nil {
			return Response{}, internal(err, "last Sync")
		}
		if last == nil {
			return syncStatus(syncIncomplete)
		}
		doc, err := wbxml.Parse(last, wbxml.Limits{})
		if err != nil {
			return syncStatus(syncIncomplete)
		}
		root = doc.Root
		for _, c := range root.Path(wbxml.AirSyncCollections).FindAll(wbxml.AirSyncCollection) {
			st, err := s.b.store.Collection(s.ctx, s.user, s.device, c.Find(wbxml.AirSyncCollectionId).Text())
			if err != nil {
				return Response{}, internal(err, "collection state")
			}
			c.Find(wbxml.AirSyncSyncKey).SetText(strconv.FormatUint(st.SyncKey, 10))
			c.Children = slices.DeleteFunc(c.Children, func(e *wbxml.Element) bool { return e.Tag == wbxml.AirSyncCommands })
		}
	} else {
		var err error
		if root, err = parseBody(body, wbxml.AirSyncSync); err != nil {
			return Response{}, err
		}
	}
	colls := root.Path(wbxml.AirSyncCollections).FindAll(wbxml.AirSyncCollection)
	if len(colls) == 0 {
		return syncStatus(syncIncomplete)
	}
	if len(colls) > maxSyncCollections {
		return syncStatus(syncTooManyCollect)
	}
	// Options a device sent once stay in force for later requests that omit them.
	var prev *wbxml.Element
	if last, err := s.b.store.LastRequest(s.ctx, s.user, s.device, "Sync"); err == nil && last != nil {
		if doc, err := wbxml.Parse(last, wbxml.Limits{}); err == nil {
			prev = doc.Root
		}
	}
	// Wait (minutes) and HeartbeatInterval (seconds) make the Sync a long poll (MS-ASCMD
	// 2.2.3.200, 2.2.3.79.2): with nothing to report the answer waits for a change.
	var wait time.Duration
	if w := root.Find(wbxml.AirSyncWait); w != nil {
		m := atoi(w.Text())
		if time.Duration(m)*time.Minute < s.b.cfg.MinHeartbeat || time.Duration(m)*time.Minute > s.b.cfg.MaxHeartbeat {
			lim := int(s.b.cfg.MaxHeartbeat / time.Minute)
			if time.Duration(m)*time.Minute < s.b.cfg.MinHeartbeat {
				lim = max(1, int(s.b.cfg.MinHeartbeat/time.Minute))
			}
			return wbxmlResponse(wbxml.NewElement(wbxml.AirSyncSync, text(wbxml.AirSyncStatus, syncBadWait), text(wbxml.AirSyncLimit, lim)))
		}
		wait = time.Duration(m) * time.Minute
	}
	if h := root.Find(wbxml.AirSyncHeartbeatInterval); h != nil {
		sec := time.Duration(atoi(h.Text())) * time.Second
		if sec < s.b.cfg.MinHeartbeat || sec > s.b.cfg.MaxHeartbeat {
			lim := s.b.cfg.MaxHeartbeat
			if sec < s.b.cfg.MinHeartbeat {
				lim = s.b.cfg.MinHeartbeat
			}
			return wbxmlResponse(wbxml.NewElement(wbxml.AirSyncSync, text(wbxml.AirSyncStatus, syncBadWait), text(wbxml.AirSyncLimit, int(lim/time.Second))))
		}
		wait = sec
	}
	globalWindow := atoi(root.Find(wbxml.AirSyncWindowSize).Text())
	reqs := make([]syncReq, 0, len(colls))
	for _, c := range colls {
		r := syncReq{
			key:            c.Find(wbxml.AirSyncSyncKey).Text(),
			id:             c.Find(wbxml.AirSyncCollectionId).Text(),
			deletesAsMoves: true,
			commands:       c.Find(wbxml.AirSyncCommands),
		}
		if r.id == "" || r.key == "" {
			return syncStatus(syncProtocolError)
		}
		r.getChanges = r.key != "0"
		if g := c.Find(wbxml.AirSyncGetChanges); g != nil {
			r.getChanges = g.Kind == wbxml.NoValue || g.Text() == "1"
		}
		if d := c.Find(wbxml.AirSyncDeletesAsMoves); d != nil {
			r.deletesAsMoves = d.Kind == wbxml.NoValue || d.Text() == "1"
		}
		r.window = s.b.cfg.WindowSize
		if globalWindow > 0 {
			r.window = globalWindow
		}
		if w := atoi(c.Find(wbxml.AirSyncWindowSize).Text()); w > 0 {
			r.window = w
		}
		r.window = min(r.window, s.b.cfg.MaxWindowSize)
		opt := c.Find(wbxml.AirSyncOptions)
		if opt == nil && prev != nil {
			for _, pc := range prev.Path(wbxml.AirSyncCollections).FindAll(wbxml.AirSyncCollection) {
				if pc.Find(wbxml.AirSyncCollectionId).Text() == r.id {
					opt = pc.Find(wbxml.AirSyncOptions)
				}
			}
		}
		if opt != nil {
			r.filter = atoi(opt.Find(wbxml.AirSyncFilterType).Text())
			r.opts = parseItemOptions(opt)
		}
		reqs = append(reqs, r)
	}
	if len(body) > 0 {
		if err := s.b.store.SaveRequest(s.ctx, s.user, s.device, "Sync", body); err != nil {
			return Response{}, internal(err, "save Sync request")
		}
	}
	out, err := s.syncAll(reqs)
	if err != nil {
		return Response{}, err
	}
	if wait > 0 && !hasContent(out, reqs) {
		var folders []Folder
		for _, r := range reqs {
			if f, ok, err := s.folderByID(r.id); err != nil {
				return Response{}, err
			} else if ok {
				folders = append(folders, f)
			}
		}
		changed, err := s.waitForChange(folders, wait)
		if err != nil {
			return Response{}, err
		}
		if len(changed) == 0 {
			// Nothing changed during the wait: an empty answer, keys unchanged.
			return Response{Status: http.StatusOK}, nil
		}
		if out, err = s.syncAll(reqs); err != nil {
			return Response{}, err
		}
	}
	return wbxmlResponse(wbxml.NewElement(wbxml.AirSyncSync, out))
}

func (s *session) syncAll(reqs []syncReq) (*wbxml.Element, error) {
	defer s.b.lockDevice(s.user, s.device)()
	out := wbxml.NewElement(wbxml.AirSyncCollections)
	for i := range reqs {
		el, err := s.syncCollection(&reqs[i])
		if err != nil {
			return nil, err
		}
		out.Append(el)
	}
	return out, nil
}

// hasContent reports whether a Sync answer tells the device anything: a new key, a status
// other than success, commands, responses or MoreAvailable.
func hasContent(colls *wbxml.Element, reqs []syncReq) bool {
	for i, c := range colls.Children {
		if c.Find(wbxml.AirSyncStatus).Text() != "1" || c.Find(wbxml.AirSyncSyncKey).Text() != reqs[i].key ||
			c.Find(wbxml.AirSyncCommands) != nil || c.Find(wbxml.AirSyncResponses) != nil || c.Find(wbxml.AirSyncMoreAvailable) != nil {
			return true
		}
	}
	return false
}

func collStatus(r *syncReq, st int) *wbxml.Element {
	return wbxml.NewElement(wbxml.AirSyncCollection,
		text(wbxml.AirSyncSyncKey, r.key),
		text(wbxml.AirSyncCollectionId, r.id),
		text(wbxml.AirSyncStatus, st))
}

// syncCollection answers one collection. The state of the device for this collection changes
// only in the one CommitCollection at the end, together with the answer kept for a retry.
func (s *session) syncCollection(r *syncReq) (*wbxml.Element, error) {
	st, err := s.b.store.Collection(s.ctx, s.user, s.device, r.id)
	if err != nil {
		return nil, internal(err, "collection state")
	}
	key, ok := parseKey(r.key)
	if !ok {
		return collStatus(r, syncBadKey), nil
	}
	if key != 0 && key == st.PrevKey && st.LastAnswer != nil {
		// The device did not get our last answer: send it again, byte for byte.
		doc, err := wbxml.Parse(st.LastAnswer, wbxml.Limits{})
		if err != nil {
			return nil, internal(err, "stored Sync answer")
		}
		return doc.Root, nil
	}
	if key != 0 && key != st.SyncKey {
		return collStatus(r, syncBadKey), nil
	}
	f, found, err := s.folderByID(r.id)
	if err != nil {
		return nil, err
	}
	if !found {
		return collStatus(r, syncHierarchy), nil
	}
	if key == 0 {
		// MS-ASCMD 2.2.3.166.4: SyncKey 0 starts over; the answer carries no items.
		k := max(st.Counter, st.SyncKey) + 1
		ns := CollectionState{SyncKey: k, Counter: k, Mailbox: f.Mailbox, FilterType: r.filter}
		if err := s.b.store.CommitCollection(s.ctx, s.user, s.device, r.id, ns, true, nil, nil); err != nil {
			return nil, internal(err, "commit collection")
		}
		return wbxml.NewElement(wbxml.AirSyncCollection,
			text(wbxml.AirSyncSyncKey, k),
			text(wbxml.AirSyncCollectionId, r.id),
			text(wbxml.AirSyncStatus, syncOK)), nil
	}
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	s.reselect()
	sel, err := s.selectMailbox(f.Mailbox)
	if err != nil {
		if isNo(err) {
			return collStatus(r, syncHierarchy), nil
		}
		return nil, s.imapErr(err, "SELECT")
	}
	if st.UIDValidity != 0 && sel.UIDValidity != st.UIDValidity || st.Mailbox != "" && st.Mailbox != f.Mailbox && st.UIDValidity != 0 {
		// Every UID the device holds is void (RFC 3501 2.3.1.1): make it start over.
		ns := CollectionState{Counter: max(st.Counter, st.SyncKey), Mailbox: f.Mailbox}
		if err := s.b.store.CommitCollection(s.ctx, s.user, s.device, r.id, ns, true, nil, nil); err != nil {
			return nil, internal(err, "commit collection")
		}
		s.b.log.Info("imap: UIDVALIDITY changed, device must resync", "user", s.user, "device", s.device, "mailbox", f.Mailbox)
		return collStatus(r, syncBadKey), nil
	}
	if st.FilterType != r.filter {
		st.Complete = false // a wider or narrower window changes the set the device should hold
		st.FilterType = r.filter
	}
	known, err := s.b.store.Items(s.ctx, s.user, s.device, r.id)
	if err != nil {
		return nil, internal(err, "items")
	}
	upsert := map[uint32]ItemFlags{}
	var drop []uint32
	responses := wbxml.NewElement(wbxml.AirSyncResponses)

	trash, hasTrash, err := s.folderOfType(typeDeleted)
	if err != nil {
		return nil, err
	}
	if r.commands != nil {
		if err := s.clientCommands(c, r, f, trash, hasTrash, known, upsert, &drop, responses); err != nil {
			return nil, err
		}
		s.reselect()
		if sel, err = s.selectMailbox(f.Mailbox); err != nil {
			return nil, s.imapErr(err, "SELECT")
		}
	}

	commands := wbxml.NewElement(wbxml.AirSyncCommands)
	more, changesDone := false, false
	complete := st.Complete
	if r.getChanges {
		more, changesDone, err = s.serverChanges(c, r, &st, sel, known, upsert, &drop, commands)
		if err != nil {
			return nil, err
		}
		complete = !more
	}
	el := wbxml.NewElement(wbxml.AirSyncCollection)
	newKey := key
	changed := len(commands.Children) > 0 || len(responses.Children) > 0 || r.commands != nil
	if changed {
		newKey = max(st.Counter, st.SyncKey) + 1
	}
	el.Append(text(wbxml.AirSyncSyncKey, newKey), text(wbxml.AirSyncCollectionId, r.id), text(wbxml.AirSyncStatus, syncOK))
	if more {
		el.Append(&wbxml.Element{Tag: wbxml.AirSyncMoreAvailable})
	}
	if len(commands.Children) > 0 {
		el.Append(commands)
	}
	if len(responses.Children) > 0 {
		el.Append(responses)
	}
	ns := st
	ns.Mailbox = f.Mailbox
	ns.UIDValidity = sel.UIDValidity
	ns.Complete = complete
	// Flags the device holds are current as of sel.HighestModSeq once every pending flag change
	// went out (new messages still pending are found by UID, not by MODSEQ), so later windows
	// of a long initial sync ask only for CHANGEDSINCE instead of every flag again.
	if r.getChanges && changesDone {
		ns.ModSeq = sel.HighestModSeq
	}
	if r.getChanges && complete {
		ns.UIDNext, ns.Count = uint32(sel.UIDNext), sel.NumMessages
	}
	if changed {
		ans, err := wbxml.NewDocument(el).Encode(nil)
		if err != nil {
			return nil, internal(err, "encode Sync answer")
		}
		ns.SyncKey, ns.PrevKey, ns.Counter, ns.LastAnswer = newKey, key, newKey, ans
	}
	if err := s.b.store.CommitCollection(s.ctx, s.user, s.device, r.id, ns, false, upsert, drop); err != nil {
		return nil, internal(err, "commit collection")
	}
	return el, nil
}

// clientCommands applies the device's Change, Delete, Add and Fetch (MS-ASCMD 2.2.3.32).
func (s *session) clientCommands(c *imapclient.Client, r *syncReq, f, trash Folder, hasTrash bool, known map[uint32]ItemFlags, upsert map[uint32]ItemFlags, drop *[]uint32, responses *wbxml.Element) error {
	var toDelete []imap.UID
	var fetches []imap.UID
	var fetchIDs []string
	for _, cmd := range r.commands.Children {
		id := cmd.Find(wbxml.AirSyncServerId).Text()
		switch cmd.Tag {
		case wbxml.AirSyncAdd:
			// Email items are created by sending or by IMAP APPEND, not by Sync (MS-ASCMD
			// 2.2.3.7.2: the server answers an Add it does not support with Status 6).
			responses.Append(wbxml.NewElement(wbxml.AirSyncAdd,
				text(wbxml.AirSyncClientId, cmd.Find(wbxml.AirSyncClientId).Text()),
				text(wbxml.AirSyncStatus, syncConversion)))
		case wbxml.AirSyncChange:
			coll, uid, ok := parseServerID(id)
			if _, held := known[uint32(uid)]; !ok || coll != r.id || !held {
				responses.Append(wbxml.NewElement(wbxml.AirSyncChange, text(wbxml.AirSyncServerId, id), text(wbxml.AirSyncStatus, syncNotFound)))
				continue
			}
			data := cmd.Find(wbxml.AirSyncApplicationData)
			cur := known[uint32(uid)]
			if v, ok := upsert[uint32(uid)]; ok {
				cur = v
			}
			next := cur
			if rd := data.Find(wbxml.EmailRead); rd != nil {
				if rd.Text() == "1" {
					next |= FlagSeen
				} else {
					next &^= FlagSeen
				}
			}
			if fl := data.Find(wbxml.EmailFlag); fl != nil {
				if fl.Find(wbxml.EmailFlagStatus).Text() == "2" {
					next |= FlagFlagged
				} else {
					next &^= FlagFlagged
				}
			}
			if err := s.storeFlags(c, uid, cur, next); err != nil {
				if isNo(err) {
					responses.Append(wbxml.NewElement(wbxml.AirSyncChange, text(wbxml.AirSyncServerId, id), text(wbxml.AirSyncStatus, syncNotFound)))
					continue
				}
				return s.imapErr(err, "STORE")
			}
			upsert[uint32(uid)] = next
		case wbxml.AirSyncDelete:
			coll, uid, ok := parseServerID(id)
			if !ok || coll != r.id {
				responses.Append(wbxml.NewElement(wbxml.AirSyncDelete, text(wbxml.AirSyncServerId, id), text(wbxml.AirSyncStatus, syncNotFound)))
				continue
			}
			toDelete = append(toDelete, uid)
		case wbxml.AirSyncFetch:
			coll, uid, ok := parseServerID(id)
			if !ok || coll != r.id {
				responses.Append(wbxml.NewElement(wbxml.AirSyncFetch, text(wbxml.AirSyncServerId, id), text(wbxml.AirSyncStatus, syncNotFound)))
				continue
			}
			fetches = append(fetches, uid)
			fetchIDs = append(fetchIDs, id)
		}
	}
	if len(toDelete) > 0 {
		move := r.deletesAsMoves && hasTrash && trash.Mailbox != f.Mailbox
		if err := s.deleteUIDs(c, toDelete, move, trash.Mailbox); err != nil {
			return err
		}
		for _, u := range toDelete {
			*drop = append(*drop, uint32(u))
			delete(upsert, uint32(u))
			delete(known, uint32(u))
		}
	}
	if len(fetches) > 0 {
		msgs, err := s.fetchMessages(c, fetches, r.opts)
		if err != nil {
			return err
		}
		for i, u := range fetches {
			m := msgs[u]
			if m == nil {
				responses.Append(wbxml.NewElement(wbxml.AirSyncFetch, text(wbxml.AirSyncServerId, fetchIDs[i]), text(wbxml.AirSyncStatus, syncNotFound)))
				continue
			}
			responses.Append(wbxml.NewElement(wbxml.AirSyncFetch,
				text(wbxml.AirSyncServerId, fetchIDs[i]),
				text(wbxml.AirSyncStatus, syncOK),
				m.appData(wbxml.AirSyncApplicationData, r.id)))
		}
	}
	return nil
}

// storeFlags changes \Seen and \Flagged of one message from cur to next.
func (s *session) storeFlags(c *imapclient.Client, uid imap.UID, cur, next ItemFlags) error {
	var add, del []imap.Flag
	for _, x := range []struct {
		bit  ItemFlags
		flag imap.Flag
	}{{FlagSeen, imap.FlagSeen}, {FlagFlagged, imap.FlagFlagged}} {
		switch {
		case next&x.bit != 0 && cur&x.bit == 0:
			add = append(add, x.flag)
		case next&x.bit == 0 && cur&x.bit != 0:
			del = append(del, x.flag)
		}
	}
	set := imap.UIDSetNum(uid)
	if len(add) > 0 {
		if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: add}, nil).Close(); err != nil {
			return err
		}
	}
	if len(del) > 0 {
		if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsDel, Silent: true, Flags: del}, nil).Close(); err != nil {
			return err
		}
	}
	return nil
}

// deleteUIDs moves messages of the selected mailbox to trash, or marks and expunges them.
func (s *session) deleteUIDs(c *imapclient.Client, uids []imap.UID, move bool, trash string) error {
	set := imap.UIDSetNum(uids...)
	if move {
		if _, err := c.Move(set, trash).Wait(); err != nil {
			return s.imapErr(err, "MOVE")
		}
		return nil
	}
	if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		return s.imapErr(err, "STORE \\Deleted")
	}
	var err error
	if s.caps().Has(imap.CapUIDPlus) || s.caps().Has(imap.CapIMAP4rev2) {
		err = c.UIDExpunge(set).Close()
	} else {
		err = c.Expunge().Close()
	}
	if err != nil {
		return s.imapErr(err, "EXPUNGE")
	}
	return nil
}

// mailboxState reads the UIDs in the sync window and the flags that may have changed.
// changed holds flags of every message when modseq is 0 (or without CONDSTORE), else only of
// the messages changed since modseq.
func (s *session) mailboxState(c *imapclient.Client, sel *imap.SelectData, filter int, modseq uint64) (all []imap.UID, changed map[imap.UID]ItemFlags, err error) {
	changed = map[imap.UID]ItemFlags{}
	if sel.NumMessages == 0 {
		return nil, changed, nil
	}
	crit := &imap.SearchCriteria{}
	if since := filterSince(filter, time.Now()); !since.IsZero() {
		crit.Since = since
	}
	fopts := &imap.FetchOptions{UID: true, Flags: true}
	useModSeq := modseq > 0 && s.condstore() && sel.HighestModSeq > 0
	if useModSeq {
		fopts.ChangedSince = modseq
	}
	if !useModSeq && crit.Since.IsZero() {
		// One FETCH gives both the UID set and every flag.
		bufs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, fopts).Collect()
		if err != nil {
			return nil, nil, s.imapErr(err, "FETCH flags")
		}
		all = make([]imap.UID, 0, len(bufs))
		for _, b := range bufs {
			all = append(all, b.UID)
			changed[b.UID] = flagsOf(b.Flags)
		}
		return all, changed, nil
	}
	var sopts *imap.SearchOptions
	if s.caps().Has(imap.CapESearch) || s.caps().Has(imap.CapIMAP4rev2) {
		sopts = &imap.SearchOptions{ReturnAll: true}
	}
	sd, err := c.UIDSearch(crit, sopts).Wait()
	if err != nil {
		return nil, nil, s.imapErr(err, "SEARCH")
	}
	all = sd.AllUIDs()
	if len(all) == 0 {
		return nil, changed, nil
	}
	bufs, err := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, fopts).Collect()
	if err != nil {
		return nil, nil, s.imapErr(err, "FETCH flags")
	}
	for _, b := range bufs {
		changed[b.UID] = flagsOf(b.Flags)
	}
	return all, changed, nil
}

// serverChanges appends up to r.window server-side changes to commands — deletions first, then
// flag changes, then new messages newest first — and records them in upsert and drop. It
// reports whether more remain and whether every deletion and flag change was sent.
func (s *session) serverChanges(c *imapclient.Client, r *syncReq, st *CollectionState, sel *imap.SelectData, known map[uint32]ItemFlags, upsert map[uint32]ItemFlags, drop *[]uint32, commands *wbxml.Element) (more, changesDone bool, err error) {
	if st.Complete && st.FilterType == 0 && s.condstore() && sel.HighestModSeq != 0 &&
		sel.HighestModSeq == st.ModSeq && uint32(sel.UIDNext) == st.UIDNext && sel.NumMessages == st.Count {
		return false, true, nil // nothing happened since the device became complete
	}
	modseq := uint64(0)
	if st.ModSeq != 0 && st.UIDValidity == sel.UIDValidity {
		modseq = st.ModSeq
	}
	all, flags, err := s.mailboxState(c, sel, r.filter, modseq)
	if err != nil {
		return false, false, err
	}
	inMailbox := make(map[uint32]bool, len(all))
	for _, u := range all {
		inMailbox[uint32(u)] = true
	}
	var deletes []uint32
	for u := range known {
		if !inMailbox[u] {
			deletes = append(deletes, u)
		}
	}
	slices.Sort(deletes)
	var changes []uint32
	var adds []imap.UID
	for _, u := range all {
		have, held := known[uint32(u)]
		if !held {
			adds = append(adds, u)
			continue
		}
		if v, ok := upsert[uint32(u)]; ok {
			have = v
		}
		if f, ok := flags[u]; ok && f != have {
			changes = append(changes, uint32(u))
		}
	}
	slices.Sort(changes)
	slices.SortFunc(adds, func(a, b imap.UID) int { return int(int64(b) - int64(a)) })

	budget := r.window
	for _, u := range deletes {
		if budget == 0 {
			break
		}
		commands.Append(wbxml.NewElement(wbxml.AirSyncDelete, text(wbxml.AirSyncServerId, serverID(r.id, imap.UID(u)))))
		*drop = append(*drop, u)
		budget--
	}
	for _, u := range changes {
		if budget == 0 {
			break
		}
		f := flags[imap.UID(u)]
		read := 0
		if f&FlagSeen != 0 {
			read = 1
		}
		commands.Append(wbxml.NewElement(wbxml.AirSyncChange,
			text(wbxml.AirSyncServerId, serverID(r.id, imap.UID(u))),
			wbxml.NewElement(wbxml.AirSyncApplicationData, text(wbxml.EmailRead, read), flagElem(f))))
		upsert[u] = f
		budget--
	}
	more = len(deletes)+len(changes)+len(adds) > r.window
	changesDone = len(deletes)+len(changes) <= r.window
	if budget > 0 && len(adds) > 0 {
		batch := adds[:min(budget, len(adds))]
		msgs, err := s.fetchMessages(c, batch, r.opts)
		if err != nil {
			return false, false, err
		}
		for _, u := range batch {
			m := msgs[u]
			if m == nil {
				continue // expunged between SEARCH and FETCH
			}
			commands.Append(wbxml.NewElement(wbxml.AirSyncAdd,
				text(wbxml.AirSyncServerId, serverID(r.id, u)),
				m.appData(wbxml.AirSyncApplicationData, r.id)))
			upsert[uint32(u)] = flagsOf(m.flags)
		}
	}
	return more, changesDone, nil
}
