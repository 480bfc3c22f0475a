package imap

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/easgate/easgate/eas/wbxml"
	"github.com/emersion/go-imap/v2"
)

// Search status values (MS-ASCMD 2.2.3.177.16).
const (
	searchOK         = 1
	searchBadRequest = 2
	searchServerErr  = 3
	searchBadRange   = 4
)

// search implements Search of the Mailbox store (MS-ASCMD 2.2.1.16) with IMAP SEARCH: FreeText
// becomes TEXT, GreaterThan/LessThan on DateReceived become SINCE/BEFORE, CollectionId limits
// the folders (all folders otherwise). Results are newest first; LongId is the ServerId.
func (s *session) search(body []byte) (Response, error) {
	root, err := parseBody(body, wbxml.SearchSearch)
	if err != nil {
		return Response{}, err
	}
	store := root.Find(wbxml.SearchStore)
	fail := func(st int) (Response, error) {
		return wbxmlResponse(wbxml.NewElement(wbxml.SearchSearch, text(wbxml.SearchStatus, searchOK),
			wbxml.NewElement(wbxml.SearchResponse, wbxml.NewElement(wbxml.SearchStore, text(wbxml.SearchStatus, st)))))
	}
	if store == nil || !strings.EqualFold(store.Find(wbxml.SearchName).Text(), "Mailbox") {
		return fail(searchBadRequest)
	}
	q := store.Find(wbxml.SearchQuery)
	if q == nil {
		return fail(searchBadRequest)
	}
	crit := &imap.SearchCriteria{}
	var colls []string
	var walk func(e *wbxml.Element) bool
	walk = func(e *wbxml.Element) bool {
		for _, c := range e.Children {
			switch c.Tag {
			case wbxml.SearchAnd:
				if !walk(c) {
					return false
				}
			case wbxml.SearchFreeText:
				if t := strings.TrimSpace(c.Text()); t != "" {
					crit.Text = append(crit.Text, t)
				}
			case wbxml.AirSyncCollectionId:
				colls = append(colls, c.Text())
			case wbxml.AirSyncClass:
				if c.Text() != "Email" {
					return false
				}
			case wbxml.SearchGreaterThan, wbxml.SearchLessThan:
				if c.Find(wbxml.EmailDateReceived) == nil {
					return false
				}
				t, err := time.Parse("2006-01-02T15:04:05.000Z", c.Find(wbxml.SearchValue).Text())
				if err != nil {
					return false
				}
				if c.Tag == wbxml.SearchGreaterThan {
					crit.Since = t
				} else {
					crit.Before = t
				}
			case wbxml.SearchOr, wbxml.SearchEqualTo:
				return false
			}
		}
		return true
	}
	if !walk(q) {
		return fail(searchBadRequest)
	}
	opts := store.Find(wbxml.SearchOptions)
	lo, hi := 0, 99
	if r := opts.Find(wbxml.SearchRange).Text(); r != "" {
		a, b, ok := strings.Cut(r, "-")
		if !ok {
			return fail(searchBadRange)
		}
		lo, hi = atoi(a), atoi(b)
		if lo < 0 || hi < lo {
			return fail(searchBadRange)
		}
	}
	hi = min(hi, lo+s.b.cfg.MaxSearchResults-1)
	iopts := parseItemOptions(opts)
	var folders []Folder
	fs, err := s.listFolders()
	if err != nil {
		return Response{}, err
	}
	for _, f := range fs {
		if len(colls) == 0 || slices.Contains(colls, f.ID) {
			folders = append(folders, f)
		}
	}
	c, err := s.client()
	if err != nil {
		return Response{}, err
	}
	type hit struct {
		f    Folder
		uid  imap.UID
		date time.Time
	}
	var hits []hit
	for _, f := range folders {
		s.reselect()
		if _, err := c.Select(f.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			if isNo(err) {
				continue
			}
			return Response{}, s.imapErr(err, "EXAMINE")
		}
		sd, err := c.UIDSearch(crit, nil).Wait()
		if err != nil {
			if isNo(err) {
				return fail(searchServerErr)
			}
			return Response{}, s.imapErr(err, "SEARCH")
		}
		uids := sd.AllUIDs()
		if len(uids) == 0 {
			continue
		}
		bufs, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, InternalDate: true}).Collect()
		if err != nil {
			return Response{}, s.imapErr(err, "FETCH")
		}
		for _, b := range bufs {
			hits = append(hits, hit{f: f, uid: b.UID, date: b.InternalDate})
		}
	}
	slices.SortStableFunc(hits, func(a, b hit) int { return b.date.Compare(a.date) })
	st := wbxml.NewElement(wbxml.SearchStore, text(wbxml.SearchStatus, searchOK))
	if lo < len(hits) {
		page := hits[lo:min(hi+1, len(hits))]
		for _, h := range page {
			s.reselect()
			if _, err := c.Select(h.f.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
				return Response{}, s.imapErr(err, "EXAMINE")
			}
			msgs, err := s.fetchMessages(c, []imap.UID{h.uid}, iopts)
			if err != nil {
				return Response{}, err
			}
			m := msgs[h.uid]
			if m == nil {
				continue
			}
			st.Append(wbxml.NewElement(wbxml.SearchResult,
				text(wbxml.AirSyncClass, "Email"),
				text(wbxml.SearchLongId, serverID(h.f.ID, h.uid)),
				text(wbxml.AirSyncCollectionId, h.f.ID),
				m.appData(wbxml.SearchProperties, h.f.ID)))
		}
		st.Append(text(wbxml.SearchRange, strconv.Itoa(lo)+"-"+strconv.Itoa(lo+len(page)-1)))
	}
	st.Append(text(wbxml.SearchTotal, len(hits)))
	s.reselect()
	return wbxmlResponse(wbxml.NewElement(wbxml.SearchSearch, text(wbxml.SearchStatus, searchOK),
		wbxml.NewElement(wbxml.SearchResponse, st)))
}
