package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/easgate/easgate/decision"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/wbxml"
	"github.com/easgate/easgate/quarantine"
)

// Provisioning (MS-ASPROV) at the gateway.
//
// # Who is the provisioning authority
//
// When a named EAS policy of the configuration applies to the user (ProvisioningConfig),
// the gateway owns the device's policy key:
//
//   - In front of an EAS server (backend mode eas) the device's initial Provision is
//     forwarded upstream. When the upstream answers with a policy of its own, the device
//     receives, element by element, the stricter of the upstream's policy and the gateway's
//     (eas.MergeStricter), with a policy key of the gateway's. When the upstream has no
//     policy (Policy Status 2, or no Policies) the gateway's policy is sent alone.
//   - With the IMAP backend the gateway answers Provision itself.
//
// # Policy keys: the gateway's, mapped to the upstream's without state
//
// The upstream must keep receiving its own keys: its temporary key in the acknowledgement
// and its final key on every later command, or it answers 449 / 142–144. The gateway's key
// for a device is the upstream's key XOR a 32-bit pad, HMAC-SHA256(key_secret, user,
// DeviceId): the device's acknowledgement is rewritten (body and X-MS-PolicyKey) to the
// upstream's temporary key and forwarded, the upstream's final key comes back and becomes
// the gateway's final key, and every later command carries the upstream's key again after
// the gateway checked its own. The mapping needs no table, so it survives restarts and is
// the same on every node that shares key_secret: no node can make a device provision in a
// loop because another node holds a different mapping. When the upstream has no policy the
// gateway's keys are random, and what reaches the upstream is meaningless to it.
//
// The registry records every key the device is issued and the one it acknowledged
// (decision.Engine.IssuePolicyKey, AckPolicyKey), so the compliance rule "an acknowledged
// EAS policy counts" works. The acknowledged policy version is stored as
// "<version>+<fingerprint>": the policy's configured dotted version (what a compliance rule's
// min_policy_version compares; everything after '+' is ignored there, like semver build
// metadata) and a fingerprint of exactly the document the device's protocol version was
// sent. A configuration change alters the fingerprint and the device is told to provision
// again (143 PolicyRefresh, HTTP 449 before 14.0); because the fingerprint is taken after
// version filtering (eas.PolicyDocument.ForVersion), an element a version cannot carry never
// makes a device provision in a loop. A change of the upstream's policy is signalled by the
// upstream itself (it refuses the upstream key), and the device provisions again through the
// gateway.
//
// # Which commands need the key
//
// Every command but Ping carries the policy key (MS-ASPROV 3.1.5.1: Autodiscover, Ping and
// the HTTP OPTIONS request do not; the first and last never reach this code). A device
// without an acknowledged key gets 142 DeviceNotProvisioned, a key other than the one it
// acknowledged 144 InvalidPolicyKey, an outdated policy 143 PolicyRefresh — in the command's
// own response for 14.0 and later, HTTP 449 before (MS-ASCMD 2.2.2, built by the quarantine
// responder). Devices older than 12.0 cannot receive a WBXML policy
// (MS-WAP-Provisioning-XML) and are refused (or let through, ProvisioningConfig.LegacyDevices).
//
// # Remote wipe
//
// A wipe-pending device's Provision never reaches the upstream: the gateway answers it with
// the RemoteWipe (or, EAS 16.1, AccountOnlyRemoteWipe) directive, records the delivery and
// then the device's acknowledgement (decision.Engine.MarkWipeDelivered, AckWipe; the engine
// audits both). An account-only wipe cannot be expressed before 16.1; such a device is never
// sent a full wipe instead: it is blocked (an admin block override, audited) for as long as
// the account-only wipe stays pending.

// ProvisioningConfig is the gateway's EAS policy (MS-ASPROV). With no policies, the gateway
// does not take part in provisioning: Provision requests go to the upstream untouched (the
// IMAP backend then answers "no policy").
type ProvisioningConfig struct {
	// Policies are named EAS policies; the first whose Groups contain one of the user's
	// groups applies, else the policy named by Default.
	Policies []EASPolicyConfig `yaml:"policies"`
	// Default names the policy for users no group selector matched. Empty: those users
	// are not subject to a gateway policy.
	Default string `yaml:"default"`
	// KeySecret keys the mapping between the gateway's and the upstream's policy keys; all
	// nodes in front of one upstream must share it (give it as ${ENV_NAME}, at least 32
	// characters). Default: derived from admin.token. Changing it makes every device
	// provision once more.
	KeySecret string `yaml:"key_secret"`
	// LegacyDevices says what happens to EAS 2.5 devices, which cannot receive a WBXML
	// policy, when a policy applies: "block" (default; HTTP 403) or "allow" (they pass
	// without a policy).
	LegacyDevices string `yaml:"legacy_devices"`
}

