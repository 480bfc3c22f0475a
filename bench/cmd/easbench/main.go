// Command easbench runs easgate's load comparisons on loopback: a simulated EAS upstream, the
// same upstream behind nginx, and any extra targets (the gateway) given with -target.
//
//	easbench -mode compare -duration 5s -rounds 3 -concurrency 64
//	easbench -mode rss -levels 1000,4000,9000
//	easbench -mode compare -gateway -mix Sync=1
//	easbench -mode compare -gateway -mix Sync=1 -rate 16000 -probe-rate 800 -duration 20s
//	easbench -mode compare -gateway -mix Sync=1 -load 0.5 -duration 20s
//	easbench -mode rss -gateway -nginx-workers 1 -devices 6000 -levels 1000,3000,6000
//	easbench -mode compare -target gateway=http://127.0.0.1:8443/Microsoft-Server-ActiveSync
//	easbench -mode compare -gateway -gateway-binary OLD -gateway-b NEW -mix Sync=1 -rounds 8
//
// Pinning: -client-cpus pins this process (load generator and simulated upstream), -proxy-cpus
// pins nginx and, with -gateway, the gateway process this command builds and starts
// (bench/servers.NewGateway), so both proxies are compared on the same core. A gateway given
// with -target runs unpinned unless you start it under taskset yourself. -gateway-b starts a
// second gateway build, pinned the same way, as target gateway-b: two builds compared in the
// same alternating rounds, which on a noisy machine says more than two runs apart.
// -shield also takes the proxies' CPUs from every other task on the machine before the
// proxies start (kernel threads such as kdamond, and other processes, ran on the proxies' core
// for up to 5 ms at a time) and gives them back at exit.
//
// Open loop (-rate): requests leave on a fixed schedule whatever the target's answers, and
// latency is counted from the intended send time. -probe-rate adds a second, thinner stream
// straight to the simulated upstream in every run, released by the same scheduler; a run's p99
// less its probe's p99 ("added p99 (paired)") is what the target adds in those same moments,
// with the harness's own queueing on its busy core taken out.
//
// Load (-load): instead of a fixed -rate, every run of every target is preceded by a
// closed-loop run of -calibrate against the same target, and the open loop then offers that
// share of the throughput just measured, with a probe at 1/20 of it. On a machine whose speed
// drifts from one minute to the next, this is what keeps "50 % load" half of the target's
// capacity; the table's "proxy core" column is the proxy's CPU share during the open loop.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/easgate/easgate/bench"
	"github.com/easgate/easgate/bench/servers"
)

type targetFlags []bench.Target

