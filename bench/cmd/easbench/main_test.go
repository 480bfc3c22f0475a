package main

import (
	"strings"
	"testing"

	upstream "github.com/easgate/easgate/backends/eas"
	"github.com/easgate/easgate/bench"
)

func TestParseMixAndLevels(t *testing.T) {
	m, err := parseMix("Sync=3, Ping=1")
	if err != nil || m[bench.CmdSync] != 3 || m[bench.CmdPing] != 1 || m[bench.CmdSendMail] != 0 {
		t.Fatalf("%v %v", m, err)
	}
	if m, err := parseMix(""); err != nil || m != bench.DefaultMix {
		t.Fatalf("empty mix: %v %v", m, err)
	}
	for _, bad := range []string{"Sync", "Nope=1", "Sync=-1", "Sync=x"} {
		if _, err := parseMix(bad); err == nil {
			t.Errorf("parseMix(%q) accepted", bad)
		}
	}
	if lv, err := parseLevels("1000,4000,9000"); err != nil || len(lv) != 3 || lv[2] != 9000 {
		t.Fatalf("%v %v", lv, err)
	}
	for _, bad := range []string{"", "5,5", "9000,1000", "0", "a"} {
		if _, err := parseLevels(bad); err == nil {
			t.Errorf("parseLevels(%q) accepted", bad)
		}
	}
	var tf targetFlags
	if err := tf.Set("gateway=http://127.0.0.1:1/x"); err != nil || tf[0].Name != "gateway" {
		t.Fatal(tf, err)
	}
	if err := tf.Set("nourl"); err == nil {
		t.Error("target without = accepted")
	}
}

func TestForwardOptionsReadsBothQueryForms(t *testing.T) {
	fleet := bench.NewFleet(6)
	base64 := 0
	for i := range fleet {
		d := &fleet[i]
		if !strings.Contains(d.Query(bench.CmdPing), "Cmd=") {
			base64++
		}
		for _, c := range []struct {
			cmd        bench.Command
			class      upstream.Class
			idempotent bool
		}{
			{bench.CmdPing, upstream.ClassPing, true},
			{bench.CmdSendMail, upstream.ClassSend, false},
			{bench.CmdSync, upstream.ClassNormal, true},
		} {
			q := d.Query(c.cmd) // raw, percent-encoded, as the request line carries it
			if opt := forwardOptions([]byte(q)); opt.Class != c.class || opt.Idempotent != c.idempotent {
				t.Errorf("device %d %v (%q): class %v idempotent %v, want %v %v", i, c.cmd, q, opt.Class, opt.Idempotent, c.class, c.idempotent)
			}
		}
	}
	if base64 == 0 {
		t.Fatal("the fleet sent no base64 query: the test covers only the plain form")
	}
}
