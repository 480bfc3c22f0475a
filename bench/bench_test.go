package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"net"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/easgate/easgate/bench/servers"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
)

// Every constant body is well-formed WBXML with the right root, checked by the project's own
// codec (MS-ASWBXML code pages).
func TestBodiesDecodeWithCodec(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   []byte
		want   []string
		approx int // expected size, ±40 %, 0: any
	}{
		{"SyncRequest", SyncRequest, []string{"<Sync", "<Collections>", "<Change>", ">1</Read>", "<TruncationSize>5120</TruncationSize>"}, 2048},
		{"SyncResponse", SyncResponse, []string{"<Sync", "<Add>", ">Lunch on Thursday?</Subject>", "<Body", ">IPM.Note</MessageClass>"}, 2048},
		{"FolderSyncRequest", FolderSyncRequest, []string{"<FolderSync", "<SyncKey>7</SyncKey>"}, 0},
		{"FolderSyncResponse", FolderSyncResponse, []string{"<FolderSync", "<DisplayName>Sent Items</DisplayName>", "<Count>6</Count>"}, 0},
		{"PingRequest", PingRequest(480), []string{"<Ping", "<HeartbeatInterval>480</HeartbeatInterval>", "<Class>Email</Class>"}, 0},
		{"PingResponseExpired", PingResponseExpired, []string{"<Ping", "<Status>1</Status>"}, 0},
		{"SendMailRequest", SendMailRequest, []string{"<SendMail", "<SaveInSentItems", "<Mime"}, 0},
		{"ItemOperationsRequest", ItemOperationsRequest, []string{"<ItemOperations", "<Store>Mailbox</Store>", "<FileReference"}, 0},
		{"ItemOperationsResponse", ItemOperationsResponse(4096), []string{"<ItemOperations", "<Properties>", "<Data"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := wbxml.Parse(tc.body, wbxml.Limits{})
			if err != nil {
				t.Fatalf("codec rejects %s: %v", tc.name, err)
			}
			var xml bytes.Buffer
			if err := wbxml.ToXML(doc, &xml); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(xml.String(), w) {
					t.Errorf("%s lacks %q:\n%s", tc.name, w, xml.String())
				}
			}
			if tc.approx > 0 && math.Abs(float64(len(tc.body)-tc.approx)) > 0.4*float64(tc.approx) {
				t.Errorf("%s is %d bytes, want ~%d", tc.name, len(tc.body), tc.approx)
			}
		})
	}
	if n := len(ItemOperationsResponse(1 << 20)); n < 1<<20 || n > 1<<20+64 {
		t.Errorf("1 MiB ItemOperations response is %d bytes", n)
	}
}

// MS-ASHTTP 2.2.1.1.1: both query forms the fleet sends parse with the project's own EAS
// request parser into the same device identity.
func TestFleetQueriesParse(t *testing.T) {
	fleet := NewFleet(6)
	seen := map[string]bool{}
	b64 := 0
	for i := range fleet {
		d := &fleet[i]
		if seen[d.DeviceID] || seen[d.User] {
			t.Fatalf("device %d repeats an identity", i)
		}
		seen[d.DeviceID], seen[d.User] = true, true
		if d.Base64 {
			b64++
		}
		for c, want := range map[Command]eas.Command{
			CmdSync: eas.CmdSync, CmdFolderSync: eas.CmdFolderSync, CmdPing: eas.CmdPing,
			CmdSendMail: eas.CmdSendMail, CmdItemOperations: eas.CmdItemOperations,
		} {
			var r eas.Request
			if err := eas.ParseQuery([]byte(d.Query(c)), &r); err != nil {
				t.Fatalf("device %d %s query %q: %v", i, c, d.Query(c), err)
			}
			if r.Cmd != want || r.User != d.User || r.DeviceID != d.DeviceID || r.DeviceType != d.DeviceType || r.Base64 != d.Base64 {
				t.Errorf("device %d %s: parsed %+v", i, c, r)
			}
			if c == CmdSendMail && !r.SaveInSent {
				t.Errorf("device %d SendMail without SaveInSent", i)
			}
			if d.Base64 && (!r.HasPolicyKey || r.PolicyKey != d.PolicyKey) {
				t.Errorf("device %d base64 policy key %v %d", i, r.HasPolicyKey, r.PolicyKey)
			}
		}
		if !strings.HasPrefix(d.Authorization(), "Basic ") || d.UserAgent == "" {
			t.Errorf("device %d credentials/UA", i)
		}
	}
	if b64 != 2 {
		t.Errorf("%d of 6 devices use base64, want 2", b64)
	}
}

