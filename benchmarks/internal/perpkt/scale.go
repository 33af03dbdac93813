package perpkt

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/steernet/steer/internal/testutil/progrun"
	"github.com/steernet/steer/pkg/datapath"
)

// ScaleOptions: Inserts distinct flows into a table of Capacity (more than it holds).
type ScaleOptions struct {
	Capacity uint32
	Inserts  int
}

// Scale is how the LRU flow table takes more flows than it holds, learned by the ingress
// program as traffic would teach them, and inserted from user space in batches.
type Scale struct {
	ScaleOptions
	LearnSeconds   float64 // wall time of Inserts test runs, one new flow each
	LearnPerSecond float64 // ... as a rate, system call overhead included
	NewFlowNS      float64 // kernel time per run that learns a new flow
	KnownFlowNS    float64 // kernel time per run that finds its flow learned (same harness)
	Remaining      int     // flows in the table afterwards
	// Survivors counts what is left of the first, second and last third inserted.
	Survivors [3]int
	ThirdSize int

	BatchSeconds   float64 // BPF_MAP_UPDATE_BATCH of Inserts flows into a fresh table
	BatchPerSecond float64
	BatchRemaining int
}

// srcOff is the offset of the IPv4 source address in a frame.
const srcOff = 14 + 12

func scale(ctx context.Context, e *env, o ScaleOptions, log *slog.Logger) (*Scale, error) {
	if o.Inserts == 0 {
		return nil, nil
	}
	log.Info("scale of state", "capacity", o.Capacity, "inserts", o.Inserts)
	s := &Scale{ScaleOptions: o, ThirdSize: o.Inserts / 3}
	if err := s.learn(ctx, e); err != nil {
		return s, err
	}
	return s, s.batch(e)
}

// learn runs the ingress program on Inserts TCP segments from distinct remote addresses.
func (s *Scale) learn(ctx context.Context, e *env) error {
	objs, err := e.load(s.Capacity)
	if err != nil {
		return err
	}
	defer objs.Close()
	prog := objs.SteerIngress
	frame := in(slotNet1, fillRemote(0), addr4[slotNet1], ack(clientPort, tcpPort))
	tcx := progrun.Encode(progrun.TC(e.index[slotNet1]))
	var kernel uint64
	start := time.Now()
	err = e.pod.Do(func(ns.NetNS) error {
		for i := range s.Inserts {
			if i%65536 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			a := fillRemote(i).As4()
			copy(frame[srcOff:], a[:])
			r, err := progrun.Run(prog, progrun.Input{Data: frame, Context: tcx})
			if err != nil {
				return err
			}
			kernel += uint64(r.PerRun.Nanoseconds())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("learn flows: %w", err)
	}
	s.LearnSeconds = time.Since(start).Seconds()
	s.LearnPerSecond = float64(s.Inserts) / s.LearnSeconds
	s.NewFlowNS = float64(kernel) / float64(s.Inserts)

	// The same harness on a flow that is already learned: the difference is the insertion.
	known := s.Inserts / 10
	kernel = 0
	err = e.pod.Do(func(ns.NetNS) error {
		for range known {
			r, err := progrun.Run(prog, progrun.Input{Data: frame, Context: tcx})
			if err != nil {
				return err
			}
			kernel += uint64(r.PerRun.Nanoseconds())
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.KnownFlowNS = float64(kernel) / float64(known)
	s.Remaining, err = entries(objs.SteerFlows, func(k datapath.FlowKey) {
		if i := fillIndex(k); i >= 0 {
			s.Survivors[min(i/s.ThirdSize, 2)]++
		}
	})
	return err
}

// batch inserts the same number of flows from user space into a fresh table.
func (s *Scale) batch(e *env) error {
	objs, err := e.load(s.Capacity)
	if err != nil {
		return err
	}
	defer objs.Close()
	start := time.Now()
	if err := e.fill(objs.SteerFlows, 0, s.Inserts); err != nil {
		return err
	}
	s.BatchSeconds = time.Since(start).Seconds()
	s.BatchPerSecond = float64(s.Inserts) / s.BatchSeconds
	s.BatchRemaining, err = entries(objs.SteerFlows, nil)
	return err
}
