package report

import (
	"fmt"
	"math"
	"strings"

	"github.com/steernet/steer/benchmarks/internal/stats"
)

// Target is one goal and where the run stands: goals, not assertions.
type Target struct {
	Goal, Measured, Status string
}

// Variant names the targets refer to (as lab names them).
const (
	direct, static, policy = "direct", "static routes", "policy routing"
	staticHD               = "static routes, host-device"
)

var steered = []string{"Steer TC", "Steer XDP"}

// Targets evaluates Steer's goals on the run's figures.
func Targets(r *Report) []Target {
	var ts []Target
	if set := r.Secondary; set != nil {
		for _, v := range steered {
			for _, m := range []Metric{Fwd, Rev} {
				rs := stats.Ratios(set.Series[v][m], set.Series[direct][m])
				ts = append(ts, atLeast(fmt.Sprintf("%s %s throughput ≥ 0.97× direct", v, dir(m)), rs, 0.97))
			}
		}
		for _, v := range steered {
			for _, m := range []Metric{Fwd, Rev} {
				rs := stats.Ratios(set.Series[v][m], set.Series[policy][m])
				ts = append(ts, atLeast(fmt.Sprintf("%s %s throughput not below policy routing", v, dir(m)), rs, 1))
			}
		}
		for _, v := range steered {
			for _, m := range []Metric{UDP50, TCP50} {
				ts = append(ts, rrTarget(set, v, m))
			}
		}
		if _, ok := set.Series[staticHD]; ok {
			for _, m := range []Metric{Fwd, Rev} {
				rs := stats.Ratios(set.Series["Steer XDP"][m], set.Series[staticHD][m])
				ts = append(ts, atLeast(fmt.Sprintf("(context) Steer XDP %s ≥ 0.97× its device without programs", dir(m)), rs, 0.97))
			}
		}
	}
	if set := r.Primary; set != nil && len(set.Variants) == 2 {
		for _, m := range []Metric{Fwd, Rev} {
			rs := stats.Ratios(set.Series[set.Variants[1]][m], set.Series[set.Variants[0]][m])
			ts = append(ts, atLeast(fmt.Sprintf("primary path with Steer ≥ 0.98× without (%s)", map[Metric]string{Fwd: "a→b", Rev: "b→a"}[m]), rs, 0.98))
		}
	}
	if r.Service != nil {
		ts = append(ts, serviceTargets(r.Service.Paths)...)
	}
	if res := r.PerPacket; res != nil && len(res.Tables) > 0 {
		last := res.Tables[len(res.Tables)-1].Label
		ts = append(ts, nsTarget(r, fmt.Sprintf("primary-path miss ≤ %g ns", missNS), "primary-path miss", missNS))
		ts = append(ts, nsTarget(r, fmt.Sprintf("pinned reply ≤ %g ns at %s flows", pinnedNS, last), "pinned reply", pinnedNS, last))
	}
	return ts
}

func dir(m Metric) string {
	if m == Rev {
		return "pod→client"
	}
	return "client→pod"
}

// atLeast is met when the median pair ratio reaches goal, within noise when only the best pair
// does.
func atLeast(goal string, rs []float64, min float64) Target {
	if len(rs) == 0 {
		return Target{goal, "no pair measured", "n/a"}
	}
	s := stats.Summarise(rs)
	t := Target{Goal: goal, Measured: summary(s, 2, "×")}
	switch {
	case s.Median >= min:
		t.Status = "met"
	case s.Max >= min:
		t.Status = "within noise"
	default:
		t.Status = "not met"
	}
	return t
}

// rrTarget: p50 within 1 µs of direct plus the router hop. The router hop is what the kernel's
// own fix (static routes, same path through the router) adds to direct, so the excess is the
// variant's p50 minus that of static routes on the same kind of device, pair by pair.
func rrTarget(set *PathSet, v string, m Metric) Target {
	proto := strings.ToUpper(strings.Fields(string(m))[0])
	goal := fmt.Sprintf("%s %s RR p50 ≤ direct + router hop + 1 µs", v, proto)
	ref := static
	if _, ok := set.Series[staticHD]; ok && v == "Steer XDP" {
		ref = staticHD
	}
	hop := stats.Diffs(set.Series[static][m], set.Series[direct][m])
	excess := stats.Diffs(set.Series[v][m], set.Series[ref][m])
	if len(hop) == 0 || len(excess) == 0 {
		return Target{goal, "not measurable: " + failNote(set.Series[v][m]), "not met"}
	}
	e := stats.Summarise(excess)
	t := Target{Goal: goal, Measured: fmt.Sprintf("router hop %s µs; excess over %s %s µs",
		signed(stats.Summarise(hop).Median, 1), ref, signed(e.Median, 1))}
	switch {
	case e.Median <= 1:
		t.Status = "met"
	case e.Min <= 1:
		t.Status = "within noise"
	default:
		t.Status = "not met"
	}
	return t
}

// The Service goals: what the ClusterIP costs over the backend's own address.
const (
	serviceThroughput = 0.95 // × the backend's address
	serviceAddedRR    = 2.0  // µs of p50
)

