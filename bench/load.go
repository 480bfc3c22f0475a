package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/easgate/easgate/backends/eas/rawio"
	"github.com/easgate/easgate/bench/servers"
)

// Mix weighs the commands of a workload. A zero Mix means DefaultMix.
type Mix [numCommands]int

// DefaultMix is a phone fleet's steady state: mostly Sync, Pings that come back after the
// upstream's hold, some FolderSync, a little mail sending and attachment fetching.
var DefaultMix = Mix{CmdSync: 60, CmdPing: 15, CmdFolderSync: 15, CmdSendMail: 5, CmdItemOperations: 5}

// Workload is one load run against one target.
type Workload struct {
	// Target is the EAS endpoint URL, e.g. http://127.0.0.1:8080/Microsoft-Server-ActiveSync.
	// Only loopback targets are accepted.
	Target  string
	Devices []Device // default NewFleet(100)
	Mix     Mix
	// Concurrency is the number of workers, each with its own connection. In a closed loop
	// each sends its next request when the previous one is answered; in an open loop (Rate)
	// they take the scheduled requests in turn. Default 32 (closed) or 128 (open).
	Concurrency int
	// Rate switches to an open loop: requests are due at this many per second whatever the
	// target does, and latency is measured from the moment each was due, so a target that
	// falls behind is charged for the queue it causes (no coordinated omission). As in wrk2,
	// the connections are a fixed set: a lagging target makes requests wait for a connection,
	// never opens new ones (real devices do not multiply when a server is slow).
	Rate float64
	// MaxInFlight bounds an open loop's requests that are due but wait for a free connection;
	// a request that would exceed it is counted as Dropped. Default 4096.
	MaxInFlight int
	// Duration and MaxRequests bound the run; the first reached ends it. Duration default
	// 5 s; MaxRequests 0 means no count bound.
	Duration    time.Duration
	MaxRequests int64
	// Heartbeat is the HeartbeatInterval (seconds) in Ping bodies; default 480.
	Heartbeat int
	// Timeout bounds each request; default 30 s.
	Timeout time.Duration
	// Probe, in an open loop, is a second URL (the upstream behind Target) that receives a
	// lighter stream of the same requests at ProbeRate a second, released by the same
	// scheduler onto connections of its own (ProbeConcurrency, default 16). Both streams are
	// measured in the same moments, so the harness's own queueing and the machine's stalls
	// reach them alike: Result.AddedP99 of one run is what Target adds, without the variance
	// between runs that separates a target's rounds from the baseline's. Loopback only.
	Probe            string
	ProbeRate        float64
	ProbeConcurrency int
}

// CommandStats are the results of one command.
type CommandStats struct {
	Count, Errors int64
	Bytes         int64 // response body bytes
	Latency       Histogram
}

// Result is the outcome of one Run.
type Result struct {
	Target   string
	Elapsed  time.Duration
	Requests int64 // completed, with or without error
	Errors   int64
	Dropped  int64 // open loop only
	ByCmd    [numCommands]CommandStats
	Latency  Histogram
	// FirstError is the first error seen, for diagnosis.
	FirstError string
	// ProxyCPU is the CPU time the target's proxy used during the run (set by Compare when
	// the Target has a CPU reader).
	ProxyCPU time.Duration
	// HarnessCPU is the CPU time of this process during the run: the load generator and,
	// when it runs here, the simulated upstream. Over Elapsed it tells whether the harness
	// itself was near its core's limit, where its own queueing would enter every latency.
	HarnessCPU time.Duration
	// Steal is the time the hypervisor took from this machine's CPUs during the run
	// (servers.Steal; zero on bare metal).
	Steal time.Duration
	// Probe is the outcome of the probe stream (Workload.Probe); nil without one.
	Probe *Result
	// Capacity is the target's closed-loop throughput measured just before this run
	// (CompareOptions.Load), CapacityBusy the proxy's core share while it was measured
	// (with a CPU reader); zero otherwise.
	Capacity, CapacityBusy float64
}

// ProxyBusy is ProxyCPU as a share of the run's wall time (1 = one core's worth).
func (r *Result) ProxyBusy() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.ProxyCPU) / float64(r.Elapsed)
}

// AddedP99 is the run's paired added latency: Latency's p99 less the probe stream's p99,
// both measured during this run; false without a probe or when either recorded nothing.
func (r *Result) AddedP99() (time.Duration, bool) {
	if r.Probe == nil || r.Latency.Count() == 0 || r.Probe.Latency.Count() == 0 {
		return 0, false
	}
	return r.Latency.Quantile(0.99) - r.Probe.Latency.Quantile(0.99), true
}

