package imap

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/easgate/easgate/bench/servers"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// BenchmarkDovecot10k measures, against one real Dovecot holding a 10,000-message INBOX, the
// backend's initial Sync of the folder (device windows of 512, plain-text bodies truncated to
// 20 kB, state committed to SQLite) and an incremental Sync after 10 new messages and 10 flag
// changes, each beside a plain IMAP client fetching the same fields (UID FLAGS INTERNALDATE
// RFC822.SIZE ENVELOPE BODYSTRUCTURE and the text part; for the incremental case UID SEARCH +
// FETCH CHANGEDSINCE) in the same run.
func BenchmarkDovecot10k(b *testing.B) {
	const n = 10000
	d := servers.StartDovecot(b, servers.DovecotOptions{Users: []servers.DovecotUser{{Name: "bench", Password: "pw"}}})
	user := "bench@" + d.Domain
	dc := desktop(b, d.IMAPAddr, user, "pw")
	seedMaildir(b, d, dc, "bench", n)
	warmDovecot(b, dc)
	st := openStore(b, b.TempDir())
	backend, err := New(Config{IMAPAddr: d.IMAPAddr, Domain: d.Domain}, st)
	if err != nil {
		b.Fatal(err)
	}
	defer backend.Close()
	devN := 0
	newSynced := func() (*device, string) {
		devN++
		dev := newDevice(b, backend, user, "pw", "bench"+strconv.Itoa(devN))
		dev.folderSync()
		inbox := dev.folder(typeInbox, "")
		return dev, inbox
	}
	b.Run("eas-initial", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			dev, inbox := newSynced()
			dev.t = b
			dev.syncAll(inbox, 512)
			if len(dev.items[inbox]) != n {
				b.Fatalf("synced %d", len(dev.items[inbox]))
			}
		}
	})
	b.Run("imap-initial", func(b *testing.B) {
		b.ReportAllocs()
		c := desktop(b, d.IMAPAddr, user, "pw")
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := c.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait(); err != nil {
				b.Fatal(err)
			}
			bufs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
				UID: true, Flags: true, InternalDate: true, RFC822Size: true, Envelope: true,
				BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
				BodySection:   []*imap.FetchItemBodySection{{Part: []int{1}, Peek: true}},
			}).Collect()
			if err != nil || len(bufs) != n {
				b.Fatalf("fetched %d: %v", len(bufs), err)
			}
		}
	})
	dev, inbox := newSynced()
	dev.syncAll(inbox, 512)
	round := 0
	b.Run("eas-incremental", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			changeBatch(b, dc, user, &round)
			b.StartTimer()
			dev.t = b
			r := dev.sync(inbox, 512)
			if len(r.adds) != 10 || len(r.changes) != 10 {
				b.Fatalf("incremental: %d adds, %d changes", len(r.adds), len(r.changes))
			}
		}
	})
	b.Run("imap-incremental", func(b *testing.B) {
		b.ReportAllocs()
		c := desktop(b, d.IMAPAddr, user, "pw")
		sel, err := c.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait()
		if err != nil {
			b.Fatal(err)
		}
		modseq := sel.HighestModSeq
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			changeBatch(b, dc, user, &round)
			b.StartTimer()
			if err := c.Noop().Wait(); err != nil {
				b.Fatal(err)
			}
			if _, err := c.UIDSearch(&imap.SearchCriteria{}, &imap.SearchOptions{ReturnAll: true}).Wait(); err != nil {
				b.Fatal(err)
			}
			bufs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, ChangedSince: modseq}).Collect()
			if err != nil {
				b.Fatal(err)
			}
			var uids []imap.UID
			for _, x := range bufs {
				uids = append(uids, x.UID)
			}
			full, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{
				UID: true, Flags: true, InternalDate: true, RFC822Size: true, Envelope: true,
				BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
				BodySection:   []*imap.FetchItemBodySection{{Part: []int{1}, Peek: true}},
			}).Collect()
			if err != nil || len(full) < 10 {
				b.Fatalf("incremental fetch %d: %v", len(full), err)
			}
			sel, err := c.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait()
			if err != nil {
				b.Fatal(err)
			}
			modseq = sel.HighestModSeq
		}
	})
}

