package steering

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/steernet/steer/pkg/datapath"
)

// Steer's defaults for the cluster shapes operators run, with no key in any NAD:
//   - multicast: the primary networks of Kubernetes clusters (flannel, Calico) carry none, so
//     unless a network of the pod lists groups (even []), all multicast of a family goes
//     through the pod's first steered secondary with an address of that family;
//   - a family the primary does not route (IPv4-only or IPv6-only clusters) gets a default
//     route through a steered secondary that has it, or no reply of that family could leave;
//   - when a default route leaves by a secondary ("default-route" in the selection), the
//     primary's return traffic is pinned to it like a secondary's.

// Every multicast group of each family, the default for a pod that names none.
var (
	allGroups4 = netip.MustParsePrefix("224.0.0.0/4")
	allGroups6 = netip.MustParsePrefix("ff00::/8")
)

// multicastKeyGiven tells whether any network of the pod lists groups, even none.
func multicastKeyGiven(atts []Attachment) bool {
	for _, a := range atts {
		if a.Policy.Multicast != nil {
			return true
		}
	}
	return false
}

// defaultGroupRoutes sends all multicast of each family through the first pinned interface
// with an address of that family. Routes only, no BPF groups: the kernel then picks that
// interface and its source address for default sockets and joins, while an application that
// names an interface (IP_MULTICAST_IF, a scope ID, SO_BINDTODEVICE) keeps its choice.
func defaultGroupRoutes(itfs []datapath.Interface) []groupRoute {
	var out []groupRoute
	for _, fam := range []struct {
		all netip.Prefix
		has func(datapath.Interface) bool
	}{
		{allGroups4, func(i datapath.Interface) bool { return i.Addr4.IsValid() }},
		{allGroups6, func(i datapath.Interface) bool { return i.Addr6.IsValid() }},
	} {
		for _, itf := range itfs {
			if itf.Pin && !itf.Primary && fam.has(itf) {
				out = append(out, groupRoute{prefix: fam.all, ifindex: itf.Index, ifname: itf.Name})
				break
			}
		}
	}
	return out
}

// defaultRoutes maps each family (4, 6) to the interfaces of the main table's default routes
// that Steer did not add.
func defaultRoutes() (map[int][]int, error) {
	out := map[int][]int{}
	for fam, nlFam := range map[int]int{4: netlink.FAMILY_V4, 6: netlink.FAMILY_V6} {
		routes, err := netlink.RouteListFiltered(nlFam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return nil, fmt.Errorf("list routes: %w", err)
		}
		for _, r := range routes {
			if r.Protocol == routeProtocol || !IsDefaultRoute(r.Dst) || r.Type != unix.RTN_UNICAST {
				continue
			}
			if r.LinkIndex != 0 {
				out[fam] = append(out[fam], r.LinkIndex)
			}
			for _, nh := range r.MultiPath {
				out[fam] = append(out[fam], nh.LinkIndex)
			}
		}
	}
	return out, nil
}

// IsDefaultRoute tells whether a route's destination is a default: netlink reports one with no
// Dst, or with a /0 one.
func IsDefaultRoute(dst *net.IPNet) bool {
	if dst == nil {
		return true
	}
	ones, _ := dst.Mask.Size()
	return ones == 0 && dst.IP.IsUnspecified()
}

// chooseFallbacks picks, for each family with no default route, the pinned secondary that
// carries one: the first whose policy prefers it, else the first not refusing it, in
// annotation order.
func chooseFallbacks(atts []Attachment, itfs []datapath.Interface, defaults map[int][]int) []fallbackRoute {
	var out []fallbackRoute
	for _, fam := range []int{4, 6} {
		if len(defaults[fam]) > 0 {
			continue
		}
		best := -1
		for i, itf := range itfs {
			addr, _ := familyAddrs(itf, fam)
			if !itf.Pin || itf.Primary || !addr.IsValid() {
				continue
			}
			pref := atts[i].Policy.FallbackRoute
			if pref != nil && !*pref {
				continue
			}
			if pref != nil && *pref {
				best = i
				break
			}
			if best < 0 {
				best = i
			}
		}
		if best >= 0 {
			_, gw := familyAddrs(itfs[best], fam)
			out = append(out, fallbackRoute{family: fam, ifindex: itfs[best].Index, ifname: itfs[best].Name, gateway: gw})
		}
	}
	return out
}

func familyAddrs(itf datapath.Interface, fam int) (addr, gw netip.Addr) {
	if fam == 4 {
		return itf.Addr4, itf.Gateway4
	}
	return itf.Addr6, itf.Gateway6
}

// pinPrimary tells whether a default route leaves by an interface other than the primary: then
// requests that reached the pod through the primary (other pods, kubelet probes, Services)
// would be answered through that interface, so the primary's return traffic is pinned too.
func pinPrimary(itfs []datapath.Interface, defaults map[int][]int) bool {
	if len(itfs) == 0 || !itfs[0].Primary {
		return false
	}
	for _, links := range defaults {
		for _, idx := range links {
			if idx != itfs[0].Index {
				return true
			}
		}
	}
	return false
}
