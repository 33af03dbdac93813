package steering

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/steernet/steer/pkg/datapath"
)

// routeProtocol marks the routes Steer adds, so Detach finds them without remembering them.
const routeProtocol netlink.RouteProtocol = 0x5e

func sysctlPath(ifname, key string) string {
	return filepath.Join("/proc/sys/net/ipv4/conf", ifname, key)
}

func setKnobs(itf datapath.Interface) error {
	for _, k := range knobs {
		if err := os.WriteFile(sysctlPath(itf.Name, k.key), []byte(k.val), 0o644); err != nil {
			return fmt.Errorf("sysctl %s on %s: %w", k.key, itf.Name, err)
		}
	}
	return nil
}

func resetKnobs(ifname string) error {
	var errs []error
	for _, k := range knobs {
		def, err := os.ReadFile(sysctlPath("default", k.key))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		err = os.WriteFile(sysctlPath(ifname, k.key), def, 0o644)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// groupRoute makes a group's sends and joins (IGMP/MLD without an interface named) take one
// interface.
type groupRoute struct {
	prefix  netip.Prefix
	ifindex int
	ifname  string
}

// groupRouteMetric puts Steer's IPv6 group routes before the kernel's per-interface ff00::/8
// routes (metric 256) even for a prefix as wide as theirs.
const groupRouteMetric = 1

// route is the group route as the kernel keeps it. No gateway: a gateway turns multicast into
// unicast to the router's MAC. For IPv6 the route goes to the local table, where the kernel's
// per-interface ff00::/8 routes would otherwise win over anything in main.
func (g groupRoute) route() *netlink.Route {
	r := &netlink.Route{
		LinkIndex: g.ifindex,
		Dst:       prefixNet(g.prefix),
		Scope:     netlink.SCOPE_LINK,
		Protocol:  routeProtocol,
	}
	if g.prefix.Addr().Is6() {
		r.Table = unix.RT_TABLE_LOCAL
		r.Type = unix.RTN_MULTICAST
		r.Scope = netlink.SCOPE_UNIVERSE
		r.Priority = groupRouteMetric
	}
	return r
}

func (g groupRoute) String() string {
	return fmt.Sprintf("multicast route %s dev %s", g.prefix, g.ifname)
}

// fallbackRoute is the default route of a family the primary does not route, through a
// secondary: via its gateway, or on-link without one.
type fallbackRoute struct {
	family  int // 4 or 6
	ifindex int
	ifname  string
	gateway netip.Addr
}

func (f fallbackRoute) route() *netlink.Route {
	r := &netlink.Route{LinkIndex: f.ifindex, Protocol: routeProtocol, Family: netlink.FAMILY_V4}
	r.Dst = prefixNet(netip.PrefixFrom(netip.IPv4Unspecified(), 0))
	if f.family == 6 {
		r.Family = netlink.FAMILY_V6
		r.Dst = prefixNet(netip.PrefixFrom(netip.IPv6Unspecified(), 0))
	}
	if f.gateway.IsValid() {
		r.Gw = f.gateway.AsSlice()
	} else {
		r.Scope = netlink.SCOPE_LINK
	}
	return r
}

func (f fallbackRoute) String() string {
	via := "on-link"
	if f.gateway.IsValid() {
		via = "via " + f.gateway.String()
	}
	return fmt.Sprintf("IPv%d default route %s dev %s", f.family, via, f.ifname)
}

// addRoute adds one of Steer's routes, marked with routeProtocol for removeRoutes.
func addRoute(r *netlink.Route, what fmt.Stringer) error {
	if err := netlink.RouteReplace(r); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// removeRoutes deletes every route Steer added in the current namespace.
func removeRoutes() error {
	var errs []error
	for _, table := range []int{unix.RT_TABLE_MAIN, unix.RT_TABLE_LOCAL} {
		routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL,
			&netlink.Route{Table: table, Protocol: routeProtocol}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for i := range routes {
			if err := netlink.RouteDel(&routes[i]); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
