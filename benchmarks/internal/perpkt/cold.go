package perpkt

import (
	"math/rand/v2"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/steernet/steer/benchmarks/internal/stats"
	"github.com/steernet/steer/internal/testutil/progrun"
	"github.com/steernet/steer/pkg/datapath"
)

// Cold compares one lookup of a flow that is in the CPU caches (the same flow every time, as
// in a repeat loop) with one of a random flow among many, which is not: the real cost at scale.
// Both are single runs, so each figure includes the test harness's clock reads; the difference
// is the cache misses.
type Cold struct {
	Table, Case    string
	N              int
	Hot50, Hot90   float64
	Cold50, Cold90 float64
	Delta50        float64 // Cold50 - Hot50
}

// ipv4Dst is the offset of the IPv4 destination address in a frame.
const ipv4Dst = 14 + 16

// cold measures pinned replies to, and primary-path misses for, random flows of table t.
func (r *Results) cold(e *env, objs *datapath.Objects, t TableSize) error {
	if t.Fill == 0 || r.Options.Cold == 0 {
		return nil // nothing to pick from: the table holds the cases' own flows only
	}
	cs := cases()
	rng := rand.New(rand.NewPCG(1, uint64(t.Fill)))
	for _, c := range []struct {
		base kase
		dst  func() netip.Addr
	}{
		// A reply to a random filler flow (all learned on net1, TCP to port 80).
		{base: find(cs, "pinned reply (TCP)"), dst: func() netip.Addr {
			for {
				i := rng.IntN(t.Fill)
				var v datapath.FlowValue
				if objs.SteerFlows.Lookup(fillKey(i), &v) == nil {
					return fillRemote(i)
				}
			}
		}},
		// eth0 traffic to random peers: a miss in a random bucket.
		{base: find(cs, "primary-path miss"), dst: func() netip.Addr {
			b := [4]byte{10, 64, byte(rng.IntN(256)), byte(rng.IntN(256))}
			return netip.AddrFrom4(b)
		}},
	} {
		withDst := func() []byte {
			f := slices.Clone(c.base.frame)
			d := c.dst().As4()
			copy(f[ipv4Dst:], d[:])
			return f
		}
		// The hot frame is one of the same kind, so both take the same branch.
		hot := c.base
		hot.frame = withDst()
		frames := make([][]byte, r.Options.Cold)
		for i := range frames {
			frames[i] = withDst()
		}
		hotNS, coldNS, err := e.coldRuns(progOf(objs, c.base.hook), hot, frames)
		if err != nil {
			return err
		}
		slices.Sort(hotNS)
		slices.Sort(coldNS)
		res := Cold{Table: t.Label, Case: c.base.name, N: len(frames),
			Hot50: stats.Quantile(hotNS, 0.5), Hot90: stats.Quantile(hotNS, 0.9),
			Cold50: stats.Quantile(coldNS, 0.5), Cold90: stats.Quantile(coldNS, 0.9)}
		res.Delta50 = res.Cold50 - res.Hot50
		r.Cold = append(r.Cold, res)
	}
	return nil
}

func find(cs []kase, name string) kase {
	for _, c := range cs {
		if c.name == name && c.family == "IPv4" && c.hook != xdpIngress {
			return c
		}
	}
	panic("no case " + name) // the names are this package's own
}

// coldRuns alternates one run of the hot frame with one of each cold frame, so both see the
// same machine.
func (e *env) coldRuns(prog *ebpf.Program, hot kase, frames [][]byte) (hotNS, coldNS []float64, err error) {
	ctx := e.context(hot)
	err = e.pod.Do(func(ns.NetNS) error {
		for _, f := range frames {
			h, err := progrun.Run(prog, progrun.Input{Data: hot.frame, Context: ctx})
			if err != nil {
				return err
			}
			c, err := progrun.Run(prog, progrun.Input{Data: f, Context: ctx})
			if err != nil {
				return err
			}
			hotNS = append(hotNS, float64(h.PerRun.Nanoseconds()))
			coldNS = append(coldNS, float64(c.PerRun.Nanoseconds()))
		}
		return nil
	})
	return hotNS, coldNS, err
}
