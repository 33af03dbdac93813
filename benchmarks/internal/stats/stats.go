// Package stats summarises repeated measurements on a shared, noisy machine: medians and
// ranges instead of means, and ratios taken pair by pair (each repetition against the baseline
// measured next to it) before their median, so slow drifts of the machine cancel out.
package stats

import (
	"math"
	"slices"
)

// Sample is one measurement. A failed one (no connection, every request timed out) has OK
// false and says why in Note; it is reported, never averaged.
type Sample struct {
	Value float64
	OK    bool
	Note  string
}

// Fail is a failed sample.
func Fail(note string) Sample { return Sample{Note: note} }

// Val is a successful sample.
func Val(v float64) Sample { return Sample{Value: v, OK: true} }

// Series is one metric of one variant, a sample per repetition.
type Series []Sample

// Values returns the successful values in repetition order.
func (s Series) Values() []float64 {
	var out []float64
	for _, x := range s {
		if x.OK {
			out = append(out, x.Value)
		}
	}
	return out
}

// Failures counts failed samples.
func (s Series) Failures() int { return len(s) - len(s.Values()) }

// Summary is the median and range of a set of values.
type Summary struct {
	N                int // values summarised
	Median, Min, Max float64
}

// Summarise returns the summary of vs; N is 0 (and the rest NaN) for no values.
func Summarise(vs []float64) Summary {
	if len(vs) == 0 {
		return Summary{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	return Summary{N: len(s), Median: Quantile(s, 0.5), Min: s[0], Max: s[len(s)-1]}
}

// Quantile returns the q-quantile of sorted values, interpolating between neighbours.
func Quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	return sorted[lo] + (sorted[hi]-sorted[lo])*(pos-float64(lo))
}

// Ratios divides s by base repetition by repetition, where both succeeded. A failed s against a
// working base is a ratio of 0: the variant delivered nothing.
func Ratios(s, base Series) []float64 {
	return pairwise(s, base, func(a, b float64) float64 { return a / b }, 0)
}

// Diffs subtracts base from s repetition by repetition, where both succeeded.
func Diffs(s, base Series) []float64 {
	return pairwise(s, base, func(a, b float64) float64 { return a - b }, math.NaN())
}

func pairwise(s, base Series, f func(a, b float64) float64, failed float64) []float64 {
	var out []float64
	for i := range min(len(s), len(base)) {
		switch {
		case !base[i].OK || base[i].Value == 0:
		case s[i].OK:
			out = append(out, f(s[i].Value, base[i].Value))
		case !math.IsNaN(failed):
			out = append(out, failed)
		}
	}
	return out
}
