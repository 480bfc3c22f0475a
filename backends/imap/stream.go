package imap

// Attachment delivery with bounded memory (MS-ASCMD 2.2.1.8 GetAttachment, 2.2.1.10
// ItemOperations Fetch of a FileReference, 2.2.1.10.1 multipart responses).
//
// An attachment is located first (FETCH BODYSTRUCTURE): its Content-Transfer-Encoding decides
// how it is fetched. Identity encodings (7bit, 8bit, binary) are fetched as BODY.PEEK[part]
// and their decoded size is the literal's. Base64 and quoted-printable parts are fetched as
// BINARY.PEEK[part] when the server has BINARY (RFC 3516): the server decodes, and the
// literal8's size, known as soon as the literal starts, is the exact decoded size. (BINARY.SIZE
// is not used: Dovecot 2.3 answers an estimate for base64 parts, 19205262 for a 20971520-byte
// attachment.) Without BINARY an encoded part is decoded here, on the fly, and its decoded size
// is known only once it has been read.
//
// Then, by form of the answer:
//
//   - GetAttachment streams the part from the IMAP literal to the device (attachStream): the
//     IMAP connection belongs to the stream until it is read to the end or closed, and goes
//     back to the pool then (or is closed when the stream was abandoned with much left).
//     Content-Length is the exact size when known, else the body is chunked.
//   - Multipart ItemOperations needs every part's exact length in its header before the first
//     part byte. The last attachment part of the response is streamed straight from its
//     literal like GetAttachment when its exact size is known at the literal's start (BINARY
//     or identity encoding). Earlier attachment parts, and a last one whose size only decoding
//     tells, are spooled, decoded, to unlinked temporary files (in memory below memAttachment)
//     and streamed from there: their FETCH must finish before the next command can run on the
//     connection, and the header needs their lengths. Memory stays at copy buffers whatever
//     the size; disk use is capped by Config.MaxAttachment per response.
//   - Inline ItemOperations (base64 in WBXML Data) must be held in memory to encode the
//     document; Config.MaxInlineAttachment caps it and parts beyond answer Status 11.

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime/quotedprintable"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

const (
	// memAttachment: an attachment whose decoded size (or, when unknown, encoded size) is at
	// most this is read into memory: a Response.Body for GetAttachment, an in-memory part of a
	// multipart response.
	memAttachment = 256 << 10
	// drainLimit: a part stream closed with at most this many literal bytes unread is drained
	// so that its connection can be reused; with more left the connection is closed instead.
	drainLimit = 1 << 20
	// ItemOperations Status 11, "the requested data size is too large" (MS-ASCMD 2.2.3.177.8).
	ioTooLarge = 11
)

// Errors a stream returns from Read once it has failed; the gateway then aborts the response.
var (
	errStreamTooLarge = errors.New("imap: attachment exceeds Config.MaxAttachment")
	errStreamShort    = errors.New("imap: attachment shorter than announced")
	errStreamClosed   = errors.New("imap: attachment stream closed")
	errStreamIdle     = errors.New("imap: attachment stream idle too long")
)

// partRef is a located attachment: one single body part of one message.
type partRef struct {
	mailbox  string
	uid      imap.UID
	path     []int
	encoding string // Content-Transfer-Encoding, lower case
	ctype    string
	encSize  int64 // octets of BODY[path] as BODYSTRUCTURE reports them
	binary   bool  // fetch BINARY.PEEK[path]: the server decodes
}

// small reports whether the part is read into memory rather than streamed or spooled: the
// decoded size of an encoded part is at most its encoded size (base64 is 3/4 of it).
func (p *partRef) small() bool { return p.encSize <= memAttachment }

// exact reports whether the literal's size is the decoded size.
func (p *partRef) exact() bool { return p.binary || identityEncoding(p.encoding) }

func identityEncoding(enc string) bool {
	switch enc {
	case "", "7bit", "8bit", "binary":
		return true
	}
	return false
}

