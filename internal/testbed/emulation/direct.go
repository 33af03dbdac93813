package emulation

import (
	"context"
	"errors"
	"fmt"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/steernet/steer/pkg/delegate"
	"github.com/steernet/steer/pkg/netconf"
	"github.com/steernet/steer/pkg/steering"
)

// Network is one network a pod is attached to by calling its delegate directly.
type Network struct {
	IfName  string
	Conf    []byte // a CNI conf or conflist
	Primary bool
	Policy  netconf.Policy
}

// Direct attaches pods by calling the delegate plugins one network after the other, as Multus
// does, then hands the results to a steering Dataplane. It is Steer's data path without the
// apiserver, and with steering.Off it is the cluster as Multus leaves it.
type Direct struct {
	Runner    *delegate.Runner
	Dataplane steering.Dataplane
}

// NewDirect uses the plugins in binDir and keeps libcni's cache in cacheDir.
func NewDirect(binDir, cacheDir string, dp steering.Dataplane) *Direct {
	return &Direct{Runner: delegate.NewRunner([]string{binDir}, cacheDir, nil), Dataplane: dp}
}

func target(p *Pod, ifName string) delegate.Target {
	return delegate.Target{
		ContainerID: p.ContainerID,
		NetNS:       p.NS.Path(),
		IfName:      ifName,
		Args:        [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", p.Namespace}, {"K8S_POD_NAME", p.Name}, {"K8S_POD_INFRA_CONTAINER_ID", p.ContainerID}},
	}
}

// Add attaches every network from inside the node's namespace (where macvlan masters and
// bridges live) and then the dataplane; on failure everything added is removed.
func (d *Direct) Add(ctx context.Context, node ns.NetNS, p *Pod, nets []Network) (err error) {
	var atts []steering.Attachment
	defer func() {
		if err != nil {
			err = errors.Join(err, d.Del(ctx, node, p, nets))
		}
	}()
	for _, n := range nets {
		dn, err := delegate.Parse(n.Conf, "1.0.0")
		if err != nil {
			return err
		}
		var r *current.Result
		err = node.Do(func(ns.NetNS) (err error) {
			r, err = d.Runner.Add(ctx, dn, target(p, n.IfName))
			return err
		})
		if err != nil {
			return fmt.Errorf("add %s: %w", n.IfName, err)
		}
		atts = append(atts, steering.Attachment{IfName: n.IfName, Network: dn.Name, Primary: n.Primary, Result: r, Policy: n.Policy})
	}
	if err := d.Dataplane.Attach(ctx, p.ContainerID, p.NS.Path(), atts); err != nil {
		return err
	}
	return p.WaitAddresses(ctx)
}

// Del detaches the dataplane and every network, in reverse; it goes on past failures.
func (d *Direct) Del(ctx context.Context, node ns.NetNS, p *Pod, nets []Network) error {
	errs := []error{d.Dataplane.Detach(ctx, p.ContainerID, p.NS.Path())}
	for i := len(nets) - 1; i >= 0; i-- {
		dn, err := delegate.Parse(nets[i].Conf, "1.0.0")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, node.Do(func(ns.NetNS) error {
			return d.Runner.Del(ctx, dn, target(p, nets[i].IfName))
		}))
	}
	return errors.Join(errs...)
}
