package demo

import (
	"context"
	"path/filepath"

	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/pkg/bpffs"
)

// inspect shows a steered pod the ways an operator would look at it.
func (e *env) inspect(ctx context.Context) error {
	e.p.heading("Looking at a steered pod")
	if err := e.w.setSteering(ctx, true); err != nil {
		return err
	}
	pod, stop, err := e.runPod(ctx, 0, "web", selection(ipsElem("dmz", emulation.DMZ, 10)))
	if err != nil {
		return err
	}
	defer stop()
	a4, a6 := emulation.DMZ.Addr(10)
	e.probeAll(ctx, a4, a6)

	kubeconfig := e.w.cluster().Kubeconfig()
	e.p.cmd(ctx, e.kubectl(), "--kubeconfig", kubeconfig, "-n", e.ns, "get", "pod", "web",
		"-o", `jsonpath={.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}`)
	layout := bpffs.Layout{Root: e.w.pinRoot()}
	for _, sub := range []string{"attachments", "flows", "stats"} {
		e.p.cmd(ctx, e.Steerctl, "-bpffs", layout.Root, sub)
	}
	dir, err := layout.Dir(pod.containerID)
	if err != nil {
		return err
	}
	e.p.cmd(ctx, "bpftool", "map", "dump", "pinned", filepath.Join(dir, bpffs.FlowsPin))
	if e.Hold {
		e.hold(ctx, pod, filepath.Join(dir, bpffs.FlowsPin))
	}
	return nil
}

// hold keeps everything up until ctx ends (make demo-down, Ctrl-C), with commands to try.
func (e *env) hold(ctx context.Context, pod *pod, flows string) {
	e.p.heading("The demo stays up: try")
	e.p.say("kubectl --kubeconfig %s -n %s get pods,network-attachment-definitions", e.w.cluster().Kubeconfig(), e.ns)
	for _, c := range e.w.explore(pod) {
		e.p.say("%s", c)
	}
	e.p.say("%s -bpffs %s flows | stats | groups | attachments", e.Steerctl, e.w.pinRoot())
	e.p.say("bpftool map dump pinned %s", flows)
	e.p.say("ready (stop with make demo-down or Ctrl-C)")
	<-ctx.Done()
}