func (t *targetFlags) String() string { return fmt.Sprint(*t) }
func (t *targetFlags) Set(s string) error {
	name, url, ok := strings.Cut(s, "=")
	if !ok || name == "" || url == "" {
		return errors.New("want name=url")
	}
	*t = append(*t, bench.Target{Name: name, URL: url})
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "easbench:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		mode        = flag.String("mode", "compare", "compare | rss")
		duration    = flag.Duration("duration", 5*time.Second, "length of one run")
		rounds      = flag.Int("rounds", 3, "alternating rounds per target")
		concurrency = flag.Int("concurrency", 64, "closed-loop workers")
		rate        = flag.Float64("rate", 0, "open-loop requests/s (0: closed loop)")
		load        = flag.Float64("load", 0, "open loop at this share (0,1] of each target's capacity, measured by a closed-loop run of -calibrate just before each run; replaces -rate and -probe-rate (probe at 1/20 of the rate)")
		calib       = flag.Duration("calibrate", 3*time.Second, "with -load: length of the closed-loop run that measures capacity")
		probeRate   = flag.Float64("probe-rate", 0, "with -rate: also send this many requests/s straight to the upstream during every run; each run's p99 less that probe's is its paired added p99")
		maxReq      = flag.Int64("max-requests", 0, "requests per run (0: bounded by -duration only)")
		devices     = flag.Int("devices", 500, "simulated devices")
		pingHold    = flag.Duration("ping-hold", 200*time.Millisecond, "how long the upstream holds a Ping in compare mode")
		mixFlag     = flag.String("mix", "", "command weights, e.g. Sync=60,Ping=15,FolderSync=15,SendMail=5,ItemOperations=5")
		workers     = flag.Int("nginx-workers", 0, "nginx worker_processes (default 1 for compare; 2 for rss, since 9,000 held Pings are 18,000 connections and one worker's fds are capped at 20,000)")
		proxyCPUs   = flag.String("proxy-cpus", "1", "taskset CPU list for nginx (and the gateway); empty: no pinning")
		clientCPUs  = flag.String("client-cpus", "0", "taskset CPU list for this process; empty: no pinning")
		shield      = flag.Bool("shield", false, "keep -proxy-cpus for the proxies: take them out of every other task's affinity before the proxies start and give it back at exit (needs root; a killed run leaves them out)")
		levels      = flag.String("levels", "1000,4000,9000", "held Ping levels for -mode rss")
		noNginx     = flag.Bool("no-nginx", false, "skip the nginx target (compare mode; -mode rss always measures nginx, its baseline)")
		verbose     = flag.Bool("v", false, "print per-command latency of every run")
		fwdProxy    = flag.Bool("forward-proxy", false, "also compare a bare backends/eas Forward proxy (a child process pinned like nginx)")
		upstreamURL = flag.String("upstream", "", "for -mode forward-proxy: the upstream EAS URL")
		listen      = flag.String("listen", "", "for -mode forward-proxy: the loopback address to serve on")
		gw          = flag.Bool("gateway", false, "also run the easgate gateway (cmd/gateway built into a temp dir, its own process pinned like nginx)")
		gwBinary    = flag.String("gateway-binary", "", "with -gateway: a built cmd/gateway to run instead of building one")
		gwBinaryB   = flag.String("gateway-b", "", "with -gateway: also run this second built cmd/gateway as target gateway-b, to compare two builds in the same alternating rounds")
		gwDir       = flag.String("gateway-dir", "", "with -gateway: keep the gateway's config, registry and log (gateway.log) in this directory instead of a temporary one")
		extra       targetFlags
	)
	flag.Var(&extra, "target", "extra target name=url (repeatable), e.g. gateway=http://127.0.0.1:8443/Microsoft-Server-ActiveSync")
	flag.Parse()

	if *load != 0 && (*rate != 0 || *probeRate != 0) {
		return errors.New("give -load or -rate/-probe-rate, not both")
	}
	if *load < 0 || *load > 1 {
		return fmt.Errorf("-load %v: want a share of capacity in (0, 1]", *load)
	}
	if err := pinSelf(*clientCPUs); err != nil {
		return err
	}
	// A closed output (easbench ... | head) and a hang-up end the run like an interrupt does,
	// instead of killing the process, so the deferred clean-up still runs: the proxies stop and
	// -shield gives the CPUs back.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	defer stop()
	if *mode == "forward-proxy" {
		return serveForwardProxy(ctx, *upstreamURL, *listen)
	}

	if *shield {
		if *proxyCPUs == "" {
			return errors.New("-shield needs -proxy-cpus")
		}
		moved, kept, restore, err := servers.Shield(*proxyCPUs)
		if err != nil {
			return err
		}
		defer restore()
		fmt.Printf("shield: CPUs %q taken from %d other tasks; %d could not move (per-CPU kernel threads)\n", *proxyCPUs, moved, kept)
	}
	hold := *pingHold
	if *workers <= 0 {
		*workers = 1
		if *mode == "rss" {
			*workers = 2
		}
	}
	if *mode == "rss" {
		hold = 10 * time.Minute // held until released
	}
	upOpts := bench.UpstreamOptions{PingHold: hold, ManyHeld: *mode == "rss"}
	up, err := bench.StartUpstream(upOpts)
	if err != nil {
		return err
	}
	defer up.Close()

	var ngx *servers.Nginx
	if !*noNginx || *mode == "rss" {
		ngx, err = servers.NewNginx(servers.NginxOptions{Upstream: up.Addr, Workers: *workers, CPUs: *proxyCPUs})
		if err != nil {
			return err
		}
		defer ngx.Stop()
	}
	fmt.Printf("machine: %d CPUs (%s); client pinned to %q, proxies to %q; %s\n",
		runtime.NumCPU(), cpuModel(), *clientCPUs, *proxyCPUs, runtime.Version())

	switch *mode {
	case "compare":
		mix, err := parseMix(*mixFlag)
		if err != nil {
			return err
		}
		targets := []bench.Target{{Name: "direct", URL: up.URL}}
		if ngx != nil {
			targets = append(targets, bench.Target{Name: "nginx", URL: ngx.URL + "/Microsoft-Server-ActiveSync", CPU: ngx.WorkersCPU})
		}
		if *fwdProxy {
			url, pid, stopProxy, err := startForwardProxy(up.URL, *proxyCPUs)
			if err != nil {
				return err
			}
			defer stopProxy()
			targets = append(targets, bench.Target{Name: "eas-forward", URL: url,
				CPU: func() (time.Duration, error) { return servers.ProcCPU(pid) }})
		}
		if *gw {
			g, err := startGateway(ctx, up.URL, *gwBinary, *gwDir, *proxyCPUs, *devices)
			if err != nil {
				return err
			}
			defer g.Stop()
			targets = append(targets, bench.Target{Name: "gateway", URL: g.URL, CPU: g.CPU})
			if *gwBinaryB != "" {
				gb, err := startGateway(ctx, up.URL, *gwBinaryB, "", *proxyCPUs, *devices)
				if err != nil {
					return err
				}
				defer gb.Stop()
				targets = append(targets, bench.Target{Name: "gateway-b", URL: gb.URL, CPU: gb.CPU})
			}
		}
		targets = append(targets, extra...)
		cmp, err := bench.Compare(ctx, bench.CompareOptions{
			Targets: targets,
			Rounds:  *rounds,
			Workload: bench.Workload{
				Devices:     bench.NewFleet(*devices),
				Mix:         mix,
				Concurrency: *concurrency,
				Rate:        *rate,
				Probe:       probeURL(*probeRate > 0 || *load > 0, up.URL),
				ProbeRate:   *probeRate,
				Duration:    *duration,
				MaxRequests: *maxReq,
			},
			Load:      *load,
			Calibrate: *calib,
			Progress: func(round int, t bench.Target, r *bench.Result) {
				if r.Capacity > 0 {
					calBusy, busy := "", ""
					if r.ProxyCPU > 0 {
						calBusy = fmt.Sprintf(", proxy core %.0f%%", 100*r.CapacityBusy)
						busy = fmt.Sprintf(", proxy core %.0f%% during the open loop", 100*r.ProxyBusy())
					}
					fmt.Printf("round %d %-8s capacity %8.0f req/s (closed loop, %v%s): open loop at %.0f req/s%s\n", round, t.Name,
						r.Capacity, *calib, calBusy, *load*r.Capacity, busy)
				}
				fmt.Printf("round %d %-8s %8.0f req/s  p50 %-9v p99 %-9v errors %d/%d  harness %.0f%%  steal %.1f%% %s\n", round, t.Name,
					r.Throughput(), r.Latency.Quantile(0.5).Round(time.Microsecond), r.Latency.Quantile(0.99).Round(time.Microsecond),
					r.Errors, r.Requests, 100*r.HarnessBusy(), 100*r.StealShare(), r.FirstError)
				if added, ok := r.AddedP99(); ok {
					fmt.Printf("        probe %6.0f req/s  p50 %-9v p99 %-9v errors %d/%d  added p99 (paired) %v\n", r.Probe.Throughput(),
						r.Probe.Latency.Quantile(0.5).Round(time.Microsecond), r.Probe.Latency.Quantile(0.99).Round(time.Microsecond),
						r.Probe.Errors, r.Probe.Requests, added.Round(time.Microsecond))
				}
				if *verbose {
					for c := range r.ByCmd {
						st := &r.ByCmd[c]
						if st.Count == 0 {
							continue
						}
						fmt.Printf("    %-15s n=%-7d p50 %-10v p90 %-10v p99 %-10v max %v\n", bench.Command(c), st.Count,
							st.Latency.Quantile(0.5).Round(time.Microsecond), st.Latency.Quantile(0.9).Round(time.Microsecond),
							st.Latency.Quantile(0.99).Round(time.Microsecond), st.Latency.Max().Round(time.Microsecond))
					}
				}
			},
		})
		if err != nil {
			return err
		}
		offered := fmt.Sprintf("rate %.0f/s (probe %.0f/s)", *rate, *probeRate)
		if *load > 0 {
			offered = fmt.Sprintf("load %.2f of each target's capacity (probe 1/20 of the rate), calibrated %v", *load, *calib)
		}
		fmt.Printf("\nworkload: %d devices, concurrency %d, %s, %v x %d rounds, Ping hold %v, mix %v\n\n",
			*devices, *concurrency, offered, *duration, *rounds, *pingHold, mixString(mix))
		fmt.Print(cmp.Markdown())
	case "rss":
		lv, err := parseLevels(*levels)
		if err != nil {
			return err
		}
		// nginx, on the upstream started above (Pings held 10 min, released at the end).
		points, err := bench.MeasureHeldPingRSS(ctx, bench.RSSOptions{
			Target:       ngx.URL + "/Microsoft-Server-ActiveSync",
			Devices:      bench.NewFleet(*devices),
			Levels:       lv,
			RSS:          ngx.WorkersRSS,
			UpstreamHeld: up.Held,
		})
		up.ReleasePings()
		if err != nil {
			return fmt.Errorf("%w\nnginx error.log:\n%s", err, ngx.ErrorLog(10))
		}
		printRSS(fmt.Sprintf("nginx (%d worker, summed)", *workers), points)
		ngx.Stop()
		up.Close()

		if *fwdProxy {
			up2, err := bench.StartUpstream(upOpts)
			if err != nil {
				return err
			}
			defer up2.Close()
			url, pid, stopProxy, err := startForwardProxy(up2.URL, *proxyCPUs)
			if err != nil {
				return err
			}
			defer stopProxy()
			points, err := bench.MeasureHeldPingRSS(ctx, bench.RSSOptions{
				Target:       url,
				Devices:      bench.NewFleet(*devices),
				Levels:       lv,
				RSS:          func() (int64, error) { return servers.ProcRSS(pid) },
				UpstreamHeld: up2.Held,
			})
			up2.ReleasePings()
			if err != nil {
				return err
			}
			printRSS("eas-forward (backends/eas Forward in a fasthttp server, GOMAXPROCS 1)", points)
		}
		if *gw {
			up3, err := bench.StartUpstream(upOpts)
			if err != nil {
				return err
			}
			defer up3.Close()
			// Every device is registered and its decision cached first, as in production, where a
			// device Pings after it has synced: the slope is then what holding a Ping costs, not
			// the registry's per-device state.
			g, err := startGateway(ctx, up3.URL, *gwBinary, *gwDir, *proxyCPUs, *devices)
			if err != nil {
				return err
			}
			defer g.Stop()
			points, err := bench.MeasureHeldPingRSS(ctx, bench.RSSOptions{
				Target:       g.URL,
				Devices:      bench.NewFleet(*devices),
				Levels:       lv,
				RSS:          g.RSS,
				UpstreamHeld: up3.Held,
			})
			up3.ReleasePings()
			if err != nil {
				return fmt.Errorf("%w\ngateway log:\n%s", err, g.LogTail(10))
			}
			printRSS("gateway (one process, GOMAXPROCS 1)", points)
		}
	default:
		return fmt.Errorf("unknown -mode %q", *mode)
	}
	return nil
}

