package decision_test

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/easgate/easgate/decision"
)

// BenchmarkCacheHit compares a full Decide answered from the cache with the bare ristretto Get
// it performs, on the same key in the same run. Target: 0 allocs and at most 3× the bare Get.
func BenchmarkCacheHit(b *testing.B) {
	f := newFixture(b, decision.Policy{UnknownDevice: decision.Quarantine,
		Groups: decision.GroupPolicy{Exempt: []string{"vip"}},
		Rules: []decision.Rule{
			{ID: "old-ios", Match: decision.Match{OS: "iOS < 16"}, Action: decision.Block},
			{ID: "android", Match: decision.Match{DeviceType: "Android*"}, Action: decision.Quarantine},
		},
		Compliance: []decision.ComplianceRule{{Platform: "*", PasscodeRequired: true}}})
	in := f.input(ann, "ApplDNQ3KXYZ123")
	in.Groups = []string{"staff", "mobile"}
	if _, err := f.e.Register(ctx, decision.Registration{User: ann, DeviceID: in.DeviceID}, "bench"); err != nil {
		b.Fatal(err)
	}
	if _, err := f.e.ReportCompliance(ctx, ann, in.DeviceID, decision.Compliance{Platform: "ios", PasscodeSet: yes()}, "bench"); err != nil {
		b.Fatal(err)
	}
	f.decide(in)
	if d := f.decide(in); !d.Cached || d.Action != decision.Allow {
		b.Fatalf("not a cached allow: %+v", d)
	}
	b.Run("bare-ristretto-get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !decision.BareGet(f.e, ann, in.DeviceID) {
				b.Fatal("miss")
			}
		}
	})
	b.Run("decide", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if d, _ := f.e.Decide(ctx, in); !d.Cached {
				b.Fatal("not cached")
			}
		}
	})
	// The parallel pair spreads requests over 64 devices, as a gateway serving many devices
	// does; each goroutine walks them from a different offset.
	const fleet = 64
	inputs := make([]*decision.Input, fleet)
	for i := range inputs {
		c := *in
		c.DeviceID = fmt.Sprintf("ApplDNQ3KXYZ%03d", i)
		inputs[i] = &c
		f.decide(&c)
		if d := f.decide(&c); !d.Cached {
			b.Fatalf("device %d not cached", i)
		}
	}
	var offset atomic.Int64
	b.Run("bare-ristretto-get-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(offset.Add(17))
			for pb.Next() {
				i++
				decision.BareGet(f.e, ann, inputs[i%fleet].DeviceID)
			}
		})
	})
	b.Run("decide-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(offset.Add(17))
			for pb.Next() {
				i++
				f.e.Decide(ctx, inputs[i%fleet])
			}
		})
	})
}

// BenchmarkCacheMissSQLite: every decision reads the SQLite registry (the cache drops all Sets).
func BenchmarkCacheMissSQLite(b *testing.B) {
	f := newFixture(b, decision.Policy{UnknownDevice: decision.Quarantine,
		Compliance: []decision.ComplianceRule{{Platform: "*", PasscodeRequired: true}}})
	in := f.input(ann, "ApplDNQ3KXYZ123")
	if _, err := f.e.ReportCompliance(ctx, ann, in.DeviceID, decision.Compliance{Platform: "ios", PasscodeSet: yes()}, "bench"); err != nil {
		b.Fatal(err)
	}
	decision.DropCacheSets(f.e)
	b.ReportAllocs()
	for b.Loop() {
		if d, _ := f.e.Decide(ctx, in); d.Cached || d.Action != decision.Allow {
			b.Fatalf("unexpected %+v", d)
		}
	}
}

// BenchmarkFirstSightingSQLite: a device never seen before (a rollout day, a fleet moved to a
// new gateway) is registered on its first request: one registry write on the request path.
func BenchmarkFirstSightingSQLite(b *testing.B) {
	f := newFixture(b, decision.Policy{UnknownDevice: decision.Allow})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		in := f.input(ann, "NEWDEVICE"+strconv.Itoa(i))
		if d, err := f.e.Decide(ctx, in); err != nil || d.Cached {
			b.Fatalf("unexpected %+v, %v", d, err)
		}
	}
}
