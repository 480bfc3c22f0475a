package quarantine

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"sync"
	"time"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
)

// MessageRequest names the device a remediation message is for.
type MessageRequest struct {
	User       string
	DeviceID   string
	DeviceType string
	// Device is the registry record when the caller has it; see MessageInput.Device.
	Device *decision.Device
	// Lang is the reader's language (Responder.Language, or the user's preference).
	Lang string
}

// Message renders the remediation message for a quarantined device exactly as its
// quarantine inbox shows it at time now — the same subject, text, HTML and portal link —
// for the notifier to mail into the user's real mailbox. ok is false when d is not a
// Quarantine decision: blocked and wipe-pending devices get no remediation message.
func (q *Responder) Message(mr MessageRequest, d decision.Decision, now time.Time) (c Content, ok bool, err error) {
	cause, ok := CauseOf(d)
	if !ok {
		return Content{}, false, nil
	}
	m, err := q.message(mr, cause, d.Failures, now)
	if err != nil {
		return Content{}, true, err
	}
	return m.content, true, nil
}

// epoch returns the start of the refresh period that contains now.
func (q *Responder) epoch(now time.Time) time.Time {
	return time.Unix(0, 0).UTC().Add(now.Sub(time.Unix(0, 0)).Truncate(q.cfg.RefreshEvery))
}

// messageVersion identifies the message content: cause, failures, language, recipient and
// device, refresh period and the template fingerprint. Any change gives a new version,
// which the device sees as a new item replacing the old one.
func (q *Responder) messageVersion(mr MessageRequest, cause Cause, failures []decision.Failure, lang string, epoch time.Time) string {
	h := sha256.New()
	add := func(s string) { h.Write([]byte(s)); h.Write([]byte{0}) }
	add(q.tmplHash)
	add(cause.String())
	add(lang)
	add(mr.User)
	add(mr.DeviceID)
	add(mr.DeviceType)
	if mr.Device != nil {
		add(DeviceName(mr.Device, mr.DeviceType, mr.DeviceID))
	}
	add(strconv.FormatInt(epoch.Unix(), 10))
	for _, f := range failures {
		add(string(f.Rule))
		add(f.Want)
		add(f.Have)
	}
	return hex.EncodeToString(h.Sum(nil)[:6])
}

func (q *Responder) message(mr MessageRequest, cause Cause, failures []decision.Failure, now time.Time) (*inboxMessage, error) {
	lang := mr.Lang
	if !contains(q.render.Languages(), lang) {
		lang = q.cfg.DefaultLanguage
	}
	ep := q.epoch(now)
	ver := q.messageVersion(mr, cause, failures, lang, ep)
	if m := q.cache.get(ver); m != nil {
		return m, nil
	}
	link := ""
	if q.cfg.PortalLink != nil {
		link = q.cfg.PortalLink(mr.User, mr.DeviceID, ep.Add(q.cfg.LinkTTL))
	}
	c, err := q.render.Render(MessageInput{
		Cause: cause, User: mr.User, DeviceID: mr.DeviceID, DeviceType: mr.DeviceType,
		Device: mr.Device, Failures: failures, Lang: lang, PortalURL: link, Date: ep,
	})
	if err != nil {
		return nil, err
	}
	m := &inboxMessage{
		ver:      ver,
		serverID: messageServerID(ver),
		content:  c,
		fromName: q.cfg.Organization,
		fromAddr: q.cfg.From,
		to:       mr.User,
		date:     ep,
	}
	q.cache.put(ver, m)
	return m, nil
}

// messageCache keeps rendered messages by version: the version covers every input of the
// rendering (the portal link's expiry follows the refresh period, which is part of it),
// so a cached message is exactly what rendering again would give. Bounded like
// seenVersions.
type messageCache struct {
	mu  sync.Mutex
	m   map[string]*inboxMessage
	max int
}

func (c *messageCache) get(ver string) *inboxMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[ver]
}

func (c *messageCache) put(ver string, m *inboxMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]*inboxMessage)
	}
	if len(c.m) >= c.max {
		n := 0
		for k := range c.m {
			delete(c.m, k)
			if n++; n >= c.max/2+1 {
				break
			}
		}
	}
	c.m[ver] = m
}