// EASPolicyConfig is one named policy.
type EASPolicyConfig struct {
	Name string `yaml:"name"`
	// Version is the policy's dotted numeric version ("1", "2024.3"), recorded when a device
	// acknowledges it; compliance rules can require a minimum. Default "1".
	Version string `yaml:"version"`
	// Groups select the users this policy applies to (case-insensitive). Empty: the policy
	// is only used as the Default.
	Groups []string `yaml:"groups"`
	// Settings maps MS-ASPROV element names (e.g. DevicePasswordEnabled,
	// MinDevicePasswordLength, AllowCamera, ApprovedApplicationList) to values: booleans,
	// integers, "unlimited" for the empty element, lists of strings for the two list
	// elements. Names and ranges are validated (eas.PolicyElements).
	Settings map[string]any `yaml:"settings"`
}

var policyVersionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)

func (p *ProvisioningConfig) applyDefaults() {
	if p.LegacyDevices == "" {
		p.LegacyDevices = "block"
	}
	for i := range p.Policies {
		if p.Policies[i].Version == "" {
			p.Policies[i].Version = "1"
		}
	}
}

func (p *ProvisioningConfig) validate() []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("gateway: config provisioning: "+format, args...))
	}
	switch p.LegacyDevices {
	case "block", "allow":
	default:
		bad("legacy_devices must be block or allow, got %q", p.LegacyDevices)
	}
	if p.KeySecret != "" && len(p.KeySecret) < 32 {
		bad("key_secret must be at least 32 characters")
	}
	names := map[string]bool{}
	for i, pc := range p.Policies {
		if pc.Name == "" {
			bad("policies[%d] needs a name", i)
		} else if names[pc.Name] {
			bad("policy %q is defined twice", pc.Name)
		}
		names[pc.Name] = true
		if !policyVersionRE.MatchString(pc.Version) {
			bad("policy %q: version %q is not dotted numeric", pc.Name, pc.Version)
		}
		if _, err := pc.document(); err != nil {
			bad("policy %q: %v", pc.Name, err)
		}
	}
	if p.Default != "" && !names[p.Default] {
		bad("default names no policy: %q", p.Default)
	}
	return errs
}

