package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/easgate/easgate/eas/wbxml"
)

// TestDemoConfigServesMail runs examples/demo.yaml — the README's run command — and syncs the
// demo mailbox over EAS: FolderSync, then the Inbox, which holds the sample messages.
func TestDemoConfigServesMail(t *testing.T) {
	g := startDemoGateway(t)
	demoSync(t, g)
}

// startDemoGateway runs examples/demo.yaml on free ports with its registry in a temp dir.
func startDemoGateway(t *testing.T, opts ...func(*Config)) *testGateway {
	t.Helper()
	text, err := os.ReadFile("../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfgText := strings.NewReplacer("127.0.0.1:8080", "127.0.0.1:0", "127.0.0.1:9090", "127.0.0.1:0",
		"/tmp/easgate-demo/easgate.db", filepath.Join(t.TempDir(), "demo.db")).Replace(string(text))
	cfg, err := ParseConfig([]byte(cfgText), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		o(cfg)
	}
	app, err := Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	cl, _ := net.Listen("tcp", "127.0.0.1:0")
	al, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() { done <- app.Server.Serve(cl, al) }()
	t.Cleanup(func() {
		// a normal stop is no error: an operator's log must not say "stopped with an error"
		if err := app.Server.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve after Shutdown: %v", err)
		}
		app.Close()
	})
	return &testGateway{t: t, srv: app.Server, engine: app.Engine, addr: cl.Addr().String(), client: &http.Client{}}
}

// demoSync syncs the demo mailbox over EAS and checks the failure paths of its credentials.
func demoSync(t *testing.T, g *testGateway) {
	t.Helper()

	fs := mustEncode(wbxml.NewElement(wbxml.FolderHierarchyFolderSync, wbxml.NewText(wbxml.FolderHierarchySyncKey, "0")))
	resp, body := g.do(easReq{cmd: "FolderSync", user: "demo", authUser: "demo@demo.easgate.test", password: "demo", device: "DEMO1", body: fs})
	if resp.StatusCode != 200 || statusOf(t, body) != "1" {
		t.Fatalf("FolderSync: %d %q", resp.StatusCode, body)
	}
	inbox := inboxOf(t, body)
	sync := func(key string) []byte { return syncFolderRequest(inbox, key) }
	_, body = g.do(easReq{cmd: "Sync", user: "demo", authUser: "demo@demo.easgate.test", password: "demo", device: "DEMO1", body: sync("0")})
	doc, err := wbxml.Parse(body, wbxml.DefaultLimits)
	if err != nil {
		t.Fatalf("Sync 0: %v %q", err, body)
	}
	key := doc.Root.Path(wbxml.AirSyncCollections, wbxml.AirSyncCollection, wbxml.AirSyncSyncKey).Text()
	_, body = g.do(easReq{cmd: "Sync", user: "demo", authUser: "demo@demo.easgate.test", password: "demo", device: "DEMO1", body: sync(key)})
	doc, err = wbxml.Parse(body, wbxml.DefaultLimits)
	if err != nil {
		t.Fatalf("Sync %s: %v", key, err)
	}
	adds := 0
	doc.Root.Walk(func(e *wbxml.Element) bool {
		if e.Tag == wbxml.AirSyncAdd {
			adds++
		}
		return true
	})
	if adds == 0 {
		t.Fatalf("the demo Inbox synced no messages: %d bytes", len(body))
	}
	// Wrong password: the IMAP login fails and the device is told to authenticate — also for a
	// retried request the bridge could answer from its saved state (a replayed answer without a
	// login would hand the mailbox to anyone who knows the DeviceId and the SyncKey).
	resp, _ = g.do(easReq{cmd: "FolderSync", user: "demo", authUser: "demo@demo.easgate.test", password: "wrong", device: "OTHER2", body: fs})
	if resp.StatusCode != 401 {
		t.Fatalf("wrong password, new device: %d", resp.StatusCode)
	}
	resp, body = g.do(easReq{cmd: "Sync", user: "demo", authUser: "demo@demo.easgate.test", password: "wrong", device: "DEMO1", body: sync(key)})
	if resp.StatusCode != 401 {
		t.Fatalf("wrong password: %d %q", resp.StatusCode, body)
	}
}

// inboxOf returns the ServerId of the Inbox (Type 2) a FolderSync response adds.
func inboxOf(t *testing.T, folderSync []byte) string {
	t.Helper()
	doc, err := wbxml.Parse(folderSync, wbxml.DefaultLimits)
	if err != nil {
		t.Fatalf("FolderSync response: %v", err)
	}
	inbox := ""
	doc.Root.Walk(func(e *wbxml.Element) bool {
		if e.Tag == wbxml.FolderHierarchyAdd && e.Find(wbxml.FolderHierarchyType).Text() == "2" {
			inbox = e.Find(wbxml.FolderHierarchyServerId).Text()
		}
		return true
	})
	if inbox == "" {
		t.Fatal("no Inbox in the hierarchy")
	}
	return inbox
}

// syncFolderRequest is a Sync of one folder from key, asking for changes.
func syncFolderRequest(folder, key string) []byte {
	return mustEncode(wbxml.NewElement(wbxml.AirSyncSync, wbxml.NewElement(wbxml.AirSyncCollections,
		wbxml.NewElement(wbxml.AirSyncCollection, wbxml.NewText(wbxml.AirSyncSyncKey, key),
			wbxml.NewText(wbxml.AirSyncCollectionId, folder), wbxml.NewText(wbxml.AirSyncGetChanges, "1")))))
}
