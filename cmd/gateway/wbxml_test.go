package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runW(t *testing.T, stdin []byte, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runWBXML(args, bytes.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestWBXMLDecodeEncodeIdentity(t *testing.T) {
	files, err := filepath.Glob("../../eas/wbxml/testdata/zpush/*.wbxml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures: %v", err)
	}
	for _, f := range files {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		code, xml, stderr := runW(t, nil, "decode", f)
		if code != 0 || stderr != "" {
			t.Fatalf("decode %s: %d %s", f, code, stderr)
		}
		if !strings.Contains(xml, `xmlns="`) {
			t.Fatalf("decode output is not the XML form:\n%s", xml)
		}
		code, got, stderr := runW(t, []byte(xml), "encode")
		if code != 0 || stderr != "" {
			t.Fatalf("encode %s: %d %s", f, code, stderr)
		}
		if got != string(want) {
			t.Fatalf("%s: decode | encode changed the bytes", f)
		}
		// stdin for decode and a file for encode work as well.
		xmlFile := filepath.Join(t.TempDir(), "doc.xml")
		if err := os.WriteFile(xmlFile, []byte(xml), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, again, _ := runW(t, want, "decode", "-"); code != 0 || again != xml {
			t.Fatalf("decode from stdin differs")
		}
		if code, got, _ := runW(t, nil, "encode", xmlFile); code != 0 || got != string(want) {
			t.Fatalf("encode from file differs")
		}
	}
}

func TestWBXMLMalformedInput(t *testing.T) {
	inputs := map[string][]byte{
		"empty":           nil,
		"truncated":       {0x03, 0x01, 0x6A, 0x00, 0x45},
		"attribute":       {0x03, 0x01, 0x6A, 0x00, 0xC5, 0x01},
		"unknown page":    {0x03, 0x01, 0x6A, 0x00, 0x00, 0x30, 0x45, 0x01},
		"endless integer": append([]byte{0x03}, bytes.Repeat([]byte{0xFF}, 64)...),
		"deep nesting":    append([]byte{0x03, 0x01, 0x6A, 0x00}, bytes.Repeat([]byte{0x45}, 100000)...),
		"huge opaque":     {0x03, 0x01, 0x6A, 0x00, 0x45, 0xC3, 0x8F, 0xFF, 0xFF, 0xFF, 0x7F},
		"text":            []byte("<Sync/>"),
	}
	for name, in := range inputs {
		code, stdout, stderr := runW(t, in, "decode")
		if code != 1 || stdout != "" {
			t.Errorf("decode %s: exit %d, stdout %q", name, code, stdout)
		}
		if !strings.HasPrefix(stderr, "gateway wbxml decode: ") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("decode %s: stderr must be one line, got %q", name, stderr)
		}
	}
	xmlInputs := []string{"", "<Sync/>", `<Sync xmlns="AirSync:"><Nope/></Sync>`, `<Sync xmlns="AirSync:">`, "\x00\x01"}
	for _, in := range xmlInputs {
		code, stdout, stderr := runW(t, []byte(in), "encode")
		if code != 1 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "gateway wbxml encode: ") {
			t.Errorf("encode %q: exit %d stdout %q stderr %q", in, code, stdout, stderr)
		}
	}
	code, _, stderr := runW(t, nil, "decode", filepath.Join(t.TempDir(), "missing.wbxml"))
	if code != 1 || strings.Count(stderr, "\n") != 1 {
		t.Errorf("missing file: exit %d stderr %q", code, stderr)
	}
}

func TestWBXMLUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"decode", "a", "b"}, {"encode", "-x"}} {
		code, stdout, stderr := runW(t, nil, args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "usage: gateway wbxml") {
			t.Errorf("args %q: exit %d stdout %q stderr %q", args, code, stdout, stderr)
		}
	}
	if code, stdout, _ := runW(t, nil, "help"); code != 0 || !strings.Contains(stdout, "usage:") {
		t.Errorf("help: exit %d", code)
	}
}
