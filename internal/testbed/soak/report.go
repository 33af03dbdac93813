package soak

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/steernet/steer/internal/testbed/emulation"
)

// Phase is one mode's churn with what it left behind.
type Phase struct {
	*Result
	Leftovers Inventory
	Daemon    *DaemonStats // thick mode only
}

// DaemonStats follow the steerd that ran through a whole phase without being killed.
type DaemonStats struct {
	Node                           int
	RSSStartKiB, RSSEndKiB         int // after warm-up, and idle at the end
	FDsStart, FDsEnd               int // idle, before and after
	GoroutinesStart, GoroutinesEnd int // idle, before and after
}

// Sample reads the idle-comparable figures of steerd on node: open descriptors and goroutines.
func Sample(d *emulation.Steerd, node ns.NetNS) (fds, goroutines int, err error) {
	entries, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(d.PID()), "fd"))
	if err != nil {
		return 0, 0, err
	}
	page, err := d.MetricsPage(node)
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			goroutines, err = strconv.Atoi(strings.TrimSpace(v))
			return len(entries), goroutines, err
		}
	}
	return 0, 0, fmt.Errorf("go_goroutines not in steerd's metrics")
}

// WriteTable prints the campaign's figures as a Markdown table, one column per phase.
func WriteTable(w io.Writer, phases []Phase) {
	row := func(name string, cell func(p Phase) string) {
		cells := []string{name}
		for _, p := range phases {
			cells = append(cells, cell(p))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	head := []string{""}
	sep := []string{"---"}
	for _, p := range phases {
		head = append(head, p.Mode+" mode")
		sep = append(sep, "---:")
	}
	fmt.Fprintf(w, "| %s |\n| %s |\n", strings.Join(head, " | "), strings.Join(sep, " | "))
	row("ADD/DEL cycles run", func(p Phase) string { return strconv.Itoa(p.Cycles) })
	row("wall time", func(p Phase) string { return p.Elapsed.Round(time.Second).String() })
	for _, f := range append(slices.Clone(podFaults), APIServerDown, SteerdRestarted) {
		row("fault: "+string(f), func(p Phase) string { return strconv.Itoa(p.Faults[f]) })
	}
	row("ADDs failed during a disruption (runtime retries)", func(p Phase) string { return strconv.Itoa(p.Tolerated) })
	row("unexpected errors", func(p Phase) string { return strconv.Itoa(p.ErrorsAll) })
	for i, r := range (Inventory{}).Rows() {
		row("leftover "+r[0].(string), func(p Phase) string { return fmt.Sprint(p.Leftovers.Rows()[i][1]) })
	}
	row("delegates orphaned by the SIGKILLed steerd, still running (killed at the end)", func(p Phase) string { return strconv.Itoa(len(p.Leftovers.Orphans)) })
	row("ADD p50 / p99 (no fault)", func(p Phase) string { return percentiles(p.Add) })
	row("DEL p50 / p99 (no fault)", func(p Phase) string { return percentiles(p.Del) })
	daemon := func(name string, f func(d *DaemonStats) string) {
		row(name, func(p Phase) string {
			if p.Daemon == nil {
				return "–"
			}
			return f(p.Daemon)
		})
	}
	daemon("steerd RSS after warm-up → end", func(d *DaemonStats) string {
		return fmt.Sprintf("%.1f → %.1f MiB", float64(d.RSSStartKiB)/1024, float64(d.RSSEndKiB)/1024)
	})
	daemon("steerd open fds, idle before → after", func(d *DaemonStats) string { return fmt.Sprintf("%d → %d", d.FDsStart, d.FDsEnd) })
	daemon("steerd goroutines, idle before → after", func(d *DaemonStats) string {
		return fmt.Sprintf("%d → %d", d.GoroutinesStart, d.GoroutinesEnd)
	})
}

// percentiles formats the p50 and p99 of ds in milliseconds.
func percentiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "–"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return fmt.Sprintf("%.0f / %.0f ms", ms(at(0.50)), ms(at(0.99)))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
