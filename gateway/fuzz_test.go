package gateway

import (
	"testing"

	"github.com/easgate/easgate/bench"
	"github.com/easgate/easgate/eas/wbxml"
)

// FuzzSyncWaits checks the long-poll check's prefilter on arbitrary bodies: it may only ever
// skip a walk whose answer would have been "no" (the walk alone is the definition), and on a
// body the tree parses, the answer is the tree's.
func FuzzSyncWaits(f *testing.F) {
	coll := wbxml.NewElement(wbxml.AirSyncCollections, wbxml.NewElement(wbxml.AirSyncCollection,
		wbxml.NewText(wbxml.AirSyncSyncKey, "{9bd4cd5a-1c6e}12"), wbxml.NewText(wbxml.AirSyncCollectionId, "5")))
	for _, root := range []*wbxml.Element{
		wbxml.NewElement(wbxml.AirSyncSync, coll),
		wbxml.NewElement(wbxml.AirSyncSync, coll, wbxml.NewText(wbxml.AirSyncWait, "10")),
		wbxml.NewElement(wbxml.AirSyncSync, wbxml.NewOpaque(wbxml.AirSyncHeartbeatInterval, []byte("600")), coll),
		wbxml.NewElement(wbxml.AirSyncSync, coll, &wbxml.Element{Tag: wbxml.AirSyncWait, HasContent: true}),
		wbxml.NewElement(wbxml.AirSyncSync, wbxml.NewElement(wbxml.AirSyncWait, wbxml.NewElement(wbxml.AirSyncGetChanges))),
		wbxml.NewElement(wbxml.PingPing, wbxml.NewText(wbxml.PingHeartbeatInterval, "600")),
	} {
		f.Add(mustEncode(root))
	}
	f.Add(bench.SyncRequest)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		got := syncWaits(body)
		if walked := len(body) > 0 && walkSyncWaits(body); got != walked {
			t.Fatalf("syncWaits %v, decoder walk %v", got, walked)
		}
		doc, err := wbxml.Parse(body, bodyLimits)
		if err != nil {
			return
		}
		want := false
		if doc.Root.Tag == wbxml.AirSyncSync {
			for _, c := range doc.Root.Children {
				if (c.Tag == wbxml.AirSyncWait || c.Tag == wbxml.AirSyncHeartbeatInterval) && c.Kind != wbxml.NoValue {
					want = true
				}
			}
		}
		if got != want {
			t.Fatalf("syncWaits %v, tree %v", got, want)
		}
	})
}
