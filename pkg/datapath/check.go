package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf/link"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/steernet/steer/pkg/bpffs"
)

// Check verifies that what Attach set up for cfg is still in place: the maps' pins, and on
// every interface the egress hook and, where flows are learned, an ingress hook (TCX or XDP
// link pinned and attached to that interface, or a legacy cls_bpf filter). It returns one
// error per missing piece, each naming it.
func Check(netnsPath, containerID string, cfg Config, opts Options) []error {
	dir, err := opts.layout().Dir(containerID)
	if err != nil {
		return []error{err}
	}
	var problems []error
	for _, name := range []string{bpffs.FlowsPin, bpffs.CountersPin, bpffs.ConfigPin} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			problems = append(problems, fmt.Errorf("map pin %s: %w", filepath.Join(dir, name), err))
		}
	}
	err = ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		for _, itf := range cfg.Interfaces {
			l, err := netlink.LinkByName(itf.Name)
			if err != nil {
				problems = append(problems, fmt.Errorf("interface %s: %w", itf.Name, err))
				continue
			}
			if err := checkHook(dir, itf.Name, l, bpffs.HookEgress); err != nil {
				problems = append(problems, err)
			}
			if !itf.Pin {
				continue
			}
			if checkHook(dir, itf.Name, l, bpffs.HookXDP) == nil {
				continue
			}
			if err := checkHook(dir, itf.Name, l, bpffs.HookIngress); err != nil {
				problems = append(problems, err)
			}
		}
		return nil
	})
	if err != nil {
		problems = append(problems, fmt.Errorf("pod network namespace: %w", err))
	}
	return problems
}

// checkHook finds Steer's program on one hook of l: a pinned link attached to l, or (tc hooks)
// a legacy filter.
func checkHook(dir, ifname string, l netlink.Link, hook string) error {
	pin := filepath.Join(dir, bpffs.LinkPin(ifname, hook))
	pinned, err := link.LoadPinnedLink(pin, nil)
	if err == nil {
		defer pinned.Close()
		info, err := pinned.Info()
		if err != nil {
			return fmt.Errorf("%s program on %s: link %s: %w", hook, ifname, pin, err)
		}
		ifindex := -1
		if tcx := info.TCX(); tcx != nil {
			ifindex = int(tcx.Ifindex)
		} else if xdp := info.XDP(); xdp != nil {
			ifindex = int(xdp.Ifindex)
		}
		if ifindex != l.Attrs().Index {
			return fmt.Errorf("%s program on %s: link %s is attached to interface index %d, not %d", hook, ifname, pin, ifindex, l.Attrs().Index)
		}
		return nil
	}
	if hook != bpffs.HookXDP && hasClsBPF(l, hook) {
		return nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s program on %s: not attached (no pin %s)", hook, ifname, pin)
	}
	return fmt.Errorf("%s program on %s: %w", hook, ifname, err)
}

func hasClsBPF(l netlink.Link, hook string) bool {
	attrs := clsFilterAttrs(l.Attrs().Index, hook)
	filters, err := netlink.FilterList(l, attrs.Parent)
	if err != nil {
		return false
	}
	for _, f := range filters {
		if f.Attrs().Priority == clsPriority {
			return true
		}
	}
	return false
}
