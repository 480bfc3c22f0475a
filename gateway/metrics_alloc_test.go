package gateway

import (
	"testing"

	"github.com/easgate/easgate/decision"
)

// TestMetricsHotPathDoesNotAllocate: counting a request and a decision whose labels were seen
// before is a map read, not a label hash and allocation.
func TestMetricsHotPathDoesNotAllocate(t *testing.T) {
	m := newMetrics(func() float64 { return 0 })
	m.request("Sync", 200)
	m.decision(decision.Allow, decision.ReasonAllowed)
	if n := testing.AllocsPerRun(200, func() {
		m.request("Sync", 200)
		m.decision(decision.Allow, decision.ReasonAllowed)
	}); n != 0 {
		t.Fatalf("%v allocations per request", n)
	}
}
