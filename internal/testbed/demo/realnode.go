package demo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"

	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/internal/testbed/localcluster"
	"github.com/steernet/steer/internal/testbed/podns"
	"github.com/steernet/steer/internal/testbed/realnode"
	"github.com/steernet/steer/pkg/bpffs"
)

// realNode is a real node next to the local apiserver: containerd and kubelet (with
// kube-controller-manager and kube-scheduler) run Steer's DaemonSet, installed with Helm, and
// the pods, which run the echo image.
type realNode struct {
	o        Options
	p        printer
	kubectl  string
	c        *localcluster.Cluster
	node     *realnode.Node
	helm     string
	steering *bool // as deployed; nil before the first deployment
}

func (w *realNode) setup(ctx context.Context, e *env) (err error) {
	w.p, w.kubectl = e.p, e.kubectl()
	image := w.o.Image
	if image == "" {
		if image, err = realnode.SteerImageTarball(); err != nil {
			return err
		}
	}
	if w.helm, err = realnode.Helm(); err != nil {
		return err
	}
	start := time.Now()
	e.p.step("kube-apiserver and etcd on loopback")
	if w.c, err = localcluster.Start(ctx, localcluster.Options{Logger: e.Log, ExtraAPIServerArgs: realnode.APIServerArgs}); err != nil {
		return err
	}
	e.defer_(w.c.Stop)
	e.p.done(time.Since(start))

	start = time.Now()
	e.p.step(fmt.Sprintf("a real node: containerd %s and kubelet %s (with kube-controller-manager and kube-scheduler) in a network namespace of their own, an IPv4-only bridge as the cluster network (the flannel shape, single-stack like most clusters), an uplink lan0 into a dual-stack DMZ LAN behind a router, a client on a remote subnet",
		localcluster.Version("containerd"), localcluster.DefaultKubeVersion))
	if w.node, err = realnode.Start(ctx, w.c, realnode.Options{Logger: e.Log}); err != nil {
		return err
	}
	e.defer_(func() error {
		err := w.node.Stop()
		if left := w.node.Leftovers(); len(left) > 0 {
			err = errors.Join(err, fmt.Errorf("the node left: %s", strings.Join(left, "; ")))
		}
		return err
	})
	e.p.done(time.Since(start))

	start = time.Now()
	e.p.step("Steer's image (make image) imported into containerd, as on a node without a registry")
	if err := w.node.LoadSteerImage(ctx, image, "demo"); err != nil {
		return err
	}
	e.p.done(time.Since(start))
	// Deployed with steering off: the stories start there.
	if err := w.setSteering(ctx, false); err != nil {
		return err
	}
	e.p.cmd(ctx, w.kubectl, "--kubeconfig", w.c.Kubeconfig(), "-n", realnode.SteerNamespace, "get", "pods", "-o", "wide")
	return nil
}

// setSteering installs or upgrades Steer's Helm release with the plugin config's steering key,
// and waits for the DaemonSet's rollout: the new steerd's init container rewrites the CNI config
// containerd loads for the pods created afterwards.
func (w *realNode) setSteering(ctx context.Context, on bool) error {
	if w.steering != nil && *w.steering == on {
		return nil
	}
	var values []string
	if !on {
		values = []string{"--set-json", `pluginConfig={"steering":false}`}
	}
	start := time.Now()
	cmd, err := w.node.HelmSteer(ctx, w.helm, w.node.Images().Steer, values...)
	if err != nil {
		return err
	}
	w.p.say("$ %s", cmd)
	w.p.step("Steer's DaemonSet rolling out")
	if err := w.node.WaitSteerRolledOut(ctx, w.node.Images().Steer); err != nil {
		return err
	}
	w.p.done(time.Since(start))
	w.steering = &on
	return nil
}

// runPod creates the pod through the apiserver with the echo image; kubelet and containerd run
// it, calling Steer for its networks.
func (w *realNode) runPod(ctx context.Context, _ int, spec *corev1.Pod) (*pod, func() error, error) {
	if err := w.node.WaitNamespaceReady(ctx, spec.Namespace); err != nil {
		return nil, nil, err
	}
	obj := w.node.EchoPod(spec.Namespace, spec.Name, "", spec.Labels)
	obj.Annotations = spec.Annotations
	p, err := w.node.RunPod(ctx, obj)
	if err != nil {
		return nil, nil, errors.Join(err, w.node.DeletePod(context.Background(), spec.Namespace, spec.Name))
	}
	netns, err := ns.GetNS(p.NetNS)
	if err != nil {
		return nil, nil, errors.Join(err, w.node.DeletePod(context.Background(), spec.Namespace, spec.Name))
	}
	stop := func() error {
		return errors.Join(netns.Close(), w.node.DeletePod(context.Background(), spec.Namespace, spec.Name))
	}
	return &pod{name: spec.Name, containerID: p.SandboxID, netns: netns}, stop, nil
}

func (w *realNode) cluster() *localcluster.Cluster { return w.c }
func (w *realNode) client() *podns.NS              { return w.node.LAN().Client }
func (w *realNode) lanHost() *podns.NS             { return w.node.LAN().Host }
func (w *realNode) nodes() int                     { return 1 }
func (w *realNode) nodeName(int) string            { return w.node.Name() }
func (w *realNode) pinRoot() string                { return bpffs.DefaultRoot }

func (w *realNode) stories(e *env) []func(context.Context) (Verdict, error) {
	return []func(context.Context) (Verdict, error){e.seed002, e.seed000, e.seed001Service}
}

func (w *realNode) explore(p *pod) []string {
	a4, _ := emulation.DMZ.Addr(10)
	return []string{
		fmt.Sprintf("%s pods          # containerd's pod sandboxes", w.node.CrictlCommand()),
		fmt.Sprintf("ip netns exec %s ping -c 3 %s          # the remote client to the pod's DMZ address", w.node.LAN().Client.Name(), a4),
		fmt.Sprintf("nsenter --net=%s ip route get %s from %s", p.netns.Path(), emulation.Client4, a4),
	}
}