// document builds the policy document of the configured settings, reporting every problem.
func (pc *EASPolicyConfig) document() (*eas.PolicyDocument, error) {
	d := &eas.PolicyDocument{}
	var errs []error
	for name, v := range pc.Settings {
		el, ok := eas.LookupPolicyElement(name)
		if !ok {
			errs = append(errs, fmt.Errorf("unknown MS-ASPROV element %q", name))
			continue
		}
		if el.Kind == eas.KindList {
			list, ok := v.([]any)
			if !ok && v != nil {
				errs = append(errs, fmt.Errorf("%s must be a list", name))
				continue
			}
			vals := []string{}
			for _, x := range list {
				s, ok := x.(string)
				if !ok {
					errs = append(errs, fmt.Errorf("%s entries must be strings", name))
					break
				}
				vals = append(vals, s)
			}
			if err := d.SetList(name, vals); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		var text string
		switch x := v.(type) {
		case bool:
			text = strconv.FormatBool(x)
		case int:
			text = strconv.Itoa(x)
		case string:
			text = x
		case nil:
			text = ""
		default:
			errs = append(errs, fmt.Errorf("%s: unsupported value %v", name, v))
			continue
		}
		if el.Kind == eas.KindBool && text == "" {
			errs = append(errs, fmt.Errorf("%s needs a value", name))
			continue
		}
		if err := d.Set(name, text); err != nil {
			errs = append(errs, err)
		}
	}
	return d, errors.Join(errs...)
}

// easPolicy is one compiled named policy, with its document per protocol version.
type easPolicy struct {
	name    string
	groups  []string
	variant map[eas.Version]policyVariant
}

// policyVariant is what one protocol version is sent and what its acknowledgement records.
type policyVariant struct {
	doc *eas.PolicyDocument // filtered for the version; shared, read-only
	tag string              // "<version>+<fingerprint>", stored by AckPolicyKey
}

type easPolicySet struct {
	policies []*easPolicy
	def      *easPolicy
}

func compileEASPolicies(p *ProvisioningConfig) (*easPolicySet, error) {
	set := &easPolicySet{}
	for i := range p.Policies {
		pc := &p.Policies[i]
		d, err := pc.document()
		if err != nil {
			return nil, err
		}
		ep := &easPolicy{name: pc.Name, groups: pc.Groups, variant: map[eas.Version]policyVariant{}}
		for _, v := range eas.SupportedVersions() {
			if v < eas.V120 {
				continue
			}
			vd := d.ForVersion(v)
			b, err := vd.Encode(nil)
			if err != nil {
				return nil, fmt.Errorf("gateway: policy %q: %w", pc.Name, err)
			}
			h := sha256.New()
			h.Write([]byte(pc.Name))
			h.Write([]byte{0})
			h.Write(b)
			// The protocol version rides along in the build metadata, so that an admin can be
			// told before requesting an account-only wipe that the device cannot receive it.
			ep.variant[v] = policyVariant{doc: vd, tag: pc.Version + "+" + hex.EncodeToString(h.Sum(nil)[:6]) + "-v" + strconv.Itoa(int(v))}
		}
		set.policies = append(set.policies, ep)
		if pc.Name == p.Default {
			set.def = ep
		}
	}
	return set, nil
}

// selectFor returns the policy for a user with groups, or nil.
func (s *easPolicySet) selectFor(groups []string) *easPolicy {
	if s == nil {
		return nil
	}
	for _, p := range s.policies {
		for _, g := range p.groups {
			for _, ug := range groups {
				if strings.EqualFold(g, ug) {
					return p
				}
			}
		}
	}
	return s.def
}

// Reasons the provisioning responder answers with (its StatusByReason maps them to the
// common status codes of MS-ASCMD 2.2.2; before 14.0 the quarantine responder turns
// 142–144 into HTTP 449 and the others into 403).
const (
	reasonNotProvisioned     decision.Reason = "eas_not_provisioned"      // 142
	reasonPolicyRefresh      decision.Reason = "eas_policy_refresh"       // 143
	reasonInvalidPolicyKey   decision.Reason = "eas_invalid_policy_key"   // 144
	reasonNotProvisionable   decision.Reason = "eas_not_provisionable"    // 139
	reasonLegacyDevice       decision.Reason = "eas_legacy_device"        // 141
	reasonAccountWipeVersion decision.Reason = "account_only_wipe_unable" // 129
)

// provisioner is the gateway's provisioning state: the compiled policies (replaceable at
// run time), the key-mapping secret, a small cache of acknowledged keys and the responder
// for provisioning statuses. It is safe for concurrent use.
type provisioner struct {
	set       atomic.Pointer[easPolicySet]
	secret    []byte
	legacyOK  bool
	localOnly bool // IMAP backend: the gateway is the only provisioning authority
	status    *quarantine.Responder
	cache     provCache
}

func newProvisioner(cfg *Config) (*provisioner, error) {
	pc := &cfg.Provisioning
	set, err := compileEASPolicies(pc)
	if err != nil {
		return nil, err
	}
	secret := pc.KeySecret
	if secret == "" {
		secret = "easgate policy-key mapping\x00" + cfg.Admin.Token
	}
	sum := sha256.Sum256([]byte(secret))
	st, err := quarantine.New(quarantine.Config{StatusByReason: map[decision.Reason]eas.Status{
		reasonNotProvisioned:     eas.StatusDeviceNotProvisioned,
		reasonPolicyRefresh:      eas.StatusPolicyRefresh,
		reasonInvalidPolicyKey:   eas.StatusInvalidPolicyKey,
		reasonNotProvisionable:   eas.StatusDeviceNotFullyProvisionable,
		reasonLegacyDevice:       eas.StatusLegacyDeviceOnStrictPolicy,
		reasonAccountWipeVersion: eas.StatusDeviceIsBlockedForThisUser,
	}})
	if err != nil {
		return nil, err
	}
	p := &provisioner{secret: sum[:], legacyOK: pc.LegacyDevices == "allow",
		localOnly: cfg.Backend.Mode == "imap", status: st}
	p.cache.max = 100000
	p.cache.ttl = 30 * time.Second
	p.set.Store(set)
	return p, nil
}

// SetProvisioning replaces the EAS policies in force (a configuration reload). Devices that
// acknowledged a policy whose document changed are told to provision again on their next
// request. Nothing changes when cfg is invalid.
func (s *Server) SetProvisioning(cfg ProvisioningConfig) error {
	cfg.applyDefaults()
	if errs := cfg.validate(); len(errs) > 0 {
		return errors.Join(errs...)
	}
	set, err := compileEASPolicies(&cfg)
	if err != nil {
		return err
	}
	s.prov.set.Store(set)
	return nil
}

// pad is the per-device mask between the gateway's and the upstream's policy keys.
func (p *provisioner) pad(user, deviceID string) uint32 {
	m := hmac.New(sha256.New, p.secret)
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(deviceID))
	return binary.BigEndian.Uint32(m.Sum(nil))
}

func randomKey(not uint32) uint32 {
	var b [4]byte
	for {
		_, _ = rand.Read(b[:])
		if k := binary.BigEndian.Uint32(b[:]); k != 0 && k != not {
			return k
		}
	}
}