// locateAttachment resolves a FileReference "collection:uid:part" and selects its mailbox.
// A reference that names nothing answers ioBadAttach with a nil error.
func (s *session) locateAttachment(ref string) (*partRef, int, error) {
	i := strings.LastIndexByte(ref, ':')
	if i <= 0 {
		return nil, ioBadAttach, nil
	}
	path, ok := parsePart(ref[i+1:])
	coll, uid, ok2 := parseServerID(ref[:i])
	if !ok || !ok2 {
		return nil, ioBadAttach, nil
	}
	f, found, err := s.folderByID(coll)
	if err != nil {
		return nil, 0, err
	}
	if !found {
		return nil, ioBadAttach, nil
	}
	c, err := s.client()
	if err != nil {
		return nil, 0, err
	}
	if _, err := s.selectMailbox(f.Mailbox); err != nil {
		if isNo(err) {
			return nil, ioBadAttach, nil
		}
		return nil, 0, s.imapErr(err, "SELECT")
	}
	bufs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true}}).Collect()
	if err != nil {
		if isNo(err) {
			return nil, ioBadAttach, nil
		}
		return nil, 0, s.imapErr(err, "FETCH BODYSTRUCTURE")
	}
	if len(bufs) == 0 || bufs[0].BodyStructure == nil {
		return nil, ioBadAttach, nil
	}
	var part *imap.BodyStructureSinglePart
	bufs[0].BodyStructure.Walk(func(p []int, bs imap.BodyStructure) bool {
		if sp, ok := bs.(*imap.BodyStructureSinglePart); ok && slices.Equal(p, path) {
			part = sp
		}
		return true
	})
	if part == nil {
		return nil, ioBadAttach, nil
	}
	p := &partRef{mailbox: f.Mailbox, uid: uid, path: path, encoding: strings.ToLower(part.Encoding),
		ctype: part.MediaType(), encSize: int64(part.Size)}
	p.binary = (p.encoding == "base64" || p.encoding == "quoted-printable") && c.Caps().Has(imap.CapBinary)
	return p, ioOK, nil
}

// partReader is one running FETCH of a part of the selected mailbox: the command, its literal
// and the decoded view of the literal. The connection can run nothing else until close.
type partReader struct {
	cmd  *imapclient.FetchCommand
	lit  imap.LiteralReader
	left int64     // literal bytes not read yet
	r    io.Reader // decoded bytes
	size int64     // exact decoded size; -1 when only reading tells
	// litErr is the first error reading the literal other than its end: the connection
	// failed, as opposed to the content not decoding.
	litErr error
}

func (pr *partReader) readLiteral(p []byte) (int, error) {
	n, err := pr.lit.Read(p)
	pr.left -= int64(n)
	if err != nil && err != io.EOF && pr.litErr == nil {
		pr.litErr = err
	}
	return n, err
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

// openPart starts the FETCH of p on c (whose mailbox is selected) and returns once the
// part's literal begins. A nil reader with a nil error means the message is gone.
func openPart(c *imapclient.Client, p *partRef) (*partReader, error) {
	opts := &imap.FetchOptions{UID: true}
	if p.binary {
		opts.BinarySection = []*imap.FetchItemBinarySection{{Part: p.path, Peek: true}}
	} else {
		opts.BodySection = []*imap.FetchItemBodySection{{Part: p.path, Peek: true}}
	}
	cmd := c.Fetch(imap.UIDSetNum(p.uid), opts)
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			var lit imap.LiteralReader
			switch it := item.(type) {
			case imapclient.FetchItemDataBodySection:
				lit = it.Literal
			case imapclient.FetchItemDataBinarySection:
				lit = it.Literal
			}
			if lit == nil {
				continue
			}
			pr := &partReader{cmd: cmd, lit: lit, left: lit.Size(), size: -1}
			if p.exact() {
				pr.size = lit.Size()
			}
			var r io.Reader = readFunc(pr.readLiteral)
			if !p.binary {
				switch p.encoding {
				case "base64":
					r = base64.NewDecoder(base64.StdEncoding, &newlineStripper{r: r})
				case "quoted-printable":
					r = quotedprintable.NewReader(r)
				}
			}
			pr.r = r
			return pr, nil
		}
	}
	return nil, cmd.Close()
}

// close ends the FETCH. With little of the literal left it is read to the end and the command
// completes, leaving cn reusable; otherwise, or when that fails, cn is closed and marked
// broken. close must be called exactly once, by the goroutine that reads the part.
func (pr *partReader) close(cn *conn) {
	if pr.left <= drainLimit {
		if _, err := io.Copy(io.Discard, readFunc(pr.readLiteral)); err == nil {
			if err := pr.cmd.Close(); err == nil {
				return
			}
		}
	}
	// The client's reader goroutine waits for the literal to be consumed, and Client.Close
	// waits for that goroutine: close the connection beside us while the literal read fails.
	done := make(chan struct{})
	go func() {
		cn.c.Close()
		close(done)
	}()
	io.Copy(io.Discard, readFunc(pr.readLiteral))
	<-done
	cn.broken = true
}

