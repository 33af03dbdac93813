package report

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/steernet/steer/benchmarks/internal/stats"
)

// Summary is the short table printed at the end of a run: medians per variant, multicast
// rates, and where each goal stands. Each block is aligned on its own.
func Summary(r *Report) string {
	var b strings.Builder
	block := func(rows [][]string) {
		w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, row := range rows {
			fmt.Fprintln(w, strings.Join(row, "\t")+"\t")
		}
		w.Flush()
		b.WriteString("\n")
	}
	sets := []*PathSet{r.Secondary, r.Primary}
	if r.Service != nil {
		sets = append(sets, r.Service.Paths)
	}
	for _, set := range sets {
		if set == nil {
			continue
		}
		base := set.Series[set.Variants[0]]
		rows := [][]string{{"variant", "fwd Gbit/s", "× " + set.Variants[0], "rev Gbit/s", "× " + set.Variants[0], "UDP p50 µs", "TCP p50 µs"}}
		for _, v := range set.Variants {
			s := set.Series[v]
			rows = append(rows, []string{v, short(s[Fwd], 2), shortRatio(s[Fwd], base[Fwd]),
				short(s[Rev], 2), shortRatio(s[Rev], base[Rev]), short(s[UDP50], 1), short(s[TCP50], 1)})
		}
		block(rows)
	}
	if mc := r.Multicast; mc != nil && len(mc.Variants) > 0 {
		rows := [][]string{{"multicast", "sent kpps", "received kpps per LAN"}}
		for _, v := range mc.Variants {
			var recv []string
			for _, lan := range mc.LANs[v] {
				recv = append(recv, lan+" "+short(scaled(mc.Recv[v][lan], 1e-3), 0))
			}
			rows = append(rows, []string{v, short(scaled(mc.Sent[v], 1e-3), 0), strings.Join(recv, ", ")})
		}
		block(rows)
	}
	rows := [][]string{{"goal", "status", "measured"}}
	for _, t := range Targets(r) {
		rows = append(rows, []string{t.Goal, t.Status, t.Measured})
	}
	block(rows)
	return b.String()
}

// short is a series' median, or FAIL when every sample failed.
func short(s stats.Series, prec int) string {
	vs := s.Values()
	if len(vs) == 0 {
		if len(s) == 0 {
			return "-"
		}
		return "FAIL"
	}
	return num(stats.Summarise(vs).Median, prec)
}

func shortRatio(s, base stats.Series) string {
	rs := stats.Ratios(s, base)
	if len(rs) == 0 {
		return "-"
	}
	return num(stats.Summarise(rs).Median, 2)
}

func scaled(s stats.Series, f float64) stats.Series {
	out := make(stats.Series, len(s))
	for i, x := range s {
		out[i] = x
		out[i].Value *= f
	}
	return out
}
