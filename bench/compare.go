package bench

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Target is one endpoint of a comparison: the upstream directly, nginx in front of it, the
// gateway in front of it, ...
type Target struct {
	Name string
	URL  string // loopback EAS endpoint URL
	// CPU, if set, reads the CPU time the proxy behind URL has used so far (e.g.
	// Nginx.WorkersCPU, or servers.ProcCPU of the gateway's PID); Compare then reports proxy
	// CPU per request, which a shared machine distorts less than throughput.
	CPU func() (time.Duration, error)
}

// CompareOptions configure Compare.
type CompareOptions struct {
	// Targets to compare; the first is the baseline of every ratio.
	Targets []Target
	// Rounds of the whole set; targets run one after another within a round, in forward
	// order on even rounds and reverse order on odd ones, so drift (thermal, other tenants)
	// hits every target alike. Default 3.
	Rounds int
	// Workload is run against each target; its Target field is overwritten.
	Workload Workload
	// Pause between runs, letting connections drain; default 200 ms.
	Pause time.Duration
	// Progress, if set, is called after every run.
	Progress func(round int, t Target, r *Result)
	// Load, when above zero, makes every run an open loop at this share of the target's
	// capacity measured just before it: a closed-loop run of Calibrate (default 3 s) against
	// the same target, whose throughput is the capacity; Workload.Rate is then replaced by
	// Load × capacity, and the probe stream, if any, by ProbeShare × that rate (default 1/20).
	// On a machine whose speed drifts by minutes, a fixed Rate is half of one minute's
	// capacity and nine tenths of the next one's; this keeps "50 % load" what it says.
	Load       float64
	Calibrate  time.Duration
	ProbeShare float64
}

// Comparison holds every run of Compare.
type Comparison struct {
	Targets []Target
	Runs    [][]*Result // [target][round]
}

// Compare runs the workload against every target in alternating rounds.
func Compare(ctx context.Context, opts CompareOptions) (*Comparison, error) {
	if len(opts.Targets) == 0 {
		return nil, fmt.Errorf("bench: no targets")
	}
	for _, t := range opts.Targets {
		if _, err := checkLoopback(t.URL); err != nil {
			return nil, err
		}
	}
	if opts.Rounds <= 0 {
		opts.Rounds = 3
	}
	if opts.Pause <= 0 {
		opts.Pause = 200 * time.Millisecond
	}
	if opts.Load < 0 || opts.Load > 1 {
		return nil, fmt.Errorf("bench: load %v is not a share of capacity in (0, 1]", opts.Load)
	}
	if opts.Calibrate <= 0 {
		opts.Calibrate = 3 * time.Second
	}
	if opts.ProbeShare <= 0 {
		opts.ProbeShare = 0.05
	}
	c := &Comparison{Targets: opts.Targets, Runs: make([][]*Result, len(opts.Targets))}
	var err error
	for round := 0; round < opts.Rounds; round++ {
		for k := range opts.Targets {
			i := k
			if round%2 == 1 {
				i = len(opts.Targets) - 1 - k
			}
			w := opts.Workload
			w.Target = opts.Targets[i].URL
			var capacity, capacityBusy float64
			if opts.Load > 0 {
				if capacity, capacityBusy, err = calibrate(ctx, w, opts.Calibrate, opts.Targets[i].CPU); err != nil {
					return c, fmt.Errorf("bench: calibrating %s: %w", opts.Targets[i].Name, err)
				}
				w.Rate = opts.Load * capacity
				if w.Probe != "" {
					w.ProbeRate = opts.ProbeShare * w.Rate
				}
				time.Sleep(opts.Pause)
			}
			r, err := runWithCPU(ctx, w, opts.Targets[i].CPU)
			if err != nil {
				return c, err
			}
			r.Capacity, r.CapacityBusy = capacity, capacityBusy
			c.Runs[i] = append(c.Runs[i], r)
			if opts.Progress != nil {
				opts.Progress(round, opts.Targets[i], r)
			}
			if err := ctx.Err(); err != nil {
				return c, err
			}
			time.Sleep(opts.Pause)
		}
	}
	return c, nil
}

// runWithCPU runs w and, with a CPU reader, sets the result's ProxyCPU to what the proxy
// used meanwhile.
func runWithCPU(ctx context.Context, w Workload, cpu func() (time.Duration, error)) (*Result, error) {
	var cpu0 time.Duration
	if cpu != nil {
		var err error
		if cpu0, err = cpu(); err != nil {
			return nil, err
		}
	}
	r, err := Run(ctx, w)
	if err != nil {
		return nil, err
	}
	if cpu != nil {
		cpu1, err := cpu()
		if err != nil {
			return nil, err
		}
		r.ProxyCPU = cpu1 - cpu0
	}
	return r, nil
}

// calibrate measures the target's capacity: the throughput of a closed-loop run of w lasting
// d, without its probe; and, with a CPU reader, the proxy's core share during it (well below 1
// says the harness, not the proxy, set that capacity).
func calibrate(ctx context.Context, w Workload, d time.Duration, cpu func() (time.Duration, error)) (capacity, busy float64, err error) {
	w.Rate, w.Probe, w.ProbeRate, w.Duration, w.MaxRequests = 0, "", 0, d, 0
	r, err := runWithCPU(ctx, w, cpu)
	if err != nil {
		return 0, 0, err
	}
	if r.Errors > 0 {
		return 0, 0, fmt.Errorf("%d of %d requests failed (%s)", r.Errors, r.Requests, r.FirstError)
	}
	if capacity = r.Throughput(); capacity <= 0 {
		return 0, 0, errors.New("no request completed")
	}
	return capacity, r.ProxyBusy(), nil
}