// StealShare is Steal as a share of the run's wall time (1 = one core's worth).
func (r *Result) StealShare() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Steal) / float64(r.Elapsed)
}

// HarnessBusy is HarnessCPU as a share of the run's wall time (1 = one core's worth).
func (r *Result) HarnessBusy() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.HarnessCPU) / float64(r.Elapsed)
}

// Throughput is completed requests per second.
func (r *Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests-r.Errors) / r.Elapsed.Seconds()
}

func (w *Workload) defaults() error {
	if len(w.Devices) == 0 {
		w.Devices = NewFleet(100)
	}
	if w.Mix == (Mix{}) {
		w.Mix = DefaultMix
	}
	for _, v := range w.Mix {
		if v < 0 {
			return errors.New("bench: negative weight in Mix")
		}
	}
	if w.Concurrency <= 0 {
		w.Concurrency = 32
		if w.Rate > 0 {
			w.Concurrency = 128
		}
	}
	if w.MaxInFlight <= 0 {
		w.MaxInFlight = 4096
	}
	if w.Duration <= 0 {
		w.Duration = 5 * time.Second
	}
	if w.Heartbeat <= 0 {
		w.Heartbeat = 480
	}
	if w.Timeout <= 0 {
		w.Timeout = 30 * time.Second
	}
	if w.Probe != "" {
		if w.Rate <= 0 || w.ProbeRate <= 0 {
			return errors.New("bench: a Probe needs an open loop (Rate) and a ProbeRate")
		}
		if w.ProbeConcurrency <= 0 {
			w.ProbeConcurrency = 16
		}
	}
	return nil
}

// schedule spreads the mix's commands evenly over a cycle (a deterministic interleaving, so
// every target sees the same sequence).
func (m Mix) schedule() []Command {
	total := 0
	for _, v := range m {
		total += v
	}
	seq := make([]Command, 0, total)
	acc := make([]float64, numCommands)
	for len(seq) < total {
		best, bestV := Command(0), -1.0
		for c := Command(0); c < numCommands; c++ {
			acc[c] += float64(m[c])
			if acc[c] > bestV {
				best, bestV = c, acc[c]
			}
		}
		acc[best] -= float64(total)
		seq = append(seq, best)
	}
	return seq
}

// worker state: its own histograms, merged at the end.
type loadWorker struct {
	res  Result
	req  fasthttp.Request
	resp fasthttp.Response
}

type loadRun struct {
	w     *Workload
	hc    *fasthttp.HostClient
	path  string
	sched []Command
	ping  []byte
	next  atomic.Int64
	errMu sync.Mutex
	first string
}

// Run drives w.Target with the workload and returns its measurements. It stops at
// w.Duration, w.MaxRequests or ctx's end, whichever comes first.
func Run(ctx context.Context, w Workload) (*Result, error) {
	if err := w.defaults(); err != nil {
		return nil, err
	}
	lr, err := newLoadRun(&w)
	if err != nil {
		return nil, err
	}
	defer lr.hc.CloseIdleConnections()
	runs := []*loadRun{lr}
	if w.Probe != "" {
		pw := w
		pw.Target, pw.Rate, pw.Concurrency, pw.MaxRequests = w.Probe, w.ProbeRate, w.ProbeConcurrency, 0
		probe, err := newLoadRun(&pw)
		if err != nil {
			return nil, err
		}
		defer probe.hc.CloseIdleConnections()
		runs = append(runs, probe)
	}
	start, cpu0, steal0 := time.Now(), selfCPU(), servers.Steal()
	var workers [][]*loadWorker
	if w.Rate > 0 {
		workers = openLoop(ctx, runs, w.Duration)
	} else {
		cctx, cancel := context.WithTimeout(ctx, w.Duration)
		workers = [][]*loadWorker{lr.closedLoop(cctx)}
		cancel()
	}
	elapsed := time.Since(start)
	res := lr.collect(workers[0], elapsed)
	res.HarnessCPU, res.Steal = selfCPU()-cpu0, servers.Steal()-steal0
	if len(runs) > 1 {
		res.Probe = runs[1].collect(workers[1], elapsed)
	}
	return res, nil
}

// newLoadRun prepares the requests of w (defaults applied) and a client for w.Target.
func newLoadRun(w *Workload) (*loadRun, error) {
	u, err := checkLoopback(w.Target)
	if err != nil {
		return nil, err
	}
	lr := &loadRun{
		w: w,
		hc: &fasthttp.HostClient{
			Addr:                     u.Host,
			MaxConns:                 w.Concurrency + 16,
			MaxIdleConnDuration:      time.Minute,
			ReadTimeout:              w.Timeout,
			WriteTimeout:             w.Timeout,
			MaxResponseBodySize:      64 << 20,
			ReadBufferSize:           16 << 10,
			NoDefaultUserAgentHeader: true,
			Dial:                     dialRaw,
		},
		path:  u.Path,
		sched: w.Mix.schedule(),
		ping:  PingRequest(w.Heartbeat),
	}
	if len(lr.sched) == 0 {
		return nil, errors.New("bench: empty mix")
	}
	return lr, nil
}

