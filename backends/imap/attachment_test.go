package imap

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/quotedprintable"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/easgate/easgate/backends/imap/demo"
	"github.com/easgate/easgate/bench/servers"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/valyala/fasthttp"
)

// Attachment sizes of the streaming tests: a base64 part larger than every in-memory threshold
// and a quoted-printable part with plenty of escapes.
const (
	bigB64 = 20 << 20
	bigQP  = 3 << 20
)

// attachmentPayloads returns deterministic attachment contents: random bytes for base64 and
// text with non-ASCII bytes, long lines and bare LFs for quoted-printable.
func attachmentPayloads(b64Size, qpSize int) (b64, qp []byte) {
	b64 = make([]byte, b64Size)
	rand.NewChaCha8([32]byte{7, 11}).Read(b64)
	r := rand.New(rand.NewPCG(7, 11))
	qp = make([]byte, 0, qpSize)
	words := []string{"Grüße ", "naïve ", "façade ", "=equals ", "tab\t", "plain ", "text ", "\n", "€uro ", "line\r\n"}
	for len(qp) < qpSize {
		qp = append(qp, words[r.IntN(len(words))]...)
	}
	return b64, qp[:qpSize]
}

// twoAttachmentMessage is a multipart/mixed message: part 1 text, part 2 b64 as base64,
// part 3 qp as quoted-printable.
func twoAttachmentMessage(to string, b64, qp []byte) []byte {
	var b bytes.Buffer
	b.WriteString("From: sender@example.org\r\nTo: " + to + "\r\nSubject: big attachments\r\nMessage-ID: <big@example.org>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n")
	b.WriteString("--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nTwo attachments.\r\n")
	b.WriteString("--b1\r\nContent-Type: application/octet-stream; name=\"data.bin\"\r\nContent-Disposition: attachment; filename=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	line := make([]byte, 78)
	for rest := b64; len(rest) > 0; {
		n := min(57, len(rest))
		k := base64.StdEncoding.EncodedLen(n)
		base64.StdEncoding.Encode(line, rest[:n])
		line[k], line[k+1] = '\r', '\n'
		b.Write(line[:k+2])
		rest = rest[n:]
	}
	b.WriteString("--b1\r\nContent-Type: text/plain; charset=utf-8; name=\"notes.txt\"\r\nContent-Disposition: attachment; filename=\"notes.txt\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	w := quotedprintable.NewWriter(&b)
	w.Binary = true // line breaks are data: keep them byte for byte
	w.Write(qp)
	w.Close()
	b.WriteString("\r\n--b1--\r\n")
	return b.Bytes()
}

// appendUID APPENDs msg to INBOX and returns its UID (UIDPLUS).
func appendUID(t testing.TB, c *imapclient.Client, msg []byte) imap.UID {
	t.Helper()
	cmd := c.Append("INBOX", int64(len(msg)), nil)
	if _, err := cmd.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	ad, err := cmd.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if ad.UID == 0 {
		t.Fatal("APPEND returned no UID")
	}
	return ad.UID
}

// capFilter is a loopback TCP proxy in front of an IMAP server that hides BINARY from the
// capabilities it announces, so that the backend decodes base64 and quoted-printable itself.
// It copies with fixed buffers, allocating nothing per byte.
func capFilter(t testing.TB, upstream string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer u.Close()
				go func() {
					io.Copy(u, c)
					u.Close()
				}()
				br := bufio.NewReaderSize(u, 64<<10)
				bw := bufio.NewWriterSize(c, 64<<10)
				for {
					line, err := br.ReadSlice('\n')
					if bytes.HasPrefix(line, []byte("* CAPABILITY ")) || bytes.Contains(line, []byte("[CAPABILITY ")) {
						line = bytes.ReplaceAll(line, []byte(" BINARY"), nil)
					}
					bw.Write(line)
					if br.Buffered() == 0 || err != nil {
						// Flush whenever the server paused, so that no response waits here.
						if bw.Flush() != nil {
							return
						}
					}
					if err != nil && err != bufio.ErrBufferFull {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// compareWriter checks written bytes against want without allocating.
type compareWriter struct {
	want []byte
	off  int
	bad  int // offset of the first difference + 1, 0 if none
}

func (w *compareWriter) Write(p []byte) (int, error) {
	if w.bad == 0 {
		end := min(w.off+len(p), len(w.want))
		if !bytes.Equal(p[:end-w.off], w.want[w.off:end]) || end-w.off != len(p) {
			w.bad = w.off + 1
		}
	}
	w.off += len(p)
	return len(p), nil
}

func (w *compareWriter) check(t testing.TB, what string) {
	t.Helper()
	if w.bad != 0 || w.off != len(w.want) {
		t.Fatalf("%s: %d bytes, want %d; first difference near %d", what, w.off, len(w.want), w.bad-1)
	}
}

// allocDuring returns the bytes allocated on the Go heap while f runs (an upper bound on the
// heap growth f causes).
func allocDuring(f func()) uint64 {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	f()
	runtime.ReadMemStats(&m1)
	return m1.TotalAlloc - m0.TotalAlloc
}

type attachEnv struct {
	t     testing.TB
	b     *Backend
	dev   *device
	inbox string
	id    string // ServerId of the message
}

func newAttachEnv(t testing.TB, addr, user, pass string, cfg Config, uid imap.UID) *attachEnv {
	t.Helper()
	cfg.IMAPAddr = addr
	b, err := New(cfg, openStore(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	dev := newDevice(t, b, user, pass, "attdev")
	dev.folderSync()
	inbox := dev.folder(typeInbox, "")
	return &attachEnv{t: t, b: b, dev: dev, inbox: inbox, id: serverID(inbox, uid)}
}

func (e *attachEnv) ref(part int) string { return e.id + ":" + strconv.Itoa(part) }

func (e *attachEnv) getAttachment(ref string) Response {
	e.t.Helper()
	req := e.dev.request(eas.CmdGetAttachment)
	req.Version, req.AttachmentName = eas.V121, ref
	resp, err := e.b.Serve(context.Background(), req, e.dev.cred, nil)
	if err != nil {
		e.t.Fatalf("GetAttachment %s: %v", ref, err)
	}
	return resp
}

func (e *attachEnv) itemOperations(multipart bool, refs ...string) Response {
	e.t.Helper()
	req := e.dev.request(eas.CmdItemOperations)
	req.AcceptMultiPart = multipart
	root := wbxml.NewElement(wbxml.ItemOperationsItemOperations)
	for _, r := range refs {
		root.Append(wbxml.NewElement(wbxml.ItemOperationsFetch,
			wbxml.NewText(wbxml.ItemOperationsStore, "Mailbox"), wbxml.NewText(wbxml.AirSyncBaseFileReference, r)))
	}
	body, err := wbxml.NewDocument(root).Encode(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := e.b.Serve(ctx, req, e.dev.cred, body)
	// As the gateway does: the request context ends before the body is written.
	cancel()
	if err != nil {
		e.t.Fatalf("ItemOperations: %v", err)
	}
	return resp
}

// readMultipart reads a multipart ItemOperations body (MS-ASCMD 2.2.1.10.1): it parses the
// header and the WBXML part and compares the other parts with want as they stream by.
func readMultipart(t testing.TB, resp Response, want ...[]byte) *wbxml.Element {
	t.Helper()
	if resp.ContentType != ContentTypeMultipart {
		t.Fatalf("content type %q", resp.ContentType)
	}
	r := resp.Reader
	if r == nil {
		r = bytes.NewReader(resp.Body)
	} else {
		defer resp.Reader.(io.Closer).Close()
	}
	br := bufio.NewReaderSize(r, 64<<10)
	u32 := func() int {
		var b [4]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			t.Fatal(err)
		}
		return int(b[0]) | int(b[1])<<8 | int(b[2])<<16 | int(b[3])<<24
	}
	n := u32()
	if n != 1+len(want) {
		t.Fatalf("%d parts, want %d", n, 1+len(want))
	}
	offs, lens := make([]int, n), make([]int, n)
	total := 4 + 8*n
	for i := range n {
		offs[i], lens[i] = u32(), u32()
		if offs[i] != total {
			t.Fatalf("part %d at %d, want %d", i, offs[i], total)
		}
		total += lens[i]
	}
	if resp.Reader != nil && resp.Length != int64(total) {
		t.Fatalf("Length %d, body %d", resp.Length, total)
	}
	head := make([]byte, lens[0])
	if _, err := io.ReadFull(br, head); err != nil {
		t.Fatal(err)
	}
	doc, err := wbxml.Parse(head, wbxml.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 32<<10)
	for i, w := range want {
		cw := &compareWriter{want: w}
		if _, err := io.CopyBuffer(cw, io.LimitReader(br, int64(lens[i+1])), buf); err != nil {
			t.Fatal(err)
		}
		cw.check(t, fmt.Sprintf("part %d", i+1))
	}
	if n, _ := br.Read(buf); n != 0 {
		t.Fatalf("%d bytes after the last part", n)
	}
	return doc.Root
}

// streamAttachment fetches ref with GetAttachment and compares the streamed body with want,
// returning the Go heap bytes allocated from the request to the end of the body.
func (e *attachEnv) streamAttachment(ref string, want []byte, exactLength bool) uint64 {
	e.t.Helper()
	cw := &compareWriter{want: want}
	buf := make([]byte, 32<<10)
	var resp Response
	alloc := allocDuring(func() {
		resp = e.getAttachment(ref)
		if resp.Reader == nil {
			e.t.Fatalf("GetAttachment of %d bytes answered in memory (HTTP %d)", len(want), resp.Status)
		}
		if _, err := io.CopyBuffer(cw, resp.Reader, buf); err != nil {
			e.t.Fatal(err)
		}
		resp.Reader.(io.Closer).Close()
	})
	cw.check(e.t, "GetAttachment "+ref)
	if want := int64(len(want)); exactLength && resp.Length != want || !exactLength && resp.Length != -1 {
		e.t.Fatalf("GetAttachment Length %d (exact %v), size %d", resp.Length, exactLength, want)
	}
	if resp.Status != http.StatusOK {
		e.t.Fatalf("GetAttachment HTTP %d", resp.Status)
	}
	return alloc
}

// attachFixture is one Dovecot holding one message with a 20 MB base64 and a 3 MB
// quoted-printable attachment, reached directly (BINARY: the server decodes) and through
// capFilter (decoded here).
type attachFixture struct {
	user, pass string
	uid        imap.UID
	b64, qp    []byte
	modes      []attachMode
}

type attachMode struct {
	name   string
	addr   string
	binary bool
}

// TestAttach_Dovecot runs the attachment tests against one real Dovecot.
func TestAttach_Dovecot(t *testing.T) {
	d := servers.StartDovecot(t, servers.DovecotOptions{Users: []servers.DovecotUser{{Name: "alice", Password: "pw-a"}}})
	f := &attachFixture{user: "alice@" + d.Domain, pass: "pw-a"}
	f.b64, f.qp = attachmentPayloads(bigB64, bigQP)
	f.uid = appendUID(t, desktop(t, d.IMAPAddr, f.user, f.pass), twoAttachmentMessage(f.user, f.b64, f.qp))
	f.modes = []attachMode{{"BINARY", d.IMAPAddr, true}, {"decode-here", capFilter(t, d.IMAPAddr), false}}
	t.Run("Streaming_2_2_1_8", func(t *testing.T) { testAttachStreaming(t, f) })
	t.Run("AbandonedStream", func(t *testing.T) { testAttachAbandoned(t, f) })
	t.Run("Caps_Status11", func(t *testing.T) { testAttachCaps(t, f) })
}

// testAttachStreaming fetches both attachments, with BINARY (the server decodes, exact
// Content-Length) and with BINARY hidden (decoded here on the fly, chunked), by GetAttachment
// (MS-ASCMD 2.2.1.8) and by multipart ItemOperations (2.2.1.10.1): byte-identical bodies, and
// Go heap allocation while streaming well below the attachment size.
func testAttachStreaming(t *testing.T, f *attachFixture) {
	b64, qp := f.b64, f.qp
	for _, mode := range f.modes {
		t.Run(mode.name, func(t *testing.T) {
			e := newAttachEnv(t, mode.addr, f.user, f.pass, Config{}, f.uid)
			for _, c := range []struct {
				part int
				data []byte
			}{{2, b64}, {3, qp}} {
				alloc := e.streamAttachment(e.ref(c.part), c.data, mode.binary)
				t.Logf("GetAttachment part %d: %d bytes, %d allocated (%.4f of the size)", c.part, len(c.data), alloc, float64(alloc)/float64(len(c.data)))
				if alloc > uint64(len(c.data))/4 {
					t.Fatalf("GetAttachment of %d bytes allocated %d on the heap", len(c.data), alloc)
				}
			}
			var doc *wbxml.Element
			alloc := allocDuring(func() {
				doc = readMultipart(t, e.itemOperations(true, e.ref(2), e.ref(3)), b64, qp)
			})
			t.Logf("multipart ItemOperations: %d bytes, %d allocated", len(b64)+len(qp), alloc)
			if alloc > uint64(len(b64)+len(qp))/4 {
				t.Fatalf("multipart ItemOperations of %d bytes allocated %d on the heap", len(b64)+len(qp), alloc)
			}
			fetches := doc.Path(wbxml.ItemOperationsResponse).FindAll(wbxml.ItemOperationsFetch)
			if len(fetches) != 2 {
				t.Fatalf("%d Fetch responses", len(fetches))
			}
			for i, f := range fetches {
				if st := f.Find(wbxml.ItemOperationsStatus).Text(); st != "1" {
					t.Fatalf("Fetch %d status %s", i, st)
				}
				if p := f.Path(wbxml.ItemOperationsProperties, wbxml.ItemOperationsPart).Text(); p != strconv.Itoa(i+1) {
					t.Fatalf("Fetch %d Part %q", i, p)
				}
			}
			if ct := fetches[1].Path(wbxml.ItemOperationsProperties, wbxml.AirSyncBaseContentType).Text(); ct != "text/plain" {
				t.Fatalf("content type of part 3: %q", ct)
			}
			// Through fasthttp as the gateway writes it (SetBodyStream): the HTTP body is the
			// attachment, and fasthttp's Close of the stream gives the connection back.
			resp := e.getAttachment(e.ref(3))
			var fr fasthttp.Response
			fr.SetBodyStream(resp.Reader, int(resp.Length))
			var wire bytes.Buffer
			bw := bufio.NewWriter(&wire)
			if err := fr.Write(bw); err != nil {
				t.Fatal(err)
			}
			bw.Flush()
			if a := resp.Reader.(*attachStream); a.cn != nil {
				t.Fatal("fasthttp did not close the stream")
			}
			hr, err := http.ReadResponse(bufio.NewReader(&wire), nil)
			if err != nil {
				t.Fatal(err)
			}
			if chunked := len(hr.TransferEncoding) > 0; chunked == mode.binary || mode.binary && hr.ContentLength != int64(len(qp)) {
				t.Fatalf("HTTP framing: Content-Length %d, Transfer-Encoding %v", hr.ContentLength, hr.TransferEncoding)
			}
			cw := &compareWriter{want: qp}
			if _, err := io.Copy(cw, hr.Body); err != nil {
				t.Fatal(err)
			}
			cw.check(t, "HTTP body")
			if n := e.b.pool.open(); n != 1 {
				t.Fatalf("%d IMAP connections open after the HTTP response, want 1", n)
			}
			// One attachment: with an exact size up front it streams straight from IMAP, its
			// connection held by the response until the body is read; otherwise it is spooled.
			alloc = allocDuring(func() {
				resp := e.itemOperations(true, e.ref(2))
				streamed := slices.ContainsFunc(resp.Reader.(*multipartStream).closers, func(c io.Closer) bool {
					_, ok := c.(*attachStream)
					return ok
				})
				if streamed != mode.binary {
					t.Fatalf("single part streamed from IMAP: %v, want %v", streamed, mode.binary)
				}
				readMultipart(t, resp, b64)
			})
			t.Logf("multipart ItemOperations, one part: %d bytes, %d allocated", len(b64), alloc)
			if alloc > uint64(len(b64))/4 {
				t.Fatalf("multipart ItemOperations of %d bytes allocated %d on the heap", len(b64), alloc)
			}
			if n := e.b.pool.open(); n != 1 {
				t.Fatalf("%d IMAP connections open after the fetches, want the 1 reused", n)
			}
		})
	}
}

// TestAttach_Mem_GetAttachmentStreams: with the in-memory server (no BINARY: decoded here) an
// attachment larger than the in-memory threshold streams byte for byte, chunked, and a small
// one stays a Body.
func TestAttach_Mem_GetAttachmentStreams(t *testing.T) {
	d, err := demo.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	user := "demo@" + demo.Domain
	b64, qp := attachmentPayloads(2<<20, 100<<10)
	uid := appendUID(t, desktop(t, d.IMAPAddr, user, "demo"), twoAttachmentMessage(user, b64, qp))
	e := newAttachEnv(t, d.IMAPAddr, user, "demo", Config{}, uid)
	e.streamAttachment(e.ref(2), b64, false)
	small := e.getAttachment(e.ref(3))
	if small.Reader != nil || !bytes.Equal(small.Body, qp) || small.ContentType != "text/plain" {
		t.Fatalf("small attachment: reader %v, %d bytes, %q", small.Reader != nil, len(small.Body), small.ContentType)
	}
	readMultipart(t, e.itemOperations(true, e.ref(3), e.ref(2)), qp, b64)
	if r := e.getAttachment(e.id + ":9"); r.Status != http.StatusInternalServerError {
		t.Fatalf("missing part: HTTP %d", r.Status)
	}
	// A part that does not decode is not retrievable (Status 15, HTTP 500); the connection
	// stays usable.
	bad := appendUID(t, desktop(t, d.IMAPAddr, user, "demo"), []byte("From: a@example.org\r\nSubject: corrupt\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n"+
		"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD!!!!bm90\r\n--b1--\r\n"))
	badRef := serverID(e.inbox, bad) + ":2"
	if r := e.getAttachment(badRef); r.Status != http.StatusInternalServerError {
		t.Fatalf("corrupt part: HTTP %d", r.Status)
	}
	doc, err := wbxml.Parse(e.itemOperations(false, badRef).Body, wbxml.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if st := doc.Root.Path(wbxml.ItemOperationsResponse, wbxml.ItemOperationsFetch, wbxml.ItemOperationsStatus).Text(); st != "15" {
		t.Fatalf("corrupt part: Status %s, want 15", st)
	}
	e.streamAttachment(e.ref(2), b64, false)
}

// testAttachAbandoned: a GetAttachment body closed half-way closes its IMAP connection (20 MB
// left is not worth draining), one closed near its end is drained and goes back to the pool,
// one nobody reads times out and frees its connection; the next request works each time.
func testAttachAbandoned(t *testing.T, f *attachFixture) {
	b64, qp := f.b64, f.qp
	for _, mode := range f.modes {
		t.Run(mode.name, func(t *testing.T) {
			e := newAttachEnv(t, mode.addr, f.user, f.pass, Config{MaxConnsPerUser: 1, StreamIdleTimeout: 300 * time.Millisecond}, f.uid)
			buf := make([]byte, 64<<10)
			// Half-way: the connection is closed, its slot freed.
			resp := e.getAttachment(e.ref(2))
			if _, err := io.ReadFull(resp.Reader, buf[:]); err != nil {
				t.Fatal(err)
			}
			if n := e.b.pool.open(); n != 1 {
				t.Fatalf("%d connections while streaming", n)
			}
			resp.Reader.(io.Closer).Close()
			if n := e.b.pool.open(); n != 0 {
				t.Fatalf("%d connections after abandoning 20 MB, want the stream's closed", n)
			}
			if _, err := resp.Reader.Read(buf); err == nil {
				t.Fatal("Read after Close succeeded")
			}
			// With MaxConnsPerUser 1 the next request needs the freed slot.
			e.dev.folderSync()
			// Near the end: drained, the connection is reused.
			resp = e.getAttachment(e.ref(2))
			if _, err := io.CopyN(io.Discard, resp.Reader, int64(len(b64)-1000)); err != nil {
				t.Fatal(err)
			}
			resp.Reader.(io.Closer).Close()
			if n := e.b.pool.open(); n != 1 {
				t.Fatalf("%d connections after abandoning 1000 bytes, want the drained one back", n)
			}
			e.streamAttachment(e.ref(3), qp, mode.binary)
			// Never read: the idle timer frees the connection.
			resp = e.getAttachment(e.ref(2))
			deadline := time.Now().Add(10 * time.Second)
			for e.b.pool.open() != 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if n := e.b.pool.open(); n != 0 {
				t.Fatalf("%d connections after the idle timeout", n)
			}
			if _, err := resp.Reader.Read(buf); err != errStreamIdle {
				t.Fatalf("Read of an expired stream: %v", err)
			}
			resp.Reader.(io.Closer).Close()
			e.streamAttachment(e.ref(3), qp, mode.binary)
		})
	}
}

// testAttachCaps: an attachment beyond Config.MaxInlineAttachment fetched inline, or beyond
// Config.MaxAttachment in a multipart response, answers ItemOperations Status 11 ("the
// requested data size is too large", MS-ASCMD 2.2.3.177.8) without failing the other fetches;
// GetAttachment beyond MaxAttachment answers HTTP 500 when the size is known up front and
// fails the stream at the cap otherwise; within the caps the inline Data is the attachment.
func testAttachCaps(t *testing.T, f *attachFixture) {
	qp := f.qp
	for _, mode := range f.modes {
		t.Run(mode.name, func(t *testing.T) {
			e := newAttachEnv(t, mode.addr, f.user, f.pass, Config{MaxInlineAttachment: 4 << 20, MaxAttachment: 8 << 20}, f.uid)
			statuses := func(doc *wbxml.Element) []string {
				var out []string
				for _, f := range doc.Path(wbxml.ItemOperationsResponse).FindAll(wbxml.ItemOperationsFetch) {
					out = append(out, f.Find(wbxml.ItemOperationsStatus).Text())
				}
				return out
			}
			resp := e.itemOperations(false, e.ref(2), e.ref(3))
			doc, err := wbxml.Parse(resp.Body, wbxml.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if st := statuses(doc.Root); fmt.Sprint(st) != "[11 1]" {
				t.Fatalf("inline statuses %v, want [11 1]", st)
			}
			data := doc.Root.Path(wbxml.ItemOperationsResponse).FindAll(wbxml.ItemOperationsFetch)[1].
				Path(wbxml.ItemOperationsProperties, wbxml.ItemOperationsData).Text()
			if got, err := base64.StdEncoding.DecodeString(data); err != nil || !bytes.Equal(got, qp) {
				t.Fatalf("inline Data: %d bytes, %v", len(got), err)
			}
			doc2 := readMultipart(t, e.itemOperations(true, e.ref(3), e.ref(2)), qp)
			if st := statuses(doc2); fmt.Sprint(st) != "[1 11]" {
				t.Fatalf("multipart statuses %v, want [1 11]", st)
			}
			r := e.getAttachment(e.ref(2))
			if mode.binary {
				// The size is known up front: refused before anything is sent.
				if r.Status != http.StatusInternalServerError || r.Reader != nil {
					t.Fatalf("GetAttachment over MaxAttachment: HTTP %d", r.Status)
				}
			} else {
				// Known only by decoding: the stream fails once it passes the cap.
				n, err := io.Copy(io.Discard, r.Reader)
				r.Reader.(io.Closer).Close()
				if err != errStreamTooLarge || n > 8<<20 {
					t.Fatalf("GetAttachment over MaxAttachment: %d bytes, %v", n, err)
				}
			}
			// The connection survived the refusals.
			e.streamAttachment(e.ref(3), qp, mode.binary)
		})
	}
}

// BenchmarkAttachment20MB fetches a 20 MB base64 attachment from Dovecot with GetAttachment
// and with multipart ItemOperations (streamed straight from IMAP with BINARY, spooled to a
// temporary file when decoded here), against the baseline of collecting the FETCH into memory and decoding it (the
// backend's behaviour before streaming). alloc/size is heap bytes allocated per fetch divided
// by the attachment size.
func BenchmarkAttachment20MB(b *testing.B) {
	d := servers.StartDovecot(b, servers.DovecotOptions{Users: []servers.DovecotUser{{Name: "carol", Password: "pw-c"}}})
	carol := "carol@" + d.Domain
	b64, qp := attachmentPayloads(bigB64, 1<<10)
	dc := desktop(b, d.IMAPAddr, carol, "pw-c")
	uid := appendUID(b, dc, twoAttachmentMessage(carol, b64, qp))
	size := float64(len(b64))
	report := func(b *testing.B, m0 *runtime.MemStats) {
		var m1 runtime.MemStats
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/float64(b.N)/size, "alloc/size")
		b.SetBytes(int64(len(b64)))
	}
	b.Run("collect-baseline", func(b *testing.B) {
		if _, err := dc.Select("INBOX", nil).Wait(); err != nil {
			b.Fatal(err)
		}
		sec := &imap.FetchItemBodySection{Part: []int{2}, Peek: true}
		var m0 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		b.ResetTimer()
		for range b.N {
			bufs, err := dc.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
			if err != nil || len(bufs) != 1 {
				b.Fatal(err)
			}
			data, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, &newlineStripper{r: bytes.NewReader(bufs[0].FindBodySection(sec))}))
			if err != nil || len(data) != len(b64) {
				b.Fatal(err, len(data))
			}
		}
		report(b, &m0)
	})
	for _, mode := range []struct{ name, addr string }{{"stream-BINARY", d.IMAPAddr}, {"stream-decode-here", capFilter(b, d.IMAPAddr)}} {
		b.Run(mode.name, func(b *testing.B) {
			e := newAttachEnv(b, mode.addr, carol, "pw-c", Config{}, uid)
			buf := make([]byte, 32<<10)
			var m0 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			b.ResetTimer()
			for range b.N {
				resp := e.getAttachment(e.ref(2))
				n, err := io.CopyBuffer(io.Discard, readerOnly{resp.Reader}, buf)
				if err != nil || n != int64(len(b64)) {
					b.Fatal(err, n)
				}
				resp.Reader.(io.Closer).Close()
			}
			report(b, &m0)
		})
		b.Run("multipart-"+strings.TrimPrefix(mode.name, "stream-"), func(b *testing.B) {
			e := newAttachEnv(b, mode.addr, carol, "pw-c", Config{}, uid)
			buf := make([]byte, 32<<10)
			var m0 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			b.ResetTimer()
			for range b.N {
				resp := e.itemOperations(true, e.ref(2))
				n, err := io.CopyBuffer(io.Discard, readerOnly{resp.Reader}, buf)
				if err != nil || n != resp.Length || n < int64(len(b64)) {
					b.Fatal(err, n)
				}
				resp.Reader.(io.Closer).Close()
			}
			report(b, &m0)
		})
	}
}

// readerOnly hides WriterTo/ReaderFrom so io.CopyBuffer uses the given buffer, as fasthttp's
// body copy does.
type readerOnly struct{ io.Reader }
