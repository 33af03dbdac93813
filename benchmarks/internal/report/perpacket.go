package report

import (
	"fmt"
	"strings"

	"github.com/steernet/steer/benchmarks/internal/perpkt"
)

func perPacket(b *strings.Builder, r *Report) {
	res := r.PerPacket
	if res == nil {
		return
	}
	b.WriteString("## Per-packet cost (BPF_PROG_TEST_RUN)\n\n")
	fmt.Fprintf(b, "Kernel-measured ns per run, repeat %d, median of %d rounds (range), cases interleaved round by round. "+
		"Each case is first run once to check that it takes its branch: the verdict and the counter row named. "+
		"The programs run inside a namespace whose veths are the pod's eth0, net1 and net2, so they find their "+
		"interface as they do when attached. A repeat loop runs one packet, so its flow and hash bucket stay in "+
		"the CPU caches; the cold lookups below show the cost at scale. The *harness floor* (a no-op program) "+
		"is the test loop's own cost per run, included once in every figure. A pinned reply's figure is both "+
		"egress runs its packet takes, the redirect and then the loop-mark test of net1's program, which a repeat "+
		"loop alternates.\n\n", res.Repeat, res.Rounds)
	var tables []string
	for _, t := range res.Tables {
		tables = append(tables, fmt.Sprintf("%s: %d flows (capacity %d)", t.Label, t.Entries, t.Capacity))
	}
	fmt.Fprintf(b, "Flow tables: %s. Multicast does no flow lookup and is measured on the first table only.\n\n", strings.Join(tables, "; "))

	header := []string{"case", "family", "hook", "branch"}
	for _, t := range res.Tables {
		header = append(header, t.Label+" (ns)")
	}
	var rows [][]string
	for _, h := range []string{"TC egress", "XDP ingress"} {
		row := []string{"no-op program (harness floor)", "", h, ""}
		for i := range res.Tables {
			if i == 0 {
				row = append(row, summary(res.Floor[h], 0, ""))
			} else {
				row = append(row, "")
			}
		}
		rows = append(rows, row)
	}
	for _, c := range res.Rows {
		branch := c.Branch
		if c.Check != "" {
			branch += " ⚠ " + c.Check
		}
		row := []string{c.Case, c.Family, c.Hook, branch}
		for _, t := range res.Tables {
			s, ok := c.NS[t.Label]
			if !ok {
				row = append(row, "")
				continue
			}
			row = append(row, summary(s, 0, ""))
		}
		rows = append(rows, row)
	}
	table(b, header, rows)
	cold(b, res)
	scale(b, res.Scale)
}

func cold(b *strings.Builder, res *perpkt.Results) {
	if len(res.Cold) == 0 {
		return
	}
	b.WriteString("### Cold lookups\n\n")
	fmt.Fprintf(b, "One run per packet (repeat 1), alternating a flow already in the caches (hot) with a random one "+
		"of the table (cold): a reply to a random learned flow, and eth0 traffic to random peers (a miss in a "+
		"random bucket). Single runs include the harness's clock reads, so only the difference Δ is the "+
		"program's: the cache misses a real flow mix pays.\n\n")
	var rows [][]string
	for _, c := range res.Cold {
		rows = append(rows, []string{c.Table, c.Case, fmt.Sprint(c.N), num(c.Hot50, 0), num(c.Cold50, 0), signed(c.Delta50, 0),
			num(c.Hot90, 0), num(c.Cold90, 0)})
	}
	table(b, []string{"table", "case", "packets", "hot p50", "cold p50", "Δ p50", "hot p90", "cold p90"}, rows)
}

func scale(b *strings.Builder, s *perpkt.Scale) {
	if s == nil {
		return
	}
	b.WriteString("## Scale of state: the LRU flow table past its capacity\n\n")
	fmt.Fprintf(b, "%d distinct flows (TCP from distinct remote addresses) into a flow table of %d "+
		"(`datapath.Config.FlowEntries`), learned by the TC ingress program through BPF_PROG_TEST_RUN, one "+
		"packet per run; then the same number inserted from user space with BPF_MAP_UPDATE_BATCH into a fresh table.\n\n",
		s.Inserts, s.Capacity)
	third := func(i int) string {
		return fmt.Sprintf("%d of %d (%.1f%%)", s.Survivors[i], s.ThirdSize, 100*float64(s.Survivors[i])/float64(s.ThirdSize))
	}
	rows := [][]string{
		{"learned by the program: flows left in the table", fmt.Sprintf("%d (%.1f%% of capacity)", s.Remaining, 100*float64(s.Remaining)/float64(s.Capacity))},
		{"… of the oldest third inserted", third(0)},
		{"… of the middle third", third(1)},
		{"… of the newest third", third(2)},
		{"learning rate through the test-run system call", fmt.Sprintf("%.0f flows/s (%.1f s)", s.LearnPerSecond, s.LearnSeconds)},
		{"kernel time of a run that learns a new flow (incl. eviction)", fmt.Sprintf("%.0f ns", s.NewFlowNS)},
		{"kernel time of a run whose flow is known (same harness)", fmt.Sprintf("%.0f ns", s.KnownFlowNS)},
		{"cost of learning a new flow (difference)", fmt.Sprintf("%.0f ns ⇒ at most %.1f M new flows/s per core", s.NewFlowNS-s.KnownFlowNS, 1e3/max(s.NewFlowNS, 1))},
		{"batch insertion from user space", fmt.Sprintf("%.0f flows/s (%.2f s); %d left", s.BatchPerSecond, s.BatchSeconds, s.BatchRemaining)},
	}
	table(b, []string{"", ""}, rows)
}
