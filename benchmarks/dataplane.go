package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"

	"github.com/steernet/steer/benchmarks/internal/lab"
	"github.com/steernet/steer/benchmarks/internal/report"
	"github.com/steernet/steer/benchmarks/internal/rr"
	"github.com/steernet/steer/benchmarks/internal/stats"
)

// dataplane builds the emulated cluster, measures every path variant interleaved, and removes
// everything, also when interrupted.
func dataplane(ctx context.Context, prefix string, p params, rep *report.Report, log *slog.Logger) error {
	log.Info("building the two-node emulation and its pods")
	return withLab(ctx, prefix, p, func(l *lab.Lab) error { return measureDataplane(ctx, l, p, rep, log) })
}

func measureDataplane(ctx context.Context, l *lab.Lab, p params, rep *report.Report, log *slog.Logger) error {
	setup, err := l.Build(ctx)
	if err != nil {
		return err
	}
	rep.Secondary = report.NewPathSet(names(setup.Secondary))
	rep.Primary = report.NewPathSet(names(setup.Primary))
	rep.Multicast = report.NewMulticast()
	for i := range p.Reps {
		log.Info("dataplane", "repetition", fmt.Sprintf("%d/%d", i+1, p.Reps))
		if err := measurePaths(ctx, order(setup.Secondary, i), p, rep.Secondary, log); err != nil {
			return err
		}
		if err := measurePaths(ctx, order(setup.Primary, i), p, rep.Primary, log); err != nil {
			return err
		}
		if err := measureMulticast(ctx, order(setup.Multicast, i), p, rep.Multicast, log); err != nil {
			return err
		}
	}
	rep.Counters = counters(l, setup)
	return nil
}

// counters reads the Steer counters of every steered pod.
func counters(l *lab.Lab, s *lab.Setup) []report.Counters {
	var out []report.Counters
	add := func(name string, p *lab.Pod) {
		if rows, err := l.Counters(p); err == nil {
			out = append(out, report.Counters{Variant: name, Rows: rows})
		}
	}
	for _, p := range s.Secondary {
		if strings.HasPrefix(p.Name, "Steer") {
			add(p.Name, p.Pod)
		}
	}
	for _, p := range s.Primary {
		if p.Name == lab.WithSteer {
			add("eth0: Steer (receiving pod)", p.Pod)
		}
	}
	for _, m := range s.Multicast {
		if m.Name == lab.FanOut {
			add(m.Name, m.Pod)
		}
	}
	return out
}

// holdLab builds the emulation and keeps it until ctx ends, for inspection with ip netns exec.
func holdLab(ctx context.Context, prefix string, p params, log *slog.Logger) error {
	return withLab(ctx, prefix, p, func(l *lab.Lab) error {
		setup, err := l.Build(ctx)
		if err != nil {
			return err
		}
		for _, p := range append(setup.Secondary, setup.Primary...) {
			log.Info("path", "variant", p.Name, "from", p.From.Name(), "to", p.To, "pod", p.Pod.NS.Name())
		}
		log.Info("holding the emulation; Ctrl-C removes it", "pins", l.Layout.Root)
		<-ctx.Done()
		return nil
	})
}

// withLab runs f on a new lab and removes the lab afterwards, also when f fails or ctx ends.
func withLab(ctx context.Context, prefix string, p params, f func(*lab.Lab) error) (err error) {
	l, err := lab.New(ctx, prefix, p.RR.CPU)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up: %w", cerr))
		}
	}()
	return f(l)
}

func names(ps []lab.Path) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

// order is the variants' order in repetition i: reversed every other time (A B C, C B A), so
// a drift of the machine during a repetition does not always favour the same variant.
func order[T any](vs []T, i int) []T {
	vs = slices.Clone(vs)
	if i%2 == 1 {
		slices.Reverse(vs)
	}
	return vs
}

// measurePaths runs each kind of measurement across all variants before the next kind, so
// the samples a ratio pairs up are taken close together.
func measurePaths(ctx context.Context, paths []lab.Path, p params, set *report.PathSet, log *slog.Logger) error {
	for _, reverse := range []bool{false, true} {
		m := map[bool]report.Metric{false: report.Fwd, true: report.Rev}[reverse]
		for _, path := range paths {
			if err := ctx.Err(); err != nil {
				return err
			}
			s := lab.Iperf(ctx, path.From, path.To, p.IperfSecs, reverse)
			set.Add(path.Name, m, s)
			log.Debug("iperf3", "variant", path.Name, "metric", m, "gbps", s.Value, "note", s.Note)
		}
	}
	for _, proto := range []string{"udp", "tcp"} {
		for _, path := range paths {
			if err := ctx.Err(); err != nil {
				return err
			}
			res, err := runRR(path, proto, p.RR)
			addRR(set, path.Name, proto, res, err)
			log.Debug("rr", "variant", path.Name, "proto", proto, "p50", res.P50, "err", err)
		}
	}
	return nil
}

func runRR(path lab.Path, proto string, o rr.Options) (rr.Result, error) {
	dst := netip.AddrPortFrom(path.To, lab.RRPort)
	switch proto {
	case "udp":
		return rr.UDP(path.From, dst, o)
	case crr:
		return rr.TCPConnect(path.From, dst, o)
	}
	return rr.TCP(path.From, dst, o)
}

// crr is runRR's TCP connect-request-response-close, netperf's TCP_CRR.
const crr = "tcp connect"

func addRR(set *report.PathSet, variant, proto string, res rr.Result, err error) {
	p50, p99, tps := report.UDP50, report.UDP99, report.UDPTps
	switch proto {
	case "tcp":
		p50, p99, tps = report.TCP50, report.TCP99, report.TCPTps
	case crr:
		p50, p99, tps = report.CRR50, report.CRR99, report.CRRTps
	}
	if err != nil {
		note := err.Error()
		if errors.Is(err, rr.ErrNoAnswer) {
			note = "no answer: " + lastPart(note)
		}
		for _, m := range []report.Metric{p50, p99, tps} {
			set.Add(variant, m, stats.Fail(note))
		}
		return
	}
	set.Add(variant, p50, stats.Val(res.P50))
	set.Add(variant, p99, stats.Val(res.P99))
	set.Add(variant, tps, stats.Val(res.PerSecond))
}

func lastPart(s string) string {
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

func measureMulticast(ctx context.Context, senders []lab.Sender, p params, mc *report.Multicast, log *slog.Logger) error {
	for _, s := range senders {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, ok := mc.Sent[s.Name]; !ok {
			mc.Recv[s.Name] = map[string]stats.Series{}
			for _, r := range s.Receivers {
				mc.LANs[s.Name] = append(mc.LANs[s.Name], r.LAN)
			}
		}
		sent, recv, err := lab.Blast(ctx, s, p.Mcast)
		if err != nil {
			return fmt.Errorf("multicast %s: %w", s.Name, err)
		}
		mc.Sent[s.Name] = append(mc.Sent[s.Name], stats.Val(sent))
		for i, r := range s.Receivers {
			mc.Recv[s.Name][r.LAN] = append(mc.Recv[s.Name][r.LAN], stats.Val(recv[i]))
		}
		log.Debug("multicast", "variant", s.Name, "sent", sent, "recv", recv)
	}
	if mc.Variants == nil {
		for _, s := range senders {
			mc.Variants = append(mc.Variants, s.Name)
		}
	}
	return nil
}