// collect merges the workers' results into one.
func (lr *loadRun) collect(workers []*loadWorker, elapsed time.Duration) *Result {
	res := &Result{Target: lr.w.Target, Elapsed: elapsed}
	for _, lw := range workers {
		r := &lw.res
		res.Requests += r.Requests
		res.Errors += r.Errors
		res.Dropped += r.Dropped
		res.Latency.Merge(&r.Latency)
		for c := range r.ByCmd {
			res.ByCmd[c].Count += r.ByCmd[c].Count
			res.ByCmd[c].Errors += r.ByCmd[c].Errors
			res.ByCmd[c].Bytes += r.ByCmd[c].Bytes
			res.ByCmd[c].Latency.Merge(&r.ByCmd[c].Latency)
		}
	}
	lr.errMu.Lock()
	res.FirstError = lr.first
	lr.errMu.Unlock()
	return res
}

// selfCPU is this process's CPU time so far, user and system, from getrusage: the kernel
// accounts it to the nanosecond, where /proc's clock ticks (10 ms) would round a short run's
// share to nothing. Zero if the call fails.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// dialRaw connects like fasthttp's default dialer (loopback: no name to resolve) and wraps
// the connection in rawio, as the simulated upstream's are: the generator's system calls then
// skip the runtime's bookkeeping, which on the shared core wakes the monitor thread after
// every idle moment.
func dialRaw(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, err
	}
	return rawio.Wrap(c), nil
}

// claim reserves the next request number, or false when MaxRequests is reached.
func (lr *loadRun) claim() (int64, bool) {
	i := lr.next.Add(1) - 1
	if lr.w.MaxRequests > 0 && i >= lr.w.MaxRequests {
		return 0, false
	}
	return i, true
}

func (lr *loadRun) closedLoop(ctx context.Context) []*loadWorker {
	workers, wait := startWorkers(lr.w.Concurrency, func(lw *loadWorker) {
		for ctx.Err() == nil {
			n, ok := lr.claim()
			if !ok {
				return
			}
			lr.do(lw, n, time.Now())
		}
	})
	wait()
	return workers
}

// startWorkers runs body in n goroutines, each with a result of its own; wait waits for all.
func startWorkers(n int, body func(lw *loadWorker)) (workers []*loadWorker, wait func()) {
	workers = make([]*loadWorker, n)
	var wg sync.WaitGroup
	for i := range workers {
		lw := &loadWorker{}
		workers[i] = lw
		wg.Add(1)
		go func() {
			defer wg.Done()
			body(lw)
		}()
	}
	return workers, wg.Wait
}

// openLoop releases each run's requests on its schedule start + k/Rate to its Concurrency
// workers, and returns each run's workers. A pacer wakes the scheduler once per (shortest)
// request interval, but at most every openLoopTick, and each wake releases every request due
// by then, stamped with its own due time: the load is exact, a request leaves at most one tick
// late, and above 1/openLoopTick requests a second the scheduler costs the shared core 10,000
// wake-ups a second instead of one per request. The pacer must keep that promise on an idle
// core too (see newPacer): requests that leave in bursts queue in the target, and the slower a
// target is per request, the longer its queue, so bursts would inflate a proxy's added latency
// beyond what an even load gives it. The first run's MaxRequests ends the schedule.
func openLoop(ctx context.Context, runs []*loadRun, d time.Duration) [][]*loadWorker {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	streams := make([]*openStream, len(runs))
	period := time.Duration(math.MaxInt64)
	for i, lr := range runs {
		streams[i] = lr.startStream(ctx)
		period = min(period, streams[i].interval)
	}
	p := newPacer(ctx, max(period, openLoopTick))
	// The window opens once the workers and the pacer are ready: on a starved machine their
	// start-up took a third of a 600 ms run, which a timeout set earlier took off the schedule.
	start := time.Now()
	end := start.Add(d)
	defer time.AfterFunc(d, cancel).Stop()
schedule:
	for {
		now := time.Now()
		for _, s := range streams {
			if !s.release(start, now) {
				break schedule
			}
		}
		if !p.wait() {
			break
		}
	}
	// What fell due before the end but was not released (a pacer that did not get the CPU
	// near the end) is released now, so that it counts as dropped, not as never offered.
	if now := time.Now(); now.Before(end) {
		end = now // ended early: cancelled, or MaxRequests reached
	}
	for _, s := range streams {
		if !s.release(start, end) {
			break
		}
	}
	p.stop()
	out := make([][]*loadWorker, len(streams))
	for i, s := range streams {
		out[i] = s.finish()
	}
	return out
}

