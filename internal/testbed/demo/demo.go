// Package demo is the story `make demo` tells: the problems of pods with secondary networks,
// first as Multus leaves them and then with Steer, on a local cluster (a real kube-apiserver and
// etcd) with a real node (kubelet and containerd run Steer's DaemonSet and the pods), or on the
// emulation (nodes and pods as network namespaces, a simulated kubelet). It is written once so
// that a test runs the same code as the demo.
package demo

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/internal/testbed/localcluster"
	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/k8s"
)

// Options configure a run.
type Options struct {
	Out      io.Writer
	Log      *slog.Logger
	Steerctl string // the steerctl binary
	Kubectl  string // kubectl; empty: the cached one
	// RealNode tells the stories on a real node: kubelet and containerd run Steer's DaemonSet,
	// installed with Helm from Image, and the pods. Otherwise on the emulation, with Plugin and
	// Steerd.
	RealNode bool
	Image    string // the image tarball of `make image`; empty: bin/steer-image.tar
	Plugin   string // the steer plugin binary (emulation)
	Steerd   string // the steerd binary (emulation)
	// Hold keeps the cluster, nodes and a steered pod up after the stories until the context
	// ends (make demo-up / demo-down).
	Hold bool
	// Prefix names the run's network namespaces (<prefix>-node-a, pods <prefix>-<pod>) and its
	// pin root (/sys/fs/bpf/steer-<prefix>) on the emulation; empty: "demo". A unique prefix
	// lets runs share a machine and check their own leftovers. A real node owns the machine's
	// CNI directories and pin root: one runs at a time.
	Prefix string
}

// DefaultPrefix is the prefix of `make demo`, which the README's commands name.
const DefaultPrefix = "demo"

// PinRoot is the bpffs root a run on the emulation with prefix pins under.
func PinRoot(prefix string) string { return bpffs.DefaultRoot + "-" + prefix }

// env is a run: its world and everything to tear down.
type env struct {
	Options
	p       printer
	w       world
	cleanup []func() error
	ns      string
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
	if o.RealNode {
		e.w = &realNode{o: o}
	} else {
		e.w = &emulated{o: o}
	}
	defer func() { err = errors.Join(err, e.teardown()) }()
	if err := e.setup(ctx); err != nil {
		return nil, err
	}
	for _, story := range e.w.stories(e) {
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

func (e *env) setup(ctx context.Context) error {
	e.p.heading("Setting up")
	if err := e.w.setup(ctx, e); err != nil {
		return err
	}
	c := e.w.cluster()
	if _, err := c.Client().CoreV1().Namespaces().Create(ctx, namespace(e.ns), createOpts); err != nil {
		return err
	}
	nads, err := k8s.NewNADClientForConfig(c.RESTConfig())
	if err != nil {
		return err
	}
	if err := emulation.ApplyExamples(ctx, nads, e.ns); err != nil {
		return err
	}
	e.p.cmd(ctx, e.kubectl(), "--kubeconfig", c.Kubeconfig(), "-n", e.ns, "get", "network-attachment-definitions")
	return nil
}

func (e *env) kubectl() string {
	if e.Kubectl != "" {
		return e.Kubectl
	}
	k, _ := localcluster.Kubectl()
	return k
}