// changeBatch appends 10 messages and flags 10 old ones, as a desktop client would.
func changeBatch(tb testing.TB, dc *imapclient.Client, user string, round *int) {
	tb.Helper()
	var msgs [][]byte
	for k := 0; k < 10; k++ {
		msgs = append(msgs, sampleMessage(100000+*round*10+k, user))
	}
	appendMessages(tb, dc, "INBOX", msgs)
	var uids []imap.UID
	for k := 0; k < 10; k++ {
		uids = append(uids, imap.UID(*round*10+k+1))
	}
	if _, err := dc.Select("INBOX", nil).Wait(); err != nil {
		tb.Fatal(err)
	}
	if err := dc.Store(imap.UIDSetNum(uids...), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		tb.Fatal(err)
	}
	*round++
}

// seedMaildir puts n messages into the user's INBOX with `doveadm import` from a maildir
// written here: one Dovecot save transaction, so Dovecot indexes and caches them as it does for
// delivered mail, in seconds instead of the minutes 10,000 APPENDs take (each rewrites
// dovecot-uidlist).
func seedMaildir(tb testing.TB, d *servers.Dovecot, dc *imapclient.Client, name string, n int) {
	tb.Helper()
	if _, err := dc.Select("INBOX", nil).Wait(); err != nil {
		tb.Fatal(err)
	}
	home := filepath.Join(d.Dir, "mail", d.Domain, name)
	fi, err := os.Stat(home)
	if err != nil {
		tb.Fatal(err)
	}
	uid, gid := int(fi.Sys().(*syscall.Stat_t).Uid), int(fi.Sys().(*syscall.Stat_t).Gid)
	src := filepath.Join(home, "seed")
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(src, sub), 0o700); err != nil {
			tb.Fatal(err)
		}
		os.Chown(filepath.Join(src, sub), uid, gid)
	}
	user := name + "@" + d.Domain
	for i := 0; i < n; i++ {
		msg := sampleMessage(i, user)
		p := filepath.Join(src, "cur", fmt.Sprintf("%d.M%dP1.seed,S=%d,W=%d:2,", 1700000000+i, i, len(msg), len(msg)))
		if err := os.WriteFile(p, msg, 0o600); err != nil {
			tb.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			tb.Fatal(err)
		}
	}
	out, err := exec.Command("/usr/bin/doveadm", "-c", d.ConfigPath, "import", "-u", user, "maildir:"+src+":INDEX=MEMORY", "", "mailbox", "INBOX", "all").CombinedOutput()
	if err != nil {
		tb.Fatalf("doveadm import: %v\n%s", err, out)
	}
	sel, err := dc.Select("INBOX", nil).Wait()
	if err != nil || int(sel.NumMessages) != n {
		tb.Fatalf("INBOX holds %d of %d seeded messages: %v", sel.NumMessages, n, err)
	}
}

// warmDovecot reads every message's fields a few times, reopening the mailbox in between, so
// that Dovecot has decided to cache them (its cache decisions flip from "temp" to "yes" once
// older messages are read again) and has written its cache: otherwise whichever side runs
// first pays for populating Dovecot's cache of the freshly seeded maildir.
func warmDovecot(tb testing.TB, dc *imapclient.Client) {
	tb.Helper()
	for i := 0; i < 3; i++ {
		if _, err := dc.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait(); err != nil {
			tb.Fatal(err)
		}
		if _, err := dc.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
			UID: true, Flags: true, InternalDate: true, RFC822Size: true, Envelope: true,
			BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
			BodySection:   []*imap.FetchItemBodySection{{Part: []int{1}, Peek: true}},
		}).Collect(); err != nil {
			tb.Fatal(err)
		}
		if err := dc.Unselect().Wait(); err != nil {
			tb.Fatal(err)
		}
	}
}
