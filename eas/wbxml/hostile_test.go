package wbxml

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

// hostile decodes in with both the token decoder and Parse, requires the
// error wanted from each, and bounds what the attempt allocated.
func hostile(t *testing.T, in []byte, lim Limits, want error, maxBytes uint64) {
	t.Helper()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("%s: error %v, want %v", what, err, want)
		}
		if !IsMalformed(err) {
			t.Fatalf("%s: %T is not a typed wbxml error", what, err)
		}
	}
	d := NewDecoder(in, lim)
	var err error
	for err == nil {
		_, err = d.Next()
	}
	check("Decoder", err)
	if _, again := d.Next(); again != err {
		t.Fatalf("error not sticky: %v then %v", err, again)
	}
	_, err = Parse(in, lim)
	check("Parse", err)
	// TotalAlloc counts the whole process, and a GC may empty the decoder pool between two
	// calls (Parse then allocates a fresh decoder): the least of three runs is Parse's own cost.
	least := ^uint64(0)
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _ = Parse(in, lim)
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	if least > maxBytes {
		t.Fatalf("Parse allocated %d bytes on hostile input, bound %d", least, maxBytes)
	}
}

func header() []byte { return []byte{0x03, 0x01, 0x6A, 0x00} }

func TestHostile_NestedTags100000(t *testing.T) {
	in := append(header(), bytes.Repeat([]byte{0x45}, 100000)...)
	in = append(in, bytes.Repeat([]byte{0x01}, 100000)...)
	hostile(t, in, Limits{}, ErrDepth, 16<<10)
	// Even with a depth limit above the nesting, the stack is bounded by
	// the document and Parse succeeds or fails without blowing up.
	doc, err := Parse(in, Limits{MaxDepth: 200000})
	if err != nil {
		t.Fatal(err)
	}
	out, err := doc.Encode(nil)
	if err != nil || !bytes.Equal(out, in) {
		t.Fatalf("deep document round trip: %v", err)
	}
}

func TestHostile_OpaqueLength4G(t *testing.T) {
	in := append(header(), 0x45, 0xC3, 0x8F, 0xFF, 0xFF, 0xFF, 0x7F, 'x')
	hostile(t, in, Limits{}, ErrOpaqueLength, 4<<10)
	// A limit above 2^32 leaves the check against the bytes actually left.
	hostile(t, in, Limits{MaxOpaqueLen: 1 << 40}, ErrTruncated, 4<<10)
}

func TestHostile_StringTableLength4G(t *testing.T) {
	in := []byte{0x03, 0x01, 0x6A, 0x8F, 0xFF, 0xFF, 0xFF, 0x7F, 'a', 0}
	hostile(t, in, Limits{}, ErrStringTable, 4<<10)
	hostile(t, in, Limits{MaxStringTable: 1 << 40}, ErrTruncated, 4<<10)
}

func TestHostile_EndlessMbUint32(t *testing.T) {
	hostile(t, append([]byte{0x03}, bytes.Repeat([]byte{0xFF}, 1<<16)...), Limits{}, ErrMbUint32, 4<<10)
	in := append(header(), 0x45, 0xC3)
	in = append(in, bytes.Repeat([]byte{0x81}, 1<<16)...)
	hostile(t, in, Limits{}, ErrMbUint32, 4<<10)
	hostile(t, append(header(), 0x45, 0x83, 0xFF, 0xFF), Limits{}, ErrTruncated, 4<<10)
}

func TestHostile_NonMinimalMbUint32(t *testing.T) {
	hostile(t, append(header(), 0x45, 0xC3, 0x80, 0x01, 'x', 0x01), Limits{}, ErrMbUint32, 4<<10)
}

func TestHostile_Truncated(t *testing.T) {
	full := hx(t, specSyncAddContact)
	for n := 0; n < len(full); n++ {
		in := full[:n]
		d := NewDecoder(in, Limits{})
		var err error
		for err == nil {
			_, err = d.Next()
		}
		if err == io.EOF || !IsMalformed(err) {
			t.Fatalf("prefix %d: %v", n, err)
		}
		if _, err := Parse(in, Limits{}); !IsMalformed(err) {
			t.Fatalf("Parse prefix %d: %v", n, err)
		}
	}
	hostile(t, full[:len(full)-1], Limits{}, ErrTruncated, 4<<10)
	hostile(t, full[:4], Limits{}, ErrNoRoot, 4<<10)
	hostile(t, append(header(), 0x45, 0x03, 'a', 'b'), Limits{}, ErrUnterminated, 4<<10)
}

func TestHostile_UnknownCodePage(t *testing.T) {
	hostile(t, append(header(), 0x00, 26, 0x45, 0x01), Limits{}, ErrUnknownPage, 4<<10)
	hostile(t, append(header(), 0x45, 0x00, 0xFF, 0x05, 0x01), Limits{}, ErrUnknownPage, 4<<10)
}

