package wbxml

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as a stand-alone `gateway wbxml decode`
// for BenchmarkProcessDecode: with EASGATE_WBXML_DECODE=FILE it decodes FILE
// to XML on stdout, exactly as cmd/gateway does, and exits.
func TestMain(m *testing.M) {
	if f := os.Getenv("EASGATE_WBXML_DECODE"); f != "" {
		os.Exit(decodeMain(f))
	}
	os.Exit(m.Run())
}

func decodeMain(file string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	w := bufio.NewWriterSize(os.Stdout, 64<<10) // as cmd/gateway
	if err := WriteXML(w, b, Limits{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := w.Flush(); err != nil {
		return 1
	}
	return 0
}

// benchPing is a Ping request as clients send it every few minutes.
func benchPing(t testing.TB) []byte {
	b, err := NewDocument(NewElement(PingPing,
		NewText(PingHeartbeatInterval, "480"),
		NewElement(PingFolders,
			NewElement(PingFolder, NewText(PingId, "5"), NewText(PingClass, "Email")),
			NewElement(PingFolder, NewText(PingId, "1"), NewText(PingClass, "Calendar"))),
	)).Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// benchSync is a deterministic Sync response adding n e-mails with
// plain-text bodies, using only tags libwbxml also knows.
func benchSync(t testing.TB, n int) []byte {
	body := bytes.Repeat([]byte("The quarterly numbers are in; see the attached sheet for details. "), 9)
	cmds := NewElement(AirSyncCommands)
	for i := 0; i < n; i++ {
		id := strconv.Itoa(i)
		conv := []byte{0xFF, 0x68, 0x02, 0x20, 0x58, 0xBD, 0x48, 0x59, 0x96, 0xBE, 0x15, 0xF6, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
		cmds.Append(NewElement(AirSyncAdd,
			NewText(AirSyncServerId, "5:"+id),
			NewElement(AirSyncApplicationData,
				NewText(EmailTo, `"Device User" <deviceuser@example.com>`),
				NewText(EmailFrom, `"Sender `+id+`" <sender`+id+`@example.com>`),
				NewText(EmailSubject, "Quarterly report #"+id),
				NewText(EmailDateReceived, "2026-11-25T10:00:00.000Z"),
				NewText(EmailDisplayTo, "Device User"),
				NewText(EmailThreadTopic, "Quarterly report #"+id),
				NewText(EmailImportance, "1"),
				NewText(EmailRead, strconv.Itoa(i%2)),
				NewElement(AirSyncBaseBody,
					NewText(AirSyncBaseType, "1"),
					NewText(AirSyncBaseEstimatedDataSize, strconv.Itoa(len(body))),
					NewText(AirSyncBaseData, string(body))),
				NewText(EmailMessageClass, "IPM.Note"),
				NewText(EmailInternetCPID, "65001"),
				NewElement(EmailFlag),
				NewText(EmailContentClass, "urn:content-classes:message"),
				NewText(AirSyncBaseNativeBodyType, "1"),
				NewOpaque(Email2ConversationId, conv),
				NewOpaque(Email2ConversationIndex, conv[:5]),
				NewElement(EmailCategories),
			)))
	}
	b, err := NewDocument(NewElement(AirSyncSync, NewElement(AirSyncCollections, NewElement(AirSyncCollection,
		NewText(AirSyncSyncKey, "1234567890"),
		NewText(AirSyncCollectionId, "5"),
		NewText(AirSyncStatus, "1"),
		cmds,
		NewElement(AirSyncMoreAvailable),
	)))).Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type benchDoc struct {
	name string
	b    []byte
}

func benchDocs(t testing.TB) []benchDoc {
	return []benchDoc{
		{"ping", benchPing(t)},
		{"sync-small", benchSync(t, 1)},
		{"sync-100KB", benchSync(t, 110)},
		{"sync-1MB", benchSync(t, 1130)},
	}
}

func countElements(t testing.TB, b []byte) int {
	doc, err := Parse(b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	doc.Root.Walk(func(*Element) bool { n++; return true })
	return n
}

func BenchmarkDecodeTokens(b *testing.B) {
	for _, d := range benchDocs(b) {
		b.Run(d.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(d.b)))
			dec := NewDecoder(d.b, Limits{})
			c0 := processCPU()
			for i := 0; i < b.N; i++ {
				dec.Reset(d.b)
				for {
					_, err := dec.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			reportCPUThroughput(b, len(d.b), c0)
		})
	}
}

// BenchmarkBaselineXMLTokens is the same-run baseline for
// BenchmarkDecodeTokens: encoding/xml's RawToken over the XML form of the
// same document. SetBytes counts the WBXML size, so MB/s compare documents
// per second.
func BenchmarkBaselineXMLTokens(b *testing.B) {
	for _, d := range benchDocs(b) {
		b.Run(d.name, func(b *testing.B) {
			var x bytes.Buffer
			if err := WriteXML(&x, d.b, Limits{}); err != nil {
				b.Fatal(err)
			}
			r := bytes.NewReader(x.Bytes())
			b.ReportAllocs()
			b.SetBytes(int64(len(d.b)))
			c0 := processCPU()
			for i := 0; i < b.N; i++ {
				r.Reset(x.Bytes())
				dec := xml.NewDecoder(r)
				for {
					_, err := dec.RawToken()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			reportCPUThroughput(b, len(d.b), c0)
		})
	}
}

func BenchmarkParse(b *testing.B) {
	for _, d := range benchDocs(b) {
		b.Run(d.name, func(b *testing.B) {
			n := countElements(b, d.b)
			b.ReportAllocs()
			b.SetBytes(int64(len(d.b)))
			for i := 0; i < b.N; i++ {
				if _, err := Parse(d.b, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n), "elements")
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, d := range benchDocs(b) {
		b.Run(d.name, func(b *testing.B) {
			doc, err := Parse(d.b, Limits{})
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 0, len(d.b))
			b.ReportAllocs()
			b.SetBytes(int64(len(d.b)))
			for i := 0; i < b.N; i++ {
				if buf, err = doc.Encode(buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTranscode streams tokens from a Decoder into an Encoder, the
// shape of a gateway rewriting a body on the fly.
func BenchmarkTranscode(b *testing.B) {
	for _, d := range benchDocs(b) {
		b.Run(d.name, func(b *testing.B) {
			dec := NewDecoder(d.b, Limits{})
			var enc Encoder
			buf := make([]byte, 0, len(d.b))
			b.ReportAllocs()
			b.SetBytes(int64(len(d.b)))
			for i := 0; i < b.N; i++ {
				dec.Reset(d.b)
				enc.Reset(buf)
				h, _ := dec.Header()
				enc.Header(h)
				for {
					tok, err := dec.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					switch tok.Kind {
					case StartTag:
						enc.StartTag(tok.Tag, tok.HasContent)
					case EndTag:
						enc.EndTag()
					case String:
						enc.String(tok.Data)
					case Opaque:
						enc.Opaque(tok.Data)
					}
				}
				if enc.Err() != nil || !bytes.Equal(enc.Bytes(), d.b) {
					b.Fatal("transcode changed the document", enc.Err())
				}
				buf = enc.Bytes()
			}
		})
	}
}

// BenchmarkWriteXML is the streaming decode to XML that `gateway wbxml
// decode` runs.
func BenchmarkWriteXML(b *testing.B) {
	for _, d := range benchDocs(b) {
		b.Run(d.name, func(b *testing.B) {
			w := bufio.NewWriter(io.Discard)
			b.ReportAllocs()
			b.SetBytes(int64(len(d.b)))
			for i := 0; i < b.N; i++ {
				if err := WriteXML(w, d.b, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkToXML(b *testing.B) {
	for _, d := range benchDocs(b) {
		b.Run(d.name, func(b *testing.B) {
			doc, err := Parse(d.b, Limits{})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(d.b)))
			for i := 0; i < b.N; i++ {
				if err := ToXML(doc, io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkProcessDecode times whole processes decoding the ~1 MB Sync to
// XML: libwbxml's wbxml2xml against this package in a stand-alone binary
// (the test binary re-executed through TestMain, running WriteXML as
// `gateway wbxml decode` does). Both run alternately in the same loop; the
// reported metric libwbxml/easgate is the ratio of their total times.
func BenchmarkProcessDecode(b *testing.B) {
	lib, err := exec.LookPath("wbxml2xml")
	if err != nil {
		b.Fatalf("wbxml2xml not found (libwbxml2-utils): %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(b.TempDir(), "sync-1MB.wbxml")
	doc := benchSync(b, 1130)
	if err := os.WriteFile(file, doc, 0o644); err != nil {
		b.Fatal(err)
	}
	// Both write their XML to /dev/null: wbxml2xml through -o, ours
	// through a nil Stdout.
	run := func(cmd *exec.Cmd) (wall, cpu time.Duration) {
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("%s: %v\n%.300s", cmd.Path, err, stderr.Bytes())
		}
		return time.Since(start), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	var tLib, tOurs, cLib, cOurs time.Duration
	b.SetBytes(int64(len(doc)))
	for i := 0; i < b.N; i++ {
		w, c := run(exec.Command(lib, "-l", "ACTIVESYNC", "-m", "0", "-o", os.DevNull, file))
		tLib, cLib = tLib+w, cLib+c
		ours := exec.Command(self)
		ours.Env = append(os.Environ(), "EASGATE_WBXML_DECODE="+file)
		w, c = run(ours)
		tOurs, cOurs = tOurs+w, cOurs+c
	}
	reportProcess(b, "easgate", tLib, tOurs, cLib, cOurs)
}

// BenchmarkProcessDecodeGateway is BenchmarkProcessDecode with the real
// `gateway wbxml decode`, built from ../../cmd/gateway for the run: the whole
// product binary, whose start-up includes every package's initialisation.
func BenchmarkProcessDecodeGateway(b *testing.B) {
	lib, err := exec.LookPath("wbxml2xml")
	if err != nil {
		b.Fatalf("wbxml2xml not found (libwbxml2-utils): %v", err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	gw := filepath.Join(dir, "gateway")
	if out, err := exec.Command(goBin, "build", "-o", gw, "../../cmd/gateway").CombinedOutput(); err != nil {
		b.Fatalf("building cmd/gateway: %v\n%s", err, out)
	}
	file := filepath.Join(dir, "sync-1MB.wbxml")
	doc := benchSync(b, 1130)
	if err := os.WriteFile(file, doc, 0o644); err != nil {
		b.Fatal(err)
	}
	run := func(cmd *exec.Cmd) (wall, cpu time.Duration) {
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("%s: %v\n%.300s", cmd.Path, err, stderr.Bytes())
		}
		return time.Since(start), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	var tLib, tOurs, cLib, cOurs time.Duration
	b.SetBytes(int64(len(doc)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w, c := run(exec.Command(lib, "-l", "ACTIVESYNC", "-m", "0", "-o", os.DevNull, file))
		tLib, cLib = tLib+w, cLib+c
		w, c = run(exec.Command(gw, "wbxml", "decode", file))
		tOurs, cOurs = tOurs+w, cOurs+c
	}
	reportProcess(b, "gateway", tLib, tOurs, cLib, cOurs)
}

// processCPU is the CPU time (user+system) this process has used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPUThroughput reports MB per CPU-second since c0: on a shared,
// oversubscribed machine wall-clock MB/s mostly measures the neighbours.
func reportCPUThroughput(b *testing.B, size int, c0 time.Duration) {
	if cpu := processCPU() - c0; cpu > 0 {
		b.ReportMetric(float64(size)*float64(b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
	}
}

// reportProcess reports wall-clock and CPU (user+system) time per process
// for libwbxml and for ours, and their ratios. On a shared machine the CPU
// ratio is the steadier of the two.
func reportProcess(b *testing.B, ours string, tLib, tOurs, cLib, cOurs time.Duration) {
	n := float64(b.N)
	b.ReportMetric(float64(tLib.Microseconds())/n, "libwbxml-wall-µs/op")
	b.ReportMetric(float64(tOurs.Microseconds())/n, ours+"-wall-µs/op")
	b.ReportMetric(float64(cLib.Microseconds())/n, "libwbxml-cpu-µs/op")
	b.ReportMetric(float64(cOurs.Microseconds())/n, ours+"-cpu-µs/op")
	b.ReportMetric(float64(tLib)/float64(tOurs), "wall-libwbxml/"+ours)
	b.ReportMetric(float64(cLib)/float64(cOurs), "cpu-libwbxml/"+ours)
}

func TestBenchDocsSizes(t *testing.T) {
	for _, d := range benchDocs(t) {
		doc, err := Parse(d.b, Limits{})
		if err != nil {
			t.Fatal(d.name, err)
		}
		if out, err := doc.Encode(nil); err != nil || !bytes.Equal(out, d.b) {
			t.Fatal(d.name, "round trip", err)
		}
	}
	docs := benchDocs(t)
	if n := len(docs[2].b); n < 95<<10 || n > 115<<10 {
		t.Errorf("sync-100KB is %d bytes", n)
	}
	if n := len(docs[3].b); n < 1000<<10 || n > 1150<<10 {
		t.Errorf("sync-1MB is %d bytes", n)
	}
}