// provCache remembers, per device, the key it acknowledged and the policy tag, so that the
// per-request check needs no registry read. Entries are re-read after ttl (another node may
// have provisioned the device) and whenever a device presents a key the cache does not
// know. It also remembers, between a device's initial Provision and its acknowledgement,
// whether the upstream had a policy.
type provCache struct {
	mu  sync.RWMutex
	m   map[devKey]provState
	max int
	ttl time.Duration
}

type devKey struct{ user, device string }

type provState struct {
	acked  uint32
	tag    string
	loaded time.Time
	pad    uint32 // provisioner.pad of the device, computed once (HMAC allocates)
	hasPad bool
	// Between the initial request and the acknowledgement: whether the upstream had a
	// policy (0 unknown, 1 yes, 2 no) and the tag of the document sent.
	upstream   uint8
	pendingTag string
}

func (c *provCache) get(user, device string) (provState, bool) {
	c.mu.RLock()
	v, ok := c.m[devKey{user, device}]
	c.mu.RUnlock()
	return v, ok
}

func (c *provCache) update(user, device string, fn func(*provState)) {
	k := devKey{strings.Clone(user), strings.Clone(device)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[devKey]provState)
	}
	v, ok := c.m[k]
	if !ok && len(c.m) >= c.max {
		n := 0
		for key := range c.m {
			delete(c.m, key)
			if n++; n >= c.max/2+1 {
				break
			}
		}
	}
	fn(&v)
	c.m[k] = v
}

// provisioning is the pipeline's provisioning step, after the decision. It answers (done
// true) Provision requests of allowed and quarantined devices under a gateway policy, and
// commands whose policy key is missing, stale or outdated; for the others it rewrites the
// key to the upstream's and lets the request go on. Wipe-pending and blocked devices are
// left to answerLocally.
func (s *Server) provisioning(ctx *fasthttp.RequestCtx, st *reqState) (bool, error) {
	p := s.prov
	if p == nil || s.admin == nil {
		return false, nil
	}
	act := st.dec.Action
	if act != decision.Allow && act != decision.Quarantine {
		return false, nil
	}
	pol := p.set.Load().selectFor(st.in.Groups)
	if pol == nil {
		if st.req.Cmd == eas.CmdProvision && p.localOnly {
			// Nobody else can answer: there is no policy for this client (MS-ASPROV 2.2.2.54.1).
			return true, s.answerNoPolicy(ctx, st)
		}
		return false, nil
	}
	if st.req.Version < eas.V120 {
		if p.legacyOK {
			return false, nil
		}
		return true, s.provStatus(ctx, st, reasonLegacyDevice)
	}
	if st.req.Cmd == eas.CmdProvision {
		return true, s.provisionCommand(ctx, st, pol)
	}
	if st.req.Cmd == eas.CmdPing {
		return false, nil
	}
	if act != decision.Allow {
		// A quarantined device's Settings goes to the upstream (quarantine.PassThrough): it
		// must carry the upstream's key, or the upstream would send it to provision again.
		if quarantine.PassThrough(st.req.Cmd, st.dec) && !p.localOnly && st.req.HasPolicyKey {
			if state, ok := p.cache.get(st.user, st.req.DeviceID); ok && state.hasPad && state.acked == st.req.PolicyKey {
				setPolicyKey(ctx, st, st.req.PolicyKey^state.pad)
			}
		}
		return false, nil
	}
	return s.checkPolicyKey(ctx, st, pol)
}

// checkPolicyKey enforces the acknowledged key on a command of an allowed device.
func (s *Server) checkPolicyKey(ctx *fasthttp.RequestCtx, st *reqState, pol *easPolicy) (bool, error) {
	p := s.prov
	state, ok := p.cache.get(st.user, st.req.DeviceID)
	if !ok || time.Since(state.loaded) > p.cache.ttl || (st.req.HasPolicyKey && st.req.PolicyKey != state.acked) {
		var err error
		if state, err = s.loadProvState(st); err != nil {
			return true, err
		}
	}
	switch {
	case state.acked == 0 || !st.req.HasPolicyKey || st.req.PolicyKey == 0:
		return true, s.provStatus(ctx, st, reasonNotProvisioned)
	case st.req.PolicyKey != state.acked:
		return true, s.provStatus(ctx, st, reasonInvalidPolicyKey)
	case state.tag != pol.variant[st.req.Version].tag:
		return true, s.provStatus(ctx, st, reasonPolicyRefresh)
	}
	if !p.localOnly {
		pad := state.pad
		if !state.hasPad {
			pad = p.pad(st.user, st.req.DeviceID)
		}
		setPolicyKey(ctx, st, st.req.PolicyKey^pad)
	}
	return false, nil
}

