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
	if err := e.setSteering(ctx, true); err != nil {
		return err
	}
	pod, stop, err := e.runPod(ctx, 0, "web", selection(ipsElem("dmz", emulation.DMZ, 10)))
	if err != nil {
		return err
	}
	defer stop()
	echo, err := emulation.StartEcho(pod.NS)
	if err != nil {
		return err
	}
	defer echo.Close()
	a4, a6 := emulation.DMZ.Addr(10)
	e.probeAll(ctx, a4, a6)

	kubeconfig := e.cluster.Kubeconfig()
	e.p.cmd(ctx, e.kubectl(), "--kubeconfig", kubeconfig, "-n", e.ns, "get", "pod", "web",
		"-o", `jsonpath={.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}`)
	for _, sub := range []string{"attachments", "flows", "stats"} {
		e.p.cmd(ctx, e.Steerctl, "-bpffs", e.layout.Root, sub)
	}
	dir, err := e.layout.Dir(pod.ContainerID)
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
func (e *env) hold(ctx context.Context, pod *emulation.Pod, flows string) {
	a4, _ := emulation.DMZ.Addr(10)
	e.p.heading("The demo stays up: try")
	e.p.say("kubectl --kubeconfig %s -n %s get pods,network-attachment-definitions", e.cluster.Kubeconfig(), e.ns)
	e.p.say("ip netns exec %s ping -c 3 %s          # the remote client to the pod's DMZ address", e.topo.Client.Name(), a4)
	e.p.say("ip netns exec %s ip route get %s from %s", pod.NS.Name(), emulation.Client4, a4)
	e.p.say("%s -bpffs %s flows | stats | groups | attachments", e.Steerctl, e.layout.Root)
	e.p.say("bpftool map dump pinned %s", flows)
	e.p.say("ready (stop with make demo-down or Ctrl-C)")
	<-ctx.Done()
}
