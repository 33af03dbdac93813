package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/steernet/steer/benchmarks/internal/lab"
	"github.com/steernet/steer/benchmarks/internal/report"
)

// service measures a client pod reaching one backend on the DMZ through the Service's
// ClusterIP (the pod's own programs DNAT it) and straight at the backend's address, interleaved
// like the dataplane's variants, on an emulation of its own: throughput, RR on an established
// connection, and a connection per transaction.
func service(ctx context.Context, prefix string, p params, rep *report.Report, log *slog.Logger) error {
	log.Info("building the two-node emulation with a Service on the DMZ")
	return withLab(ctx, prefix, p, func(l *lab.Lab) error { return measureService(ctx, l, p, rep, log) })
}

func measureService(ctx context.Context, l *lab.Lab, p params, rep *report.Report, log *slog.Logger) error {
	setup, err := l.BuildService(ctx)
	if err != nil {
		return err
	}
	rep.Service = &report.Service{Paths: report.NewPathSet(names(setup.Paths))}
	for i := range p.Reps {
		log.Info("service", "repetition", fmt.Sprintf("%d/%d", i+1, p.Reps))
		paths := order(setup.Paths, i)
		if err := measurePaths(ctx, paths, p, rep.Service.Paths, log); err != nil {
			return err
		}
		if err := measureConnect(ctx, paths, p, rep.Service.Paths, log); err != nil {
			return err
		}
	}
	fes, err := l.ServiceCounters(setup)
	if err != nil {
		return fmt.Errorf("read the client's Service counters: %w", err)
	}
	for _, f := range fes {
		rep.Service.Frontends = append(rep.Service.Frontends, report.Frontend{
			Frontend: fmt.Sprintf("%s %s", f.Frontend.Proto, f.Frontend.Addr), Backends: fmt.Sprint(f.Backends),
			Packets: f.Counters.Packets, Connections: f.Counters.Connections, Refused: f.Counters.NoBackend})
	}
	return nil
}

// measureConnect times a new TCP connection per transaction across the variants: through the
// ClusterIP, every one is a new flow for the proxy (a backend chosen, connection state created).
func measureConnect(ctx context.Context, paths []lab.Path, p params, set *report.PathSet, log *slog.Logger) error {
	for _, path := range paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		res, err := runRR(path, crr, p.RR)
		addRR(set, path.Name, crr, res, err)
		log.Debug("rr", "variant", path.Name, "proto", crr, "p50", res.P50, "tps", res.PerSecond, "err", err)
	}
	return nil
}