func TestHostile_AttributeTokens(t *testing.T) {
	hostile(t, append(header(), 0xC5, 0x01, 0x01), Limits{}, ErrAttribute, 4<<10) // Sync with attributes and content
	hostile(t, append(header(), 0x45, 0x8B, 0x01, 0x01), Limits{}, ErrAttribute, 4<<10)
	hostile(t, append(header(), 0x45, 0x84, 0x00, 0x01), Limits{}, ErrLiteral, 4<<10)
	hostile(t, append(header(), 0x04, 0x00), Limits{}, ErrLiteral, 4<<10)
}

func TestHostile_ProcessingInstruction(t *testing.T) {
	hostile(t, append(header(), 0x43, 0x05, 0x01, 0x45, 0x01), Limits{}, ErrPI, 4<<10)
	hostile(t, append(header(), 0x45, 0x43, 0x05, 0x01, 0x01), Limits{}, ErrPI, 4<<10)
}

func TestHostile_EntityAndExtensions(t *testing.T) {
	hostile(t, append(header(), 0x45, 0x02, 0x41, 0x01), Limits{}, ErrEntity, 4<<10)
	for _, b := range []byte{0x40, 0x41, 0x42, 0x80, 0x81, 0x82, 0xC0, 0xC1, 0xC2} {
		hostile(t, append(header(), 0x45, b, 0x00, 0x01), Limits{}, ErrExtension, 4<<10)
	}
}

func TestHostile_StringTableRefPastEnd(t *testing.T) {
	hostile(t, []byte{0x03, 0x01, 0x6A, 0x03, 'a', 'b', 0, 0x45, 0x83, 0x03, 0x01}, Limits{}, ErrStringRef, 4<<10)
	hostile(t, []byte{0x03, 0x01, 0x6A, 0x00, 0x45, 0x83, 0x8F, 0xFF, 0xFF, 0xFF, 0x7F, 0x01}, Limits{}, ErrStringRef, 4<<10)
	// An entry without its NUL runs off the table: also out of range.
	hostile(t, []byte{0x03, 0x01, 0x6A, 0x02, 'a', 'b', 0x45, 0x83, 0x00, 0x01}, Limits{}, ErrStringRef, 4<<10)
	hostile(t, []byte{0x03, 0x00, 0x09, 0x6A, 0x02, 'a', 0, 0x45, 0x01}, Limits{}, ErrStringRef, 4<<10)
}

func TestHostile_Structure(t *testing.T) {
	hostile(t, append(header(), 0x45, 0x01, 0x45, 0x01), Limits{}, ErrTrailing, 4<<10) // a second root
	hostile(t, append(header(), 0x05, 0x01), Limits{}, ErrTrailing, 4<<10)
	hostile(t, append(header(), 0x01), Limits{}, ErrUnbalanced, 4<<10)
	hostile(t, append(header(), 0x03, 'x', 0, 0x45, 0x01), Limits{}, ErrMisplaced, 4<<10)
	hostile(t, append(header(), 0x45, 0x00, 0x01, 0x01, 0x01), Limits{}, ErrSwitchPage, 4<<10)
	hostile(t, append(header(), 0x45, 0x00, 0x01, 0x00, 0x02, 0x45, 0x01, 0x01), Limits{}, ErrSwitchPage, 4<<10)
	hostile(t, []byte{0x04, 0x01, 0x6A, 0x00, 0x45, 0x01}, Limits{}, ErrVersion, 4<<10)
}

func TestHostile_MixedContent(t *testing.T) {
	in := append(header(), 0x45, 0x03, 'a', 0, 0x4B, 0x01, 0x01)
	if _, err := Parse(in, Limits{}); !errors.Is(err, ErrMixedContent) {
		t.Fatalf("text then child: %v", err)
	}
	in = append(header(), 0x45, 0x0B, 0x03, 'a', 0, 0x01)
	if _, err := Parse(in, Limits{}); !errors.Is(err, ErrMixedContent) {
		t.Fatalf("child then text: %v", err)
	}
	in = append(header(), 0x45, 0x03, 'a', 0, 0x03, 'b', 0, 0x01)
	if _, err := Parse(in, Limits{}); !errors.Is(err, ErrMixedContent) {
		t.Fatalf("two strings: %v", err)
	}
}

func TestHostile_Limits(t *testing.T) {
	in := append(header(), 0x45, 0x03)
	in = append(in, bytes.Repeat([]byte{'a'}, 100)...)
	in = append(in, 0x00, 0x01)
	hostile(t, in, Limits{MaxStringLen: 99}, ErrStringLength, 4<<10)
	hostile(t, in, Limits{MaxDocumentSize: len(in) - 1}, ErrDocumentSize, 4<<10)
	tbl := []byte{0x03, 0x01, 0x6A, 0x04, 'a', 'b', 'c', 0, 0x45, 0x83, 0x00, 0x01}
	hostile(t, tbl, Limits{MaxStringLen: 2}, ErrStringLength, 4<<10)
	if _, err := Parse(tbl, Limits{MaxStringLen: 3}); err != nil {
		t.Fatal(err)
	}
	var le *LimitError
	_, err := Parse(in, Limits{MaxStringLen: 99})
	if !errors.As(err, &le) || le.Kind != LimitStringLen || le.Max != 99 || le.Offset != 5 {
		t.Fatalf("LimitError fields: %+v", le)
	}
}
