package steering

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/steernet/steer/pkg/datapath"
)

// Check verifies that everything Attach set up for these attachments is in place: programs
// attached and pinned, the kernel knobs on steered interfaces, and Steer's routes. The plan is
// derived again, as Attach derived it, so CHECK needs nothing but the cached attachments.
func (b BPF) Check(_ context.Context, containerID, netnsPath string, atts []Attachment) error {
	if b.Disabled {
		return nil
	}
	var (
		p        plan
		problems []error
	)
	err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) (err error) {
		if p, err = buildPlan(atts); err != nil || !p.steered {
			return err
		}
		problems = checkKernel(p)
		return nil
	})
	if err != nil {
		return err
	}
	if !p.steered {
		return nil
	}
	problems = append(problems, datapath.Check(netnsPath, containerID, p.cfg, b.Options)...)
	return errors.Join(problems...)
}

// checkKernel runs inside the pod's namespace.
func checkKernel(p plan) []error {
	var problems []error
	for _, itf := range p.cfg.Interfaces {
		if !itf.Pin {
			continue
		}
		for _, k := range knobs {
			got, err := os.ReadFile(sysctlPath(itf.Name, k.key))
			if err != nil {
				problems = append(problems, fmt.Errorf("sysctl %s on %s: %w", k.key, itf.Name, err))
			} else if v := strings.TrimSpace(string(got)); v != k.val {
				problems = append(problems, fmt.Errorf("sysctl %s on %s is %s, Steer set %s", k.key, itf.Name, v, k.val))
			}
		}
	}
	ours, err := listOwnRoutes()
	if err != nil {
		return append(problems, err)
	}
	for _, g := range p.groupRoutes {
		if !hasRoute(ours, g.route()) {
			problems = append(problems, fmt.Errorf("%s is missing", g))
		}
	}
	for _, f := range p.fallbacks {
		if !hasRoute(ours, f.route()) {
			problems = append(problems, fmt.Errorf("%s is missing", f))
		}
	}
	return problems
}

// listOwnRoutes lists the routes Steer added in the current namespace.
func listOwnRoutes() ([]netlink.Route, error) {
	var out []netlink.Route
	for _, table := range []int{unix.RT_TABLE_MAIN, unix.RT_TABLE_LOCAL} {
		routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL,
			&netlink.Route{Table: table, Protocol: routeProtocol}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			return nil, fmt.Errorf("list routes: %w", err)
		}
		out = append(out, routes...)
	}
	return out, nil
}

func hasRoute(routes []netlink.Route, want *netlink.Route) bool {
	wantDst := routePrefix(want)
	for _, r := range routes {
		if r.LinkIndex == want.LinkIndex && routePrefix(&r) == wantDst && r.Gw.Equal(want.Gw) {
			return true
		}
	}
	return false
}

// routePrefix is a route's destination; netlink may report a default route with no Dst.
func routePrefix(r *netlink.Route) netip.Prefix {
	if r.Dst == nil {
		if r.Family == netlink.FAMILY_V6 {
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	a, _ := netip.AddrFromSlice(r.Dst.IP)
	ones, _ := r.Dst.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones)
}
