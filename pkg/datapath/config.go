// Package datapath loads Steer's BPF programs for one pod, attaches them in the pod's network
// namespace and pins them so they outlive the short-lived CNI plugin.
package datapath

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// MaxInterfaces and MaxGroups are the sizes of the load-time tables (enum steer_limits).
const (
	MaxInterfaces = int(steerSteerLimitsSTEER_MAX_IFACES)
	MaxGroups     = int(steerSteerLimitsSTEER_MAX_GROUPS)
)

// DefaultFlowEntries bounds the flow table of a pod: about 0.5 MiB of kernel memory.
const DefaultFlowEntries = 4096

// Interface is one interface of a pod as the dataplane sees it.
type Interface struct {
	Name    string
	Index   int
	MTU     int
	MAC     net.HardwareAddr
	Primary bool // the cluster network (eth0)
	// Pin learns flows entering through this interface and pins their replies to it.
	Pin   bool
	Addr4 netip.Addr
	Addr6 netip.Addr
	// Bits4 and Bits6 are the prefix lengths of Addr4's and Addr6's subnets, 0 when unknown:
	// Service backends inside them are reached directly, others through the gateway.
	Bits4    int
	Bits6    int
	Gateway4 netip.Addr // next hop for traffic sourced from Addr4 with no learned flow
	Gateway6 netip.Addr
	// Kind is the link's type as netlink names it ("veth", "macvlan", "device" …), which tells
	// IngressAuto whether XDP is worth it; "" when the caller did not read it: Attach does.
	Kind string
}

// Group is a multicast prefix steered out of one or more interfaces (fan-out when several).
type Group struct {
	Prefix     netip.Prefix
	Interfaces []string
}

// Config is what one pod's collection is loaded with.
type Config struct {
	Interfaces  []Interface
	Groups      []Group
	FlowEntries uint32 // 0: DefaultFlowEntries
	LoopMark    uint32 // 0: the program's default bit
}

func (c *Config) validate() error {
	if len(c.Interfaces) == 0 {
		return errors.New("no interfaces")
	}
	if len(c.Interfaces) > MaxInterfaces {
		return fmt.Errorf("%d interfaces, at most %d are supported", len(c.Interfaces), MaxInterfaces)
	}
	if len(c.Groups) > MaxGroups {
		return fmt.Errorf("%d multicast groups, at most %d are supported", len(c.Groups), MaxGroups)
	}
	for _, g := range c.Groups {
		if !g.Prefix.IsValid() || !g.Prefix.Addr().IsMulticast() {
			return fmt.Errorf("group %s is not a multicast prefix", g.Prefix)
		}
		for _, name := range g.Interfaces {
			if c.slot(name) < 0 {
				return fmt.Errorf("group %s names unknown interface %q", g.Prefix, name)
			}
		}
	}
	return nil
}

func (c *Config) slot(name string) int {
	for i, itf := range c.Interfaces {
		if itf.Name == name {
			return i
		}
	}
	return -1
}

// Interface flags (enum steer_iface_flags).
const (
	flagPrimary = steerSteerIfaceFlagsSTEER_IFACE_PRIMARY
	flagPin     = steerSteerIfaceFlagsSTEER_IFACE_PIN
	flagHasV4   = steerSteerIfaceFlagsSTEER_IFACE_HAS_V4
	flagHasV6   = steerSteerIfaceFlagsSTEER_IFACE_HAS_V6
	flagGW4     = steerSteerIfaceFlagsSTEER_IFACE_GW4
	flagGW6     = steerSteerIfaceFlagsSTEER_IFACE_GW6
)

func encodeInterfaces(itfs []Interface) [MaxInterfaces]steerSteerIface {
	var out [MaxInterfaces]steerSteerIface
	for i, itf := range itfs {
		e := &out[i]
		e.Ifindex = uint32(itf.Index)
		e.Mtu = uint32(itf.MTU)
		copy(e.Mac[:], itf.MAC)
		for j := 0; j < len(itf.Name) && j < len(e.Name)-1; j++ {
			e.Name[j] = int8(itf.Name[j])
		}
		var flags steerSteerIfaceFlags
		if itf.Primary {
			flags |= flagPrimary
		}
		if itf.Pin {
			flags |= flagPin
		}
		if itf.Addr4.Is4() {
			flags |= flagHasV4
			e.Addr4.V6 = AddrBytes(itf.Addr4)
			e.Plen4 = uint8(itf.Bits4)
		}
		if itf.Addr6.Is6() {
			flags |= flagHasV6
			e.Addr6.V6 = AddrBytes(itf.Addr6)
			e.Plen6 = uint8(itf.Bits6)
		}
		if itf.Gateway4.Is4() {
			flags |= flagGW4
			e.Gw4.V6 = AddrBytes(itf.Gateway4)
		}
		if itf.Gateway6.Is6() {
			flags |= flagGW6
			e.Gw6.V6 = AddrBytes(itf.Gateway6)
		}
		e.Flags = uint32(flags) // the field's type is the enum's size, not its name
	}
	return out
}

func encodeGroups(c *Config) [MaxGroups]steerSteerGroup {
	var out [MaxGroups]steerSteerGroup
	for i, g := range c.Groups {
		e := &out[i]
		e.Family = syscall.AF_INET6
		if g.Prefix.Addr().Is4() {
			e.Family = syscall.AF_INET
		}
		e.Prefixlen = uint8(g.Prefix.Bits())
		e.Addr.V6 = AddrBytes(g.Prefix.Masked().Addr())
		for _, name := range g.Interfaces {
			e.Ifaces |= 1 << c.slot(name)
		}
	}
	return out
}

// AddrBytes lays an address out as union steer_addr: IPv4 in the first four bytes.
func AddrBytes(a netip.Addr) [16]byte {
	var b [16]byte
	if a.Is4() {
		v4 := a.As4()
		copy(b[:], v4[:])
		return b
	}
	return a.As16()
}

func addrFrom(b [16]byte, family uint8) netip.Addr {
	if family == syscall.AF_INET {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}
