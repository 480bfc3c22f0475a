package decision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// Options configures an Engine. Zero values take the documented defaults.
type Options struct {
	// Store is the registry (required). The engine does not close it.
	Store Store
	// Policy is used when the store holds no persisted policy yet (it is then persisted).
	// Nil: DefaultPolicy().
	Policy *Policy
	// CacheSize is the maximum number of devices cached in memory. Default 100000.
	CacheSize int64
	// CacheTTL is how long a cached device record is trusted before it is read again. Writes
	// through this Engine invalidate at once; writes by another node sharing a PostgreSQL store
	// become visible within CacheTTL. Each entry's lifetime is CacheTTL ± 20 % (jitter, so a
	// fleet loaded together does not expire together). Default 30s.
	CacheTTL time.Duration
	// StaleMaxAge: when the store is unreachable, a device whose record was last read within
	// StaleMaxAge keeps its last decision (Decision.Stale); older, and devices not in memory,
	// are blocked with ReasonStoreUnavailable. Default 15m; negative: never keep.
	StaleMaxAge time.Duration
	// StoreTimeout bounds each registry call made while deciding. Default 2s.
	StoreTimeout time.Duration
	// FlushInterval is how often observed activity (last seen, command, address, decision
	// changes) is written in a batch. Default 5s.
	FlushInterval time.Duration
	// FlushBatch is the largest batch written at once. Default 512.
	FlushBatch int
	// MaxPending bounds the devices waiting for a flush; beyond it observations are dropped (and
	// counted in Stats.DroppedSightings) until the flusher catches up. Default 65536.
	MaxPending int
	// TouchInterval: how often an unchanged device's LastSeen is written — after 0.8 to 1 times
	// it, at random per write, so that devices loaded together are not all written at once.
	// Default 1m.
	TouchInterval time.Duration
	// AuditRetention: audit entries older than this are deleted hourly. Default 90 days;
	// negative: keep forever.
	AuditRetention time.Duration
	// PolicyRefresh is how often the persisted policy is re-read to pick up changes made by
	// other nodes. Default 30s; negative: never.
	PolicyRefresh time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// OnError receives errors of background work (flushes, pruning, policy refresh). It must
	// not block. Nil: errors are only counted in Stats.
	OnError func(op string, err error)
}

