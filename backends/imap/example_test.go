package imap_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	imapbackend "github.com/easgate/easgate/backends/imap"
	"github.com/easgate/easgate/backends/imap/demo"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
)

// Example wires the backend the way the gateway does: a state store, New, then Serve for each
// allowed request with the device's credentials — here against the embedded demo mail system.
func Example() {
	ctx := context.Background()
	d, err := demo.Start(ctx)
	if err != nil {
		panic(err)
	}
	defer d.Close()
	dir, _ := os.MkdirTemp("", "easgate-example")
	defer os.RemoveAll(dir)
	store, err := imapbackend.OpenSQLiteStore(filepath.Join(dir, "imapstate.db"))
	if err != nil {
		panic(err)
	}
	defer store.Close()
	b, err := imapbackend.New(imapbackend.Config{IMAPAddr: d.IMAPAddr, SMTPAddr: d.SMTPAddr}, store)
	if err != nil {
		panic(err)
	}
	defer b.Close()

	fmt.Println(b.Options().Header["MS-ASProtocolVersions"])
	body, _ := wbxml.NewDocument(wbxml.NewElement(wbxml.FolderHierarchyFolderSync,
		wbxml.NewText(wbxml.FolderHierarchySyncKey, "0"))).Encode(nil)
	req := &eas.Request{Cmd: eas.CmdFolderSync, User: "demo@" + demo.Domain, DeviceID: "ExampleDevice1", DeviceType: "iPhone", Version: eas.V161}
	resp, err := b.Serve(ctx, req, imapbackend.Credentials{User: "demo@" + demo.Domain, Password: "demo"}, body)
	if err != nil {
		panic(err)
	}
	doc, _ := wbxml.Parse(resp.Body, wbxml.Limits{})
	fmt.Println(resp.Status, resp.ContentType, "folders:", doc.Root.Path(wbxml.FolderHierarchyChanges, wbxml.FolderHierarchyCount).Text())
	// Output:
	// 12.1,14.0,14.1,16.0,16.1
	// 200 application/vnd.ms-sync.wbxml folders: 5
}
