package gateway

import (
	"context"
	"encoding/base64"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/easgate/easgate/eas/wbxml"
)

func TestMatchRoute_PathConfusion(t *testing.T) {
	cases := []struct {
		target string
		want   route
	}{
		{"/Microsoft-Server-ActiveSync?Cmd=Sync", routeEAS},
		{"/microsoft-server-activesync", routeEAS},
		{"/MICROSOFT-SERVER-ACTIVESYNC?x", routeEAS},
		{"/Autodiscover/Autodiscover.xml", routeAutodiscover},
		{"/autodiscover/autodiscover.xml", routeAutodiscover},
		{"/oauth/token", routeOAuthToken},
		{"/portal/device?t=abc", routePortal},
		// Every other spelling is refused before routing, so it can reach neither a route nor
		// the upstream.
		{"/Microsoft-Server-ActiveSync/", routeNone},
		{"//Microsoft-Server-ActiveSync", routeNone},
		{"/Microsoft-Server-ActiveSync/../admin", routeNone},
		{"/x/../Microsoft-Server-ActiveSync", routeNone},
		{"/./Microsoft-Server-ActiveSync", routeNone},
		{"/Microsoft%2DServer-ActiveSync", routeNone},
		{"/Microsoft-Server-ActiveSync%00", routeNone},
		{"/%2e%2e/Microsoft-Server-ActiveSync", routeNone},
		{"/%252e%252e/Microsoft-Server-ActiveSync", routeNone},
		{`/Microsoft-Server-ActiveSync\..\x`, routeNone},
		{"/Microsoft-Server-ActiveSync;jsessionid=1", routeNone},
		{"/Microsoft-Server-ActiveSync#frag", routeNone},
		{"http://evil.example/Microsoft-Server-ActiveSync", routeNone},
		{"*", routeNone},
		{"", routeNone},
		{"/portal/../admin/v1/devices", routeNone},
		{"/Microsoft-Server-ActiveSync\r\nX: y", routeNone},
	}
	for _, c := range cases {
		if got, _ := matchRoute([]byte(c.target)); got != c.want {
			t.Errorf("matchRoute(%q) = %d, want %d", c.target, got, c.want)
		}
	}
	_, q := matchRoute([]byte("/Microsoft-Server-ActiveSync?Cmd=Ping&User=a"))
	if string(q) != "Cmd=Ping&User=a" {
		t.Errorf("query = %q", q)
	}
}