func (o *Options) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 100000
	}
	def(&o.CacheTTL, 30*time.Second)
	def(&o.StaleMaxAge, 15*time.Minute)
	def(&o.StoreTimeout, 2*time.Second)
	def(&o.FlushInterval, 5*time.Second)
	def(&o.TouchInterval, time.Minute)
	def(&o.AuditRetention, 90*24*time.Hour)
	def(&o.PolicyRefresh, 30*time.Second)
	if o.FlushBatch <= 0 {
		o.FlushBatch = 512
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 65536
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Input is one request as the decision layer sees it. Strings are read during the call only,
// except that the engine may keep copies; the caller may reuse its buffers afterwards.
type Input struct {
	User       string // EAS User / identity; normalised by NormalizeUser (no allocation if already normal)
	DeviceID   string
	DeviceType string
	UserAgent  string
	ClientAddr string
	Command    string // EAS command name ("Sync", "Ping", ...)
	// Groups the identity provider reported for the user; merged with Policy.Groups.Members.
	Groups []string
	// Now is the request time; zero: Options.Now().
	Now time.Time
}

// Engine decides requests from a Store, a Policy and an in-memory cache. It is safe for
// concurrent use. Create it with New and release it with Close.
type Engine struct {
	opts  Options
	store Store
	cache *ristretto.Cache[uint64, *entry]
	seed  maphash.Seed

	policy    atomic.Pointer[compiledPolicy]
	policyRev atomic.Int64
	policyMu  sync.Mutex // serialises SetPolicy

	gen atomic.Uint64 // bumped by every registry write, see invalidate

	pending  chan *entry
	flushReq chan chan struct{}
	done     chan struct{}
	wg       sync.WaitGroup
	closed   atomic.Bool

	stats counters

	// ahead is how long before expiry a hit re-reads the record in the background (CacheTTL/5),
	// so that a busy device never waits for the registry on its request path; refreshSlots
	// bounds those background reads.
	ahead        int64
	refreshSlots chan struct{}

	// cacheSet is cache.Set; tests replace it to simulate ristretto dropping a Set.
	cacheSet func(key uint64, ent *entry) bool
}

// New creates an Engine, loading the persisted policy (or persisting Options.Policy) and
// starting the background flusher.
func New(ctx context.Context, opts Options) (*Engine, error) {
	if opts.Store == nil {
		return nil, errors.New("decision: Options.Store is required")
	}
	opts.setDefaults()
	cache, err := ristretto.NewCache(&ristretto.Config[uint64, *entry]{
		NumCounters:        opts.CacheSize * 10,
		MaxCost:            opts.CacheSize,
		BufferItems:        64,
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, fmt.Errorf("decision: cache: %v", err)
	}
	e := &Engine{
		opts: opts, store: opts.Store, cache: cache, seed: maphash.MakeSeed(),
		pending:      make(chan *entry, opts.MaxPending),
		ahead:        int64(opts.CacheTTL / 5),
		refreshSlots: make(chan struct{}, 4),
		flushReq:     make(chan chan struct{}),
		done:         make(chan struct{}),
	}
	e.cacheSet = func(key uint64, ent *entry) bool { return e.cache.Set(key, ent, 1) }
	if err := e.loadPolicy(ctx, opts.Policy); err != nil {
		cache.Close()
		return nil, err
	}
	e.wg.Add(1)
	go e.background()
	return e, nil
}

func (e *Engine) loadPolicy(ctx context.Context, initial *Policy) error {
	doc, rev, err := e.store.LoadPolicy(ctx)
	switch {
	case err == nil:
		var p Policy
		if err := json.Unmarshal(doc, &p); err != nil {
			return fmt.Errorf("decision: persisted policy: %v", err)
		}
		cp, err := compilePolicy(&p)
		if err != nil {
			return fmt.Errorf("decision: persisted policy is invalid: %w", err)
		}
		e.policy.Store(cp)
		e.policyRev.Store(rev)
		return nil
	case errors.Is(err, ErrNotFound):
		p := DefaultPolicy()
		if initial != nil {
			p = *initial
		}
		return e.SetPolicy(ctx, p, "system")
	default:
		return fmt.Errorf("decision: load policy: %w", err)
	}
}

// Close flushes pending observations and stops background work. The Store stays open (the
// caller owns it). Decide after Close returns ErrClosed with a Block decision.
func (e *Engine) Close() error {
	if !e.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(e.done)
	e.wg.Wait()
	// Taking every refresh slot waits for background reads in flight and admits no new one.
	for range cap(e.refreshSlots) {
		e.refreshSlots <- struct{}{}
	}
	e.cache.Close()
	return nil
}

// Flush writes pending observations now and waits for it.
func (e *Engine) Flush() {
	if e.closed.Load() {
		return
	}
	c := make(chan struct{})
	select {
	case e.flushReq <- c:
		<-c
	case <-e.done:
	}
}

// WaitCache waits until cache writes issued so far are applied (ristretto applies Sets
// asynchronously). Tests and benchmarks call it; production code never needs to.
func (e *Engine) WaitCache() { e.cache.Wait() }

// entry is one cached device. Identity fields and negative are immutable after the entry is
// published; the hot path reads and writes only atomics, so a cache hit takes no lock. mu guards
// the decision-change bookkeeping and loadedAt, which change rarely.
type entry struct {
	user, deviceID string
	negative       Decision // the decision when dev is nil

	dev        atomic.Pointer[Device] // nil: no record (refused by MaxDevicesPerUser)
	expires    atomic.Int64           // unix ns; the record is read again after this
	retryAt    atomic.Int64           // unix ns; the store failed: no new attempt before this
	refreshing atomic.Bool
	memo       atomic.Pointer[memo]

	// Observations, written by requests and read by the flusher.
	seen      atomic.Int64 // unix ns, advanced in steps of at least seenResolution
	flushedAt atomic.Int64 // unix ns of the last LastSeen written
	cmd, addr atomic.Pointer[string]
	queued    atomic.Bool
	lastMemo  atomic.Pointer[memo] // memo last checked for a decision change

	mu       sync.Mutex
	loadedAt time.Time // last successful registry read
	last     Decision  // last decision taken (persisted on the record when it changes)
	lastSet  bool
	decDirty bool
	decAt    time.Time
}

// memo is one evaluation and everything it depended on. It is immutable once stored.
type memo struct {
	dev    *Device
	policy *compiledPolicy
	groups []string // copy of Input.Groups
	until  int64    // unix ns at which time alone may change the result; zero: never
	d      Decision
}

// maxNegativeTTL caps how long a refused first sighting (no record) is remembered.
const maxNegativeTTL = 30 * time.Second

// seenResolution is the granularity of LastSeen: finer updates would cost a write barrier per
// request for no operational value.
const seenResolution = int64(time.Second)

func (e *Engine) key(user, deviceID string) uint64 {
	h := maphash.String(e.seed, user)
	h ^= maphash.String(e.seed, deviceID) * 0x9e3779b97f4a7c15
	return h
}

func sameGroups(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// nanos converts t to unix nanoseconds, zero for the zero time.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Decide answers whether the request may reach company mail. It always returns a usable
// Decision; a non-nil error means the registry failed and the Decision follows the fail mode
// (Decision.Stale or ReasonStoreUnavailable).
//
// Evaluation order (the first step that applies decides):
//  1. wipe: pending or delivered → Wipe / AccountOnlyWipe (wipe_pending); acknowledged →
//     Block (wiped, wipe_failed);
//  2. admin override → Allow (admin_allow) / Block (admin_block);
//  3. spoofing/churn quarantine → Quarantine (suspicious_device);
//  4. groups: exempt → Allow (exempt); not targeted → Allow (not_targeted);
//  5. device access rules by priority → the rule's action (rule_allow:/rule_block:/rule_quarantine:<id>);
//  6. unmanageable platform → Policy.Unmanageable.Action (unmanageable_device);
//  7. not enrolled → Policy.UnknownDevice (unknown_device);
//  8. compliance → Quarantine (not_compliant, with Failures) or Allow (allowed).
//
// A device never seen before is first checked against MaxDevicesPerUser (Block, max_devices,
// no record created) and the churn signal, then recorded. Nothing is sticky: every request is
// evaluated against the current record, policy, groups and time.
//
// A cache hit takes no lock, does no I/O and does not allocate when Input.User is already
// normalised and the client address is unchanged (command names are interned); the returned
// Failures slice is shared and read-only.
func (e *Engine) Decide(ctx context.Context, in *Input) (Decision, error) {
	if e.closed.Load() {
		e.stats.other.Add(1)
		return e.count(Decision{Action: Block, Reason: ReasonStoreUnavailable}), ErrClosed
	}
	if in.User == "" || in.DeviceID == "" {
		e.stats.other.Add(1)
		return e.count(Decision{Action: Block, Reason: ReasonInvalidRequest}), nil
	}
	user := NormalizeUser(in.User)
	now := in.Now
	if now.IsZero() {
		now = e.opts.Now()
	}
	nowN := now.UnixNano()
	p := e.policy.Load()
	key := e.key(user, in.DeviceID)
	if ent, ok := e.cache.Get(key); ok && ent.user == user && ent.deviceID == in.DeviceID {
		dev := ent.dev.Load()
		switch {
		case dev == nil:
			if nowN < ent.expires.Load() {
				d := ent.negative
				e.countHit(d.Action, key)
				d.Cached = true
				return d, nil
			}
		case changed(dev, in):
			e.stats.misses.Add(1)
			return e.changedDevice(ctx, key, user, in, now, p)
		case nowN < ent.expires.Load():
			if nowN >= ent.expires.Load()-e.ahead {
				e.refreshAhead(ent)
			}
			d := e.decideCached(ent, dev, p, in, user, now, nowN)
			e.countHit(d.Action, key)
			d.Cached = true
			return d, nil
		case nowN < ent.retryAt.Load() || !ent.refreshing.CompareAndSwap(false, true):
			// The registry failed moments ago, or another request is re-reading it: answer
			// from memory (stale only in the first case).
			var d Decision
			if ent.refreshing.Load() {
				d = e.decideCached(ent, dev, p, in, user, now, nowN)
			} else {
				d = e.stale(ent, now)
			}
			e.countHit(d.Action, key)
			d.Cached = true
			return d, nil
		default:
			e.stats.misses.Add(1)
			return e.refresh(ctx, ent, key, user, in, now, p)
		}
	}
	e.stats.misses.Add(1)
	return e.miss(ctx, key, user, in, now, p)
}

// ttl is CacheTTL ± 20 %, so that devices loaded together (a restart, a burst of reconnects)
// do not all expire in the same second and re-read the registry on the request path at once.
func (e *Engine) ttl() time.Duration {
	t := e.opts.CacheTTL
	if t <= 0 {
		return t
	}
	return t*4/5 + time.Duration(rand.Int64N(int64(t*2/5)+1))
}

// changed reports whether the request's user agent or device type differs from the record.
func changed(d *Device, in *Input) bool {
	return in.UserAgent != "" && in.UserAgent != d.UserAgent || in.DeviceType != "" && in.DeviceType != d.DeviceType
}

// decideCached returns the memoised decision when nothing it depends on changed, else evaluates
// the cached record again, and records the observation for the background flush.
func (e *Engine) decideCached(ent *entry, dev *Device, p *compiledPolicy, in *Input, user string, now time.Time, nowN int64) Decision {
	m := ent.memo.Load()
	if m == nil || m.dev != dev || m.policy != p || (m.until != 0 && nowN >= m.until) || !sameGroups(m.groups, in.Groups) {
		// A request without DeviceType or User-Agent is matched with the record's values.
		d, until := p.evaluate(dev, &evalInput{user: user, deviceType: or(in.DeviceType, dev.DeviceType),
			userAgent: or(in.UserAgent, dev.UserAgent), groups: in.Groups, now: now})
		m = &memo{dev: dev, policy: p, until: nanos(until), d: d, groups: make([]string, len(in.Groups))}
		for i, g := range in.Groups {
			m.groups[i] = strings.Clone(g)
		}
		ent.memo.Store(m)
	}
	e.observe(ent, in, now, nowN, m)
	return m.d
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// observe coalesces what this request taught us; the flusher writes it later. In the steady
// state (same command, same address, same decision, LastSeen written recently) it only loads.
func (e *Engine) observe(ent *entry, in *Input, now time.Time, nowN int64, m *memo) {
	need := false
	if s := ent.seen.Load(); nowN-s >= seenResolution {
		ent.seen.Store(nowN)
	}
	if in.Command != "" {
		if c := ent.cmd.Load(); c == nil || *c != in.Command {
			ent.cmd.Store(internCommand(in.Command))
			need = true
		}
	}
	if in.ClientAddr != "" {
		if a := ent.addr.Load(); a == nil || *a != in.ClientAddr {
			s := strings.Clone(in.ClientAddr)
			ent.addr.Store(&s)
			need = true
		}
	}
	if ent.lastMemo.Load() != m {
		ent.mu.Lock()
		if ent.lastMemo.Load() != m {
			if !ent.lastSet || !m.d.sameVerdict(ent.last) {
				ent.last, ent.lastSet = m.d, true
				ent.decDirty, ent.decAt = true, now
				need = true
			}
			ent.lastMemo.Store(m)
		}
		ent.mu.Unlock()
	}
	if nowN-ent.flushedAt.Load() >= int64(e.opts.TouchInterval) {
		need = true
	}
	if need && !ent.queued.Load() && ent.queued.CompareAndSwap(false, true) {
		select {
		case e.pending <- ent:
		default:
			ent.queued.Store(false)
			e.stats.droppedSightings.Add(1)
		}
	}
}

// stale is the fail mode for a device whose record is in memory.
func (e *Engine) stale(ent *entry, now time.Time) Decision {
	ent.mu.Lock()
	defer ent.mu.Unlock()
	if e.opts.StaleMaxAge > 0 && now.Sub(ent.loadedAt) <= e.opts.StaleMaxAge && ent.lastSet {
		d := ent.last
		d.Stale = true
		e.stats.stale.Add(1)
		return d
	}
	return Decision{Action: Block, Reason: ReasonStoreUnavailable}
}

// refreshAhead re-reads a record that is about to expire, in the background, while requests go
// on using the cached one: a device in steady use then never waits for the registry, and a
// fleet loaded at the same moment (a restart) does not queue its requests behind the store when
// its entries expire. At most len(refreshSlots) reads run at once; a hit that finds them busy
// leaves the work to a later hit or, at expiry, to the request path. A failed read changes
// nothing: the entry expires as usual and the request path applies the store-failure rules.
func (e *Engine) refreshAhead(ent *entry) {
	if e.closed.Load() || ent.refreshing.Load() || !ent.refreshing.CompareAndSwap(false, true) {
		return
	}
	select {
	case e.refreshSlots <- struct{}{}:
	default:
		ent.refreshing.Store(false)
		return
	}
	go func() {
		defer func() { <-e.refreshSlots }()
		defer ent.refreshing.Store(false)
		g := e.gen.Load()
		ctx, cancel := context.WithTimeout(context.Background(), e.opts.StoreTimeout)
		dev, err := e.store.Device(ctx, ent.user, ent.deviceID)
		cancel()
		if err != nil || e.gen.Load() != g {
			// a failed read changes nothing; a write raced with the read (and invalidated
			// the entry): what was read may predate it.
			return
		}
		now := e.opts.Now()
		ent.mu.Lock()
		ent.loadedAt = now
		ent.mu.Unlock()
		ent.dev.Store(&dev)
		ent.retryAt.Store(0)
		ent.expires.Store(now.Add(e.ttl()).UnixNano())
		e.stats.refreshedAhead.Add(1)
	}()
}

// refresh re-reads an expired entry's record; the caller set ent.refreshing.
func (e *Engine) refresh(ctx context.Context, ent *entry, key uint64, user string, in *Input, now time.Time, p *compiledPolicy) (Decision, error) {
	defer ent.refreshing.Store(false)
	g := e.gen.Load()
	sctx, cancel := context.WithTimeout(ctx, e.opts.StoreTimeout)
	dev, err := e.store.Device(sctx, user, in.DeviceID)
	cancel()
	switch {
	case errors.Is(err, ErrNotFound):
		// Forgotten by another node: start over as a new device.
		e.cache.Del(key)
		return e.miss(ctx, key, user, in, now, p)
	case err != nil:
		e.stats.storeErrors.Add(1)
		ent.retryAt.Store(now.Add(time.Second).UnixNano())
		return e.count(e.stale(ent, now)), fmt.Errorf("decision: registry: %w", err)
	case changed(&dev, in):
		return e.changedDevice(ctx, key, user, in, now, p)
	}
	ent.mu.Lock()
	ent.loadedAt = now
	ent.mu.Unlock()
	ent.dev.Store(&dev)
	ent.retryAt.Store(0)
	ent.expires.Store(now.Add(e.ttl()).UnixNano())
	d := e.decideCached(ent, &dev, p, in, user, now, now.UnixNano())
	if e.gen.Load() != g {
		ent.expires.Store(0) // a write raced with the read: read again next time
	}
	return e.count(d), nil
}

// miss loads a device that is not in memory, creating its record on first sighting.
func (e *Engine) miss(ctx context.Context, key uint64, user string, in *Input, now time.Time, p *compiledPolicy) (Decision, error) {
	return e.load(ctx, key, user, in, now, p, true)
}

// load is miss; signals is false when called after changedDevice updated the record, so a
// record changed again by another node in between cannot make the two recurse.
func (e *Engine) load(ctx context.Context, key uint64, user string, in *Input, now time.Time, p *compiledPolicy, signals bool) (Decision, error) {
	g := e.gen.Load()
	sctx, cancel := context.WithTimeout(ctx, e.opts.StoreTimeout)
	defer cancel()
	dev, err := e.store.Device(sctx, user, in.DeviceID)
	if errors.Is(err, ErrNotFound) {
		var refused *Decision
		dev, refused, err = e.firstSighting(sctx, user, in, now, p)
		if err == nil && refused != nil {
			ent := &entry{user: strings.Clone(user), deviceID: strings.Clone(in.DeviceID), negative: *refused, loadedAt: now}
			// A refusal (too many devices) is re-examined within half a minute whatever the
			// TTL: freeing a slot (forgetting another device) writes nothing this entry sees.
			ent.expires.Store(now.Add(min(e.ttl(), maxNegativeTTL)).UnixNano())
			e.cacheSet(key, ent)
			if e.gen.Load() != g {
				e.cache.Del(key)
			}
			return e.count(*refused), nil
		}
	}
	if err != nil {
		e.stats.storeErrors.Add(1)
		return e.count(Decision{Action: Block, Reason: ReasonStoreUnavailable}), fmt.Errorf("decision: registry: %w", err)
	}
	if signals && changed(&dev, in) {
		return e.changedDevice(ctx, key, user, in, now, p)
	}
	// The entry outlives the request: its key strings come from the record, never from Input.
	ent := &entry{user: dev.User, deviceID: dev.DeviceID, loadedAt: now}
	ent.dev.Store(&dev)
	ent.expires.Store(now.Add(e.ttl()).UnixNano())
	ent.seen.Store(nanos(dev.LastSeen))
	ent.flushedAt.Store(nanos(dev.LastSeen))
	if dev.LastCommand != "" {
		ent.cmd.Store(internCommand(dev.LastCommand))
	}
	if dev.ClientAddr != "" {
		a := dev.ClientAddr
		ent.addr.Store(&a)
	}
	if !dev.LastDecisionAt.IsZero() {
		ent.last = Decision{Action: dev.LastAction, Reason: dev.LastReason}
		ent.lastSet = true
	}
	d := e.decideCached(ent, &dev, p, in, user, now, now.UnixNano())
	ent.mu.Lock()
	if ent.decDirty && !dev.LastDecisionAt.IsZero() && d.Action == dev.LastAction && d.Reason == dev.LastReason {
		ent.decDirty = false // the record already holds this decision
	}
	ent.mu.Unlock()
	e.cacheSet(key, ent)
	// An admin write between our read and our Set bumped gen after (or while) invalidating:
	// drop what we may have cached from the old record. Writers bump gen before Del, so either
	// we see the bump here or their Del is ordered after our Set.
	if e.gen.Load() != g {
		e.cache.Del(key)
	}
	return e.count(d), nil
}

// firstSighting applies the max-devices limit and the churn signal, then records the device.
// It returns the refusal decision instead of a device when the limit is reached.
func (e *Engine) firstSighting(ctx context.Context, user string, in *Input, now time.Time, p *compiledPolicy) (Device, *Decision, error) {
	exempt, targeted := p.groupStatus(&evalInput{user: user, groups: in.Groups})
	governed := targeted && !exempt
	if governed && p.maxDevices > 0 {
		n, err := e.store.CountDevices(ctx, user, time.Time{})
		if err != nil {
			return Device{}, nil, err
		}
		if n >= p.maxDevices {
			d := Decision{Action: Block, Reason: ReasonMaxDevices,
				Detail: fmt.Sprintf("user has %d devices, limit %d", n, p.maxDevices)}
			e.audit(ctx, AuditEntry{Time: now, User: user, DeviceID: in.DeviceID, Actor: "gateway",
				Event: EventMaxDevicesReached, Action: ActionPtr(Block), Reason: ReasonMaxDevices, Detail: d.Detail})
			return Device{}, &d, nil
		}
	}
	dev := Device{User: user, DeviceID: strings.Clone(in.DeviceID), DeviceType: strings.Clone(in.DeviceType),
		UserAgent: strings.Clone(in.UserAgent), FirstSeen: now, LastSeen: now,
		LastCommand: strings.Clone(in.Command), ClientAddr: strings.Clone(in.ClientAddr)}
	if user == in.User {
		dev.User = strings.Clone(user)
	}
	var events []AuditEntry
	sig := p.signals
	if governed && sig.ChurnMaxNewDevices > 0 && sig.ChurnAction != SignalIgnore {
		n, err := e.store.CountDevices(ctx, user, now.Add(-time.Duration(sig.ChurnWindow)))
		if err != nil {
			return Device{}, nil, err
		}
		if n >= sig.ChurnMaxNewDevices {
			detail := fmt.Sprintf("%d new devices within %v", n+1, time.Duration(sig.ChurnWindow))
			events = append(events, AuditEntry{Time: now, User: user, DeviceID: dev.DeviceID, Actor: "gateway",
				Event: EventSignal, Reason: Reason(SignalDeviceChurn), Detail: detail})
			e.stats.signals.Add(1)
			if sig.ChurnAction == SignalQuarantine {
				dev.Suspicion = Suspicion{Signal: SignalDeviceChurn, At: now, Detail: detail}
			}
		}
	}
	stored, created, err := e.store.CreateDevice(ctx, dev)
	if err != nil {
		return Device{}, nil, err
	}
	if created {
		events = append([]AuditEntry{{Time: now, User: user, DeviceID: dev.DeviceID, Actor: "gateway",
			Event: EventFirstSeen, Detail: dev.DeviceType}}, events...)
		e.audit(ctx, events...)
	}
	return stored, nil, nil
}

// changedDevice handles a request whose user agent or device type differs from the record: the
// record is updated at once (this is rare and must not be lost), the signal is audited and, if
// the policy says so, the device is quarantined. Then the request is decided afresh.
func (e *Engine) changedDevice(ctx context.Context, key uint64, user string, in *Input, now time.Time, p *compiledPolicy) (Decision, error) {
	sctx, cancel := context.WithTimeout(ctx, e.opts.StoreTimeout)
	defer cancel()
	var events []AuditEntry
	_, err := e.store.UpdateDevice(sctx, user, in.DeviceID, false, func(d *Device) error {
		events = events[:0]
		check := func(old *string, now2 string, sig Signal, act SignalAction) {
			if now2 == "" || *old == now2 {
				return
			}
			if *old != "" && act != SignalIgnore {
				detail := fmt.Sprintf("%q -> %q", *old, now2)
				events = append(events, AuditEntry{Time: now, User: user, DeviceID: in.DeviceID, Actor: "gateway",
					Event: EventSignal, Reason: Reason(sig), Detail: detail})
				if act == SignalQuarantine {
					d.Suspicion = Suspicion{Signal: sig, At: now, Detail: detail}
				}
			}
			*old = strings.Clone(now2)
		}
		check(&d.UserAgent, in.UserAgent, SignalUserAgentChanged, p.signals.UserAgentChange)
		check(&d.DeviceType, in.DeviceType, SignalDeviceTypeChanged, p.signals.DeviceTypeChange)
		return nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		e.stats.storeErrors.Add(1)
		e.invalidate(user, in.DeviceID)
		return e.count(Decision{Action: Block, Reason: ReasonStoreUnavailable}), fmt.Errorf("decision: registry: %w", err)
	}
	e.stats.signals.Add(uint64(len(events)))
	e.audit(sctx, events...)
	e.invalidate(user, in.DeviceID)
	return e.load(ctx, key, user, in, now, p, false)
}

// invalidate drops a device from the cache after a registry write. gen is bumped first so a
// concurrent miss that read the old record notices (see miss).
func (e *Engine) invalidate(user, deviceID string) {
	e.gen.Add(1)
	e.cache.Del(e.key(user, deviceID))
}

func (e *Engine) audit(ctx context.Context, entries ...AuditEntry) {
	if len(entries) == 0 {
		return
	}
	if err := e.store.AppendAudit(ctx, entries); err != nil {
		e.backgroundError("audit", err)
	}
}

func (e *Engine) backgroundError(op string, err error) {
	e.stats.backgroundErrors.Add(1)
	if e.opts.OnError != nil {
		e.opts.OnError(op, err)
	}
}

// background runs the flusher, audit pruning and policy refresh until Close.
func (e *Engine) background() {
	defer e.wg.Done()
	flushT := time.NewTicker(e.opts.FlushInterval)
	defer flushT.Stop()
	var pruneC, refreshC <-chan time.Time
	if e.opts.AuditRetention > 0 {
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		pruneC = t.C
		e.prune()
	}
	if e.opts.PolicyRefresh > 0 {
		t := time.NewTicker(e.opts.PolicyRefresh)
		defer t.Stop()
		refreshC = t.C
	}
	batch := make([]*entry, 0, e.opts.FlushBatch)
	drain := func() {
		for {
			select {
			case ent := <-e.pending:
				batch = append(batch, ent)
				if len(batch) >= e.opts.FlushBatch {
					e.flush(batch)
					batch = batch[:0]
				}
			default:
				return
			}
		}
	}
	for {
		select {
		case ent := <-e.pending:
			batch = append(batch, ent)
			if len(batch) >= e.opts.FlushBatch {
				e.flush(batch)
				batch = batch[:0]
			}
		case <-flushT.C:
			e.flush(batch)
			batch = batch[:0]
		case c := <-e.flushReq:
			drain()
			e.flush(batch)
			batch = batch[:0]
			close(c)
		case <-pruneC:
			e.prune()
		case <-refreshC:
			e.refreshPolicy()
		case <-e.done:
			drain()
			e.flush(batch)
			return
		}
	}
}

func (e *Engine) flush(batch []*entry) {
	if len(batch) == 0 {
		return
	}
	sightings := make([]Sighting, 0, len(batch))
	var audits []AuditEntry
	for _, ent := range batch {
		// Clear queued before reading, so an observation made while we read queues the entry
		// again instead of being lost.
		ent.queued.Store(false)
		if ent.dev.Load() == nil {
			continue
		}
		seen := ent.seen.Load()
		s := Sighting{User: ent.user, DeviceID: ent.deviceID, LastSeen: time.Unix(0, seen).UTC()}
		if c := ent.cmd.Load(); c != nil {
			s.LastCommand = *c
		}
		if a := ent.addr.Load(); a != nil {
			s.ClientAddr = *a
		}
		ent.mu.Lock()
		if ent.decDirty {
			s.Action, s.Reason, s.DecidedAt = ent.last.Action, ent.last.Reason, ent.decAt
			audits = append(audits, AuditEntry{Time: ent.decAt, User: ent.user, DeviceID: ent.deviceID, Actor: "gateway",
				Event: EventDecision, Action: ActionPtr(ent.last.Action), Reason: ent.last.Reason, Detail: failureCodes(ent.last.Failures)})
			ent.decDirty = false
		}
		ent.mu.Unlock()
		// Up to a fifth of TouchInterval earlier than the truth, at random: devices loaded
		// together (a restart) would otherwise all be due again in the same flush, forever.
		ent.flushedAt.Store(seen - rand.Int64N(int64(e.opts.TouchInterval)/5+1))
		sightings = append(sightings, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// In short transactions, yielding between them: with one P (a gateway pinned to one core)
	// a 512-row write would hold the processor for tens of milliseconds, and the scheduler
	// preempts it only every 10 ms, which is how long requests would wait behind it.
	for len(sightings) > 0 {
		n := min(len(sightings), flushChunk)
		if err := e.store.RecordSightings(ctx, sightings[:n]); err != nil {
			e.backgroundError("flush", err)
		}
		sightings = sightings[n:]
		runtime.Gosched()
	}
	for len(audits) > 0 {
		n := min(len(audits), flushChunk)
		if err := e.store.AppendAudit(ctx, audits[:n]); err != nil {
			e.backgroundError("audit", err)
		}
		audits = audits[n:]
		runtime.Gosched()
	}
}

// flushChunk is the most rows one background write transaction carries.
const flushChunk = 32

func failureCodes(fs []Failure) string {
	var b strings.Builder
	for i, f := range fs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(string(f.Rule))
	}
	return b.String()
}

func (e *Engine) prune() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.store.PruneAudit(ctx, e.opts.Now().Add(-e.opts.AuditRetention)); err != nil {
		e.backgroundError("prune", err)
	}
}

func (e *Engine) refreshPolicy() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	doc, rev, err := e.store.LoadPolicy(ctx)
	if err != nil {
		e.backgroundError("policy", err)
		return
	}
	if rev == e.policyRev.Load() {
		return
	}
	var p Policy
	if err := json.Unmarshal(doc, &p); err != nil {
		e.backgroundError("policy", err)
		return
	}
	cp, err := compilePolicy(&p)
	if err != nil {
		e.backgroundError("policy", err)
		return
	}
	e.policyMu.Lock()
	e.policy.Store(cp)
	e.policyRev.Store(rev)
	e.policyMu.Unlock()
}

// internCommand returns a shared copy of well-known EAS command names so recording the last
// command does not allocate; other names are copied.
func internCommand(s string) *string {
	if v, ok := easCommands[s]; ok {
		return v
	}
	c := strings.Clone(s)
	return &c
}

var easCommands = func() map[string]*string {
	m := map[string]*string{}
	for _, c := range []string{"Sync", "SendMail", "SmartForward", "SmartReply", "GetAttachment",
		"FolderSync", "FolderCreate", "FolderDelete", "FolderUpdate", "MoveItems", "GetItemEstimate",
		"MeetingResponse", "Search", "Settings", "Ping", "ItemOperations", "Provision",
		"ResolveRecipients", "ValidateCert", "Find", "Options"} {
		m[c] = &c
	}
	return m
}()