// openStream selects p's mailbox and starts its FETCH on the session's connection. A part
// that is gone answers ioBadAttach with a nil error.
func (s *session) openStream(p *partRef) (*partReader, int, error) {
	c, err := s.client()
	if err != nil {
		return nil, 0, err
	}
	if _, err := s.selectMailbox(p.mailbox); err != nil {
		if isNo(err) {
			return nil, ioBadAttach, nil
		}
		return nil, 0, s.imapErr(err, "SELECT")
	}
	pr, err := openPart(c, p)
	if err != nil {
		if isNo(err) {
			return nil, ioBadAttach, nil
		}
		return nil, 0, s.imapErr(err, "FETCH attachment")
	}
	if pr == nil {
		return nil, ioBadAttach, nil
	}
	return pr, ioOK, nil
}

// handOff gives the session's connection, with pr running on it, to a new attachStream. The
// request context no longer guards the connection (the gateway ends that context before it
// writes the body); the stream's idle timer and Close do.
func (s *session) handOff(pr *partReader) (*attachStream, error) {
	cn := s.cn
	if s.stopCtx != nil && !s.stopCtx() {
		// The context ended and is closing the connection.
		pr.close(cn)
		return nil, s.imapErr(s.ctx.Err(), "FETCH attachment")
	}
	s.cn, s.stopCtx = nil, nil
	s.reselect()
	return newAttachStream(s.b, cn, pr, pr.size), nil
}

// readPart reads the decoded part on the session's connection into w, at most max bytes.
// tooLarge is true when the part is longer than max (w then holds at most max+1 bytes);
// gone is true when the message or part disappeared or its content does not decode.
func (s *session) readPart(p *partRef, w io.Writer, max int64) (n int64, tooLarge, gone bool, err error) {
	pr, status, err := s.openStream(p)
	if err != nil || status != ioOK {
		return 0, false, status != ioOK, err
	}
	if pr.size > max {
		pr.close(s.cn)
		s.dropBroken()
		return 0, true, false, nil
	}
	buf := make([]byte, 32<<10)
	ew := &errWriter{w: w}
	n, err = io.CopyBuffer(ew, io.LimitReader(pr.r, max+1), buf)
	if err != nil {
		litErr := pr.litErr
		pr.close(s.cn)
		switch {
		case litErr != nil:
			s.cn.broken = true
			return n, false, false, s.imapErr(litErr, "FETCH attachment")
		case ew.err != nil:
			s.dropBroken()
			return n, false, false, internal(err, "spool attachment")
		}
		// The literal arrives but does not decode: the part cannot be retrieved. (Its rest
		// may have cost the connection.)
		s.b.log.Info("imap: attachment does not decode", "encoding", p.encoding, "err", err)
		s.dropBroken()
		return n, false, true, nil
	}
	pr.close(s.cn)
	if n > max {
		s.dropBroken()
		return n, true, false, nil
	}
	if s.cn.broken {
		return n, false, false, s.imapErr(io.ErrUnexpectedEOF, "FETCH attachment")
	}
	return n, false, false, nil
}

// dropBroken gives back a connection readPart had to close, so that the request's next
// operation dials a fresh one instead of failing on the dead one.
func (s *session) dropBroken() {
	if s.cn == nil || !s.cn.broken {
		return
	}
	if s.stopCtx != nil {
		s.stopCtx()
	}
	s.b.pool.release(s.cn)
	s.cn, s.stopCtx = nil, nil
	s.reselect()
}

// spool is an attachment part of a multipart response: decoded in memory or in an unlinked
// temporary file, or streamed from IMAP. The response owns the file and the stream.
type spool struct {
	data   []byte
	file   *os.File
	stream *attachStream
	size   int64
}

func (sp spool) reader() io.Reader {
	switch {
	case sp.file != nil:
		return io.NewSectionReader(sp.file, 0, sp.size)
	case sp.stream != nil:
		return sp.stream
	}
	return bytes.NewReader(sp.data)
}

func (sp spool) closer() io.Closer {
	switch {
	case sp.file != nil:
		return sp.file
	case sp.stream != nil:
		return sp.stream
	}
	return nil
}

// spoolPart reads p, decoded, into memory or a temporary file, at most max bytes.
func (s *session) spoolPart(p *partRef, max int64) (spool, int, error) {
	if p.small() {
		var b bytesWriter
		_, tooLarge, gone, err := s.readPart(p, &b, max)
		switch {
		case err != nil:
			return spool{}, 0, err
		case gone:
			return spool{}, ioBadAttach, nil
		case tooLarge:
			return spool{}, ioTooLarge, nil
		}
		return spool{data: b.b, size: int64(len(b.b))}, ioOK, nil
	}
	f, err := os.CreateTemp(s.b.cfg.SpoolDir, "easgate-attachment-*")
	if err != nil {
		return spool{}, 0, internal(err, "create attachment spool")
	}
	// Unlinked at once: the open descriptor keeps the data, nothing is left behind on a crash.
	os.Remove(f.Name())
	n, tooLarge, gone, err := s.readPart(p, f, max)
	if err != nil || gone || tooLarge {
		f.Close()
		switch {
		case err != nil:
			return spool{}, 0, err
		case gone:
			return spool{}, ioBadAttach, nil
		}
		return spool{}, ioTooLarge, nil
	}
	return spool{file: f, size: n}, ioOK, nil
}