// serviceTargets: throughput through the ClusterIP ≥ 0.95× straight to the backend, both ways,
// and at most 2 µs added to the RR p50, pair by pair.
func serviceTargets(set *PathSet) []Target {
	if set == nil || len(set.Variants) != 2 {
		return nil
	}
	via, base := set.Series[set.Variants[1]], set.Series[set.Variants[0]]
	var ts []Target
	for _, m := range []Metric{Fwd, Rev} {
		d := map[Metric]string{Fwd: "client→backend", Rev: "backend→client"}[m]
		t := atLeast(fmt.Sprintf("Service %s throughput ≥ %.2f× the backend's address", d, serviceThroughput),
			stats.Ratios(via[m], base[m]), serviceThroughput)
		t.Measured += fmt.Sprintf("; %s vs %s Gbit/s", medianOf(via[m], 2), medianOf(base[m], 2))
		ts = append(ts, t)
	}
	for _, m := range []Metric{UDP50, TCP50} {
		proto := strings.ToUpper(strings.Fields(string(m))[0])
		goal := fmt.Sprintf("Service %s RR p50 ≤ the backend's address + %g µs", proto, serviceAddedRR)
		ds := stats.Diffs(via[m], base[m])
		if len(ds) == 0 {
			ts = append(ts, Target{goal, "not measurable: " + failNote(via[m]) + failNote(base[m]), "not met"})
			continue
		}
		s := stats.Summarise(ds)
		t := Target{Goal: goal, Measured: fmt.Sprintf("added %s µs; %s vs %s µs",
			deltaSummary(s, 1), medianOf(via[m], 1), medianOf(base[m], 1))}
		switch {
		case s.Median <= serviceAddedRR:
			t.Status = "met"
		case s.Min <= serviceAddedRR:
			t.Status = "within noise"
		default:
			t.Status = "not met"
		}
		ts = append(ts, t)
	}
	if ct, ok := connectContext(via[CRR50], base[CRR50]); ok {
		ts = append(ts, ct)
	}
	return ts
}

// connectContext reports the connect latency (a new connection per transaction) through the
// ClusterIP against the backend's address, pair by pair: no goal, its own baseline ratio.
func connectContext(via, base stats.Series) (Target, bool) {
	if len(via) == 0 && len(base) == 0 {
		return Target{}, false // not measured in this run
	}
	goal := "(context) Service TCP connect p50 (connect, request, response, close) vs the backend's address"
	rs, ds := stats.Ratios(via, base), stats.Diffs(via, base)
	if len(rs) == 0 {
		return Target{goal, "not measurable: " + failNote(via) + failNote(base), "n/a"}, true
	}
	return Target{Goal: goal, Status: "context", Measured: fmt.Sprintf("%s; added %s µs; %s vs %s µs",
		summary(stats.Summarise(rs), 2, "×"), deltaSummary(stats.Summarise(ds), 1), medianOf(via, 1), medianOf(base, 1))}, true
}

// medianOf is a series' median, or "–" when nothing succeeded.
func medianOf(s stats.Series, prec int) string {
	return num(stats.Summarise(s.Values()).Median, prec)
}

// The per-packet goals, in ns net of the harness's own cost, hot caches.
const (
	missNS   = 25.0 // a primary-path miss, on every table
	pinnedNS = 45.0 // a pinned reply, both egress passes, on the largest table
)

// nsTarget checks the worst median over the cases named prefix (both families, every hook) on
// the given tables, or all of them, net of the harness's own cost (a no-op program's). It is
// within noise when that case's best round meets the limit.
func nsTarget(r *Report, goal, prefix string, limit float64, tables ...string) Target {
	worst, best, where, floor := math.Inf(-1), 0.0, "", 0.0
	for _, row := range r.PerPacket.Rows {
		if !strings.HasPrefix(row.Case, prefix) {
			continue
		}
		for label, s := range row.NS {
			if len(tables) > 0 && label != tables[0] || s.N == 0 {
				continue
			}
			f := r.PerPacket.Floor[row.Hook].Median
			if s.Median-f > worst {
				worst, best, floor = s.Median-f, s.Min-f, f
				where = fmt.Sprintf("%s %s %s, %s", row.Case, row.Family, row.Hook, label)
			}
		}
	}
	if math.IsInf(worst, -1) {
		return Target{goal, "not measured", "n/a"}
	}
	t := Target{Goal: goal, Measured: fmt.Sprintf("worst %.0f ns net (%.0f raw − %.0f harness, best round %.0f; %s), hot caches",
		worst, worst+floor, floor, best, where)}
	switch {
	case worst <= limit:
		t.Status = "met"
	case best <= limit:
		t.Status = "within noise"
	default:
		t.Status = "not met"
	}
	return t
}

func targets(b *strings.Builder, r *Report) {
	ts := Targets(r)
	if len(ts) == 0 {
		return
	}
	b.WriteString("## Where we stand\n\n")
	b.WriteString("Steer's goals, not assertions. *Within noise*: the median misses the goal but the best " +
		"repetition reaches it. Per-packet figures are hot-cache medians net of the test harness's own cost " +
		"(a no-op program of the same type); the cold lookups show what a real flow mix adds. Rows marked " +
		"(context) are not goals: they separate Steer's cost from its device's.\n\n")
	var rows [][]string
	for _, t := range ts {
		rows = append(rows, []string{t.Goal, t.Measured, t.Status})
	}
	table(b, []string{"goal", "measured", "status"}, rows)
}
