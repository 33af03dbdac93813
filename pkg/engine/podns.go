package engine

import (
	"errors"
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/steernet/steer/pkg/steering"
)

// checkNamesFree fails when an interface ADD would create already exists in the pod netns.
// Besides a clearer error than the delegate's, it keeps the rollback from deleting an
// interface this ADD did not create.
func checkNamesFree(netnsPath string, atts []*attachment) error {
	h, err := podNetlink(netnsPath)
	if err != nil {
		return err
	}
	defer h.Close()
	for _, a := range atts {
		_, err := h.LinkByName(a.ifName)
		var notFound netlink.LinkNotFoundError
		switch {
		case err == nil:
			return cniError(types.ErrInvalidNetworkConfig, "network %q: interface %q already exists in the pod network namespace", a.network, a.ifName)
		case !errors.As(err, &notFound):
			return fmt.Errorf("look up interface %q: %w", a.ifName, err)
		}
	}
	return nil
}

// podNetlink opens a netlink handle bound to the pod's network namespace, so the engine's
// work there needs no goroutine locked into it. A missing namespace is CNI code 4.
func podNetlink(netnsPath string) (*netlink.Handle, error) {
	nsh, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return nil, cniError(types.ErrInvalidNetNS, "CNI_NETNS %q: %v", netnsPath, err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return nil, fmt.Errorf("netlink in CNI_NETNS %q: %w", netnsPath, err)
	}
	return h, nil
}

// applyDefaultRoutes moves the default route of each address family some attachment asked
// for ("default-route") to that attachment's interface: the other interfaces lose their
// default routes of that family, in the pod netns and in their results, and the chosen one
// gets one through the requested gateway. netconf allows one gateway per family per pod.
func applyDefaultRoutes(netnsPath string, atts []*attachment) error {
	type choice struct {
		att *attachment
		gw  net.IP
	}
	var chosen []choice
	for _, a := range atts {
		for _, gw := range a.gateways {
			chosen = append(chosen, choice{a, gw})
		}
	}
	if len(chosen) == 0 {
		return nil
	}
	h, err := podNetlink(netnsPath)
	if err != nil {
		return err
	}
	defer h.Close()
	for _, c := range chosen {
		if err := replaceDefaultRoute(h, c.att.ifName, c.gw); err != nil {
			return fmt.Errorf("network %q: default route via %s: %w", c.att.network, c.gw, err)
		}
	}
	for _, c := range chosen {
		for _, a := range atts {
			if a != c.att && a.result != nil {
				a.result.Routes = withoutDefault(a.result.Routes, c.gw)
			}
		}
		res := c.att.result
		res.Routes = append(withoutDefault(res.Routes, c.gw), &types.Route{Dst: *defaultDst(c.gw), GW: c.gw})
	}
	return nil
}

// replaceDefaultRoute works through h, bound to the pod netns.
func replaceDefaultRoute(h *netlink.Handle, ifName string, gw net.IP) error {
	link, err := h.LinkByName(ifName)
	if err != nil {
		return err
	}
	family := netlink.FAMILY_V6
	if gw.To4() != nil {
		family = netlink.FAMILY_V4
	}
	routes, err := h.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if steering.IsDefaultRoute(r.Dst) {
			if err := h.RouteDel(&r); err != nil {
				return fmt.Errorf("delete default route %s: %w", r, err)
			}
		}
	}
	return h.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: defaultDst(gw), Gw: gw})
}

func defaultDst(gw net.IP) *net.IPNet {
	if gw.To4() != nil {
		return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	}
	return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
}

// withoutDefault drops the default routes of gw's family.
func withoutDefault(routes []*types.Route, gw net.IP) []*types.Route {
	v4 := gw.To4() != nil
	out := routes[:0:0]
	for _, r := range routes {
		if steering.IsDefaultRoute(&r.Dst) && (r.Dst.IP.To4() != nil) == v4 {
			continue
		}
		out = append(out, r)
	}
	return out
}

// sandboxInterfaces are the result's interfaces inside the pod.
func sandboxInterfaces(res *current.Result) []*current.Interface {
	var out []*current.Interface
	for _, i := range res.Interfaces {
		if i.Sandbox != "" {
			out = append(out, i)
		}
	}
	return out
}