// unselect leaves the selected mailbox. imapclient (v2.0.0-beta.8, completeCommand) reports
// UNSELECT's completion to Wait before it updates its own state, so Mailbox may still return
// the old mailbox for a moment; the pool would then take the connection for selected and close
// it. Wait for that update, briefly.
func unselect(c *imapclient.Client) error {
	if err := c.Unselect().Wait(); err != nil {
		return err
	}
	for i := 0; c.Mailbox() != nil; i++ {
		if i == 1000 {
			return errors.New("imap: client still in the selected state after UNSELECT")
		}
		if i < 10 {
			runtime.Gosched()
		} else {
			time.Sleep(100 * time.Microsecond)
		}
	}
	return nil
}

// errWriter remembers whether a copy failed on the writing side.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	}
	return n, err
}

type bytesWriter struct{ b []byte }

func (w *bytesWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// multipartStream is a multipart ItemOperations body whose parts live in spool files or an
// attachStream. Close closes (and so frees) them; it is safe to call more than once.
type multipartStream struct {
	io.Reader
	mu      sync.Mutex
	closers []io.Closer
}

func (m *multipartStream) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.closers {
		c.Close()
	}
	m.closers = nil
	return nil
}

// attachStream is a GetAttachment body read straight from the IMAP literal. It owns the
// connection until Read returns io.EOF or an error, or until Close; the connection then goes
// back to the pool, or is closed when much of the literal was left unread. A stream nobody
// reads for Config.StreamIdleTimeout closes itself, so a lost stream cannot hold a connection.
// Read and Close may be called from different goroutines.
type attachStream struct {
	b    *Backend
	want int64 // exact decoded size announced as Content-Length; -1 when unknown
	max  int64

	mu   sync.Mutex
	cn   *conn
	pr   *partReader
	n    int64
	err  error
	last time.Time // end of the latest Read
	idle *time.Timer
}

func newAttachStream(b *Backend, cn *conn, pr *partReader, want int64) *attachStream {
	a := &attachStream{b: b, want: want, max: b.cfg.MaxAttachment, cn: cn, pr: pr, last: time.Now()}
	a.mu.Lock()
	a.idle = time.AfterFunc(b.cfg.StreamIdleTimeout, a.expire)
	a.mu.Unlock()
	return a
}

func (a *attachStream) Read(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return 0, a.err
	}
	defer func() { a.last = time.Now() }()
	if a.want >= 0 {
		if a.n == a.want {
			a.releaseLocked(io.EOF)
			return 0, a.err
		}
		if rest := a.want - a.n; int64(len(p)) > rest {
			p = p[:rest]
		}
	}
	n, err := a.pr.r.Read(p)
	a.n += int64(n)
	switch {
	case a.n > a.max:
		a.releaseLocked(errStreamTooLarge)
		return 0, a.err
	case err == io.EOF && a.want >= 0 && a.n != a.want:
		a.releaseLocked(errStreamShort)
	case err != nil:
		a.releaseLocked(err)
	}
	return n, a.err
}

// releaseLocked ends the FETCH and gives the connection back; err becomes sticky.
func (a *attachStream) releaseLocked(err error) {
	a.err = err
	if a.cn == nil {
		return
	}
	a.idle.Stop()
	a.pr.close(a.cn)
	if !a.cn.broken && a.cn.c.Mailbox() != nil {
		if err := unselect(a.cn.c); err != nil {
			a.cn.broken = true
		}
	}
	a.b.pool.release(a.cn)
	a.cn, a.pr = nil, nil
}

// Close releases the connection; a stream read to its end has already done so.
func (a *attachStream) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err == nil {
		a.releaseLocked(errStreamClosed)
	} else if a.cn != nil {
		a.releaseLocked(a.err)
	}
	return nil
}

// expire closes a stream nobody has read for Config.StreamIdleTimeout. It waits for a Read
// in progress (a Read blocks only while IMAP sends nothing, which imapclient's own read
// timeout bounds) and re-arms itself when the stream was read meanwhile.
func (a *attachStream) expire() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cn == nil {
		return
	}
	if idle := time.Since(a.last); idle < a.b.cfg.StreamIdleTimeout {
		a.idle.Reset(a.b.cfg.StreamIdleTimeout - idle)
		return
	}
	a.b.log.Warn("imap: attachment stream abandoned unread, closing it", "read", a.n)
	a.releaseLocked(errStreamIdle)
}
