package soak

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/internal/testbed/localcluster"
	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/k8s"
)

// Networks the campaign's pods use. Addresses come from host-local, so a leaked allocation
// shows as a file left in the IPAM directory.
const (
	NetDMZ    = "soak-dmz"
	NetMgmt   = "soak-mgmt"
	NetBroken = "soak-broken" // macvlan on a master that does not exist: ADD fails
	NetHang   = "soak-hang"   // a plugin whose ADD never returns
	// HangPlugin is the hanging plugin's type (a script in every node's bin dir).
	HangPlugin = "soak-hang"
)

// DelegateTimeout is the plugin's delegateTimeout during the campaign: short, so a hung
// delegate costs seconds, long enough for a real delegate on a loaded machine.
const DelegateTimeout = "4s"

// Env is the two-node emulation with a real apiserver, in which the campaign runs pods.
type Env struct {
	Topo      *emulation.Topology
	Cluster   *localcluster.Cluster
	Namespace string
	Hosts     [2]emulation.HostRoot
	Kubelets  [2]*emulation.Kubelet
	Layout    bpffs.Layout
	IPAMDir   string // the soak networks' host-local dataDir, shared by both nodes
	Prefix    string // of every namespace the campaign creates
	Plugin    string // steer binary
	Steerd    string // steerd binary
	Daemons   [2]*emulation.Steerd
	BPF       *BPFObjects // recorded after each ADD, for the leftover count

	closers []func() error
}

// EnvOptions are what NewEnv needs; the caller owns the cluster, namespace and directories.
type EnvOptions struct {
	Cluster   *localcluster.Cluster
	Namespace string
	Dir       string // for the nodes' files
	Layout    bpffs.Layout
	Prefix    string
	Plugin    string
	Steerd    string
}

// NewEnv builds the topology and the nodes, and creates the campaign's networks. Close
// undoes it.
func NewEnv(ctx context.Context, o EnvOptions) (_ *Env, err error) {
	e := &Env{Cluster: o.Cluster, Namespace: o.Namespace, Layout: o.Layout, Prefix: o.Prefix,
		Plugin: o.Plugin, Steerd: o.Steerd, IPAMDir: filepath.Join(o.Dir, "ipam"), BPF: NewBPFObjects(o.Layout.Root)}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.Close())
		}
	}()
	if e.Topo, err = emulation.Build(ctx, o.Prefix); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, e.Topo.Close)
	apiAddr := strings.TrimPrefix(o.Cluster.Host(), "https://")
	for i := range e.Hosts {
		fwd, err := emulation.ForwardAPI(e.Topo.Nodes[i], apiAddr)
		if err != nil {
			return nil, err
		}
		e.closers = append(e.closers, fwd.Close)
		if e.Hosts[i], err = emulation.NewHostRoot(filepath.Join(o.Dir, fmt.Sprintf("node-%d", i)), i); err != nil {
			return nil, err
		}
		if err := installHangPlugin(e.Hosts[i].BinDir()); err != nil {
			return nil, err
		}
		e.Kubelets[i] = emulation.NewKubelet(e.Topo, i, e.Hosts[i], o.Cluster.Client(), o.Prefix+"p")
	}
	nads, err := k8s.NewNADClientForConfig(o.Cluster.RESTConfig())
	if err != nil {
		return nil, err
	}
	for name, conf := range e.networks() {
		nad := &k8s.NetworkAttachmentDefinition{Spec: k8s.NetworkAttachmentDefinitionSpec{Config: conf}}
		nad.Name, nad.Namespace = name, o.Namespace
		if _, err := nads.Create(ctx, nad); err != nil {
			return nil, fmt.Errorf("create %s: %w", name, err)
		}
	}
	return e, nil
}

