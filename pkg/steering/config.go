package steering

import (
	"fmt"
	"net/netip"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/steernet/steer/pkg/datapath"
)

// plan is what Attach sets up in a pod: the programs' configuration and the routes the kernel
// needs beside them.
type plan struct {
	cfg     datapath.Config
	steered bool // anything to attach at all
	// groupRoutes make sends and joins of each group take its interface; fallbacks give a family
	// the primary does not route a default route through a secondary.
	groupRoutes []groupRoute
	fallbacks   []fallbackRoute
}

// buildPlan derives the dataplane configuration and kernel routes from the attachments and the
// namespace's routes as the delegates left them; it runs inside the pod's namespace to read
// each interface's index, MTU and MAC.
func buildPlan(atts []Attachment) (plan, error) {
	var p plan
	cfg := &p.cfg
	// The primary first: slot 0 is the cluster network.
	ordered := make([]Attachment, 0, len(atts))
	for _, a := range atts {
		if a.Primary {
			ordered = append([]Attachment{a}, ordered...)
		} else {
			ordered = append(ordered, a)
		}
	}
	groups := map[netip.Prefix]int{} // prefix -> index in cfg.Groups
	for _, a := range ordered {
		l, err := netlink.LinkByName(a.IfName)
		if err != nil {
			return p, fmt.Errorf("interface %s: %w", a.IfName, err)
		}
		itf := datapath.Interface{
			Name:    a.IfName,
			Index:   l.Attrs().Index,
			MTU:     l.Attrs().MTU,
			MAC:     l.Attrs().HardwareAddr,
			Primary: a.Primary,
			Pin:     !a.Primary && a.Policy.Steering,
			Kind:    l.Type(),
		}
		setAddresses(&itf, a, l)
		for _, gw := range a.Policy.Gateways {
			if gw.Is4() {
				itf.Gateway4 = gw
			} else {
				itf.Gateway6 = gw
			}
		}
		p.steered = p.steered || itf.Pin
		cfg.Interfaces = append(cfg.Interfaces, itf)

		for _, g := range a.Policy.Multicast {
			i, ok := groups[g]
			if !ok {
				i = len(cfg.Groups)
				groups[g] = i
				cfg.Groups = append(cfg.Groups, datapath.Group{Prefix: g})
				p.groupRoutes = append(p.groupRoutes, groupRoute{prefix: g, ifindex: itf.Index, ifname: itf.Name})
			}
			cfg.Groups[i].Interfaces = append(cfg.Groups[i].Interfaces, a.IfName)
			p.steered = true
		}
	}
	if !multicastKeyGiven(ordered) {
		p.groupRoutes = append(p.groupRoutes, defaultGroupRoutes(cfg.Interfaces)...)
	}
	defaults, err := defaultRoutes()
	if err != nil {
		return p, err
	}
	p.fallbacks = chooseFallbacks(ordered, cfg.Interfaces, defaults)
	if pinPrimary(cfg.Interfaces, defaults) {
		cfg.Interfaces[0].Pin = true
		p.steered = true
	}
	return p, nil
}

// setAddresses takes the interface's first IPv4 and IPv6 address and gateway from the
// delegate's result, or from the link when the result does not say (some delegates report
// no interface index).
func setAddresses(itf *datapath.Interface, a Attachment, l netlink.Link) {
	for _, ip := range resultIPs(a.Result, a.IfName) {
		addr, ok := netip.AddrFromSlice(ip.Address.IP)
		if !ok {
			continue
		}
		addr = addr.Unmap()
		gw, _ := netip.AddrFromSlice(ip.Gateway)
		gw = gw.Unmap()
		bits, _ := ip.Address.Mask.Size()
		if addr.Is4() && !itf.Addr4.IsValid() {
			itf.Addr4, itf.Bits4, itf.Gateway4 = addr, bits, validOrZero(gw)
		} else if addr.Is6() && !itf.Addr6.IsValid() {
			itf.Addr6, itf.Bits6, itf.Gateway6 = addr, bits, validOrZero(gw)
		}
	}
	if itf.Addr4.IsValid() || itf.Addr6.IsValid() {
		return
	}
	addrs, _ := netlink.AddrList(l, netlink.FAMILY_ALL)
	for _, ad := range addrs {
		addr, ok := netip.AddrFromSlice(ad.IP)
		if !ok || addr.IsLinkLocalUnicast() {
			continue
		}
		addr = addr.Unmap()
		bits, _ := ad.Mask.Size()
		if addr.Is4() && !itf.Addr4.IsValid() {
			itf.Addr4, itf.Bits4 = addr, bits
		} else if addr.Is6() && !itf.Addr6.IsValid() {
			itf.Addr6, itf.Bits6 = addr, bits
		}
	}
}

func validOrZero(a netip.Addr) netip.Addr {
	if a.IsValid() && !a.IsUnspecified() {
		return a
	}
	return netip.Addr{}
}

// resultIPs returns the IPs a result gives to the sandbox interface named ifName; IPs with no
// interface index belong to the only interface when there is one.
func resultIPs(r *current.Result, ifName string) []*current.IPConfig {
	if r == nil {
		return nil
	}
	var out []*current.IPConfig
	for _, ip := range r.IPs {
		if ip.Interface == nil {
			out = append(out, ip)
			continue
		}
		i := *ip.Interface
		if i >= 0 && i < len(r.Interfaces) && r.Interfaces[i].Name == ifName && r.Interfaces[i].Sandbox != "" {
			out = append(out, ip)
		}
	}
	return out
}
