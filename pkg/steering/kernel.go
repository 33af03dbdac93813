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

// Kernel settings on steered interfaces, undone by resetting them to the namespace default.
//   - rp_filter loose: strict filtering drops a request from a remote subnet arriving on net1
//     (its source is routed via eth0) before any TC program can help;
//   - arp_ignore=1: otherwise net1 answers ARP for eth0's address.
var sysctls = []string{"rp_filter", "arp_ignore"}

func sysctlPath(ifname, key string) string {
	return filepath.Join("/proc/sys/net/ipv4/conf", ifname, key)
}

func setKnobs(itf datapath.Interface) error {
	for key, val := range map[string]string{"rp_filter": "2", "arp_ignore": "1"} {
		if err := os.WriteFile(sysctlPath(itf.Name, key), []byte(val), 0o644); err != nil {
			return fmt.Errorf("sysctl %s on %s: %w", key, itf.Name, err)
		}
	}
	return nil
}

func resetKnobs(ifname string) error {
	var errs []error
	for _, key := range sysctls {
		def, err := os.ReadFile(sysctlPath("default", key))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		err = os.WriteFile(sysctlPath(ifname, key), def, 0o644)
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
