package emulation

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/steernet/steer/internal/testbed/podns"
)

// Pod is a pod sandbox of the emulation: a network namespace on a node.
type Pod struct {
	Name        string
	Namespace   string // the Kubernetes namespace, when the pod exists in the apiserver
	UID         string
	Node        int
	ContainerID string
	NS          *podns.NS
	Result      types.Result // what CNI ADD returned
}

// NewPod creates a pod sandbox on node; Remove deletes it.
func NewPod(prefix, name string, node int) (*Pod, error) {
	n, err := podns.New(prefix + "-" + name)
	if err != nil {
		return nil, err
	}
	// The container ID is unique per sandbox, as a runtime's is.
	return &Pod{Name: name, Namespace: "default", Node: node, ContainerID: n.Name(), NS: n}, nil
}

// Remove deletes the sandbox's namespace.
func (p *Pod) Remove() error { return p.NS.Remove() }

// Exec runs a command inside the pod and returns its combined output.
func (p *Pod) Exec(ctx context.Context, args ...string) (string, error) {
	return execIn(ctx, p.NS.Name(), args...)
}

func execIn(ctx context.Context, ns string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s in %s: %w: %s", strings.Join(args, " "), ns, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// StrictRPFilter sets rp_filter=1 on every interface of the pod, as hardened images and some
// distributions do; without Steer that alone drops requests arriving from a remote subnet on a
// secondary interface.
func (p *Pod) StrictRPFilter(ctx context.Context) error {
	_, err := p.Exec(ctx, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.default.rp_filter=1")
	return err
}

// Exec runs a command in one of the topology's namespaces.
func Exec(ctx context.Context, n *podns.NS, args ...string) (string, error) {
	return execIn(ctx, n.Name(), args...)
}

// WaitAddresses waits until no IPv6 address of the pod is tentative (duplicate address
// detection takes about a second after ADD), as an application starting later would find it.
func (p *Pod) WaitAddresses(ctx context.Context) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := p.Exec(ctx, "ip", "-6", "-o", "addr", "show", "tentative")
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("addresses still tentative: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
