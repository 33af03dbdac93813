package node

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/steernet/steer/benchmarks/internal/stats"
	"github.com/steernet/steer/internal/testbed/localcluster"
)

// measure is one of a pod's figures.
type measure struct {
	name, about string
	of          func(sample) time.Duration
}

var measures = []measure{
	{"CNI ADD", "containerd's set-up of the pod network: its call of the first config's plugin, as it times it", func(s sample) time.Duration { return s.add }},
	{"create→Ready", "pod created through the apiserver until the watch sees it Ready (kubelet, containerd, image, network)", func(s sample) time.Duration { return s.ready }},
	{"CNI DEL", "containerd's tear-down of the pod network, as it times it", func(s sample) time.Duration { return s.del }},
	{"delete→gone", "pod deleted through the apiserver until containerd has torn its network down (kubelet stopped its containers and sandbox first)", func(s sample) time.Duration { return s.gone }},
}

// render is the run's report section: medians and p90 per peer and row, overheads over the
// cluster network alone, Steer's overheads as multiples of Multus', and the speed goals.
func render(h *harness, samples map[string][][]sample, pods int, elapsed time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "kubelet %s and containerd %s (package realnode), Multus %s. "+
		"%d measured pods per row and peer (after one unmeasured round), one pod at a time, peers and rows interleaved "+
		"(the order rotating each round); %s in all.\n\n", envOr("KUBE_VERSION", localcluster.DefaultKubeVersion),
		envOr("CONTAINERD_VERSION", localcluster.Version("containerd")), multusVersion, pods, elapsed.Round(time.Second))
	b.WriteString("| peer | what runs |\n|---|---|\n")
	for _, p := range h.peers {
		fmt.Fprintf(&b, "| %s | %s |\n", p.name, p.about)
	}
	b.WriteString("\n| figure | what it is |\n|---|---|\n")
	for _, m := range measures {
		fmt.Fprintf(&b, "| %s | %s |\n", m.name, m.about)
	}
	base := samples["cluster"][0]
	b.WriteString("\nLatency in ms, p50 / p90, and the p50's overhead over the cluster network alone (row 0 of cluster):\n\n")
	b.WriteString("| peer | secondaries |")
	for _, m := range measures {
		fmt.Fprintf(&b, " %s | over cluster |", m.name)
	}
	b.WriteString("\n|---|---|" + strings.Repeat("---|---|", len(measures)) + "\n")
	for _, p := range h.peers {
		for k, ss := range samples[p.name] {
			if len(ss) == 0 {
				continue
			}
			fmt.Fprintf(&b, "| %s | %d |", p.name, k)
			for _, m := range measures {
				v := values(ss, m.of)
				over := "—"
				if p.meta {
					over = fmt.Sprintf("%+.1f", stats.Quantile(v, 0.5)-median(base, m.of))
				}
				fmt.Fprintf(&b, " %.1f / %.1f | %s |", stats.Quantile(v, 0.5), stats.Quantile(v, 0.9), over)
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("\nSteer's overhead over the cluster network as a multiple of Multus' in the same mode (p50s; " +
		"the overheads include the secondaries' own delegates, which both run alike, so these ratios lie nearer 1 than " +
		"ratios of the meta plugins' own costs would):\n\n")
	b.WriteString("| Steer | vs | secondaries |")
	for _, m := range measures {
		fmt.Fprintf(&b, " %s |", m.name)
	}
	b.WriteString("\n|---|---|---|" + strings.Repeat("---|", len(measures)) + "\n")
	for _, p := range h.peers {
		if p.versus == "" {
			continue
		}
		for k := range samples[p.name] {
			fmt.Fprintf(&b, "| %s | %s | %d |", p.name, p.versus, k)
			for _, m := range measures {
				fmt.Fprintf(&b, " %s |", times(overheadRatio(samples[p.name][k], samples[p.versus][k], base, m.of, 0.5)))
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("\nGoals of CNI speed on this node (p50s; the range pairs p40 of one side with p60 of the other: " +
		"met when all of it meets the goal, within noise when part does):\n\n")
	b.WriteString("| goal | figure | range | limit | verdict |\n|---|---|---|---|---|\n")
	for _, p := range h.peers {
		if p.versus == "" {
			continue
		}
		for _, g := range []struct {
			m     measure
			limit float64
		}{{measures[0], 0.5}, {measures[2], 1}} {
			for k := 1; k <= maxSecondaries; k++ {
				f := func(q float64) float64 {
					return overheadRatio(samples[p.name][k], samples[p.versus][k], base, g.m.of, q)
				}
				mid, lo, hi := f(0.5), f(0.4), f(0.6)
				lo, hi = min(lo, hi), max(lo, hi)
				fmt.Fprintf(&b, "| %s %s overhead vs %s, %d secondar%s | %s | %s…%s | ≤ %.2f× | %s |\n", p.name, strings.TrimPrefix(g.m.name, "CNI "),
					p.versus, k, plural(k), times(mid), times(lo), times(hi), g.limit, verdict(hi <= g.limit, lo <= g.limit))
			}
		}
	}
	return b.String()
}

// overheadRatio is the overhead of s at quantile q over the baseline's p50, as a multiple of
// m's at 1-q.
func overheadRatio(s, m, base []sample, of func(sample) time.Duration, q float64) float64 {
	d := median(base, of)
	so, mo := stats.Quantile(values(s, of), q)-d, stats.Quantile(values(m, of), 1-q)-d
	if mo <= 0 {
		return math.Inf(1)
	}
	return so / mo
}

// values are the figures of ss in ms, sorted.
func values(ss []sample, of func(sample) time.Duration) []float64 {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = float64(of(s).Microseconds()) / 1000
	}
	slices.Sort(v)
	return v
}

func median(ss []sample, of func(sample) time.Duration) float64 {
	return stats.Quantile(values(ss, of), 0.5)
}

func times(r float64) string {
	if math.IsInf(r, 0) || math.IsNaN(r) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", r)
}

func plural(k int) string {
	if k == 1 {
		return "y"
	}
	return "ies"
}

func verdict(met, partly bool) string {
	switch {
	case met:
		return "met"
	case partly:
		return "within noise"
	}
	return "not met"
}

// envOr is the environment's value of key, else def: the version overrides realnode's binaries
// honour.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
