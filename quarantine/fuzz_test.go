package quarantine

import (
	"testing"

	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
)

// FuzzAnswer feeds arbitrary request bodies to every inbox command of a quarantined device
// and to MeetingResponse of a blocked one: the responder never fails or panics, and every
// WBXML answer decodes.
func FuzzAnswer(f *testing.F) {
	f.Add(uint8(0), []byte{})
	f.Add(uint8(1), folderSyncBody(f, "0"))
	f.Add(uint8(2), syncBody(f, "0"))
	f.Add(uint8(2), syncBody(f, Prefix+"0123456789ab-1", prefElem("4", "10")))
	f.Add(uint8(3), gieBody(f, Prefix+"0123456789ab-2"))
	f.Add(uint8(4), pingBody(f, InboxID))
	f.Add(uint8(5), realSyncBody(f, "1"))
	q := newResponder(f)
	cmds := []eas.Command{eas.CmdFolderSync, eas.CmdSync, eas.CmdGetItemEstimate, eas.CmdPing, eas.CmdItemOperations, eas.CmdMeetingResponse}
	f.Fuzz(func(t *testing.T, c uint8, body []byte) {
		cmd := cmds[int(c)%len(cmds)]
		for _, v := range []eas.Version{eas.V25, eas.V121, eas.V161} {
			d := notCompliant
			if cmd == eas.CmdMeetingResponse {
				d = blocked
			}
			a, err := q.Answer(request(cmd, v), d, body, t0)
			if err != nil {
				t.Fatal(err)
			}
			if a.Body != nil {
				if _, err := wbxml.Parse(a.Body, wbxml.Limits{}); err != nil {
					t.Fatalf("%v %v: answer does not decode: %v", cmd, v, err)
				}
			}
			if sa, ok := Stale(cmd, body); ok {
				if _, err := wbxml.Parse(sa.Body, wbxml.Limits{}); err != nil {
					t.Fatalf("Stale answer does not decode: %v", err)
				}
			}
		}
	})
}
