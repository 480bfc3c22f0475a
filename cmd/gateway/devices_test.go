package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/gateway"
)

// TestDevicesCLIDrivesAdminAPI runs `gateway devices ...` against a real admin listener.
func TestDevicesCLIDrivesAdminAPI(t *testing.T) {
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	uln, _ := net.Listen("tcp", "127.0.0.1:0")
	go up.Serve(uln)
	t.Cleanup(func() { up.Close() })
	token := strings.Repeat("t", 40)
	cfg, err := gateway.ParseConfig([]byte(fmt.Sprintf(`
listen: {external_url: "https://gw.example.com"}
admin: {token: %q}
portal: {key: %q}
store: {path: %q}
backend: {eas: {url: "http://%s/Microsoft-Server-ActiveSync"}}
`, token, token, filepath.Join(t.TempDir(), "db"), uln.Addr())), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	app, err := gateway.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	cl, _ := net.Listen("tcp", "127.0.0.1:0")
	al, _ := net.Listen("tcp", "127.0.0.1:0")
	go app.Server.Serve(cl, al)
	t.Cleanup(func() { app.Server.Shutdown(context.Background()); app.Close() })
	if _, err := app.Engine.Register(context.Background(), decision.Registration{User: "jdoe@example.com", DeviceID: "CLI1", DeviceType: "iPhone"}, "test"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("EASGATE_ADMIN_URL", "http://"+al.Addr().String())
	t.Setenv("EASGATE_ADMIN_TOKEN", token)

	cli := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"devices"}, args...), nil, &out, &errb)
		return code, out.String() + errb.String()
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"list", "-user", "jdoe@example.com"}, `"CLI1"`},
		{[]string{"show", "jdoe@example.com", "CLI1"}, `"enrolled": true`},
		{[]string{"block", "jdoe@example.com", "CLI1"}, `"override": "block"`},
		{[]string{"allow", "jdoe@example.com", "CLI1"}, `"override": "allow"`},
		{[]string{"wipe", "jdoe@example.com", "CLI1", "-account-only"}, `account_only`},
		{[]string{"cancel-wipe", "jdoe@example.com", "CLI1"}, `"CLI1"`},
		{[]string{"audit", "-user", "jdoe@example.com"}, `"wipe_requested"`},
		{[]string{"forget", "jdoe@example.com", "CLI1"}, `forgotten`},
	} {
		code, out := cli(c.args...)
		if code != 0 || !strings.Contains(out, c.want) {
			t.Errorf("devices %v: exit %d, want %s in:\n%s", c.args, code, c.want, out)
		}
	}
	if code, out := cli("show", "jdoe@example.com", "CLI1"); code != 1 || !strings.Contains(out, "404") {
		t.Errorf("show after forget: %d %s", code, out)
	}
	t.Setenv("EASGATE_ADMIN_TOKEN", "wrong")
	if code, out := cli("list"); code != 1 || !strings.Contains(out, "401") {
		t.Errorf("wrong token: %d %s", code, out)
	}
	if code, _ := cli("frobnicate"); code != 2 {
		t.Errorf("unknown verb: %d", code)
	}
}
