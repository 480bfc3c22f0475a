package imap

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/easgate/easgate/bench/servers"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// BenchmarkDovecot10k measures, against one real Dovecot holding a 10,000-message INBOX, the
// backend's initial Sync of the folder (device windows of 512, plain-text bodies truncated to
// 20 kB, state committed to SQLite) and an incremental Sync after 10 new messages and 10 flag
// changes, each beside a plain IMAP client fetching the same fields (UID FLAGS INTERNALDATE
// RFC822.SIZE ENVELOPE BODYSTRUCTURE and the text part) of the same messages in the same run:
// for the initial case in the device's windows of 512 after one SELECT (imap-initial) and in
// one FETCH of the whole folder (imap-initial-one-fetch); for the incremental case UID SEARCH +
// FETCH CHANGEDSINCE + FETCH of the changed.
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
	// easInitial is a new device's initial Sync of the INBOX after its FolderSync; only the
	// Sync requests are timed.
	easInitial := func(b *testing.B) time.Duration {
		b.StopTimer()
		dev, inbox := newSynced()
		dev.t = b
		b.StartTimer()
		t0 := time.Now()
		dev.syncAll(inbox, 512)
		took := time.Since(t0)
		if len(dev.items[inbox]) != n {
			b.Fatalf("synced %d", len(dev.items[inbox]))
		}
		return took
	}
	// plainInitial fetches what the device gets, in the same windows: one SELECT, the UID
	// list, then per window of 512 (newest first) the metadata and the text part.
	plainInitial := func(b *testing.B, c *imapclient.Client) time.Duration {
		t0 := time.Now()
		if _, err := c.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait(); err != nil {
			b.Fatal(err)
		}
		sd, err := c.UIDSearch(&imap.SearchCriteria{}, &imap.SearchOptions{ReturnAll: true}).Wait()
		if err != nil {
			b.Fatal(err)
		}
		uids := sd.AllUIDs()
		got := 0
		for hi := len(uids); hi > 0; hi -= 512 {
			bufs, err := c.Fetch(imap.UIDSetNum(uids[max(0, hi-512):hi]...), &plainFetch).Collect()
			if err != nil {
				b.Fatal(err)
			}
			got += len(bufs)
		}
		if got != n {
			b.Fatalf("fetched %d", got)
		}
		return time.Since(t0)
	}
	b.Run("eas-initial", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			easInitial(b)
		}
	})
	b.Run("imap-initial", func(b *testing.B) {
		b.ReportAllocs()
		c := desktop(b, d.IMAPAddr, user, "pw")
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			plainInitial(b, c)
		}
	})
	// initial-paired runs one of each per iteration, alternating which goes first, and reports
	// the ratio of their summed times: load from other work on the shared machine then falls on
	// both sides alike.
	b.Run("initial-paired", func(b *testing.B) {
		c := desktop(b, d.IMAPAddr, user, "pw")
		var easT, imapT time.Duration
		for i := 0; i < b.N; i++ {
			if i%2 == 0 {
				easT += easInitial(b)
				imapT += plainInitial(b, c)
			} else {
				imapT += plainInitial(b, c)
				easT += easInitial(b)
			}
		}
		b.ReportMetric(float64(easT.Milliseconds())/float64(b.N), "eas-ms/op")
		b.ReportMetric(float64(imapT.Milliseconds())/float64(b.N), "imap-ms/op")
		b.ReportMetric(float64(easT)/float64(imapT), "eas/imap")
	})
	// The same in one FETCH of the whole folder: the floor for any client.
	b.Run("imap-initial-one-fetch", func(b *testing.B) {
		b.ReportAllocs()
		c := desktop(b, d.IMAPAddr, user, "pw")
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := c.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait(); err != nil {
				b.Fatal(err)
			}
			bufs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &plainFetch).Collect()
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
			full, err := c.Fetch(imap.UIDSetNum(uids...), &plainFetch).Collect()
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

// plainFetch is what the plain client fetches of a message: the fields the backend converts
// and the text part.
var plainFetch = imap.FetchOptions{
	UID: true, Flags: true, InternalDate: true, RFC822Size: true, Envelope: true,
	BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
	BodySection:   []*imap.FetchItemBodySection{{Part: []int{1}, Peek: true}},
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

// seedMaildir puts n messages into the user's INBOX with one `doveadm import` from an mbox
// written here: one Dovecot save transaction, in seconds instead of the minutes 10,000 APPENDs
// take (each rewrites dovecot-uidlist). Importing from mbox makes Dovecot write every maildir
// file itself, named and listed in dovecot-uidlist exactly as for delivered or APPENDed mail.
// (Importing from a maildir instead hard-links the source files: dovecot-uidlist then records
// names without the ":2," suffix the files in cur/ carry, so the first message read of every
// new SELECT misses, takes the uidlist lock and rescans the whole maildir — about 600 ms for
// 10,000 files here, paid once per EAS request and once by the plain client. That seeding
// artefact was the "re-SELECT slowdown" measured before.)
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
	user := name + "@" + d.Domain
	var mb []byte
	for i := 0; i < n; i++ {
		// mbox lines end in LF; sampleMessage has no body line starting with "From ".
		mb = append(mb, "From seed@example.org Thu Jan  1 00:00:00 2026\n"...)
		mb = append(mb, bytes.ReplaceAll(sampleMessage(i, user), []byte("\r\n"), []byte("\n"))...)
		mb = append(mb, '\n')
	}
	srcDir := filepath.Join(home, "seed")
	mboxPath := filepath.Join(home, "seed.mbox")
	if err := os.MkdirAll(srcDir, 0o700); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(mboxPath, mb, 0o600); err != nil {
		tb.Fatal(err)
	}
	for _, p := range []string{srcDir, mboxPath} {
		if err := os.Chown(p, uid, gid); err != nil {
			tb.Fatal(err)
		}
	}
	src := "mbox:" + srcDir + ":INBOX=" + mboxPath + ":INDEX=MEMORY"
	out, err := exec.Command("/usr/bin/doveadm", "-c", d.ConfigPath, "import", "-u", user, src, "", "mailbox", "INBOX", "all").CombinedOutput()
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
