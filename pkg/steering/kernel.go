package steering

import (
	"errors"
	"fmt"
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

// addGroupRoute makes a group's sends and joins (IGMP/MLD without an interface named) take the
// group's first interface. No gateway: a gateway turns multicast into unicast to the router's
// MAC. For IPv6 the route goes to the local table, where the kernel's per-interface ff00::/8
// routes would otherwise win over anything in main.
func addGroupRoute(g datapath.Group, ifindex int) error {
	r := &netlink.Route{
		LinkIndex: ifindex,
		Dst:       prefixNet(g.Prefix),
		Scope:     netlink.SCOPE_LINK,
		Protocol:  routeProtocol,
	}
	if g.Prefix.Addr().Is6() {
		r.Table = unix.RT_TABLE_LOCAL
		r.Type = unix.RTN_MULTICAST
		r.Scope = netlink.SCOPE_UNIVERSE
	}
	if err := netlink.RouteReplace(r); err != nil {
		return fmt.Errorf("route %s: %w", g.Prefix, err)
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
