// Package lab sets up the benchmark's emulated cluster (internal/testbed/emulation's two nodes, LANs, router
// and remote client) with one pod per variant of the return path, and tears all of it down:
// pods, delegates' state, namespaces and BPF pins, also when a run fails or is interrupted.
package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/steernet/steer/benchmarks/internal/rr"
	"github.com/steernet/steer/internal/testbed/cniplugins"
	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/steering"
)

// Ports of the servers every pod runs.
const (
	IperfPort = 5201
	RRPort    = 7000
)

// Lab is one emulated cluster and everything added to it.
type Lab struct {
	Topo   *emulation.Topology
	Layout bpffs.Layout
	prefix string
	rrCPU  int // the RR servers' CPU; -1: any
	binDir string
	tmp    string
	undo   []func() error // run last-in first-out by Close
}

// New builds the topology. prefix names its namespaces and its pin root, so concurrent runs
// (and tests running on the same machine) never meet; rrCPU is where the RR servers run (see
// package rr), -1 for anywhere. On error nothing is left.
func New(ctx context.Context, prefix string, rrCPU int) (l *Lab, err error) {
	binDir, err := cniplugins.Dir()
	if err != nil {
		return nil, err
	}
	l = &Lab{prefix: prefix, rrCPU: rrCPU, binDir: binDir,
		Layout: bpffs.Layout{Root: "/sys/fs/bpf/steer-bench-" + prefix}}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
			l = nil
		}
	}()
	if l.tmp, err = os.MkdirTemp("", "steer-bench-"); err != nil {
		return l, err
	}
	l.onClose(func() error { return os.RemoveAll(l.tmp) })
	if err := l.Layout.EnsureMounted(); err != nil {
		return l, err
	}
	l.onClose(func() error { return os.RemoveAll(l.Layout.Root) })
	if l.Topo, err = emulation.Build(ctx, prefix); err != nil {
		return l, fmt.Errorf("build topology: %w", err)
	}
	l.onClose(l.Topo.Close)
	return l, nil
}

// onClose registers an undo step for Close.
func (l *Lab) onClose(f func() error) { l.undo = append(l.undo, f) }

// Close undoes everything, last first, going on past failures. Calling it twice is harmless.
func (l *Lab) Close() error {
	var errs []error
	for i := len(l.undo) - 1; i >= 0; i-- {
		errs = append(errs, l.undo[i]())
	}
	l.undo = nil
	return errors.Join(errs...)
}

// Pod is a pod of the lab with its networks.
type Pod struct {
	*emulation.Pod
	Nets []emulation.Network
}

// AddPod creates a pod on node, attaches nets through the delegates and dp, and registers its
// removal.
func (l *Lab) AddPod(ctx context.Context, name string, node int, dp steering.Dataplane, nets []emulation.Network) (*Pod, error) {
	p, err := emulation.NewPod(l.prefix, name, node)
	if err != nil {
		return nil, err
	}
	l.onClose(p.Remove)
	cacheDir, err := os.MkdirTemp(l.tmp, name)
	if err != nil {
		return nil, err
	}
	d := emulation.NewDirect(l.binDir, cacheDir, dp)
	if err := d.Add(ctx, l.Topo.Nodes[node], p, nets); err != nil {
		return nil, fmt.Errorf("add pod %s: %w", name, err)
	}
	// Del must not be cut short by an interrupted run's context.
	l.onClose(func() error { return d.Del(context.Background(), l.Topo.Nodes[node], p, nets) })
	return &Pod{Pod: p, Nets: nets}, nil
}

// DataDir is the directory of node's host-local IPAM state, shared by the pods of the node as
// on a real node (the plugin creates it).
func (l *Lab) DataDir(node int) string { return filepath.Join(l.tmp, fmt.Sprintf("ipam-node%d", node)) }

// Counters reads the Steer counters of p from its pins (nothing for a pod without Steer).
func (l *Lab) Counters(p *Pod) ([]datapath.Counter, error) {
	st, err := datapath.ReadPinned(l.Layout, p.ContainerID)
	if err != nil {
		return nil, err
	}
	return st.Counters, nil
}

// Servers starts the iperf3 and RR servers inside p.
func (l *Lab) Servers(ctx context.Context, p *Pod) error {
	stop, err := startIperf(p.NS.Name())
	if err != nil {
		return err
	}
	l.onClose(stop)
	if err := waitListening(ctx, p.NS.Name(), IperfPort); err != nil {
		return err
	}
	s, err := rr.Serve(p.NS, RRPort, l.rrCPU)
	if err != nil {
		return err
	}
	l.onClose(func() error { s.Close(); return nil })
	return nil
}