func TestHistogramQuantilesWithinOnePointSixPercent(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var h, h2 Histogram
	var vals []float64
	for i := 0; i < 100000; i++ {
		// log-uniform from 50 µs to 2 s
		v := time.Duration(math.Exp(math.Log(50e3) + rng.Float64()*(math.Log(2e9)-math.Log(50e3))))
		vals = append(vals, float64(v))
		if i%2 == 0 {
			h.Record(v)
		} else {
			h2.Record(v)
		}
	}
	h.Merge(&h2)
	sort.Float64s(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(q*float64(len(vals)))-1]
		got := float64(h.Quantile(q))
		if math.Abs(got-exact)/exact > 0.016 {
			t.Errorf("p%v = %v, exact %v", q*100, time.Duration(got), time.Duration(exact))
		}
	}
	if h.Count() != 100000 || float64(h.Max()) != vals[len(vals)-1] {
		t.Errorf("count %d max %v", h.Count(), h.Max())
	}
	var small Histogram
	for i := 1; i <= 100; i++ {
		small.Record(time.Duration(i))
	}
	if small.Quantile(0.5) != 50 || small.Quantile(1) != 100 {
		t.Errorf("exact small values: p50 %v p100 %v", small.Quantile(0.5), small.Quantile(1))
	}
	var huge Histogram
	huge.Record(100 * time.Hour) // beyond the bucket range: clamped to the exact max
	if huge.Quantile(0.99) != 100*time.Hour {
		t.Errorf("huge value: %v", huge.Quantile(0.99))
	}
}

func TestMixSchedule(t *testing.T) {
	s := DefaultMix.schedule()
	var n [numCommands]int
	for _, c := range s {
		n[c]++
	}
	if n != [numCommands]int(DefaultMix) {
		t.Errorf("schedule counts %v, want %v", n, DefaultMix)
	}
	// Interleaved, not blocked: no command repeats more than 3 times in a row in this mix.
	run := 1
	for i := 1; i < len(s); i++ {
		if s[i] == s[i-1] {
			run++
			if run > 3 {
				t.Fatalf("schedule is blocked: %v", s)
			}
		} else {
			run = 1
		}
	}
}