// probeURL is the probe's target: the upstream, when there is a probe (-probe-rate, or -load's).
func probeURL(probe bool, upstream string) string {
	if !probe {
		return ""
	}
	return upstream
}

// pinSelf replaces this process with `taskset -c cpus <self> args...` (same PID), so every
// thread of the Go runtime shares the CPU list: sched_setaffinity from Go would pin only the
// calling thread.
func pinSelf(cpus string) error {
	if cpus == "" || os.Getenv("EASBENCH_PINNED") == cpus {
		return nil
	}
	ts, err := exec.LookPath("taskset")
	if err != nil {
		return fmt.Errorf("pinning needs taskset: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	args := append([]string{ts, "-c", cpus, exe}, os.Args[1:]...)
	// syscall.Exec does not deduplicate the environment (the first entry would win), so drop
	// an inherited EASBENCH_PINNED (a parent easbench pinned elsewhere) before setting ours.
	env := []string{"EASBENCH_PINNED=" + cpus}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EASBENCH_PINNED=") {
			env = append(env, kv)
		}
	}
	return syscall.Exec(ts, args, env)
}

func parseMix(s string) (bench.Mix, error) {
	var m bench.Mix
	if s == "" {
		return bench.DefaultMix, nil
	}
	for _, part := range strings.Split(s, ",") {
		name, v, ok := strings.Cut(part, "=")
		cmd, known := bench.ParseCommand(strings.TrimSpace(name))
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if !ok || !known || err != nil || n < 0 {
			return m, fmt.Errorf("bad -mix entry %q", part)
		}
		m[cmd] = n
	}
	return m, nil
}

func mixString(m bench.Mix) string {
	var parts []string
	for c, w := range m {
		if w > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", bench.Command(c), w))
		}
	}
	return strings.Join(parts, ",")
}

func parseLevels(s string) ([]int, error) {
	var out []int
	prev := 0
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= prev {
			return nil, fmt.Errorf("bad -levels %q: want ascending positive counts", s)
		}
		out = append(out, n)
		prev = n
	}
	return out, nil
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func printRSS(name string, points []bench.RSSPoint) {
	fmt.Printf("\n%s RSS with held Pings:\n\n| held Pings | RSS |\n|---:|---:|\n", name)
	for _, p := range points {
		fmt.Printf("| %d | %.1f MiB |\n", p.Held, float64(p.RSS)/(1<<20))
	}
	fmt.Printf("\nslope: %.0f bytes per held Ping\n", bench.Slope(points))
}
