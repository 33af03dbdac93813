package demo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/internal/testbed/localcluster"
	"github.com/steernet/steer/internal/testbed/podns"
	"github.com/steernet/steer/pkg/bpffs"
)

// emulated is the emulation: two nodes as network namespaces joined by a VXLAN overlay, a
// simulated kubelet per node calling the plugin through libcni, steerd as a process per node.
type emulated struct {
	o        Options
	c        *localcluster.Cluster
	topo     *emulation.Topology
	layout   bpffs.Layout
	hosts    [2]emulation.HostRoot
	kubelets [2]*emulation.Kubelet
	steerd   [2]*emulation.Steerd
}

func (w *emulated) setup(ctx context.Context, e *env) (err error) {
	start := time.Now()
	e.p.step("kube-apiserver and etcd on loopback")
	if w.c, err = localcluster.Start(ctx, localcluster.Options{Logger: e.Log}); err != nil {
		return err
	}
	e.defer_(w.c.Stop)
	e.p.done(time.Since(start))

	start = time.Now()
	e.p.step("two nodes joined by an IPv4-only VXLAN overlay (the flannel / Calico VXLAN case, single-stack like most clusters), a dual-stack DMZ and management LAN behind a router, a client on a remote subnet")
	if w.topo, err = emulation.Build(ctx, e.Prefix); err != nil {
		return err
	}
	e.defer_(w.topo.Close)
	w.layout = bpffs.Layout{Root: PinRoot(e.Prefix)}
	if err := w.layout.EnsureMounted(); err != nil {
		return err
	}
	e.defer_(func() error { return os.RemoveAll(w.layout.Root) })
	apiAddr := strings.TrimPrefix(w.c.Host(), "https://")
	for i := range w.hosts {
		fwd, err := emulation.ForwardAPI(w.topo.Nodes[i], apiAddr)
		if err != nil {
			return err
		}
		e.defer_(fwd.Close)
		dir, err := os.MkdirTemp("", fmt.Sprintf("steer-demo-node-%c-", 'a'+i))
		if err != nil {
			return err
		}
		e.defer_(func() error { return os.RemoveAll(dir) })
		if w.hosts[i], err = emulation.NewHostRootOf(dir, i, emulation.IPv4Only); err != nil {
			return err
		}
		w.kubelets[i] = emulation.NewKubelet(w.topo, i, w.hosts[i], w.c.Client(), e.Prefix)
	}
	e.p.done(time.Since(start))

	start = time.Now()
	e.p.step("Steer installed on both nodes as its DaemonSet does: the plugin binary, then steerd (thick mode), which writes a CNI config wrapping the overlay's")
	for _, h := range w.hosts {
		if err := h.InstallPlugin(e.Plugin); err != nil {
			return err
		}
	}
	e.defer_(w.stopSteerd)
	if err := w.startSteerd(ctx, false); err != nil {
		return err
	}
	e.p.done(time.Since(start))
	return nil
}

// startSteerd starts steerd on both nodes with steering on or off; it writes the nodes' CNI
// config, so pods created afterwards get that behaviour.
func (w *emulated) startSteerd(ctx context.Context, on bool) error {
	for i, h := range w.hosts {
		d, err := emulation.StartSteerd(ctx, w.topo.Nodes[i], i, h, emulation.SteerdOptions{
			Binary: w.o.Steerd, Kubeconfig: w.c.Kubeconfig(), BPFFSRoot: w.layout.Root, Steering: on, LogLevel: "error",
			// Services on secondary networks come with steering: both are what Steer adds to Multus.
			Services: on,
		})
		if err != nil {
			return err
		}
		w.steerd[i] = d
	}
	return nil
}

func (w *emulated) stopSteerd() error {
	var errs []error
	for i, d := range w.steerd {
		if d != nil {
			errs = append(errs, d.Stop())
			w.steerd[i] = nil
		}
	}
	return errors.Join(errs...)
}

// setSteering restarts steerd on both nodes with steering on or off.
func (w *emulated) setSteering(ctx context.Context, on bool) error {
	if err := w.stopSteerd(); err != nil {
		return err
	}
	return w.startSteerd(ctx, on)
}

// runPod creates the pod through the apiserver and the node's CNI config, starts its echo
// servers and marks it Ready, as its kubelet would once its containers pass their probes (the
// EndpointSlices of Services list ready pods).
func (w *emulated) runPod(ctx context.Context, node int, spec *corev1.Pod) (*pod, func() error, error) {
	p, err := w.kubelets[node].RunPod(ctx, spec)
	if err != nil {
		return nil, nil, err
	}
	var echo *emulation.Echo
	stop := func() error {
		if echo != nil {
			echo.Close()
		}
		return w.kubelets[node].StopPod(context.Background(), p)
	}
	if echo, err = emulation.StartEcho(p.NS); err == nil {
		err = w.markReady(ctx, spec)
	}
	if err != nil {
		return nil, nil, errors.Join(err, stop())
	}
	return &pod{name: spec.Name, containerID: p.ContainerID, netns: p.NS}, stop, nil
}

func (w *emulated) markReady(ctx context.Context, spec *corev1.Pod) error {
	pods := w.c.Client().CoreV1().Pods(spec.Namespace)
	obj, err := pods.Get(ctx, spec.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	obj.Status.Phase = corev1.PodRunning
	obj.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	_, err = pods.UpdateStatus(ctx, obj, metav1.UpdateOptions{})
	return err
}

func (w *emulated) cluster() *localcluster.Cluster { return w.c }
func (w *emulated) client() *podns.NS              { return w.topo.Client }
func (w *emulated) lanHost() *podns.NS             { return w.topo.LANHost }
func (w *emulated) nodes() int                     { return len(w.hosts) }
func (w *emulated) nodeName(i int) string          { return fmt.Sprintf("node-%c", 'a'+i) }
func (w *emulated) pinRoot() string                { return w.layout.Root }

func (w *emulated) stories(e *env) []func(context.Context) (Verdict, error) {
	return []func(context.Context) (Verdict, error){e.seed002, e.seed000, e.seed001, e.seed001Service}
}

func (w *emulated) explore(p *pod) []string {
	a4, _ := emulation.DMZ.Addr(10)
	return []string{
		fmt.Sprintf("ip netns exec %s ping -c 3 %s          # the remote client to the pod's DMZ address", w.topo.Client.Name(), a4),
		fmt.Sprintf("ip netns exec %s ip route get %s from %s", p.netns.(*podns.NS).Name(), emulation.Client4, a4),
	}
}
