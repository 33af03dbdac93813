package main

import (
	"fmt"
	"time"

	"github.com/steernet/steer/benchmarks/internal/perpkt"
	"github.com/steernet/steer/benchmarks/internal/report"
	"github.com/steernet/steer/benchmarks/internal/rr"
)

// params size a run. The full run fits in about ten minutes on two shared cores; -quick is a
// one-minute smoke run of every section.
type params struct {
	Reps      int
	IperfSecs float64
	RR        rr.Options
	Mcast     time.Duration
	PerPacket perpkt.Options
}

func defaults(quick bool) params {
	if quick {
		return params{
			Reps: 1, IperfSecs: 1,
			RR:    rr.Options{Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond, Timeout: 200 * time.Millisecond},
			Mcast: 300 * time.Millisecond,
			PerPacket: perpkt.Options{Repeat: 100_000, Rounds: 1, Cold: 2000,
				Tables: []perpkt.TableSize{{Label: "empty", Capacity: 4096}, {Label: "10k", Capacity: 16384, Fill: 10_000},
					{Label: "100k", Capacity: 1 << 17, Fill: 100_000}},
				Scale: perpkt.ScaleOptions{Capacity: 100_000, Inserts: 150_000}},
		}
	}
	return params{
		Reps: 5, IperfSecs: 3,
		RR:    rr.Options{Duration: time.Second, Warmup: 200 * time.Millisecond, Timeout: 200 * time.Millisecond},
		Mcast: time.Second,
		PerPacket: perpkt.Options{Repeat: 1_000_000, Rounds: 5, Cold: 20_000,
			Tables: []perpkt.TableSize{{Label: "empty", Capacity: 4096}, {Label: "10k", Capacity: 16384, Fill: 10_000},
				{Label: "1M", Capacity: 1 << 20, Fill: 1_000_000}},
			Scale: perpkt.ScaleOptions{Capacity: 1_000_000, Inserts: 1_500_000}},
	}
}

// list is the settings as the report prints them.
func (p params) list() []report.Param {
	var tables string
	for i, t := range p.PerPacket.Tables {
		if i > 0 {
			tables += ", "
		}
		tables += fmt.Sprintf("%s (%d flows in a table of %d)", t.Label, t.Fill, t.Capacity)
	}
	return []report.Param{
		{Name: "repetitions (interleaved, order reversed every other one)", Value: fmt.Sprint(p.Reps)},
		{Name: "iperf3", Value: fmt.Sprintf("one TCP stream, %gs per run", p.IperfSecs)},
		{Name: "request/response", Value: fmt.Sprintf("1-byte request and response, %v measured after %v warm-up, %v timeout; %s",
			p.RR.Duration, p.RR.Warmup, p.RR.Timeout, pinning(p.RR.CPU))},
		{Name: "multicast", Value: fmt.Sprintf("64-byte datagrams from one thread for %v", p.Mcast)},
		{Name: "BPF_PROG_TEST_RUN", Value: fmt.Sprintf("repeat %d, %d rounds per case and table", p.PerPacket.Repeat, p.PerPacket.Rounds)},
		{Name: "flow tables", Value: tables},
		{Name: "cold lookups", Value: fmt.Sprintf("%d random flows, one run each", p.PerPacket.Cold)},
		{Name: "scale of state", Value: fmt.Sprintf("%d distinct flows into a table of %d", p.PerPacket.Scale.Inserts, p.PerPacket.Scale.Capacity)},
	}
}

func pinning(cpu int) string {
	if cpu < 0 {
		return "client and server unpinned"
	}
	return fmt.Sprintf("client and server threads pinned to CPU %d", cpu)
}
