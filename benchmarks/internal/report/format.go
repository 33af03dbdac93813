package report

import (
	"fmt"
	"math"
	"strings"

	"github.com/steernet/steer/benchmarks/internal/stats"
)

// cell is a series as a table shows it: median and range, or why it failed.
func cell(s stats.Series, prec int) string {
	vs := s.Values()
	if len(s) == 0 {
		return "–"
	}
	if len(vs) == 0 {
		return "**fails**: " + failNote(s)
	}
	out := summary(stats.Summarise(vs), prec, "")
	if n := s.Failures(); n > 0 {
		out += fmt.Sprintf(" (%d/%d failed: %s)", n, len(s), failNote(s))
	}
	return out
}

// summary is "median (min–max)" with prec decimals, or "median" alone for one value.
func summary(s stats.Summary, prec int, unit string) string {
	if s.N == 0 {
		return "–"
	}
	if s.N == 1 || s.Min == s.Max {
		return num(s.Median, prec) + unit
	}
	return fmt.Sprintf("%s%s (%s–%s)", num(s.Median, prec), unit, num(s.Min, prec), num(s.Max, prec))
}

func num(v float64, prec int) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

func failNote(s stats.Series) string {
	seen := map[string]bool{}
	var notes []string
	for _, x := range s {
		if !x.OK && !seen[x.Note] {
			seen[x.Note] = true
			notes = append(notes, x.Note)
		}
	}
	return strings.Join(notes, "; ")
}

// ratio is the median of pair-by-pair ratios with their range, as "0.98× (0.95–1.01)".
func ratio(s, base stats.Series) string {
	rs := stats.Ratios(s, base)
	if len(rs) == 0 {
		return "–"
	}
	return summary(stats.Summarise(rs), 2, "×")
}

// delta is the median of pair-by-pair differences, signed.
func delta(s, base stats.Series, prec int) string {
	ds := stats.Diffs(s, base)
	if len(ds) == 0 {
		return "–"
	}
	return deltaSummary(stats.Summarise(ds), prec)
}

// deltaSummary is a summary of differences, signed, with its range.
func deltaSummary(sm stats.Summary, prec int) string {
	if sm.N == 1 || sm.Min == sm.Max {
		return signed(sm.Median, prec)
	}
	return fmt.Sprintf("%s (%s…%s)", signed(sm.Median, prec), signed(sm.Min, prec), signed(sm.Max, prec))
}

func signed(v float64, prec int) string { return fmt.Sprintf("%+.*f", prec, v) }

// table renders a Markdown table.
func table(b *strings.Builder, header []string, rows [][]string) {
	b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for range header {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	b.WriteString("\n")
}

// cellScaled is cell of the series multiplied by f (packets/s shown as kpps).
func cellScaled(s stats.Series, f float64, prec int) string {
	return cell(scaled(s, f), prec)
}
