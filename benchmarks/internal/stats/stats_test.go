package stats

import (
	"math"
	"slices"
	"testing"
)

func TestQuantile(t *testing.T) {
	s := []float64{1, 2, 3, 4}
	for _, c := range []struct{ q, want float64 }{{0, 1}, {0.5, 2.5}, {1, 4}, {1.0 / 3, 2}} {
		if got := Quantile(s, c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("Quantile(%v, %v) = %v, want %v", s, c.q, got, c.want)
		}
	}
	if !math.IsNaN(Quantile(nil, 0.5)) {
		t.Error("quantile of nothing is not NaN")
	}
}

// TestPairwise: ratios pair repetitions; a failed variant against a working baseline is 0, a
// failed baseline pairs with nothing; differences skip failures.
func TestPairwise(t *testing.T) {
	base := Series{Val(10), Val(20), Fail("x"), Val(5)}
	s := Series{Val(5), Fail("timeout"), Val(7), Val(10)}
	if got, want := Ratios(s, base), []float64{0.5, 0, 2}; !slices.Equal(got, want) {
		t.Errorf("Ratios = %v, want %v", got, want)
	}
	if got, want := Diffs(s, base), []float64{-5, 5}; !slices.Equal(got, want) {
		t.Errorf("Diffs = %v, want %v", got, want)
	}
	if got := Summarise(s.Values()); got.N != 3 || got.Median != 7 || got.Min != 5 || got.Max != 10 {
		t.Errorf("Summarise = %+v", got)
	}
}
