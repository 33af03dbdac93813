package steering

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/datapath"
)

// BPF is the Dataplane that steers with Steer's BPF programs.
type BPF struct {
	Options datapath.Options
	Log     *slog.Logger
	// Disabled attaches nothing; Detach still removes what an earlier ADD attached, so turning
	// steering off in the config never strands programs or pins.
	Disabled bool
}

// Prepare starts loading the pod's collection while the delegates run (see datapath.Spares),
// only for a pod with secondaries: a pod on the cluster network alone has nothing to steer.
func (b BPF) Prepare(atts []Attachment) {
	if b.Disabled || !slices.ContainsFunc(atts, func(a Attachment) bool { return !a.Primary }) {
		return
	}
	b.Options.Spares.Start()
}

// Attach sets the kernel knobs and routes, then loads, attaches and pins the programs. A pod
// with nothing to steer (every network opted out, no groups) gets nothing.
func (b BPF) Attach(ctx context.Context, containerID, netnsPath string, atts []Attachment) (err error) {
	if b.Disabled {
		return nil
	}
	var p plan
	err = ns.WithNetNSPath(netnsPath, func(ns.NetNS) (err error) {
		if p, err = buildPlan(atts); err != nil || !p.steered {
			return err
		}
		defer func() {
			if err != nil {
				err = errors.Join(err, undoKernel(p.cfg.Interfaces))
			}
		}()
		return applyKernel(p)
	})
	if err != nil || !p.steered {
		return err
	}
	if err := datapath.Attach(netnsPath, containerID, p.cfg, b.Options); err != nil {
		return errors.Join(err, b.Detach(ctx, containerID, netnsPath))
	}
	b.logger().Debug("steering attached", "container", containerID, "interfaces", len(p.cfg.Interfaces),
		"groups", len(p.cfg.Groups), "groupRoutes", len(p.groupRoutes), "fallbackRoutes", len(p.fallbacks))
	return nil
}

func applyKernel(p plan) error {
	for _, itf := range p.cfg.Interfaces {
		if itf.Pin {
			if err := setKnobs(itf); err != nil {
				return err
			}
		}
	}
	for _, g := range p.groupRoutes {
		if err := addRoute(g.route(), g); err != nil {
			return err
		}
	}
	for _, f := range p.fallbacks {
		if err := addRoute(f.route(), f); err != nil {
			return err
		}
	}
	return nil
}

func undoKernel(itfs []datapath.Interface) error {
	errs := []error{removeRoutes()}
	for _, itf := range itfs {
		if itf.Pin {
			errs = append(errs, resetKnobs(itf.Name))
		}
	}
	return errors.Join(errs...)
}

// Detach removes the programs and pins and undoes the kernel settings on the interfaces still
// in the namespace. A missing namespace, pins or interfaces are not errors.
func (b BPF) Detach(_ context.Context, containerID, netnsPath string) error {
	steered := steeredInterfaces(b.layout(), containerID)
	errs := []error{datapath.Detach(netnsPath, containerID, b.Options)}
	if netnsPath != "" {
		err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
			var present []datapath.Interface
			for _, name := range steered {
				if _, err := net.InterfaceByName(name); err == nil {
					present = append(present, datapath.Interface{Name: name, Pin: true})
				}
			}
			return undoKernel(present)
		})
		var missing ns.NSPathNotExistErr
		if err != nil && !errors.As(err, &missing) {
			errs = append(errs, fmt.Errorf("undo kernel settings: %w", err))
		}
	}
	return errors.Join(errs...)
}

// steeredInterfaces names the interfaces whose knobs Attach set: those with a learning hook.
// Their link pins say so without reading the pinned configuration, which needs the BPF object
// parsed (10-20 ms in a fresh plugin process, the bulk of a DEL's dataplane work). Legacy TC
// filters leave no link pins: then the configuration is read.
func steeredInterfaces(layout bpffs.Layout, containerID string) []string {
	dir, err := layout.Dir(containerID)
	if err != nil {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var names []string
	links := false
	for _, e := range entries {
		ifname, hook, ok := bpffs.ParseLinkPin(e.Name())
		if !ok {
			continue
		}
		links = true
		if hook != bpffs.HookEgress && !slices.Contains(names, ifname) {
			names = append(names, ifname)
		}
	}
	if links {
		return names
	}
	st, err := datapath.ReadPinned(layout, containerID)
	if err != nil {
		return nil
	}
	for _, itf := range st.Interfaces {
		if itf.Pin {
			names = append(names, itf.Name)
		}
	}
	return names
}

func (b BPF) layout() bpffs.Layout {
	if b.Options.Layout.Root == "" {
		return bpffs.Default()
	}
	return b.Options.Layout
}

func (b BPF) logger() *slog.Logger {
	if b.Log != nil {
		return b.Log
	}
	return slog.New(slog.DiscardHandler)
}

func prefixNet(p netip.Prefix) *net.IPNet {
	p = p.Masked()
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
