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
// like the dataplane's variants, on an emulation of its own.
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
		if err := measurePaths(ctx, order(setup.Paths, i), p, rep.Service.Paths, log); err != nil {
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
			Packets: f.Counters.Packets, Connections: f.Counters.Connections})
	}
	return nil
}