func (s *Server) loadProvState(st *reqState) (provState, error) {
	c, cancel := context.WithTimeout(context.Background(), s.decideTimeout)
	defer cancel()
	dev, err := s.admin.Device(c, st.user, st.req.DeviceID)
	if err != nil && !errors.Is(err, decision.ErrNotFound) {
		return provState{}, fmt.Errorf("gateway: provisioning state: %w", err)
	}
	var out provState
	pad := s.prov.pad(st.user, st.req.DeviceID)
	s.prov.cache.update(st.user, st.req.DeviceID, func(v *provState) {
		v.acked, v.tag, v.loaded, v.pad, v.hasPad = 0, "", time.Now(), pad, true
		if dev.Provisioning.Acknowledged() {
			v.acked, v.tag = dev.Provisioning.PolicyKeyAcked, dev.Provisioning.PolicyVersionAcked
		}
		out = *v
	})
	return out, nil
}

// setPolicyKey makes the request carry key to the upstream: the X-MS-PolicyKey header, or
// the policy key field of a base64-encoded query (MS-ASHTTP 2.2.1.1.1.1).
func setPolicyKey(ctx *fasthttp.RequestCtx, st *reqState, key uint32) {
	var num [10]byte
	if !st.req.Base64 {
		ctx.Request.Header.SetBytesV(eas.HeaderPolicyKey, strconv.AppendUint(num[:0], uint64(key), 10))
		return
	}
	r := st.req.Clone()
	r.PolicyKey, r.HasPolicyKey = key, true
	q, err := r.AppendBase64Query(nil)
	if err != nil {
		return // the query parsed as base64, so it encodes as base64
	}
	path := ctx.Request.Header.RequestURI()
	if i := strings.IndexByte(string(path), '?'); i >= 0 {
		path = path[:i]
	}
	ctx.Request.Header.SetRequestURI(string(path) + "?" + string(q))
	if len(ctx.Request.Header.Peek(eas.HeaderPolicyKey)) > 0 {
		ctx.Request.Header.SetBytesV(eas.HeaderPolicyKey, strconv.AppendUint(num[:0], uint64(key), 10))
	}
}

// provStatus answers with the status of reason for the command and version.
func (s *Server) provStatus(ctx *fasthttp.RequestCtx, st *reqState, reason decision.Reason) error {
	a, err := s.prov.status.Answer(&st.req, decision.Decision{Action: decision.Block, Reason: reason}, ctx.PostBody(), time.Now())
	if err != nil {
		return err
	}
	ctx.Response.Reset()
	writeAnswer(&ctx.Response, &a)
	return nil
}

func writeProvision(resp *fasthttp.Response, p *eas.Provision) error {
	b, err := p.AppendTo(nil)
	if err != nil {
		return fmt.Errorf("gateway: encode Provision: %w", err)
	}
	resp.SetStatusCode(200)
	resp.Header.SetContentType(quarantine.ContentTypeWBXML)
	resp.SetBody(b)
	return nil
}

func (s *Server) answerNoPolicy(ctx *fasthttp.RequestCtx, st *reqState) error {
	req, err := parseProvisionRequest(ctx.PostBody())
	if err != nil {
		return err
	}
	out := &eas.Provision{Status: eas.ProvisionSuccess}
	if req.DeviceInformation != nil {
		out.DeviceInformation = &eas.DeviceInformation{Status: eas.SettingsSuccess}
	}
	if len(req.Policies) > 0 {
		out.Policies = []*eas.Policy{{PolicyType: req.Policies[0].PolicyType, Status: eas.PolicyNoPolicy}}
	}
	return writeProvision(&ctx.Response, out)
}

// provisionLimits bound a Provision body the gateway parses (request or upstream response).
var provisionLimits = wbxml.Limits{MaxDocumentSize: 256 << 10, MaxDepth: 32, MaxStringLen: 16 << 10, MaxOpaqueLen: 16 << 10, MaxStringTable: 4 << 10}

func parseProvisionRequest(body []byte) (*eas.Provision, error) {
	if len(body) == 0 {
		return &eas.Provision{}, nil
	}
	doc, err := eas.ParseBody(body, provisionLimits)
	if err != nil {
		return nil, err
	}
	return eas.ParseProvision(doc)
}