// easAddress formats the Email:From value: "Name" <addr>, UTF-8 as EAS carries it
// (MS-ASEMAIL 2.2.2.32).
func easAddress(name, addr string) string {
	if name == "" {
		return addr
	}
	return strconv.Quote(name) + " <" + addr + ">"
}

// inbox answers the commands of the one-message inbox (MS-ASCMD 2.2.1.5 FolderSync,
// 2.2.1.21 Sync, 2.2.1.9 GetItemEstimate, 2.2.1.10 ItemOperations, 2.2.1.13 Ping).
func (q *Responder) inbox(req *eas.Request, d decision.Decision, body []byte, now time.Time) (Answer, error) {
	cause, _ := CauseOf(d)
	mr := MessageRequest{User: decision.NormalizeUser(req.User), DeviceID: req.DeviceID,
		DeviceType: req.DeviceType, Lang: q.Language(req)}
	m, err := q.message(mr, cause, d.Failures, now)
	if err != nil {
		return Answer{}, err
	}
	var doc *wbxml.Document
	if len(body) > 0 {
		doc, err = eas.ParseBody(body, q.cfg.Limits)
		if err != nil {
			return protocolError(req.Cmd), nil
		}
	}
	switch req.Cmd {
	case eas.CmdFolderSync:
		return folderSync(doc), nil
	case eas.CmdSync:
		return q.sync(req, mr.User, doc, m), nil
	case eas.CmdGetItemEstimate:
		return getItemEstimate(doc, m), nil
	case eas.CmdItemOperations:
		return itemOperations(req.Version, doc, m), nil
	default:
		return q.ping(req, mr.User, doc, m), nil
	}
}

// protocolError answers a body that is not valid WBXML with the command's "protocol
// error" status.
func protocolError(cmd eas.Command) Answer {
	switch cmd {
	case eas.CmdFolderSync:
		return wbxmlAnswer(wbxml.NewElement(wbxml.FolderHierarchyFolderSync, wbxml.NewText(wbxml.FolderHierarchyStatus, "10")))
	case eas.CmdSync:
		return wbxmlAnswer(wbxml.NewElement(wbxml.AirSyncSync, wbxml.NewText(wbxml.AirSyncStatus, "4")))
	case eas.CmdGetItemEstimate:
		return wbxmlAnswer(wbxml.NewElement(wbxml.GetItemEstimateGetItemEstimate,
			wbxml.NewElement(wbxml.GetItemEstimateResponse, wbxml.NewText(wbxml.GetItemEstimateStatus, "2"))))
	case eas.CmdItemOperations:
		return wbxmlAnswer(wbxml.NewElement(wbxml.ItemOperationsItemOperations, wbxml.NewText(wbxml.ItemOperationsStatus, "2")))
	default:
		return wbxmlAnswer(wbxml.NewElement(wbxml.PingPing, wbxml.NewText(wbxml.PingStatus, "4")))
	}
}

// folderSync serves the hierarchy: one Inbox (Type 2). Clients (iOS Mail, Android/Gmail,
// Samsung Email) accept a hierarchy without Drafts, Sent Items and Deleted Items and
// create local stand-ins; extra empty folders would only add Sync round trips.
//
// SyncKey 0 gets the Inbox and FolderSyncKey; FolderSyncKey gets "no changes"; any other
// key gets Status 9, and the device starts over with 0 (MS-ASCMD 2.2.3.177.5).
func folderSync(doc *wbxml.Document) Answer {
	key := ""
	if fs, err := eas.ParseFolderSync(doc); err == nil {
		key = fs.SyncKey
	}
	root := wbxml.NewElement(wbxml.FolderHierarchyFolderSync)
	switch key {
	case "0":
		root.Append(
			wbxml.NewText(wbxml.FolderHierarchyStatus, "1"),
			wbxml.NewText(wbxml.FolderHierarchySyncKey, FolderSyncKey),
			wbxml.NewElement(wbxml.FolderHierarchyChanges,
				wbxml.NewText(wbxml.FolderHierarchyCount, "1"),
				wbxml.NewElement(wbxml.FolderHierarchyAdd,
					wbxml.NewText(wbxml.FolderHierarchyServerId, InboxID),
					wbxml.NewText(wbxml.FolderHierarchyParentId, "0"),
					wbxml.NewText(wbxml.FolderHierarchyDisplayName, "Inbox"),
					wbxml.NewText(wbxml.FolderHierarchyType, "2"))))
	case FolderSyncKey:
		root.Append(
			wbxml.NewText(wbxml.FolderHierarchyStatus, "1"),
			wbxml.NewText(wbxml.FolderHierarchySyncKey, FolderSyncKey),
			wbxml.NewElement(wbxml.FolderHierarchyChanges, wbxml.NewText(wbxml.FolderHierarchyCount, "0")))
	case "":
		root.Append(wbxml.NewText(wbxml.FolderHierarchyStatus, "10"))
	default:
		root.Append(wbxml.NewText(wbxml.FolderHierarchyStatus, "9"))
	}
	return wbxmlAnswer(root)
}

