package report

import (
	"strings"
	"testing"

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