// provisionCommand answers a Provision request of an allowed or quarantined device under
// policy pol: the initial request (policy download, temporary key) or the acknowledgement
// (final key).
func (s *Server) provisionCommand(ctx *fasthttp.RequestCtx, st *reqState, pol *easPolicy) error {
	req, err := parseProvisionRequest(ctx.PostBody())
	if err != nil {
		return err
	}
	if len(req.Policies) == 0 {
		// No policy request: a wipe acknowledgement arriving late, or an empty Provision.
		if !s.prov.localOnly {
			return s.forward(ctx, st)
		}
		return writeProvision(&ctx.Response, &eas.Provision{Status: eas.ProvisionSuccess})
	}
	pr := req.Policies[0]
	if pr.PolicyType != eas.PolicyTypeWBXML {
		return writeProvision(&ctx.Response, &eas.Provision{Status: eas.ProvisionSuccess,
			Policies: []*eas.Policy{{PolicyType: pr.PolicyType, Status: eas.PolicyUnknownType}}})
	}
	variant := pol.variant[st.req.Version]
	if pr.PolicyKey == "" && pr.Status == 0 {
		return s.provisionInitial(ctx, st, req, variant)
	}
	return s.provisionAck(ctx, st, pr, variant)
}

func (s *Server) provisionInitial(ctx *fasthttp.RequestCtx, st *reqState, req *eas.Provision, variant policyVariant) error {
	p := s.prov
	c, cancel := context.WithTimeout(context.Background(), s.decideTimeout)
	defer cancel()
	if di := req.DeviceInformation; di != nil {
		info := decision.DeviceInfo{Model: di.Model, IMEI: di.IMEI, FriendlyName: di.FriendlyName, OS: di.OS,
			OSLanguage: di.OSLanguage, PhoneNumber: di.PhoneNumber, MobileOperator: di.MobileOperator, UserAgent: di.UserAgent}
		if _, err := s.admin.UpdateDeviceInfo(c, st.user, st.req.DeviceID, info); err != nil {
			s.log.Warn("device information not recorded", slog.String("rid", st.rid()), slog.String("err", err.Error()))
		}
	}
	var out *eas.Provision
	var key uint32
	upstream := uint8(2)
	if !p.localOnly {
		ctx.Request.Header.Del("Accept-Encoding") // the answer is rewritten, so it must be plain
		if err := s.forward(ctx, st); err != nil {
			return err
		}
		up, pol, ok := upstreamProvision(&ctx.Response)
		if !ok {
			return nil // an error, a wipe of the upstream's own or an unknown answer: as is
		}
		out = up
		if pol != nil && pol.Status == eas.PolicySuccess && pol.Data != nil {
			k, err := strconv.ParseUint(pol.PolicyKey, 10, 32)
			if err != nil || k == 0 {
				return fmt.Errorf("gateway: upstream policy key %q is not a 32-bit number", pol.PolicyKey)
			}
			key = uint32(k) ^ p.pad(st.user, st.req.DeviceID)
			if key == 0 {
				return errors.New("gateway: upstream key maps to 0")
			}
			upstream = 1
			pol.Data = eas.MergeStricter(pol.Data.ForVersion(st.req.Version), variant.doc)
		} else {
			if pol == nil {
				pol = &eas.Policy{PolicyType: eas.PolicyTypeWBXML}
				out.Policies = append(out.Policies, pol)
			}
			pol.Status, pol.Data = eas.PolicySuccess, variant.doc.Clone()
		}
		if key == 0 {
			key = randomKey(0)
		}
		pol.PolicyKey = strconv.FormatUint(uint64(key), 10)
	} else {
		key = randomKey(0)
		out = &eas.Provision{Status: eas.ProvisionSuccess, Policies: []*eas.Policy{{PolicyType: eas.PolicyTypeWBXML,
			Status: eas.PolicySuccess, PolicyKey: strconv.FormatUint(uint64(key), 10), Data: variant.doc.Clone()}}}
		if req.DeviceInformation != nil {
			out.DeviceInformation = &eas.DeviceInformation{Status: eas.SettingsSuccess}
		}
	}
	if _, err := s.admin.IssuePolicyKey(c, st.user, st.req.DeviceID, key); err != nil {
		return fmt.Errorf("gateway: issue policy key: %w", err)
	}
	p.cache.update(st.user, st.req.DeviceID, func(v *provState) { v.upstream, v.pendingTag = upstream, variant.tag })
	ctx.Response.Header.Del("Content-Length")
	return writeProvision(&ctx.Response, out)
}

// upstreamProvision parses the upstream's answer to a forwarded Provision. ok is false when
// the answer is to be passed through as it is: not a 200 WBXML Provision, a failure status,
// or a wipe directive of the upstream's own. pol is the WBXML policy element, if any.
func upstreamProvision(resp *fasthttp.Response) (up *eas.Provision, pol *eas.Policy, ok bool) {
	if resp.StatusCode() != 200 || len(resp.Header.Peek("Content-Encoding")) > 0 {
		return nil, nil, false
	}
	doc, err := wbxml.Parse(resp.Body(), provisionLimits)
	if err != nil {
		return nil, nil, false
	}
	up, err = eas.ParseProvision(doc)
	if err != nil || up.Status != eas.ProvisionSuccess || up.RemoteWipe != nil || up.AccountOnlyRemoteWipe != nil {
		return nil, nil, false
	}
	for _, pl := range up.Policies {
		if pl.PolicyType == eas.PolicyTypeWBXML {
			return up, pl, true
		}
	}
	return up, nil, true
}