// pending says what a device holding collection key key still has to receive: whether the
// key is valid at all, whether an old message must be deleted, and whether the current one
// must be added.
func pending(key string, m *inboxMessage) (valid bool, deleteOld string, add bool) {
	ver, step, ok := parseCollectionKey(key)
	if !ok {
		return false, "", false
	}
	if ver == m.ver {
		return true, "", step == stepPrimed
	}
	if step == stepDelivered {
		deleteOld = messageServerID(ver)
	}
	return true, deleteOld, true
}

// sync answers a Sync (MS-ASCMD 2.2.1.21) of the quarantine Inbox:
//
//   - SyncKey 0: Status 1 and a primed key, no items (3.1.5.3: the initial Sync only
//     returns a key);
//   - a primed key, or a key of an older message version: the message as an Add (and a
//     Delete of the older message), then the delivered key;
//   - the delivered key of the current version: no changes, the same key; a waiting Sync
//     (Wait or HeartbeatInterval) is held like a Ping;
//   - any other key: Status 3, the device starts over with 0;
//   - a collection the quarantine hierarchy does not have: top-level Status 12, the device
//     runs FolderSync (and gets Status 9 there if it still has a real hierarchy key).
//
// Client changes are acknowledged but not kept: a Change (read flag) or Delete succeeds, an
// Add is refused per item with Status 6, and a Fetch of the message returns it.
func (q *Responder) sync(req *eas.Request, user string, doc *wbxml.Document, m *inboxMessage) Answer {
	if doc == nil {
		// An empty Sync repeats the previous request (12.1+), which a stateless inbox
		// does not keep: Status 13 asks for the full request.
		return wbxmlAnswer(wbxml.NewElement(wbxml.AirSyncSync, wbxml.NewText(wbxml.AirSyncStatus, "13")))
	}
	s, err := eas.ParseSync(doc)
	if err != nil {
		return protocolError(eas.CmdSync)
	}
	if len(s.Collections) == 0 {
		return wbxmlAnswer(wbxml.NewElement(wbxml.AirSyncSync, wbxml.NewText(wbxml.AirSyncStatus, "13")))
	}
	for _, c := range s.Collections {
		if c.CollectionID != InboxID {
			return hierarchyChanged(req.Version, s)
		}
	}
	// The typed body does not model EAS 2.5's AirSync:Truncation; read it from the tree,
	// whose Collection elements are in the same order.
	trees := doc.Root.Path(wbxml.AirSyncCollections).FindAll(wbxml.AirSyncCollection)
	outCols := wbxml.NewElement(wbxml.AirSyncCollections)
	changes := false
	for i, c := range s.Collections {
		out := wbxml.NewElement(wbxml.AirSyncCollection)
		if req.Version < eas.V120 || c.Class != "" {
			out.Append(wbxml.NewText(wbxml.AirSyncClass, "Email"))
		}
		if c.SyncKey == "0" {
			out.Append(wbxml.NewText(wbxml.AirSyncSyncKey, collectionKey(m.ver, stepPrimed)),
				wbxml.NewText(wbxml.AirSyncCollectionId, InboxID),
				wbxml.NewText(wbxml.AirSyncStatus, "1"))
			outCols.Append(out)
			changes = true
			continue
		}
		valid, deleteOld, add := pending(c.SyncKey, m)
		if !valid {
			out.Append(wbxml.NewText(wbxml.AirSyncSyncKey, "0"),
				wbxml.NewText(wbxml.AirSyncCollectionId, InboxID),
				wbxml.NewText(wbxml.AirSyncStatus, "3"))
			outCols.Append(out)
			changes = true
			continue
		}
		opts := syncOptions(c, trees[i])
		wantChanges := c.GetChanges == nil || *c.GetChanges
		newKey := c.SyncKey
		var cmds *wbxml.Element
		if wantChanges && (add || deleteOld != "") {
			cmds = wbxml.NewElement(wbxml.AirSyncCommands)
			if deleteOld != "" {
				cmds.Append(wbxml.NewElement(wbxml.AirSyncDelete, wbxml.NewText(wbxml.AirSyncServerId, deleteOld)))
			}
			if add {
				cmds.Append(wbxml.NewElement(wbxml.AirSyncAdd,
					wbxml.NewText(wbxml.AirSyncServerId, m.serverID),
					wbxml.NewElement(wbxml.AirSyncApplicationData, m.properties(req.Version, opts)...)))
			}
			newKey = collectionKey(m.ver, stepDelivered)
		}
		responses := clientCommands(req.Version, c.Commands, m, opts)
		if newKey != c.SyncKey || responses != nil {
			changes = true
		}
		if newKey == collectionKey(m.ver, stepDelivered) {
			q.seen.set(user, req.DeviceID, m.ver)
		}
		out.Append(wbxml.NewText(wbxml.AirSyncSyncKey, newKey),
			wbxml.NewText(wbxml.AirSyncCollectionId, InboxID),
			wbxml.NewText(wbxml.AirSyncStatus, "1"))
		// Response order of MS-ASCMD 2.2.3.29.2: ..., Status, Commands, Responses.
		if cmds != nil {
			out.Append(cmds)
		}
		if responses != nil {
			out.Append(responses)
		}
		outCols.Append(out)
	}
	a := wbxmlAnswer(wbxml.NewElement(wbxml.AirSyncSync, outCols))
	if !changes {
		a.Hold = q.hold(syncWait(s))
	}
	return a
}

