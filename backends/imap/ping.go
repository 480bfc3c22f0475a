package imap

import (
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/easgate/easgate/eas/wbxml"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Ping status values (MS-ASCMD 2.2.3.177.13).
const (
	pingExpired      = 1
	pingChanges      = 2
	pingMissing      = 3
	pingBadInterval  = 5
	pingTooMany      = 6
	pingHierarchy    = 7
	pingServerFailed = 8
)

// ping implements Ping (MS-ASCMD 2.2.1.13). It IDLEs (RFC 2177) on the first folder (the
// Inbox when it is watched) and checks the others with STATUS every PollInterval; a folder has
// changed when its STATUS no longer matches what the device last synchronised (UIDVALIDITY,
// UIDNEXT, MESSAGES and, with CONDSTORE, HIGHESTMODSEQ) or its last Sync left MoreAvailable.
// It returns as soon as ctx ends.
func (s *session) ping(body []byte) (Response, error) {
	var interval time.Duration
	var ids []string
	if len(body) > 0 {
		root, err := parseBody(body, wbxml.PingPing)
		if err != nil {
			return Response{}, err
		}
		if hb := root.Find(wbxml.PingHeartbeatInterval); hb != nil {
			interval = time.Duration(atoi(hb.Text())) * time.Second
			if interval <= 0 {
				return pingStatus(pingMissing)
			}
		}
		for _, f := range root.Path(wbxml.PingFolders).FindAll(wbxml.PingFolder) {
			ids = append(ids, f.Find(wbxml.PingId).Text())
		}
	}
	if interval == 0 || len(ids) == 0 {
		// Missing parts come from the previous Ping (MS-ASCMD 2.2.3.79.1, 2.2.3.71.1).
		last, err := s.b.store.LastRequest(s.ctx, s.user, s.device, "Ping")
		if err != nil {
			return Response{}, internal(err, "last Ping")
		}
		if last != nil {
			li, lids := decodePing(last)
			if interval == 0 {
				interval = li
			}
			if len(ids) == 0 {
				ids = lids
			}
		}
		if interval == 0 || len(ids) == 0 {
			return pingStatus(pingMissing)
		}
	}
	if interval < s.b.cfg.MinHeartbeat || interval > s.b.cfg.MaxHeartbeat {
		lim := s.b.cfg.MinHeartbeat
		if interval > s.b.cfg.MaxHeartbeat {
			lim = s.b.cfg.MaxHeartbeat
		}
		return wbxmlResponse(wbxml.NewElement(wbxml.PingPing, text(wbxml.PingStatus, pingBadInterval),
			text(wbxml.PingHeartbeatInterval, int(lim/time.Second))))
	}
	if len(ids) > s.b.cfg.MaxPingFolders {
		return wbxmlResponse(wbxml.NewElement(wbxml.PingPing, text(wbxml.PingStatus, pingTooMany),
			text(wbxml.PingMaxFolders, s.b.cfg.MaxPingFolders)))
	}
	if err := s.b.store.SaveRequest(s.ctx, s.user, s.device, "Ping", encodePing(interval, ids)); err != nil {
		return Response{}, internal(err, "save Ping")
	}
	var folders []Folder
	for _, id := range ids {
		f, ok, err := s.folderByID(id)
		if err != nil {
			return Response{}, err
		}
		if !ok {
			return pingStatus(pingHierarchy)
		}
		folders = append(folders, f)
	}
	changed, err := s.waitForChange(folders, interval)
	if err != nil {
		return Response{}, err
	}
	if len(changed) == 0 {
		return pingStatus(pingExpired)
	}
	fe := wbxml.NewElement(wbxml.PingFolders)
	for _, id := range changed {
		fe.Append(text(wbxml.PingFolder, id))
	}
	return wbxmlResponse(wbxml.NewElement(wbxml.PingPing, text(wbxml.PingStatus, pingChanges), fe))
}

// waitForChange returns the ids of the folders that differ from the device's state, waiting up
// to timeout for one to change: it IDLEs on the first folder (the Inbox when watched) and polls
// the others with STATUS every PollInterval. An empty result means the time ran out.
func (s *session) waitForChange(folders []Folder, timeout time.Duration) ([]string, error) {
	folders = slices.Clone(folders)
	sort.SliceStable(folders, func(i, j int) bool { return folders[i].Type == typeInbox && folders[j].Type != typeInbox })
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	if s.cn.c.Mailbox() != nil {
		if err := c.Unselect().Wait(); err != nil {
			return nil, s.imapErr(err, "UNSELECT")
		}
		s.reselect()
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	poll := time.NewTicker(s.b.cfg.PollInterval)
	defer poll.Stop()
	for {
		changed, err := s.changedFolders(c, folders)
		if err != nil || len(changed) > 0 {
			return changed, err
		}
		if _, err := c.Select(folders[0].Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			if isNo(err) {
				return []string{folders[0].ID}, nil // gone: the device's next request learns why
			}
			return nil, s.imapErr(err, "EXAMINE")
		}
		s.cn.drain()
		idle, err := c.Idle()
		if err != nil {
			return nil, s.imapErr(err, "IDLE")
		}
		expired := false
		select {
		case <-s.ctx.Done():
		case <-s.cn.events:
		case <-poll.C:
		case <-deadline.C:
			expired = true
		}
		if err := idle.Close(); err != nil && s.ctx.Err() == nil {
			return nil, s.imapErr(err, "IDLE done")
		}
		if err := idle.Wait(); err != nil && s.ctx.Err() == nil {
			return nil, s.imapErr(err, "IDLE")
		}
		if s.ctx.Err() != nil {
			return nil, s.imapErr(s.ctx.Err(), "wait for changes")
		}
		if err := c.Unselect().Wait(); err != nil {
			return nil, s.imapErr(err, "UNSELECT")
		}
		s.reselect()
		if expired {
			// One last look, so a change that raced the deadline is not lost.
			return s.changedFolders(c, folders)
		}
	}
}

func pingStatus(st int) (Response, error) {
	return wbxmlResponse(wbxml.NewElement(wbxml.PingPing, text(wbxml.PingStatus, st)))
}

func encodePing(interval time.Duration, ids []string) []byte {
	return []byte(strings.Join(append([]string{strconv.Itoa(int(interval / time.Second))}, ids...), "\n"))
}

func decodePing(b []byte) (time.Duration, []string) {
	parts := strings.Split(string(b), "\n")
	if len(parts) < 2 {
		return 0, nil
	}
	return time.Duration(atoi(parts[0])) * time.Second, parts[1:]
}

// changedFolders returns the ids of the folders whose mailbox differs from the device's state.
func (s *session) changedFolders(c *imapclient.Client, folders []Folder) ([]string, error) {
	var out []string
	cs := s.condstore()
	for _, f := range folders {
		st, err := s.b.store.Collection(s.ctx, s.user, s.device, f.ID)
		if err != nil {
			return nil, internal(err, "collection state")
		}
		if st.SyncKey == 0 {
			continue // never synchronised: nothing to tell the device about
		}
		if !st.Complete {
			out = append(out, f.ID)
			continue
		}
		sd, err := c.Status(f.Mailbox, &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, HighestModSeq: cs}).Wait()
		if err != nil {
			if isNo(err) {
				out = append(out, f.ID) // gone: the device's Sync will learn why
				continue
			}
			return nil, s.imapErr(err, "STATUS")
		}
		n := uint32(0)
		if sd.NumMessages != nil {
			n = *sd.NumMessages
		}
		if sd.UIDValidity != st.UIDValidity || uint32(sd.UIDNext) != st.UIDNext || n != st.Count ||
			(cs && sd.HighestModSeq != st.ModSeq) {
			out = append(out, f.ID)
		}
	}
	return slices.Compact(out), nil
}