func (s *Server) provisionAck(ctx *fasthttp.RequestCtx, st *reqState, pr *eas.Policy, variant policyVariant) error {
	p := s.prov
	c, cancel := context.WithTimeout(context.Background(), s.decideTimeout)
	defer cancel()
	dev, err := s.admin.Device(c, st.user, st.req.DeviceID)
	if err != nil && !errors.Is(err, decision.ErrNotFound) {
		return fmt.Errorf("gateway: provisioning state: %w", err)
	}
	ack, perr := strconv.ParseUint(pr.PolicyKey, 10, 32)
	if perr != nil || ack == 0 || uint32(ack) != dev.Provisioning.PolicyKeyIssued {
		// MS-ASPROV 2.2.2.54.1: the client is acknowledging the wrong policy key; it
		// starts over with an initial request.
		return writeProvision(&ctx.Response, &eas.Provision{Status: eas.ProvisionSuccess,
			Policies: []*eas.Policy{{PolicyType: eas.PolicyTypeWBXML, Status: eas.PolicyWrongPolicyKey}}})
	}
	if pr.Status != eas.PolicyAckSuccess {
		// Partial, not applied or "externally managed": the policy is not in force on the
		// device, which gets no key (139 DeviceNotFullyProvisionable; 403 before 14.0)
		// rather than a key every later command would refuse.
		return s.provStatus(ctx, st, reasonNotProvisionable)
	}
	state, _ := p.cache.get(st.user, st.req.DeviceID)
	tag := variant.tag
	if state.pendingTag != "" {
		tag = state.pendingTag // what the device was sent, even if the policy changed since
	}
	var final uint32
	var out *eas.Provision
	if !p.localOnly && state.upstream != 2 {
		pad := p.pad(st.user, st.req.DeviceID)
		upTemp := uint32(ack) ^ pad
		pr.PolicyKey = strconv.FormatUint(uint64(upTemp), 10)
		req := &eas.Provision{Policies: []*eas.Policy{pr}}
		body, err := req.AppendTo(nil)
		if err != nil {
			return fmt.Errorf("gateway: encode Provision: %w", err)
		}
		ctx.Request.SetBody(body)
		ctx.Request.Header.Del("Accept-Encoding")
		setPolicyKey(ctx, st, upTemp)
		if err := s.forward(ctx, st); err != nil {
			return err
		}
		up, pol, ok := upstreamProvision(&ctx.Response)
		if ok && pol != nil && pol.Status == eas.PolicySuccess {
			if k, err := strconv.ParseUint(pol.PolicyKey, 10, 32); err == nil && k != 0 {
				final = uint32(k) ^ pad
				if final == 0 {
					return errors.New("gateway: upstream key maps to 0")
				}
				pol.PolicyKey = strconv.FormatUint(uint64(final), 10)
				out = up
			}
		}
		if out == nil && state.upstream == 1 {
			return nil // the upstream refused its own policy's acknowledgement: as is
		}
	}
	if out == nil {
		final = randomKey(uint32(ack))
		out = &eas.Provision{Status: eas.ProvisionSuccess, Policies: []*eas.Policy{{PolicyType: eas.PolicyTypeWBXML,
			Status: eas.PolicySuccess, PolicyKey: strconv.FormatUint(uint64(final), 10)}}}
	}
	if _, err := s.admin.IssuePolicyKey(c, st.user, st.req.DeviceID, final); err != nil {
		return fmt.Errorf("gateway: issue policy key: %w", err)
	}
	if _, err := s.admin.AckPolicyKey(c, st.user, st.req.DeviceID, final, tag); err != nil {
		return fmt.Errorf("gateway: acknowledge policy key: %w", err)
	}
	pad := p.pad(st.user, st.req.DeviceID)
	p.cache.update(st.user, st.req.DeviceID, func(v *provState) {
		*v = provState{acked: final, tag: tag, loaded: time.Now(), pad: pad, hasPad: true}
	})
	ctx.Response.Header.Del("Content-Length")
	return writeProvision(&ctx.Response, out)
}