// hierarchyChanged answers a Sync naming folders the quarantine hierarchy does not have
// with Status 12, which sends the device to FolderSync: top-level from 12.1 on, per
// collection (echoing its key and id) for 2.5 and 12.0, whose Sync responses carry status
// only in Collection.
func hierarchyChanged(v eas.Version, s *eas.Sync) Answer {
	if v >= eas.V121 {
		return wbxmlAnswer(wbxml.NewElement(wbxml.AirSyncSync, wbxml.NewText(wbxml.AirSyncStatus, "12")))
	}
	cols := wbxml.NewElement(wbxml.AirSyncCollections)
	for _, c := range s.Collections {
		col := wbxml.NewElement(wbxml.AirSyncCollection)
		if c.Class != "" {
			col.Append(wbxml.NewText(wbxml.AirSyncClass, c.Class))
		}
		col.Append(wbxml.NewText(wbxml.AirSyncSyncKey, c.SyncKey),
			wbxml.NewText(wbxml.AirSyncCollectionId, c.CollectionID),
			wbxml.NewText(wbxml.AirSyncStatus, "12"))
		cols.Append(col)
	}
	return wbxmlAnswer(wbxml.NewElement(wbxml.AirSyncSync, cols))
}

// syncOptions collects the body options of a Sync collection: the typed BodyPreferences of
// every Options element, and the 2.5 Truncation from the collection's tree.
func syncOptions(c *eas.SyncCollection, tree *wbxml.Element) fetchOptions {
	o := parseOptions(tree.FindAll(wbxml.AirSyncOptions)...)
	o.prefs = o.prefs[:0]
	for _, so := range c.Options {
		for _, bp := range so.BodyPreferences {
			p := bodyPref{typ: int(bp.Type)}
			if bp.TruncationSize != nil && *bp.TruncationSize > 0 {
				p.trunc = int(min(*bp.TruncationSize, 1<<31-1))
			}
			p.allOrNone = bp.AllOrNone != nil && *bp.AllOrNone
			if bp.Preview != nil && *bp.Preview > 0 {
				p.preview = int(min(*bp.Preview, 255))
			}
			o.prefs = append(o.prefs, p)
		}
	}
	return o
}

