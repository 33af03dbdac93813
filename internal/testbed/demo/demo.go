// Package demo is the story `make demo` tells: the problems of pods with secondary networks,
// first as Multus leaves them and then with Steer, on a local cluster (a real kube-apiserver and
// etcd, nodes and pods as network namespaces). It is written once so that a test runs the same
// code as the demo.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/internal/testbed/localcluster"
	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/k8s"
)

// Options configure a run.
type Options struct {
	Out      io.Writer
	Log      *slog.Logger
	Plugin   string // the steer plugin binary
	Steerd   string // the steerd binary
	Steerctl string // the steerctl binary
	Kubectl  string // kubectl; empty: the cached one
	// Hold keeps the cluster, nodes and a steered pod up after the stories until the context
	// ends (make demo-up / demo-down).
	Hold bool
	// Prefix names the run's network namespaces (<prefix>-node-a, pods <prefix>-<pod>) and its
	// pin root (/sys/fs/bpf/steer-<prefix>); empty: "demo". A unique prefix lets runs share a
	// machine and check their own leftovers.
	Prefix string
}

// DefaultPrefix is the prefix of `make demo`, which the README's commands name.
const DefaultPrefix = "demo"

// PinRoot is the bpffs root a run with prefix pins under.
func PinRoot(prefix string) string { return bpffs.DefaultRoot + "-" + prefix }

// env is everything a run sets up, and tears down.
type env struct {
	Options
	p        printer
	cluster  *localcluster.Cluster
	topo     *emulation.Topology
	layout   bpffs.Layout
	hosts    [2]emulation.HostRoot
	kubelets [2]*emulation.Kubelet
	steerd   [2]*emulation.Steerd
	cleanup  []func() error
	ns       string
}

// Verdict is one story's outcome.
type Verdict struct {
	Story  string
	Broken bool // the problem showed without Steer
	Fixed  bool // and went away with it
}

// Run brings everything up, tells every story and tears everything down, also on
// cancellation or failure. It returns the verdicts.
func Run(ctx context.Context, o Options) (verdicts []Verdict, err error) {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	e := &env{Options: o, p: printer{w: o.Out}, ns: "demo"}
	defer func() { err = errors.Join(err, e.teardown()) }()
	if err := e.setup(ctx); err != nil {
		return nil, err
	}
	for _, story := range []func(context.Context) (Verdict, error){e.seed002, e.seed000, e.seed001, e.seed001Service} {
		v, err := story(ctx)
		if err != nil {
			return verdicts, err
		}
		verdicts = append(verdicts, v)
		e.p.verdict(v)
	}
	if err := e.inspect(ctx); err != nil {
		return verdicts, err
	}
	return verdicts, nil
}

func (e *env) defer_(f func() error) { e.cleanup = append(e.cleanup, f) }

func (e *env) teardown() error {
	if len(e.cleanup) == 0 {
		return nil
	}
	e.p.heading("Tear-down")
	var errs []error
	for i := len(e.cleanup) - 1; i >= 0; i-- {
		errs = append(errs, e.cleanup[i]())
	}
	e.cleanup = nil
	err := errors.Join(errs...)
	if err == nil {
		e.p.say("pods, nodes, LANs, pins and the cluster are gone")
	}
	return err
}

func (e *env) setup(ctx context.Context) (err error) {
	e.p.heading("Setting up")
	start := time.Now()
	e.p.step("kube-apiserver and etcd on loopback")
	if e.cluster, err = localcluster.Start(ctx, localcluster.Options{Logger: e.Log}); err != nil {
		return err
	}
	e.defer_(e.cluster.Stop)
	e.p.done(time.Since(start))

	start = time.Now()
	e.p.step("two nodes joined by an IPv4-only VXLAN overlay (the flannel / Calico VXLAN case, single-stack like most clusters), a dual-stack DMZ and management LAN behind a router, a client on a remote subnet")
	if e.topo, err = emulation.Build(ctx, e.Prefix); err != nil {
		return err
	}
	e.defer_(e.topo.Close)
	e.layout = bpffs.Layout{Root: PinRoot(e.Prefix)}
	if err := e.layout.EnsureMounted(); err != nil {
		return err
	}
	e.defer_(func() error { return os.RemoveAll(e.layout.Root) })
	apiAddr := strings.TrimPrefix(e.cluster.Host(), "https://")
	for i := range e.hosts {
		fwd, err := emulation.ForwardAPI(e.topo.Nodes[i], apiAddr)
		if err != nil {
			return err
		}
		e.defer_(fwd.Close)
		dir, err := os.MkdirTemp("", fmt.Sprintf("steer-demo-node-%c-", 'a'+i))
		if err != nil {
			return err
		}
		e.defer_(func() error { return os.RemoveAll(dir) })
		if e.hosts[i], err = emulation.NewHostRootOf(dir, i, emulation.IPv4Only); err != nil {
			return err
		}
		e.kubelets[i] = emulation.NewKubelet(e.topo, i, e.hosts[i], e.cluster.Client(), e.Prefix)
	}
	e.p.done(time.Since(start))

	start = time.Now()
	e.p.step("Steer installed on both nodes as its DaemonSet does: the plugin binary, then steerd (thick mode), which writes a CNI config wrapping the overlay's")
	for _, h := range e.hosts {
		if err := h.InstallPlugin(e.Plugin); err != nil {
			return err
		}
	}
	e.defer_(e.stopSteerd)
	if err := e.startSteerd(ctx, false); err != nil {
		return err
	}
	e.p.done(time.Since(start))

	if _, err := e.cluster.Client().CoreV1().Namespaces().Create(ctx, namespace(e.ns), createOpts); err != nil {
		return err
	}
	nads, err := k8s.NewNADClientForConfig(e.cluster.RESTConfig())
	if err != nil {
		return err
	}
	if err := emulation.ApplyExamples(ctx, nads, e.ns); err != nil {
		return err
	}
	e.p.cmd(ctx, e.kubectl(), "--kubeconfig", e.cluster.Kubeconfig(), "-n", e.ns, "get", "network-attachment-definitions")
	return nil
}

// startSteerd starts steerd on both nodes with steering on or off; it writes the nodes' CNI
// config, so pods created afterwards get that behaviour.
func (e *env) startSteerd(ctx context.Context, on bool) error {
	for i, h := range e.hosts {
		d, err := emulation.StartSteerd(ctx, e.topo.Nodes[i], i, h, emulation.SteerdOptions{
			Binary: e.Steerd, Kubeconfig: e.cluster.Kubeconfig(), BPFFSRoot: e.layout.Root, Steering: on, LogLevel: "error",
			// Services on secondary networks come with steering: both are what Steer adds to Multus.
			Services: on,
		})
		if err != nil {
			return err
		}
		e.steerd[i] = d
	}
	return nil
}

func (e *env) stopSteerd() error {
	var errs []error
	for i, d := range e.steerd {
		if d != nil {
			errs = append(errs, d.Stop())
			e.steerd[i] = nil
		}
	}
	return errors.Join(errs...)
}

// setSteering restarts steerd on both nodes with steering on or off, as an operator changing
// the DaemonSet's plugin config would.
func (e *env) setSteering(ctx context.Context, on bool) error {
	if err := e.stopSteerd(); err != nil {
		return err
	}
	return e.startSteerd(ctx, on)
}

func (e *env) kubectl() string {
	if e.Kubectl != "" {
		return e.Kubectl
	}
	k, _ := localcluster.Kubectl()
	return k
}