func TestRunClosedAndOpenLoopAgainstSimulatedUpstream(t *testing.T) {
	up, err := StartUpstream(UpstreamOptions{PingHold: 20 * time.Millisecond, ItemOperationsBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()

	res, err := Run(context.Background(), Workload{Target: up.URL, Devices: NewFleet(30), Concurrency: 8, MaxRequests: 400, Duration: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Requests != 400 {
		t.Fatalf("closed loop: %d errors of %d (%s)", res.Errors, res.Requests, res.FirstError)
	}
	for c := Command(0); c < numCommands; c++ {
		want := int64(DefaultMix[c]) * 4
		if res.ByCmd[c].Count != want || up.Count(c) != want {
			t.Errorf("%s: client %d, upstream %d, want %d", c, res.ByCmd[c].Count, up.Count(c), want)
		}
	}
	if up.BadRequests() != 0 {
		t.Errorf("upstream could not read %d requests", up.BadRequests())
	}
	if p := res.ByCmd[CmdPing].Latency.Quantile(0.5); p < 20*time.Millisecond {
		t.Errorf("Ping p50 %v shorter than the hold", p)
	}
	if b := res.ByCmd[CmdSync].Bytes / res.ByCmd[CmdSync].Count; b != int64(len(SyncResponse)) {
		t.Errorf("Sync answered %d bytes", b)
	}
	if b := res.ByCmd[CmdItemOperations].Bytes / res.ByCmd[CmdItemOperations].Count; b < 64<<10 {
		t.Errorf("ItemOperations answered %d bytes", b)
	}

	open, err := Run(context.Background(), Workload{Target: up.URL, Rate: 500, Duration: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if open.Errors != 0 || open.Requests < 50 || open.Requests > 260 {
		t.Errorf("open loop at 500/s for 400ms: %d requests, %d errors (%s)", open.Requests, open.Errors, open.FirstError)
	}
}

// The harness never sends traffic off the machine.
func TestRefusesNonLoopbackTargets(t *testing.T) {
	for _, target := range []string{"http://10.1.2.3/Microsoft-Server-ActiveSync", "http://example.com/", "http://192.168.0.1:80/"} {
		if _, err := Run(context.Background(), Workload{Target: target, MaxRequests: 1}); !errors.Is(err, errNotLoopback) {
			t.Errorf("%s: %v", target, err)
		}
		if _, err := NewHeldPings(target, NewFleet(1), 60); !errors.Is(err, errNotLoopback) {
			t.Errorf("held pings %s: %v", target, err)
		}
	}
	if _, err := StartUpstream(UpstreamOptions{Addr: "0.0.0.0:0"}); err == nil {
		t.Error("upstream listened beyond loopback")
	}
}

// The comparison runner against the real nginx (bench/servers), and the held-Ping RSS probe.
func TestCompareDirectAndNginx(t *testing.T) {
	up, err := StartUpstream(UpstreamOptions{PingHold: 10 * time.Millisecond, ItemOperationsBytes: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	ngx := servers.StartNginx(t, servers.NginxOptions{Upstream: up.Addr})
	var order []string
	cmp, err := Compare(context.Background(), CompareOptions{
		Targets: []Target{{Name: "direct", URL: up.URL}, {Name: "nginx", URL: ngx.URL + "/Microsoft-Server-ActiveSync", CPU: ngx.WorkersCPU}},
		Rounds:  2,
		Pause:   time.Millisecond,
		Workload: Workload{
			Devices: NewFleet(20), Concurrency: 4, MaxRequests: 100, Duration: 20 * time.Second,
		},
		Progress: func(_ int, tg Target, _ *Result) { order = append(order, tg.Name) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(order, ",") != "direct,nginx,nginx,direct" {
		t.Errorf("rounds not alternated: %v", order)
	}
	sums := cmp.Summaries()
	for _, s := range sums {
		if s.Errors != 0 || s.Requests != 200 || s.Throughput <= 0 {
			t.Errorf("%s: %+v", s.Target.Name, s)
		}
	}
	if sums[0].CPUPerRequest != 0 || sums[1].CPUPerRequest < 0 {
		t.Errorf("proxy CPU per request: direct %v, nginx %v", sums[0].CPUPerRequest, sums[1].CPUPerRequest)
	}
	for _, s := range sums {
		// the harness did the work of every run: its CPU share is above zero, and it cannot
		// exceed the cores the test process may use
		if b := s.HarnessBusy; b <= 0 || b > float64(runtime.NumCPU())+0.5 {
			t.Errorf("%s: harness busy %.2f", s.Target.Name, b)
		}
		if st := s.Steal; st < 0 || st > float64(runtime.NumCPU()) {
			t.Errorf("%s: steal %.2f", s.Target.Name, st)
		}
	}
	if sums[0].ThroughputRatio != 1 || sums[1].ThroughputRatio <= 0 {
		t.Errorf("ratios %v %v", sums[0].ThroughputRatio, sums[1].ThroughputRatio)
	}
	md := cmp.Markdown()
	if !strings.Contains(md, "| nginx |") || !strings.Contains(md, "p99.9") || !strings.Contains(md, "harness core") || !strings.Contains(md, "| steal |") {
		t.Errorf("markdown:\n%s", md)
	}

	// Held Pings through nginx: the upstream holds them, and the RSS reader is called.
	hold, err := StartUpstream(UpstreamOptions{PingHold: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	ngx2 := servers.StartNginx(t, servers.NginxOptions{Upstream: hold.Addr})
	points, err := MeasureHeldPingRSS(context.Background(), RSSOptions{
		Target: ngx2.URL + "/Microsoft-Server-ActiveSync", Levels: []int{20, 60},
		RSS: ngx2.WorkersRSS, UpstreamHeld: hold.Held, Settle: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(points) != 3 || points[2].Held != 60 || points[2].RSS <= 0 {
		t.Errorf("points %+v", points)
	}
	if hold.Held() != 60 {
		t.Errorf("upstream holds %d", hold.Held())
	}
	_ = os.Getpid()
}

func TestSlope(t *testing.T) {
	pts := []RSSPoint{{0, 1000}, {1000, 11000}, {4000, 41000}}
	if s := Slope(pts); math.Abs(s-10) > 1e-9 {
		t.Errorf("slope %v, want 10", s)
	}
}

// The paired probe: a second stream straight to the upstream, in the same moments as the
// target's. Against a target that answers 5 ms late, the round's added p99 is those 5 ms; a
// probe without an open loop is refused.
func TestOpenLoopProbe(t *testing.T) {
	up, err := StartUpstream(UpstreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	const delay = 5 * time.Millisecond
	slowURL := syncServer(t, func() { time.Sleep(delay) })

	w := Workload{Devices: NewFleet(10), Mix: Mix{CmdSync: 1}, Rate: 400, Probe: up.URL, ProbeRate: 200, Duration: 600 * time.Millisecond}
	cmp, err := Compare(context.Background(), CompareOptions{
		Targets:  []Target{{Name: "direct", URL: up.URL}, {Name: "slow", URL: slowURL}},
		Rounds:   2,
		Pause:    time.Millisecond,
		Workload: w,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, runs := range cmp.Runs {
		for _, r := range runs {
			if r.Probe == nil || r.Probe.Errors != 0 || r.Errors != 0 {
				t.Fatalf("%s: errors %d, probe %+v", cmp.Targets[i].Name, r.Errors, r.Probe)
			}
			// Counted as due (sent, or still queued when the run ended), which the schedule
			// fixes whatever else the machine is doing.
			if n := r.Probe.Requests + r.Probe.Dropped; n < 60 || n > 130 {
				t.Errorf("%s: the probe had %d requests due at 200/s for 600 ms", cmp.Targets[i].Name, n)
			}
			if n := r.Requests + r.Dropped; n < 120 || n > 260 {
				t.Errorf("%s: the target had %d requests due at 400/s for 600 ms", cmp.Targets[i].Name, n)
			}
		}
	}
	sums := cmp.Summaries()
	if !sums[0].Paired || !sums[1].Paired {
		t.Fatalf("summaries not paired: %+v", sums)
	}
	if a := sums[1].AddedP99; a < delay-delay/10 || a > 20*delay {
		t.Errorf("a target 5 ms late added %v at p99", a)
	}
	if a := sums[0].AddedP99; a > sums[1].AddedP99/2 {
		t.Errorf("direct against its own probe added %v, the slow target %v", a, sums[1].AddedP99)
	}
	if md := cmp.Markdown(); !strings.Contains(md, "added p99 (paired)") || strings.Contains(md, "| slow | – ") {
		t.Errorf("markdown:\n%s", md)
	}

	for _, bad := range []Workload{
		{Target: up.URL, Probe: up.URL, ProbeRate: 100, MaxRequests: 1}, // closed loop
		{Target: up.URL, Probe: up.URL, Rate: 100, MaxRequests: 1},      // no probe rate
		{Target: up.URL, Probe: "http://10.0.0.1/", Rate: 100, ProbeRate: 10, MaxRequests: 1},
	} {
		if _, err := Run(context.Background(), bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

// syncServer is an EAS endpoint on loopback that runs before, then answers every request
// with SyncResponse; it stops when the test ends.
func syncServer(t *testing.T, before func()) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		before()
		ctx.SetBody(SyncResponse)
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return "http://" + ln.Addr().String() + "/Microsoft-Server-ActiveSync"
}

// serialServer answers one request at a time, each after service: its capacity is about
// 1/service whatever the concurrency.
func serialServer(t *testing.T, service time.Duration) string {
	var mu sync.Mutex
	return syncServer(t, func() {
		mu.Lock()
		time.Sleep(service)
		mu.Unlock()
	})
}

// Load: each run offers a share of the capacity its target showed just before, so two
// targets of different capacity get different rates, and the probe follows the rate.
func TestCompareAtLoad(t *testing.T) {
	up, err := StartUpstream(UpstreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	fast, slow := serialServer(t, 2*time.Millisecond), serialServer(t, 5*time.Millisecond)
	const load, share = 0.5, 0.25
	// A CPU reader that counts wall time: a proxy busy all the time, during the calibration
	// and the open loop alike.
	t0 := time.Now()
	always := func() (time.Duration, error) { return time.Since(t0), nil }
	cmp, err := Compare(context.Background(), CompareOptions{
		Targets:    []Target{{Name: "fast", URL: fast, CPU: always}, {Name: "slow", URL: slow}},
		Rounds:     1,
		Pause:      time.Millisecond,
		Load:       load,
		Calibrate:  500 * time.Millisecond,
		ProbeShare: share,
		Workload:   Workload{Devices: NewFleet(10), Mix: Mix{CmdSync: 1}, Concurrency: 8, Probe: up.URL, Duration: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	var rates [2]float64
	for i, runs := range cmp.Runs {
		r := runs[0]
		name := cmp.Targets[i].Name
		if r.Errors != 0 || r.Probe == nil || r.Probe.Errors != 0 {
			t.Fatalf("%s: errors %d (%s), probe %+v", name, r.Errors, r.FirstError, r.Probe)
		}
		// 2 ms of service: at most 500/s; 5 ms: at most 200/s (the sleep only ever overshoots).
		if limit := []float64{500, 200}[i]; r.Capacity <= limit/10 || r.Capacity > limit*1.05 {
			t.Errorf("%s: capacity %.0f req/s, want up to %.0f", name, r.Capacity, limit)
		}
		if want := []float64{1, 0}[i]; math.Abs(r.CapacityBusy-want) > 0.1 || math.Abs(r.ProxyBusy()-want) > 0.1 {
			t.Errorf("%s: proxy busy %.2f while calibrating, %.2f in the open loop; want %.0f", name, r.CapacityBusy, r.ProxyBusy(), want)
		}
		// offered: due in the run (sent, or queued when it ended), fixed by the schedule
		rates[i] = float64(r.Requests+r.Dropped) / r.Elapsed.Seconds()
		if want := load * r.Capacity; math.Abs(rates[i]-want) > 0.3*want {
			t.Errorf("%s: offered %.0f req/s, want %.0f (load %.1f of %.0f)", name, rates[i], want, load, r.Capacity)
		}
		if got, want := float64(r.Probe.Requests+r.Probe.Dropped)/r.Elapsed.Seconds(), share*rates[i]; math.Abs(got-want) > 0.4*want+2 {
			t.Errorf("%s: probe at %.0f req/s, want %.0f", name, got, want)
		}
	}
	if rates[1] >= rates[0]*0.8 {
		t.Errorf("the slower target was offered %.0f req/s, the faster %.0f", rates[1], rates[0])
	}
	sums := cmp.Summaries()
	if md := cmp.Markdown(); !strings.Contains(md, "| capacity |") || !strings.Contains(md, fmt.Sprintf("| %.0f |", sums[1].Capacity)) {
		t.Errorf("markdown:\n%s", md)
	}

	for _, bad := range []CompareOptions{
		{Targets: []Target{{Name: "fast", URL: fast}}, Load: 1.5, Workload: Workload{MaxRequests: 1}},
		{Targets: []Target{{Name: "down", URL: "http://127.0.0.1:1/Microsoft-Server-ActiveSync"}}, Load: 0.5, Calibrate: 100 * time.Millisecond,
			Workload: Workload{Devices: NewFleet(1), Concurrency: 1, Timeout: time.Second}},
	} {
		if _, err := Compare(context.Background(), bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}
