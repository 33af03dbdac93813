package steering

import (
	"fmt"
	"net/netip"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/steernet/steer/pkg/datapath"
)

// buildConfig derives the dataplane configuration from the attachments; it runs inside the
// pod's namespace to read each interface's index, MTU and MAC.
func buildConfig(atts []Attachment) (datapath.Config, bool, error) {
	var cfg datapath.Config
	steered := false
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
			return cfg, false, fmt.Errorf("interface %s: %w", a.IfName, err)
		}
		itf := datapath.Interface{
			Name:    a.IfName,
			Index:   l.Attrs().Index,
			MTU:     l.Attrs().MTU,
			MAC:     l.Attrs().HardwareAddr,
			Primary: a.Primary,
			Pin:     !a.Primary && a.Policy.Steering,
		}
		setAddresses(&itf, a, l)
		if gw := a.Policy.Gateway; gw.IsValid() {
			if gw.Is4() {
				itf.Gateway4 = gw
			} else {
				itf.Gateway6 = gw
			}
		}
		steered = steered || itf.Pin
		cfg.Interfaces = append(cfg.Interfaces, itf)

		for _, p := range a.Policy.Multicast {
			i, ok := groups[p]
			if !ok {
				i = len(cfg.Groups)
				groups[p] = i
				cfg.Groups = append(cfg.Groups, datapath.Group{Prefix: p})
			}
			cfg.Groups[i].Interfaces = append(cfg.Groups[i].Interfaces, a.IfName)
			steered = true
		}
	}
	return cfg, steered, nil
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
		if addr.Is4() && !itf.Addr4.IsValid() {
			itf.Addr4, itf.Gateway4 = addr, validOrZero(gw)
		} else if addr.Is6() && !itf.Addr6.IsValid() {
			itf.Addr6, itf.Gateway6 = addr, validOrZero(gw)
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
		if addr.Is4() && !itf.Addr4.IsValid() {
			itf.Addr4 = addr
		} else if addr.Is6() && !itf.Addr6.IsValid() {
			itf.Addr6 = addr
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
