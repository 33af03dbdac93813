package report

import (
	"strings"
	"testing"

	"github.com/steernet/steer/benchmarks/internal/perpkt"
	"github.com/steernet/steer/benchmarks/internal/stats"
)

func series(vs ...float64) stats.Series {
	var s stats.Series
	for _, v := range vs {
		s = append(s, stats.Val(v))
	}
	return s
}

// TestServiceTargets: ratios and added latency are taken pair by pair; a goal only the best
// pair reaches is within noise.
func TestServiceTargets(t *testing.T) {
	set := NewPathSet([]string{"backend", "ClusterIP"})
	set.Series["backend"] = map[Metric]stats.Series{Fwd: series(10, 10, 10), Rev: series(10, 10, 10),
		UDP50: series(20, 20, 20), TCP50: series(20, 20, 20)}
	set.Series["ClusterIP"] = map[Metric]stats.Series{Fwd: series(9.6, 9.8, 9), Rev: series(9, 9.6, 9.2),
		UDP50: series(21, 22.5, 21.5), TCP50: series(23, 24, 25)}
	want := []string{"met", "within noise", "met", "not met"}
	ts := serviceTargets(set)
	if len(ts) != len(want) {
		t.Fatalf("%d targets, want %d: %v", len(ts), len(want), ts)
	}
	for i, tg := range ts {
		if tg.Status != want[i] {
			t.Errorf("%s: %s (%s), want %s", tg.Goal, tg.Status, tg.Measured, want[i])
		}
	}
	// Connect latency, when measured: context with its own ratio.
	set.Series["backend"][CRR50] = series(100, 110, 90)
	set.Series["ClusterIP"][CRR50] = series(110, 121, 99)
	if ts := serviceTargets(set); len(ts) != 5 || ts[4].Status != "context" || !strings.HasPrefix(ts[4].Measured, "1.10×") {
		t.Errorf("connect latency: %v", ts)
	}
	set.Series["ClusterIP"][UDP50] = stats.Series{stats.Fail("no answer"), stats.Fail("no answer"), stats.Fail("no answer")}
	if tg := serviceTargets(set)[2]; tg.Status != "not met" {
		t.Errorf("failed UDP RR: %s (%s), want not met", tg.Status, tg.Measured)
	}
}

// TestPerPacketTargets: the worst case's median net of the harness floor against the goal; a
// goal only its best round meets is within noise; the pinned reply is judged on the last table.
func TestPerPacketTargets(t *testing.T) {
	row := func(name, family string, ns map[string][]float64) perpkt.Row {
		r := perpkt.Row{Case: name, Family: family, Hook: "TC egress", NS: map[string]stats.Summary{}}
		for label, vs := range ns {
			r.NS[label] = stats.Summarise(vs)
		}
		return r
	}
	rep := func(miss, pinned []float64) *Report {
		return &Report{PerPacket: &perpkt.Results{
			Tables: []perpkt.Table{{TableSize: perpkt.TableSize{Label: "empty"}}, {TableSize: perpkt.TableSize{Label: "1M"}}},
			Floor:  map[string]stats.Summary{"TC egress": stats.Summarise([]float64{15})},
			Rows: []perpkt.Row{
				row("primary-path miss", "IPv4", map[string][]float64{"empty": {30, 31, 32}, "1M": miss}),
				row("pinned reply (TCP)", "IPv6", map[string][]float64{"empty": {90, 90, 90}, "1M": pinned}),
				row("pinned reply (UDP, source rewritten)", "IPv4", map[string][]float64{"1M": {50, 50, 50}}),
			},
		}}
	}
	for _, tc := range []struct {
		miss, pinned []float64
		want         [2]string
	}{
		{[]float64{35, 36, 38}, []float64{55, 58, 60}, [2]string{"met", "met"}},
		{[]float64{39, 41, 45}, []float64{59, 61, 70}, [2]string{"within noise", "within noise"}},
		{[]float64{41, 42, 45}, []float64{61, 62, 63}, [2]string{"not met", "not met"}},
	} {
		var got [2]string
		for _, tg := range Targets(rep(tc.miss, tc.pinned)) {
			switch {
			case strings.HasPrefix(tg.Goal, "primary-path miss"):
				got[0] = tg.Status
			case strings.HasPrefix(tg.Goal, "pinned reply"):
				got[1] = tg.Status
				if !strings.Contains(tg.Goal, "at 1M flows") || !strings.Contains(tg.Measured, "IPv6") {
					t.Errorf("pinned reply judged on the wrong case: %s: %s", tg.Goal, tg.Measured)
				}
			}
		}
		if got != tc.want {
			t.Errorf("miss %v, pinned %v: %v, want %v", tc.miss, tc.pinned, got, tc.want)
		}
	}
}
