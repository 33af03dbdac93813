package perpkt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cilium/ebpf"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/steernet/steer/benchmarks/internal/stats"
	"github.com/steernet/steer/internal/testutil/progrun"
	"github.com/steernet/steer/pkg/datapath"
)

// TableSize is one flow table the cases run against: Capacity is datapath.Config.FlowEntries,
// Fill the filler flows inserted before the cases' own.
type TableSize struct {
	Label    string
	Capacity uint32
	Fill     int
}

// Options size a run.
type Options struct {
	Repeat uint32 // runs per BPF_PROG_TEST_RUN
	Rounds int    // test runs per case and table; cases are interleaved round by round
	Tables []TableSize
	Cold   int // random filler flows looked up one run each, for the cold-lookup figures
	Scale  ScaleOptions
}

// Row is one case's cost, in ns per packet, per table label.
type Row struct {
	Case, Family, Hook string
	Branch             string // the counter row that proves the branch: "net1/pinned"
	Check              string // "" when the branch and verdict were as expected
	Flows              bool   // depends on the flow table; false: measured on the first only
	NS                 map[string]stats.Summary
}

// Table is what a table size really held when measured.
type Table struct {
	TableSize
	Entries int
}

// Results of the per-packet section.
type Results struct {
	Options
	Tables []Table
	Floor  map[string]stats.Summary // an empty program of each type: the harness's own cost
	Rows   []Row
	Cold   []Cold
	Scale  *Scale
}

// Run measures every case on every table size, then the cold lookups and the scale of state.
// prefix names the namespaces it creates; all are removed before it returns.
func Run(ctx context.Context, prefix string, o Options, log *slog.Logger) (res *Results, err error) {
	e, err := newEnv(prefix)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, e.Close()) }()
	res = &Results{Options: o, Floor: map[string]stats.Summary{}}
	cs := cases()
	for _, c := range cs {
		res.Rows = append(res.Rows, Row{Case: c.name, Family: c.family, Hook: string(c.hook), Flows: c.flows,
			Branch: fmt.Sprintf("%s/%s", ifName(c.want.slot), c.want.reason), NS: map[string]stats.Summary{}})
	}
	if err := res.floor(e); err != nil {
		return res, err
	}
	for ti, t := range o.Tables {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		log.Info("per-packet", "table", t.Label)
		if err := res.table(ctx, e, cs, t, ti == 0); err != nil {
			return res, fmt.Errorf("table %s: %w", t.Label, err)
		}
	}
	if res.Scale, err = scale(ctx, e, o.Scale, log); err != nil {
		return res, err
	}
	return res, nil
}

func ifName(slot int) string { return [slots]string{"eth0", "net1", "net2"}[slot] }

// table loads a collection with t's flow table, fills it, and measures the cases on it.
func (r *Results) table(ctx context.Context, e *env, cs []kase, t TableSize, first bool) error {
	objs, err := e.load(t.Capacity)
	if err != nil {
		return err
	}
	defer objs.Close()
	if err := e.fill(objs.SteerFlows, 0, t.Fill); err != nil {
		return err
	}
	// The cases' own flows last: the most recently used, never evicted by the filling.
	for k, v := range e.testFlows() {
		if err := objs.SteerFlows.Put(k, v); err != nil {
			return fmt.Errorf("put test flow: %w", err)
		}
	}
	n, err := entries(objs.SteerFlows, nil)
	if err != nil {
		return err
	}
	r.Tables = append(r.Tables, Table{TableSize: t, Entries: n})

	// The pods with Services, for the cases that need them (on the first table).
	pods := [pods]*datapath.Objects{plainPod: objs}
	if first {
		for _, p := range []pod{servicesPod, livePairPod} {
			if pods[p], err = e.loadServices(t.Capacity); err != nil {
				return err
			}
			defer pods[p].Close()
		}
	}
	objsOf := func(c kase) (*datapath.Objects, error) {
		if c.pod == livePairPod {
			if err := e.openPair(pods[c.pod]); err != nil {
				return nil, fmt.Errorf("%s %s: %w", c.name, c.family, err)
			}
		}
		return pods[c.pod], nil
	}
	costs := make([][]float64, len(cs))
	for i, c := range cs {
		if !c.flows && !first {
			continue
		}
		o, err := objsOf(c)
		if err != nil {
			return err
		}
		if msg, err := e.verify(o, c); err != nil {
			return err
		} else if msg != "" {
			r.Rows[i].Check = msg
		}
	}
	for range r.Rounds {
		if err := ctx.Err(); err != nil {
			return err
		}
		for i, c := range cs {
			if !c.flows && !first {
				continue
			}
			o, err := objsOf(c)
			if err != nil {
				return err
			}
			v, err := e.time(progOf(o, c.hook), c, r.Repeat)
			if err != nil {
				return fmt.Errorf("%s %s: %w", c.name, c.family, err)
			}
			costs[i] = append(costs[i], r.perPacket(c, v))
		}
	}
	for i := range cs {
		if costs[i] != nil {
			r.Rows[i].NS[t.Label] = stats.Summarise(costs[i])
		}
	}
	return r.cold(e, objs, t)
}