// openStream is one run's share of an open loop: its schedule and its queue of due requests.
type openStream struct {
	lr       *loadRun
	interval time.Duration
	queue    chan openJob
	k        int64 // the next request of the schedule
	dropped  int64 // due, but MaxInFlight were already waiting
	workers  []*loadWorker
	wait     func()
}

type openJob struct {
	n        int64
	intended time.Time
}

func (lr *loadRun) startStream(ctx context.Context) *openStream {
	s := &openStream{lr: lr, interval: time.Duration(float64(time.Second) / lr.w.Rate), queue: make(chan openJob, lr.w.MaxInFlight)}
	s.workers, s.wait = startWorkers(lr.w.Concurrency, func(lw *loadWorker) {
		for j := range s.queue {
			if ctx.Err() != nil {
				lw.res.Dropped++ // due, never sent: the run ended first
				continue
			}
			lr.do(lw, j.n, j.intended)
		}
	})
	return s
}

// release queues every request of the schedule due by now; false when MaxRequests is reached.
func (s *openStream) release(start, now time.Time) bool {
	for {
		due := start.Add(time.Duration(s.k) * s.interval)
		if due.After(now) {
			return true
		}
		n, ok := s.lr.claim()
		if !ok {
			return false
		}
		s.k++
		select {
		case s.queue <- openJob{n: n, intended: due}:
		default:
			s.dropped++
		}
	}
}

// finish closes the queue, waits for the workers and returns them.
func (s *openStream) finish() []*loadWorker {
	close(s.queue)
	s.wait()
	s.workers[0].res.Dropped += s.dropped
	return s.workers
}

// openLoopTick is the open loop scheduler's shortest period.
const openLoopTick = 100 * time.Microsecond

// do sends request number n and records it against intended.
func (lr *loadRun) do(lw *loadWorker, n int64, intended time.Time) {
	cmd, lat, size, err := lr.send(&lw.req, &lw.resp, n, intended)
	lr.record(&lw.res, cmd, lat, size, err)
}

// send sends request number n: the n-th command of the mix's schedule from the n-th device.
func (lr *loadRun) send(req *fasthttp.Request, resp *fasthttp.Response, n int64, intended time.Time) (Command, time.Duration, int, error) {
	w := lr.w
	cmd := lr.sched[n%int64(len(lr.sched))]
	dev := &w.Devices[n%int64(len(w.Devices))]
	req.Reset()
	resp.Reset()
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(lr.path + "?" + dev.Query(cmd))
	req.Header.SetHost(lr.hc.Addr)
	req.Header.Set(fasthttp.HeaderAuthorization, dev.Authorization())
	req.Header.Set(fasthttp.HeaderUserAgent, dev.UserAgent)
	req.Header.Set("MS-ASProtocolVersion", "14.1")
	if !dev.Base64 && dev.PolicyKey != 0 {
		req.Header.Set("X-MS-PolicyKey", fmt.Sprint(dev.PolicyKey))
	}
	if cmd == CmdSendMail {
		req.Header.SetContentType("message/rfc822")
	} else {
		req.Header.SetContentTypeBytes(wbxmlType)
	}
	switch cmd {
	case CmdSync:
		req.SetBodyRaw(SyncRequest)
	case CmdFolderSync:
		req.SetBodyRaw(FolderSyncRequest)
	case CmdPing:
		req.SetBodyRaw(lr.ping)
	case CmdSendMail:
		req.SetBodyRaw(SendMailRequest)
	case CmdItemOperations:
		req.SetBodyRaw(ItemOperationsRequest)
	}
	err := lr.hc.DoTimeout(req, resp, w.Timeout)
	lat := time.Since(intended)
	if err == nil && resp.StatusCode() != fasthttp.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode())
	}
	return cmd, lat, len(resp.Body()), err
}

// record adds one request's outcome to res.
func (lr *loadRun) record(res *Result, cmd Command, lat time.Duration, size int, err error) {
	st := &res.ByCmd[cmd]
	res.Requests++
	st.Count++
	if err != nil {
		res.Errors++
		st.Errors++
		lr.errMu.Lock()
		if lr.first == "" {
			lr.first = fmt.Sprintf("%s: %v", cmd, err)
		}
		lr.errMu.Unlock()
		return
	}
	st.Bytes += int64(size)
	st.Latency.Record(lat)
	res.Latency.Record(lat)
}