// networks are the campaign's NetworkAttachmentDefinitions: macvlan on both LANs with
// host-local ranges that stay clear of the static addresses other tests use.
func (e *Env) networks() map[string]string {
	lan := func(name string, l emulation.LAN, master string) string {
		return fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"type":"macvlan","master":%q,"mode":"bridge",
 "ipam":{"type":"host-local","dataDir":%q,"ranges":[
   [{"subnet":%q,"rangeStart":"%s","rangeEnd":"%s"}],
   [{"subnet":%q,"rangeStart":"%s","rangeEnd":"%s"}]]},
 "steer":{"gateway":%q}}`, name, master, e.IPAMDir,
			l.V4, hostAddr(l, 100), hostAddr(l, 250), l.V6, hostAddr6(l, 0x100), hostAddr6(l, 0x1ff), l.Gateway4)
	}
	return map[string]string{
		NetDMZ:    lan(NetDMZ, emulation.DMZ, emulation.DMZ.Master),
		NetMgmt:   lan(NetMgmt, emulation.Mgmt, emulation.Mgmt.Master),
		NetBroken: lan(NetBroken, emulation.DMZ, "nosuchdev0"),
		NetHang:   fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"type":%q}`, NetHang, HangPlugin),
	}
}

func hostAddr(l emulation.LAN, host int) string {
	a, _ := l.Addr(host)
	return a.String()
}

func hostAddr6(l emulation.LAN, host int) string {
	a := l.V6.Addr().As16()
	a[14], a[15] = byte(host>>8), byte(host)
	return netip.AddrFrom16(a).String()
}

// installHangPlugin writes a plugin whose ADD hangs until it is killed, as a plugin stuck on
// a lock or an unreachable IPAM server does. Its DEL succeeds: it never created anything.
// exec -a keeps the plugin's path in argv[0], so a leftover sleep shows in the inventory.
func installHangPlugin(binDir string) error {
	script := `#!/bin/bash
case "$CNI_COMMAND" in
ADD) exec -a "$0" sleep 600 ;;
VERSION) echo '{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}' ;;
esac
exit 0
`
	return os.WriteFile(filepath.Join(binDir, HangPlugin), []byte(script), 0o755)
}

// PluginKeys are the plugin config keys of the campaign, thin and thick.
func PluginKeys() map[string]any { return map[string]any{"delegateTimeout": DelegateTimeout} }

// UseThin stops the daemons, if any, and installs the thin plugin config on both nodes.
func (e *Env) UseThin() error {
	if err := e.stopDaemons(); err != nil {
		return err
	}
	for i := range e.Hosts {
		err := e.Hosts[i].InstallSteer(e.Plugin, emulation.SteerOptions{
			Kubeconfig: e.Cluster.Kubeconfig(), BPFFSRoot: e.Layout.Root, Steering: true, Extra: PluginKeys(),
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// UseThick starts steerd on both nodes; each writes its node's thick-mode config.
func (e *Env) UseThick(ctx context.Context) error {
	for i := range e.Hosts {
		if err := e.StartDaemon(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// StartDaemon starts steerd on node i (again, after a kill).
func (e *Env) StartDaemon(ctx context.Context, i int) error {
	d, err := emulation.StartSteerd(ctx, e.Topo.Nodes[i], i, e.Hosts[i], emulation.SteerdOptions{
		Binary: e.Steerd, Kubeconfig: e.Cluster.Kubeconfig(), BPFFSRoot: e.Layout.Root, Steering: true, Extra: PluginKeys(),
	})
	if err != nil {
		return err
	}
	e.Daemons[i] = d
	return nil
}

func (e *Env) stopDaemons() error {
	var errs []error
	for i, d := range e.Daemons {
		if d != nil {
			errs = append(errs, d.Stop())
			e.Daemons[i] = nil
		}
	}
	return errors.Join(errs...)
}

// Scope is where the campaign's leftovers would be.
func (e *Env) Scope() Scope {
	s := Scope{NetnsPrefix: e.Prefix + "p-", BPFFSRoot: e.Layout.Root, BPF: e.BPF, IPAMDirs: []string{e.IPAMDir}}
	for i, h := range e.Hosts {
		s.Nodes = append(s.Nodes, e.Topo.Nodes[i])
		s.IPAMDirs = append(s.IPAMDirs, h.IPAMDir())
		s.CacheDirs = append(s.CacheDirs, h.RuntimeDir(), h.CNIDir())
		s.BinDirs = append(s.BinDirs, h.BinDir())
	}
	return s
}

// Close stops the daemons and removes the topology.
func (e *Env) Close() error {
	errs := []error{e.stopDaemons()}
	for i := len(e.closers) - 1; i >= 0; i-- {
		errs = append(errs, e.closers[i]())
	}
	return errors.Join(errs...)
}
