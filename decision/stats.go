package decision

import "sync/atomic"

// Stats are cumulative counters since New, for metrics. Reading them does not block deciding.
type Stats struct {
	// Decisions counts decisions by Action (index with the Action value).
	Decisions [numActions]uint64
	// CacheHits are decisions answered from memory; CacheMisses needed the registry.
	CacheHits, CacheMisses uint64
	// StoreErrors counts registry failures while deciding; StaleDecisions counts decisions
	// repeated from memory because of them.
	StoreErrors, StaleDecisions uint64
	// DroppedSightings counts observations not queued because MaxPending was reached.
	DroppedSightings uint64
	// BackgroundErrors counts failed flushes, audit writes, pruning and policy refreshes.
	BackgroundErrors uint64
	// Signals counts spoofing/churn signals raised (audited or quarantined).
	Signals uint64
	// RefreshedAhead counts records re-read in the background shortly before they expired.
	RefreshedAhead uint64
}

// NumActions is the number of Action values, for sizing per-action metric arrays.
const NumActions = int(numActions)

// counterStripes spreads the per-action counters over cache lines so concurrent hits on
// different devices do not contend on one line.
const counterStripes = 16

type counterStripe struct {
	n [numActions]atomic.Uint64
	_ [64 - (int(numActions)*8)%64]byte
}

type counters struct {
	decisions                 [counterStripes]counterStripe
	misses, other             atomic.Uint64 // hits = decisions - misses - other
	storeErrors, stale        atomic.Uint64
	droppedSightings          atomic.Uint64
	backgroundErrors, signals atomic.Uint64
	refreshedAhead            atomic.Uint64
}

func (e *Engine) count(d Decision) Decision {
	e.countAction(d.Action)
	return d
}

func (e *Engine) countAction(a Action) { e.countHit(a, 0) }

// countHit counts a decision in the stripe chosen by the device's cache key.
func (e *Engine) countHit(a Action, key uint64) {
	if a < numActions {
		e.stats.decisions[key%counterStripes].n[a].Add(1)
	}
}

// Stats returns a snapshot of the counters.
func (e *Engine) Stats() Stats {
	var s Stats
	for i := range e.stats.decisions {
		for a := range s.Decisions {
			s.Decisions[a] += e.stats.decisions[i].n[a].Load()
		}
	}
	s.CacheMisses = e.stats.misses.Load()
	var total uint64
	for _, n := range s.Decisions {
		total += n
	}
	// Hits are derived so the hot path pays for one counter, not two; the counters are read
	// one by one, so clamp the transient skew.
	if hitsPlus := total - e.stats.other.Load(); hitsPlus > s.CacheMisses {
		s.CacheHits = hitsPlus - s.CacheMisses
	}
	s.StoreErrors = e.stats.storeErrors.Load()
	s.StaleDecisions = e.stats.stale.Load()
	s.DroppedSightings = e.stats.droppedSightings.Load()
	s.BackgroundErrors = e.stats.backgroundErrors.Load()
	s.Signals = e.stats.signals.Load()
	s.RefreshedAhead = e.stats.refreshedAhead.Load()
	return s
}