// perPacket turns a case's ns per run into ns per packet: the runs of all its passes, with the
// harness floor counted once, as for a single-pass case.
func (r *Results) perPacket(c kase, perRun uint32) float64 {
	if c.passes < 2 {
		return float64(perRun)
	}
	return float64(c.passes)*float64(perRun) - float64(c.passes-1)*r.Floor[string(c.hook)].Median
}

func progOf(objs *datapath.Objects, h hook) *ebpf.Program {
	switch h {
	case tcIngress:
		return objs.SteerIngress
	case xdpIngress:
		return objs.SteerIngressXdp
	}
	return objs.SteerEgress
}

// context returns the test-run context of a case: the interface it runs on.
func (e *env) context(c kase) []byte {
	if c.hook == xdpIngress {
		return progrun.Encode(progrun.XDP(e.index[c.slot], len(c.frame)))
	}
	return progrun.Encode(progrun.TC(e.index[c.slot]))
}

// time runs a case repeat times inside the pod and returns the kernel's ns per run.
func (e *env) time(p *ebpf.Program, c kase, repeat uint32) (perRun uint32, err error) {
	ctx := e.context(c)
	err = e.pod.Do(func(ns.NetNS) (err error) {
		r, err := progrun.Run(p, progrun.Input{Data: c.frame, Context: ctx, Repeat: repeat})
		perRun = uint32(r.PerRun.Nanoseconds())
		return err
	})
	return perRun, err
}

// verify runs a case once and says what went wrong if its verdict or counter row is not the
// expected one: a benchmark of a branch the programs no longer take would measure nothing.
func (e *env) verify(objs *datapath.Objects, c kase) (string, error) {
	before, err := counter(objs.SteerCounters, c.want)
	if err != nil {
		return "", err
	}
	ret, err := e.run(progOf(objs, c.hook), c)
	if err != nil {
		return "", err
	}
	after, err := counter(objs.SteerCounters, c.want)
	if err != nil {
		return "", err
	}
	switch {
	case ret != c.verdict:
		return fmt.Sprintf("verdict %d, want %d", ret, c.verdict), nil
	case after == before:
		return fmt.Sprintf("%s/%s not counted", ifName(c.want.slot), c.want.reason), nil
	}
	return "", nil
}

// run runs a case's frame once through p inside the pod and returns the verdict.
func (e *env) run(p *ebpf.Program, c kase) (ret uint32, err error) {
	ctx := e.context(c)
	err = e.pod.Do(func(ns.NetNS) (err error) {
		r, err := progrun.Run(p, progrun.Input{Data: c.frame, Context: ctx})
		ret = r.Ret
		return err
	})
	return ret, err
}

// counter sums a counter row's packets over CPUs.
func counter(m *ebpf.Map, r row) (uint64, error) {
	var vals []datapath.CounterValue
	k := datapath.CounterKey(r.slot, r.reason)
	if err := m.Lookup(k, &vals); err != nil {
		return 0, fmt.Errorf("counter %d: %w", k, err)
	}
	var n uint64
	for _, v := range vals {
		n += v.Packets
	}
	return n, nil
}

// floor measures empty TC and XDP programs: what the test-run loop itself costs per packet.
func (r *Results) floor(e *env) error {
	for _, h := range []hook{tcEgress, xdpIngress} {
		typ := ebpf.SchedCLS
		if h == xdpIngress {
			typ = ebpf.XDP
		}
		p, err := progrun.Trivial(typ)
		if err != nil {
			return fmt.Errorf("empty %s program: %w", h, err)
		}
		c := cases()[0]
		c.hook, c.slot = h, slotNet1
		var vs []float64
		for range r.Rounds {
			v, err := e.time(p, c, r.Repeat)
			if err != nil {
				p.Close()
				return err
			}
			vs = append(vs, float64(v))
		}
		p.Close()
		r.Floor[string(h)] = stats.Summarise(vs)
	}
	return nil
}