// answerWipe answers a wipe-pending device (decision Wipe or AccountOnlyWipe) without the
// upstream. Its Provision gets the wipe directive, or records the acknowledgement
// (MS-ASPROV 3.2.5.1.1, 3.2.5.1.2.2); an account-only wipe for a device older than 16.1 is
// never turned into a full wipe: the device is blocked instead, for every command. It
// returns false for the other commands of a wipe-pending device, which the quarantine
// responder answers with 140 RemoteWipeRequested (HTTP 449 before 14.0).
func (s *Server) answerWipe(ctx *fasthttp.RequestCtx, st *reqState) (bool, error) {
	if s.admin == nil {
		return false, nil
	}
	c, cancel := context.WithTimeout(context.Background(), s.decideTimeout)
	defer cancel()
	accountOnly := st.dec.Action == decision.AccountOnlyWipe
	if accountOnly && st.req.Version < eas.V161 {
		// AccountOnlyRemoteWipe exists only in 16.1 (MS-ASPROV 2.2.2.1). Block, audited as
		// an admin block override by the gateway; the wipe stays pending in case the device
		// comes back speaking 16.1, and an admin may cancel it and decide.
		dev, err := s.admin.Device(c, st.user, st.req.DeviceID)
		if err == nil && dev.Override != decision.OverrideBlock {
			if _, err := s.admin.SetOverride(c, st.user, st.req.DeviceID, decision.OverrideBlock,
				"gateway:account-only-wipe-needs-eas-16.1"); err != nil {
				s.log.Warn("account-only wipe fallback block not recorded", slog.String("rid", st.rid()), slog.String("err", err.Error()))
			}
		}
		if s.prov == nil {
			return true, errAccountWipeVersion
		}
		return true, s.provStatus(ctx, st, reasonAccountWipeVersion)
	}
	if st.req.Cmd != eas.CmdProvision {
		return false, nil
	}
	req, err := parseProvisionRequest(ctx.PostBody())
	if err != nil {
		return true, err
	}
	directive := &eas.Provision{}
	if accountOnly {
		directive.AccountOnlyRemoteWipe = &eas.RemoteWipe{}
	} else {
		directive.RemoteWipe = &eas.RemoteWipe{}
	}
	ackEl := req.RemoteWipe
	if ackEl == nil {
		ackEl = req.AccountOnlyRemoteWipe
	}
	if ackEl != nil && ackEl.Status != 0 {
		ok := ackEl.Status == eas.RemoteWipeAckSuccess
		if _, err := s.admin.AckWipe(c, st.user, st.req.DeviceID, ok); err != nil && !errors.Is(err, decision.ErrInvalidState) {
			return true, fmt.Errorf("gateway: record wipe acknowledgement: %w", err)
		}
		if ok {
			// MS-ASPROV 3.2.5.1.2.2: success is answered with Status 1.
			return true, writeProvision(&ctx.Response, &eas.Provision{Status: eas.ProvisionSuccess})
		}
		// Failure: Status 2 and the directive again.
		directive.Status = eas.ProvisionProtocolError
		return true, writeProvision(&ctx.Response, directive)
	}
	if _, err := s.admin.MarkWipeDelivered(c, st.user, st.req.DeviceID); err != nil && !errors.Is(err, decision.ErrInvalidState) {
		return true, fmt.Errorf("gateway: record wipe delivery: %w", err)
	}
	directive.Status = eas.ProvisionSuccess
	return true, writeProvision(&ctx.Response, directive)
}

// AccountOnlyWipeCheck is for the admin API, before it requests an account-only wipe: it
// refuses (an error wrapping decision.ErrInvalidState, answered 409) when the device last
// acknowledged a gateway policy speaking a protocol version before 16.1, which has no
// AccountOnlyRemoteWipe. A device whose version the gateway does not know passes; if it turns
// out not to speak 16.1, delivery blocks it instead (answerWipe). Never a full wipe.
func (s *Server) AccountOnlyWipeCheck(ctx context.Context, user, deviceID string) error {
	if s.admin == nil {
		return nil
	}
	dev, err := s.admin.Device(ctx, user, deviceID)
	if err != nil {
		return err
	}
	if v, ok := ackedProtocolVersion(dev.Provisioning.PolicyVersionAcked); ok && v < eas.V161 {
		return fmt.Errorf("%w: the device speaks EAS %v; an account-only wipe needs 16.1 (request a full wipe or block it)",
			decision.ErrInvalidState, v)
	}
	return nil
}

// ackedProtocolVersion reads the protocol version from an acknowledged policy tag
// ("<version>+<fingerprint>-v<nnn>").
func ackedProtocolVersion(tag string) (eas.Version, bool) {
	i := strings.LastIndex(tag, "-v")
	if i < 0 || !strings.Contains(tag[:i], "+") {
		return 0, false
	}
	n, err := strconv.Atoi(tag[i+2:])
	if err != nil || !eas.Version(n).Valid() {
		return 0, false
	}
	return eas.Version(n), true
}

var errAccountWipeVersion = &httpError{status: 403, text: "account-only wipe needs EAS 16.1; device blocked"}