func TestCanonicalUser(t *testing.T) {
	u := UserNames{DefaultDomain: "Example.com", NetBIOS: map[string]string{"CONTOSO": "contoso.com"}}
	ok := []struct{ in, want string }{
		{"jdoe", "jdoe@example.com"},
		{"JDoe@Contoso.COM", "jdoe@contoso.com"},
		{`CONTOSO\jdoe`, "jdoe@contoso.com"},
		{`contoso\JDOE`, "jdoe@contoso.com"},
		{`OTHER\jdoe`, "jdoe@other"},
	}
	for _, c := range ok {
		got, good := u.canonicalUser(c.in)
		if !good || got != c.want {
			t.Errorf("canonicalUser(%q) = %q, %v; want %q", c.in, got, good, c.want)
		}
	}
	for _, bad := range []string{"", "a@b@c", "@x", "x@", `\x`, `d\`, `d\a\b`, `d\a@b`, "a b", "a\r\nb", "a\x00", strings.Repeat("a", 300), "\xff"} {
		if got, good := u.canonicalUser(bad); good {
			t.Errorf("canonicalUser(%q) = %q, accepted", bad, got)
		}
	}
	bare := UserNames{}
	if got, _ := bare.canonicalUser("JDoe"); got != "jdoe" {
		t.Errorf("bare name without default domain = %q", got)
	}
}

func TestParseBasic(t *testing.T) {
	// "jdoe:pa:ss" — a colon in the password stays in the password.
	u, p, ok := parseBasic([]byte("Basic amRvZTpwYTpzcw=="))
	if !ok || u != "jdoe" || p != "pa:ss" {
		t.Fatalf("got %q %q %v", u, p, ok)
	}
	for _, h := range []string{"", "Basic", "Basic !!!", "Basic OnBhc3M=", "Bearer abc", "Basic " + strings.Repeat("A", 5000)} {
		if _, _, ok := parseBasic([]byte(h)); ok {
			t.Errorf("parseBasic(%q) accepted", h)
		}
	}
}

// Credentials whose decoded form fits parseBasic's stack buffer and ones that do not must
// decode alike, up to the 4 KiB cap on the encoded value.
func TestParseBasic_Lengths(t *testing.T) {
	for _, pwLen := range []int{1, 370, 376, 377, 383, 384, 385, 1000, 3000} {
		pw := strings.Repeat("p", pwLen)
		h := "Basic " + base64.StdEncoding.EncodeToString([]byte("jdoe:"+pw))
		u, p, ok := parseBasic([]byte(h))
		if !ok || u != "jdoe" || p != pw {
			t.Errorf("password of %d bytes: got %q, %d bytes, %v", pwLen, u, len(p), ok)
		}
	}
}

// bindUser accepts the EAS User when it is the Basic login's spelling or another spelling of
// the same identity, and nothing else; the fast path for an identical spelling must not widen
// that.
func TestBindUser_Spellings(t *testing.T) {
	s := &Server{names: UserNames{DefaultDomain: "example.com", NetBIOS: map[string]string{"CONTOSO": "contoso.com"}}}
	cases := []struct {
		login, easUser string
		ok             bool
	}{
		{"jdoe", "jdoe", true},
		{"jdoe", "JDoe", true},
		{"jdoe", "jdoe@example.com", true},
		{`CONTOSO\jdoe`, `CONTOSO\jdoe`, true},
		{`CONTOSO\jdoe`, "jdoe@contoso.com", true},
		{`CONTOSO\jdoe`, "jdoe", false}, // example.com, not contoso.com
		{"jdoe", "jdoe2", false},
		{"jdoe", "", false},
		{"jdoe", "jdoe ", false},
	}
	for _, c := range cases {
		user, ok := s.names.canonicalUser(c.login)
		if !ok {
			t.Fatalf("login %q refused", c.login)
		}
		st := &reqState{user: user, login: c.login}
		st.req.User = c.easUser
		if got := s.bindUser(st) == nil; got != c.ok {
			t.Errorf("login %q, EAS User %q: bound %v, want %v", c.login, c.easUser, got, c.ok)
		}
	}
	// A bearer identity has no login: an empty User never matches by the fast path.
	st := &reqState{user: "jdoe@example.com"}
	if s.bindUser(st) == nil {
		t.Error("empty EAS User bound to a bearer identity")
	}
}

func TestClientAddr_TrustedProxies(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	peer := func(s string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(s), Port: 1} }
	cases := []struct {
		peer, xff, want string
		trusted         []netip.Prefix
	}{
		{"192.0.2.1", "203.0.113.9", "192.0.2.1", trusted},            // untrusted peer: XFF ignored
		{"10.1.1.1", "203.0.113.9", "203.0.113.9", trusted},           // trusted LB
		{"10.1.1.1", "1.2.3.4, 203.0.113.9", "203.0.113.9", trusted},  // client-forged left entry ignored
		{"10.1.1.1", "203.0.113.9, 10.2.2.2", "203.0.113.9", trusted}, // two trusted hops
		{"10.1.1.1", "garbage, 10.2.2.2", "10.2.2.2", trusted},        // malformed stops at last trusted
		{"10.1.1.1", "", "10.1.1.1", trusted},                         // no header
		{"10.1.1.1", "203.0.113.9", "10.1.1.1", nil},                  // nothing trusted
		{"::ffff:10.1.1.1", "2001:db8::1", "2001:db8::1", trusted},    // mapped v4 peer
	}
	for _, c := range cases {
		if got := clientAddr(peer(c.peer), []byte(c.xff), c.trusted); got.String() != c.want {
			t.Errorf("clientAddr(%s, %q) = %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
}

func TestPingHub_SupersedeAndCaps(t *testing.T) {
	h := newPingHub(PingLimits{PerUser: 2, PerClient: 3, Total: 4})
	ctx := context.Background()
	a1, err := h.acquire(ctx, "u1", "devA", "1.1.1.1")
	if err != nil {
		t.Fatal(err)
	}
	a2, err := h.acquire(ctx, "u1", "devA", "1.1.1.1")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(context.Cause(a1.ctx), errSuperseded) {
		t.Fatalf("older ping not superseded: %v", context.Cause(a1.ctx))
	}
	h.release(a1) // late release of the superseded ping must not free the new one's slot
	if h.held() != 1 {
		t.Fatalf("held = %d, want 1", h.held())
	}
	if _, err := h.acquire(ctx, "u1", "devB", "1.1.1.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.acquire(ctx, "u1", "devC", "1.1.1.1"); !errors.Is(err, errPingLimit) {
		t.Fatalf("per-user cap: %v", err)
	}
	if _, err := h.acquire(ctx, "u2", "devA", "1.1.1.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.acquire(ctx, "u3", "devA", "1.1.1.1"); !errors.Is(err, errPingLimit) {
		t.Fatalf("per-client cap: %v", err)
	}
	if _, err := h.acquire(ctx, "u3", "devA", "2.2.2.2"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.acquire(ctx, "u4", "devA", "3.3.3.3"); !errors.Is(err, errPingLimit) {
		t.Fatalf("total cap: %v", err)
	}
	h.release(a2)
	h.shutdown()
	if _, err := h.acquire(ctx, "u9", "d", "9.9.9.9"); !errors.Is(err, errShuttingDown) {
		t.Fatalf("after shutdown: %v", err)
	}
	if h.held() != 3 {
		t.Fatalf("held = %d", h.held())
	}
}

const minimalConfig = `
listen:
  external_url: https://mail.example.com
admin:
  token: ${ADMIN_TOKEN}
portal:
  key: ${ADMIN_TOKEN}
backend:
  eas:
    url: https://exchange.example.com/Microsoft-Server-ActiveSync
`

func TestParseConfig_DefaultsAndEnv(t *testing.T) {
	env := map[string]string{"ADMIN_TOKEN": strings.Repeat("k", 40)}
	c, err := ParseConfig([]byte(minimalConfig), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin.Token != env["ADMIN_TOKEN"] || c.Listen.Addr != ":8080" || c.Store.Driver != "sqlite" || c.Ping.MaxHeartbeat != 15*time.Minute {
		t.Fatalf("defaults/env not applied: %+v", c)
	}
	// One node owns a SQLite registry and invalidates its own cache on every write; a shared
	// PostgreSQL registry is written by other nodes, whose writes must show within seconds.
	if c.Store.CacheTTL != 10*time.Minute || c.Listen.WriteTimeout != 5*time.Minute {
		t.Fatalf("store.cache_ttl %v, listen.write_timeout %v", c.Store.CacheTTL, c.Listen.WriteTimeout)
	}
	env["DSN"] = "postgres://x"
	c, err = ParseConfig([]byte(minimalConfig+"store:\n  driver: postgres\n  dsn: ${DSN}\n"), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil || c.Store.CacheTTL != 30*time.Second {
		t.Fatalf("postgres cache_ttl: %v, %v", c, err)
	}
	if _, err := ParseConfig([]byte(minimalConfig+"store:\n  cache_ttl: -1s\n"), func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err == nil || !strings.Contains(err.Error(), "store.cache_ttl") {
		t.Fatalf("negative cache_ttl: %v", err)
	}
}

func TestParseConfig_AllErrorsAtOnce(t *testing.T) {
	bad := `
listen:
  external_url: ftp://x
  trusted_proxies: [notacidr]
admin:
  token: ${MISSING}
backend:
  mode: carrier-pigeon
store:
  driver: oracle
ping:
  max_heartbeat: 2h
log:
  level: loud
`
	_, err := ParseConfig([]byte(bad), func(string) (string, bool) { return "", false })
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"external_url", "trusted_proxies", "MISSING", "admin.token", "backend.mode", "store.driver", "max_heartbeat", "log.level"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	if _, err := ParseConfig([]byte("listen:\n  adress: x\n"), func(string) (string, bool) { return "", false }); err == nil || !strings.Contains(err.Error(), "adress") {
		t.Errorf("misspelt key not reported: %v", err)
	}
}

func TestAutodiscover_MobileSync(t *testing.T) {
	req := `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006">
  <Request>
    <EMailAddress>chris@woodgrovebank.com</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006</AcceptableResponseSchema>
  </Request>
</Autodiscover>`
	code, body := autodiscover([]byte(req), "https://gw.example.com/Microsoft-Server-ActiveSync")
	if code != 200 || !strings.Contains(string(body), "<Url>https://gw.example.com/Microsoft-Server-ActiveSync</Url>") ||
		!strings.Contains(string(body), "<EMailAddress>chris@woodgrovebank.com</EMailAddress>") {
		t.Fatalf("%d %s", code, body)
	}
	outlook := strings.ReplaceAll(req, "mobilesync/responseschema", "outlook/responseschema")
	if code, body := autodiscover([]byte(outlook), "u"); code != 200 || !strings.Contains(string(body), "<ErrorCode>601</ErrorCode>") {
		t.Fatalf("outlook schema: %d %s", code, body)
	}
	for _, b := range []string{"", "<x>", strings.Replace(req, "chris@woodgrovebank.com", "<script>@x", 1), strings.Repeat("a", 20000)} {
		if code, _ := autodiscover([]byte(b), "u"); code == 200 {
			t.Errorf("accepted %.40q", b)
		}
	}
}

func TestSyncWaits(t *testing.T) {
	coll := wbxml.NewElement(wbxml.AirSyncCollections, wbxml.NewElement(wbxml.AirSyncCollection,
		wbxml.NewText(wbxml.AirSyncSyncKey, "5"), wbxml.NewText(wbxml.AirSyncCollectionId, "1")))
	cases := []struct {
		body []byte
		want bool
	}{
		{mustEncode(wbxml.NewElement(wbxml.AirSyncSync, coll)), false},
		{mustEncode(wbxml.NewElement(wbxml.AirSyncSync, coll, wbxml.NewText(wbxml.AirSyncWait, "10"))), true},
		{mustEncode(wbxml.NewElement(wbxml.AirSyncSync, wbxml.NewText(wbxml.AirSyncHeartbeatInterval, "600"), coll)), true},
		{mustEncode(wbxml.NewElement(wbxml.PingPing, wbxml.NewText(wbxml.PingHeartbeatInterval, "600"))), false},
		{nil, false},
		{[]byte{0x03, 0x01, 0x6a, 0x00, 0x45, 0x5c}, false}, // truncated inside Collections
	}
	for i, c := range cases {
		if got := syncWaits(c.body); got != c.want {
			t.Errorf("case %d: %v", i, got)
		}
	}
	body := cases[1].body
	if n := testing.AllocsPerRun(100, func() { syncWaits(body) }); n != 0 {
		t.Errorf("syncWaits allocates %v times", n)
	}
}

// TestSyncWaits_MatchesTree checks the byte-pair prefilter and the decoder walk against the
// element tree on random Sync requests: Wait and HeartbeatInterval with and without values,
// before and after the collections, and the same tag bytes where they mean something else (an
// Email RecurrenceId, letters in strings, bytes in opaque data).
func TestSyncWaits_MatchesTree(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 11))
	pick := func(ss ...string) string { return ss[rnd.IntN(len(ss))] }
	text := func() string {
		return pick("d", "i", "di\x03", "{9bd4cd5a-1c6e-4b3f}12", "5", "", strings.Repeat("did ", rnd.IntN(40)))
	}
	opaque := func() []byte {
		b := make([]byte, rnd.IntN(12))
		for i := range b {
			b[i] = pick("\x64", "\x69", "\x03", "\xc3", "\x01", "\x00", "a")[0]
		}
		return b
	}
	holder := func() *wbxml.Element {
		tag := wbxml.AirSyncWait
		if rnd.IntN(2) == 0 {
			tag = wbxml.AirSyncHeartbeatInterval
		}
		switch rnd.IntN(5) {
		case 0:
			return wbxml.NewText(tag, pick("5", "600", ""))
		case 1:
			return wbxml.NewOpaque(tag, opaque())
		case 2:
			return &wbxml.Element{Tag: tag, HasContent: rnd.IntN(2) == 0} // empty
		case 3:
			return wbxml.NewElement(tag, wbxml.NewText(wbxml.AirSyncWindowSize, "5")) // not a value
		}
		return wbxml.NewElement(tag, wbxml.NewElement(wbxml.AirSyncGetChanges))
	}
	collections := func() *wbxml.Element {
		c := wbxml.NewElement(wbxml.AirSyncCollection, wbxml.NewText(wbxml.AirSyncSyncKey, text()),
			wbxml.NewText(wbxml.AirSyncCollectionId, text()))
		cmds := wbxml.NewElement(wbxml.AirSyncCommands)
		for range rnd.IntN(6) {
			data := wbxml.NewElement(wbxml.AirSyncApplicationData,
				wbxml.NewText(wbxml.EmailRecurrenceId, text()), // 0x64 in the Email page
				wbxml.NewText(wbxml.EmailType, text()),         // 0x69 in the Email page
				wbxml.NewOpaque(wbxml.EmailRead, opaque()))
			if rnd.IntN(3) == 0 {
				data.Append(holder()) // a Wait below the root's children does not count
			}
			cmds.Append(wbxml.NewElement(wbxml.AirSyncChange, wbxml.NewText(wbxml.AirSyncServerId, text()), data))
		}
		return wbxml.NewElement(wbxml.AirSyncCollections, c.Append(cmds))
	}
	want := func(root *wbxml.Element) bool {
		for _, c := range root.Children {
			if (c.Tag == wbxml.AirSyncWait || c.Tag == wbxml.AirSyncHeartbeatInterval) && c.Kind != wbxml.NoValue {
				return true
			}
		}
		return false
	}
	held, prefiltered, walked := 0, 0, 0
	for i := range 4000 {
		root := wbxml.NewElement(wbxml.AirSyncSync)
		for range rnd.IntN(4) {
			switch rnd.IntN(4) {
			case 0:
				root.Append(holder())
			case 1:
				root.Append(wbxml.NewText(wbxml.AirSyncWindowSize, text()))
			default:
				root.Append(collections())
			}
		}
		body := mustEncode(root)
		w := want(root)
		if w {
			held++
		}
		if got := syncWaits(body); got != w {
			t.Fatalf("document %d: syncWaits %v, tree %v\n% x", i, got, w, body)
		}
		if !w && mayHoldValue(body) {
			walked++ // the decoder had to tell
		} else if !w {
			prefiltered++
		}
	}
	// both answers, and both ways of reaching "no", must have been exercised
	if held < 400 || prefiltered < 400 || walked < 100 {
		t.Fatalf("of 4000 documents %d held, %d refused by the prefilter, %d by the decoder", held, prefiltered, walked)
	}
}
