package demo

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"

	"github.com/steernet/steer/internal/testbed/localcluster"
	"github.com/steernet/steer/internal/testbed/podns"
)

// world is where the stories run: the emulation (two nodes as network namespaces, a simulated
// kubelet calling the plugin, steerd as a process) or a real node (kubelet and containerd run
// Steer's DaemonSet and the pods).
type world interface {
	// setup brings up the cluster, the nodes, the LANs and Steer, announcing each step; it hands
	// the tear-down of whatever it made to e.defer_.
	setup(ctx context.Context, e *env) error
	// setSteering turns Steer's steering, and Services on secondary networks with it, on or off
	// for the pods created afterwards, as an operator changing the DaemonSet's config would.
	setSteering(ctx context.Context, on bool) error
	// runPod runs pod (its name, namespace, labels and networks annotation) on node i with TCP
	// and UDP echo servers, and returns once it is ready; stop deletes it.
	runPod(ctx context.Context, node int, pod *corev1.Pod) (p *pod, stop func() error, err error)
	cluster() *localcluster.Cluster
	// client is the remote client behind the router, lanHost a host on the DMZ LAN itself.
	client() *podns.NS
	lanHost() *podns.NS
	// nodes is how many nodes run pods; nodeName names node i.
	nodes() int
	nodeName(i int) string
	// pinRoot is the bpffs root Steer pins the pods' programs and maps under.
	pinRoot() string
	// stories are the stories the world can tell, in order.
	stories(e *env) []func(context.Context) (Verdict, error)
	// explore are commands to try while the demo holds (make demo-up), beyond kubectl and steerctl.
	explore(p *pod) []string
}

// pod is a pod as the stories see it: its network namespace and the container ID naming its pins.
type pod struct {
	name, containerID string
	netns             ns.NetNS
}

// exec runs a command in the pod's network namespace and returns its combined output.
func (p *pod) exec(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + p.netns.Path(), "--"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s in pod %s: %w: %s", strings.Join(args, " "), p.name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// strictRPFilter sets rp_filter=1 on every interface of the pod, as hardened images and some
// distributions do; without Steer that alone drops requests arriving from a remote subnet on a
// secondary interface.
func (p *pod) strictRPFilter(ctx context.Context) error {
	_, err := p.exec(ctx, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.default.rp_filter=1")
	return err
}
