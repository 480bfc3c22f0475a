package wbxml

import (
	"io"
	"testing"
)

// TestDecoderZeroAllocs asserts that a reused Decoder reads a whole ~100 KB
// Sync without allocating.
func TestDecoderZeroAllocs(t *testing.T) {
	b := benchSync(t, 110)
	dec := NewDecoder(b, Limits{})
	allocs := testing.AllocsPerRun(20, func() {
		dec.Reset(b)
		for {
			_, err := dec.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("token decode allocates %v times per document", allocs)
	}
}

// TestParseAllocsPerElement asserts at most one allocation per element;
// Parse actually allocates a constant number per document.
func TestParseAllocsPerElement(t *testing.T) {
	for _, d := range benchDocs(t) {
		n := countElements(t, d.b)
		allocs := testing.AllocsPerRun(5, func() {
			if _, err := Parse(d.b, Limits{}); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > float64(n) || allocs > 8 {
			t.Errorf("%s: %v allocations for %d elements", d.name, allocs, n)
		}
	}
}

// TestEncodeZeroAllocs asserts that encoding a tree into a buffer with room
// does not allocate.
func TestEncodeZeroAllocs(t *testing.T) {
	b := benchSync(t, 110)
	doc, err := Parse(b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, len(b))
	allocs := testing.AllocsPerRun(20, func() {
		if buf, err = doc.Encode(buf[:0]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Encode allocates %v times", allocs)
	}
}