// syncWait returns how long a Sync asks to wait for changes: Wait is in minutes (12.1+),
// HeartbeatInterval in seconds (14.0+); zero for a Sync that does not wait.
func syncWait(s *eas.Sync) time.Duration {
	if s.Wait != nil && *s.Wait > 0 {
		return time.Duration(min(*s.Wait, 59)) * time.Minute
	}
	if s.HeartbeatInterval != nil && *s.HeartbeatInterval > 0 {
		return time.Duration(min(*s.HeartbeatInterval, 3540)) * time.Second
	}
	return 0
}

func (q *Responder) hold(asked time.Duration) time.Duration {
	if asked <= 0 {
		return 0
	}
	return min(asked, q.cfg.PingHold)
}

// clientCommands acknowledges the changes a client sends in a Sync collection; nil when
// nothing needs an explicit response.
func clientCommands(v eas.Version, cmds []*eas.SyncCommand, m *inboxMessage, opts fetchOptions) *wbxml.Element {
	resp := wbxml.NewElement(wbxml.AirSyncResponses)
	for _, c := range cmds {
		switch c.Op {
		case wbxml.AirSyncAdd:
			resp.Append(wbxml.NewElement(wbxml.AirSyncAdd,
				wbxml.NewText(wbxml.AirSyncClientId, c.ClientID),
				wbxml.NewText(wbxml.AirSyncStatus, "6")))
		case wbxml.AirSyncFetch:
			f := wbxml.NewElement(wbxml.AirSyncFetch, wbxml.NewText(wbxml.AirSyncServerId, c.ServerID))
			if c.ServerID == m.serverID {
				f.Append(wbxml.NewText(wbxml.AirSyncStatus, "1"),
					wbxml.NewElement(wbxml.AirSyncApplicationData, m.properties(v, opts)...))
			} else {
				f.Append(wbxml.NewText(wbxml.AirSyncStatus, "8"))
			}
			resp.Append(f)
		}
	}
	if len(resp.Children) == 0 {
		return nil
	}
	return resp
}

// getItemEstimate answers with the number of changes the next Sync would return, so that
// it agrees with sync (MS-ASCMD 2.2.1.9): 1 for the message still to come (2 when an older
// one is also deleted), 0 once delivered. Key 0 gets Status 3 (not primed), an unknown key
// Status 4, another collection Status 2.
func getItemEstimate(doc *wbxml.Document, m *inboxMessage) Answer {
	if doc == nil || doc.Root.Tag != wbxml.GetItemEstimateGetItemEstimate {
		return protocolError(eas.CmdGetItemEstimate)
	}
	root := wbxml.NewElement(wbxml.GetItemEstimateGetItemEstimate)
	for _, c := range doc.Root.Path(wbxml.GetItemEstimateCollections).FindAll(wbxml.GetItemEstimateCollection) {
		id := c.Find(wbxml.GetItemEstimateCollectionId).Text()
		key := c.Find(wbxml.AirSyncSyncKey).Text()
		resp := wbxml.NewElement(wbxml.GetItemEstimateResponse)
		status, estimate := "1", -1
		switch valid, deleteOld, add := pending(key, m); {
		case id != InboxID:
			status = "2"
		case key == "0":
			status = "3"
		case !valid:
			status = "4"
		default:
			estimate = 0
			if deleteOld != "" {
				estimate++
			}
			if add {
				estimate++
			}
		}
		resp.Append(wbxml.NewText(wbxml.GetItemEstimateStatus, status))
		col := wbxml.NewElement(wbxml.GetItemEstimateCollection, wbxml.NewText(wbxml.GetItemEstimateCollectionId, id))
		if estimate >= 0 {
			col.Append(wbxml.NewText(wbxml.GetItemEstimateEstimate, strconv.Itoa(estimate)))
		}
		resp.Append(col)
		root.Append(resp)
	}
	if len(root.Children) == 0 {
		return protocolError(eas.CmdGetItemEstimate)
	}
	return wbxmlAnswer(root)
}

