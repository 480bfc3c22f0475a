package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/easgate/easgate/eas/wbxml"
)

const wbxmlUsage = `usage: gateway wbxml decode [FILE]   WBXML (file or stdin) to XML on stdout
       gateway wbxml encode [FILE]   XML (file or stdin) to WBXML on stdout`

// runWBXML implements `gateway wbxml decode|encode [FILE]`: the operator's
// view of captured EAS bodies. decode turns WBXML into the XML text form of
// package wbxml, encode turns that XML back into the identical WBXML bytes.
// Malformed input is reported in one line on stderr with exit status 1;
// usage errors exit with status 2.
func runWBXML(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || len(args) > 2 {
		fmt.Fprintln(stderr, wbxmlUsage)
		return 2
	}
	cmd := args[0]
	switch cmd {
	case "decode", "encode":
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, wbxmlUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "gateway wbxml: unknown subcommand %q\n%s\n", cmd, wbxmlUsage)
		return 2
	}
	in, name := stdin, "stdin"
	if len(args) == 2 && args[1] != "-" {
		if strings.HasPrefix(args[1], "-") {
			fmt.Fprintf(stderr, "gateway wbxml: unknown flag %q\n%s\n", args[1], wbxmlUsage)
			return 2
		}
		f, err := os.Open(args[1])
		if err != nil {
			fmt.Fprintf(stderr, "gateway wbxml %s: %v\n", cmd, err)
			return 1
		}
		defer f.Close()
		in, name = f, args[1]
	}
	// Read no more than the codec would accept, plus one byte to detect
	// the excess, so a huge input cannot exhaust memory.
	max := int64(wbxml.DefaultLimits.MaxDocumentSize)
	if cmd == "encode" {
		max *= 4 // base64 and tag names make the XML form larger
	}
	data, err := io.ReadAll(io.LimitReader(in, max+1))
	if err != nil {
		fmt.Fprintf(stderr, "gateway wbxml %s: reading %s: %v\n", cmd, name, err)
		return 1
	}
	if int64(len(data)) > max {
		fmt.Fprintf(stderr, "gateway wbxml %s: %s: input larger than %d bytes\n", cmd, name, max)
		return 1
	}
	out := bufio.NewWriterSize(stdout, 64<<10)
	if cmd == "decode" {
		// WriteXML validates the whole document before writing, so
		// malformed input leaves stdout empty.
		if err := wbxml.WriteXML(out, data, wbxml.Limits{}); err != nil {
			fmt.Fprintf(stderr, "gateway wbxml decode: %s: %v\n", name, oneLine(err))
			return 1
		}
	} else {
		doc, err := wbxml.FromXML(bytes.NewReader(data))
		if err != nil {
			fmt.Fprintf(stderr, "gateway wbxml encode: %s: %v\n", name, oneLine(err))
			return 1
		}
		b, err := doc.Encode(nil)
		if err != nil {
			fmt.Fprintf(stderr, "gateway wbxml encode: %s: %v\n", name, oneLine(err))
			return 1
		}
		out.Write(b)
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintf(stderr, "gateway wbxml %s: writing output: %v\n", cmd, err)
		return 1
	}
	return 0
}

// oneLine keeps an error message on one line whatever its source.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
