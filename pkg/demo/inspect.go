package demo

import (
	"context"
	"path/filepath"

	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/scenario"
)

// inspect shows a steered pod the ways an operator would look at it.
func (e *env) inspect(ctx context.Context) error {
	e.p.heading("Looking at a steered pod")
	if err := e.setSteering(ctx, true); err != nil {
		return err
	}
	pod, stop, err := e.runPod(ctx, 0, "web", selection(ipsElem("dmz", scenario.DMZ, 10)))
	if err != nil {
		return err
	}
	defer stop()
	echo, err := scenario.StartEcho(pod.NS)
	if err != nil {
		return err
	}
	defer echo.Close()
	a4, a6 := scenario.DMZ.Addr(10)
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
	return nil
}