// itemOperations answers Fetch operations (MS-ASCMD 2.2.1.10) of the quarantine message
// with the same properties Sync sends; any other item is not found (Status 6), and the
// other operations (EmptyFolderContents, Move) are refused with the blocking status.
func itemOperations(v eas.Version, doc *wbxml.Document, m *inboxMessage) Answer {
	io, err := eas.ParseItemOperations(doc)
	if err != nil {
		return protocolError(eas.CmdItemOperations)
	}
	resp := wbxml.NewElement(wbxml.ItemOperationsResponse)
	blocked := statusText(eas.StatusDeviceIsBlockedForThisUser)
	for _, op := range io.Operations {
		switch op.Op {
		case wbxml.ItemOperationsFetch:
			f := wbxml.NewElement(wbxml.ItemOperationsFetch)
			if op.ServerID == m.serverID && op.FileReference == "" && op.LongID == "" {
				f.Append(wbxml.NewText(wbxml.ItemOperationsStatus, "1"),
					wbxml.NewText(wbxml.AirSyncCollectionId, InboxID),
					wbxml.NewText(wbxml.AirSyncServerId, op.ServerID),
					wbxml.NewText(wbxml.AirSyncClass, "Email"),
					wbxml.NewElement(wbxml.ItemOperationsProperties,
						m.properties(v, parseOptions(op.Options))...))
			} else {
				f.Append(wbxml.NewText(wbxml.ItemOperationsStatus, "6"))
				if op.ServerID != "" {
					f.Append(wbxml.NewText(wbxml.AirSyncServerId, op.ServerID))
				}
			}
			resp.Append(f)
		case wbxml.ItemOperationsEmptyFolderContents:
			resp.Append(wbxml.NewElement(wbxml.ItemOperationsEmptyFolderContents,
				wbxml.NewText(wbxml.ItemOperationsStatus, blocked),
				wbxml.NewText(wbxml.AirSyncCollectionId, op.CollectionID)))
		case wbxml.ItemOperationsMove:
			resp.Append(wbxml.NewElement(wbxml.ItemOperationsMove,
				wbxml.NewText(wbxml.ItemOperationsStatus, blocked),
				wbxml.NewText(wbxml.ItemOperationsConversationId, op.ConversationID)))
		}
	}
	return wbxmlAnswer(wbxml.NewElement(wbxml.ItemOperationsItemOperations,
		wbxml.NewText(wbxml.ItemOperationsStatus, "1"), resp))
}

// ping answers a Ping (MS-ASCMD 2.2.1.13) at once with Status 2 and the Inbox when the
// device has not yet synchronised the current message, and otherwise with Status 1 after
// Config.PingHold (capped by the device's heartbeat), so that a device that is released
// checks back soon. A Ping that names folders the quarantine hierarchy does not have gets
// Status 7 (FolderSync required).
func (q *Responder) ping(req *eas.Request, user string, doc *wbxml.Document, m *inboxMessage) Answer {
	heartbeat := time.Duration(0)
	if doc != nil {
		p, err := eas.ParsePing(doc)
		if err != nil {
			return protocolError(eas.CmdPing)
		}
		if p.HeartbeatInterval != nil && *p.HeartbeatInterval > 0 {
			heartbeat = time.Duration(min(*p.HeartbeatInterval, 3540)) * time.Second
		}
		for _, f := range p.Folders {
			if f.ID != InboxID {
				return wbxmlAnswer(wbxml.NewElement(wbxml.PingPing, wbxml.NewText(wbxml.PingStatus, "7")))
			}
		}
	}
	if seen, ok := q.seen.get(user, req.DeviceID); !ok || seen != m.ver {
		return wbxmlAnswer(wbxml.NewElement(wbxml.PingPing,
			wbxml.NewText(wbxml.PingStatus, "2"),
			wbxml.NewElement(wbxml.PingFolders, wbxml.NewText(wbxml.PingFolder, InboxID))))
	}
	if heartbeat <= 0 {
		heartbeat = q.cfg.PingHold
	}
	a := wbxmlAnswer(wbxml.NewElement(wbxml.PingPing, wbxml.NewText(wbxml.PingStatus, "1")))
	a.Hold = q.hold(heartbeat)
	return a
}
