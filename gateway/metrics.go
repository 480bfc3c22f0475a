package gateway

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/easgate/easgate/decision"
)

// metrics are the gateway's Prometheus series. Label sets are resolved once and cached, so the
// request path does a map read, not a label hash and allocation, per observation.
type metrics struct {
	reg *prometheus.Registry

	requests  *prometheus.CounterVec   // command, code
	decisions *prometheus.CounterVec   // action, reason
	upstream  *prometheus.HistogramVec // class
	heldPings prometheus.GaugeFunc
	authFail  *prometheus.CounterVec // reason

	reqCache labelCache[reqKey, prometheus.Counter]
	decCache labelCache[decKey, prometheus.Counter]
	upCache  labelCache[string, prometheus.Observer]
}

// observeUpstream records one upstream round trip of class (normal, send, ping, imap).
func (m *metrics) observeUpstream(class string, seconds float64) {
	m.upCache.get(class, func() prometheus.Observer { return m.upstream.WithLabelValues(class) }).Observe(seconds)
}

// labelCache resolves a label set to its series once; later observations are a map read
// under a read lock. It holds at most 4096 label sets (commands × codes, actions × reasons
// including rule IDs, upstream classes: bounded by the configuration), beyond which it stops
// caching.
type labelCache[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]V
}

func (c *labelCache[K, V]) get(k K, resolve func() V) V {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return v
	}
	v = resolve()
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[K]V)
	}
	if len(c.m) < 4096 {
		c.m[k] = v
	}
	c.mu.Unlock()
	return v
}

type decKey struct {
	action decision.Action
	reason decision.Reason
}

type reqKey struct {
	cmd  string
	code int
}

func newMetrics(heldPings func() float64) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "easgate_requests_total",
			Help: "Client requests by EAS command and HTTP status code.",
		}, []string{"command", "code"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "easgate_decisions_total",
			Help: "Device decisions by action and stable reason code.",
		}, []string{"action", "reason"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "easgate_upstream_seconds",
			Help:    "Upstream round trip by class (normal, send, ping); pings include the hold.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800},
		}, []string{"class"}),
		heldPings: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "easgate_held_pings",
			Help: "Ping long polls held open now.",
		}, heldPings),
		authFail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "easgate_auth_failures_total",
			Help: "Refused requests by authentication failure reason.",
		}, []string{"reason"}),
	}
	m.reg.MustRegister(m.requests, m.decisions, m.upstream, m.heldPings, m.authFail,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// decision counts one decision by action and reason.
func (m *metrics) decision(a decision.Action, r decision.Reason) {
	m.decCache.get(decKey{a, r}, func() prometheus.Counter {
		return m.decisions.WithLabelValues(a.String(), string(r))
	}).Inc()
}

// request counts one answered request.
func (m *metrics) request(cmd string, code int) {
	m.reqCache.get(reqKey{cmd, code}, func() prometheus.Counter {
		return m.requests.WithLabelValues(cmd, strconv.Itoa(code))
	}).Inc()
}