// Summary is one target's aggregate over its rounds.
type Summary struct {
	Target              Target
	Throughput          float64 // median over rounds, requests/s
	P50, P90, P99, P999 time.Duration
	Requests, Errors    int64
	ThroughputRatio     float64 // Throughput / baseline Throughput
	P99Ratio            float64 // P99 / baseline P99
	FirstError          string
	// CPUPerRequest is the proxy's CPU time per completed request over all rounds; zero
	// when the target has no CPU reader.
	CPUPerRequest time.Duration
	// HarnessBusy is the mean over rounds of Result.HarnessBusy.
	HarnessBusy float64
	// Steal is the mean over rounds of Result.StealShare.
	Steal                  float64
	SyncP50, SyncP99       time.Duration
	ItemOpsP50, ItemOpsP99 time.Duration
	// AddedP99 is the median over rounds of Result.AddedP99, the p99 the target added to a
	// probe stream measured in the same rounds; Paired says the rounds had a probe.
	AddedP99 time.Duration
	Paired   bool
	// Capacity is the median over rounds of Result.Capacity (zero without Load), and
	// ProxyBusy the mean of Result.ProxyBusy (zero without a CPU reader): with Load, the
	// proxy's core share at the load asked for.
	Capacity  float64
	ProxyBusy float64
}

// Summaries aggregates each target's rounds: the median throughput, and latency quantiles of
// all rounds' samples merged.
func (c *Comparison) Summaries() []Summary {
	out := make([]Summary, len(c.Targets))
	for i, t := range c.Targets {
		s := Summary{Target: t}
		var tps []float64
		var all, sync, item Histogram
		var cpu time.Duration
		var ok int64
		var added, capacity []float64
		for _, r := range c.Runs[i] {
			capacity = append(capacity, r.Capacity)
			s.ProxyBusy += r.ProxyBusy() / float64(len(c.Runs[i]))
			if a, paired := r.AddedP99(); paired {
				added = append(added, float64(a))
			}
			tps = append(tps, r.Throughput())
			all.Merge(&r.Latency)
			sync.Merge(&r.ByCmd[CmdSync].Latency)
			item.Merge(&r.ByCmd[CmdItemOperations].Latency)
			s.Requests += r.Requests
			s.Errors += r.Errors
			cpu += r.ProxyCPU
			s.HarnessBusy += r.HarnessBusy() / float64(len(c.Runs[i]))
			s.Steal += r.StealShare() / float64(len(c.Runs[i]))
			ok += r.Requests - r.Errors
			if s.FirstError == "" {
				s.FirstError = r.FirstError
			}
		}
		s.Throughput, s.Capacity = median(tps), median(capacity)
		if len(added) > 0 {
			s.AddedP99, s.Paired = time.Duration(median(added)), true
		}
		if cpu > 0 && ok > 0 {
			s.CPUPerRequest = cpu / time.Duration(ok)
		}
		s.P50, s.P90, s.P99, s.P999 = all.Quantile(0.5), all.Quantile(0.9), all.Quantile(0.99), all.Quantile(0.999)
		s.SyncP50, s.SyncP99 = sync.Quantile(0.5), sync.Quantile(0.99)
		s.ItemOpsP50, s.ItemOpsP99 = item.Quantile(0.5), item.Quantile(0.99)
		out[i] = s
	}
	for i := range out {
		if out[0].Throughput > 0 {
			out[i].ThroughputRatio = out[i].Throughput / out[0].Throughput
		}
		if out[0].P99 > 0 {
			out[i].P99Ratio = float64(out[i].P99) / float64(out[0].P99)
		}
	}
	return out
}

// Markdown renders the summaries as a table.
func (c *Comparison) Markdown() string {
	var b strings.Builder
	b.WriteString("| target | req/s (median) | × baseline | capacity | p50 | p90 | p99 | p99.9 | p99 × baseline | added p99 (paired) | Sync p50 / p99 | ItemOps 1 MB p50 / p99 | proxy CPU/req | proxy core | harness core | steal | errors |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range c.Summaries() {
		cpu, busy, capacity := "–", "–", "–"
		if s.CPUPerRequest > 0 {
			cpu = fmt.Sprintf("%.1f µs", float64(s.CPUPerRequest)/float64(time.Microsecond))
			busy = fmt.Sprintf("%.0f %%", 100*s.ProxyBusy)
		}
		if s.Capacity > 0 {
			capacity = fmt.Sprintf("%.0f", s.Capacity)
		}
		added := "–"
		if s.Paired {
			added = ms(s.AddedP99)
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.2f | %s | %s | %s | %s | %s | %.2f | %s | %s / %s | %s / %s | %s | %s | %.0f %% | %.1f %% | %d/%d |\n",
			s.Target.Name, s.Throughput, s.ThroughputRatio, capacity, ms(s.P50), ms(s.P90), ms(s.P99), ms(s.P999), s.P99Ratio, added,
			ms(s.SyncP50), ms(s.SyncP99), ms(s.ItemOpsP50), ms(s.ItemOpsP99), cpu, busy, 100*s.HarnessBusy, 100*s.Steal, s.Errors, s.Requests)
	}
	return b.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
