package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"syscall"

	"github.com/cilium/ebpf"

	"github.com/steernet/steer/pkg/bpffs"
)

// Reason says why a packet took the path it did (enum steer_reason).
type Reason uint32

// Reasons in counter order.
var reasonNames = [...]string{
	steerSteerReasonSTEER_REASON_PASSED:        "passed",
	steerSteerReasonSTEER_REASON_LEARNED:       "learned",
	steerSteerReasonSTEER_REASON_PINNED:        "pinned",
	steerSteerReasonSTEER_REASON_SOURCE:        "source",
	steerSteerReasonSTEER_REASON_MULTICAST:     "multicast",
	steerSteerReasonSTEER_REASON_MSS_CLAMPED:   "mss_clamped",
	steerSteerReasonSTEER_REASON_DROP_OVERSIZE: "drop_oversize",
	steerSteerReasonSTEER_REASON_DROP_ERROR:    "drop_error",
}

const numReasons = int(steerSteerReasonSTEER_REASON_MAX)

// Reason values.
const (
	ReasonPassed       = Reason(steerSteerReasonSTEER_REASON_PASSED)
	ReasonLearned      = Reason(steerSteerReasonSTEER_REASON_LEARNED)
	ReasonPinned       = Reason(steerSteerReasonSTEER_REASON_PINNED)
	ReasonSource       = Reason(steerSteerReasonSTEER_REASON_SOURCE)
	ReasonMulticast    = Reason(steerSteerReasonSTEER_REASON_MULTICAST)
	ReasonMSSClamped   = Reason(steerSteerReasonSTEER_REASON_MSS_CLAMPED)
	ReasonDropOversize = Reason(steerSteerReasonSTEER_REASON_DROP_OVERSIZE)
	ReasonDropError    = Reason(steerSteerReasonSTEER_REASON_DROP_ERROR)
)

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint32(r))
}

// Counter is one row of a pod's counters.
type Counter struct {
	Interface string // "" for packets seen on an interface Steer was not configured with
	Reason    Reason
	Packets   uint64
	Bytes     uint64
}

// Flow is one learned flow.
type Flow struct {
	Proto     uint8
	Remote    netip.AddrPort // the remote end; for ICMP echo the port is the echo id
	LocalPort uint16
	Local     netip.Addr // the pod address the remote end talks to
	Interface string
	PeerMAC   net.HardwareAddr // next hop of the replies
}

// State is what a pod's pins hold.
type State struct {
	Interfaces []Interface
	Groups     []Group
	Flows      []Flow
	Counters   []Counter // non-zero rows only
}

// ReadPinned reads a container's state from its pins alone, so it works with steerd down.
func ReadPinned(layout bpffs.Layout, containerID string) (*State, error) {
	dir, err := layout.Dir(containerID)
	if err != nil {
		return nil, err
	}
	st := &State{}
	if st.Interfaces, st.Groups, err = readConfig(filepath.Join(dir, bpffs.ConfigPin)); err != nil {
		return nil, err
	}
	if st.Counters, err = readCounters(filepath.Join(dir, bpffs.CountersPin), st.Interfaces); err != nil {
		return nil, err
	}
	if st.Flows, err = readFlows(filepath.Join(dir, bpffs.FlowsPin), st.Interfaces); err != nil {
		return nil, err
	}
	return st, nil
}

func readConfig(path string) ([]Interface, []Group, error) {
	m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil, nil, fmt.Errorf("open config: %w", err)
	}
	defer m.Close()
	spec, err := parsedSpec() // read only
	if err != nil {
		return nil, nil, err
	}
	raw := make([]byte, m.ValueSize())
	if err := m.Lookup(uint32(0), &raw); err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	var (
		ifaces [MaxInterfaces]steerSteerIface
		groups [MaxGroups]steerSteerGroup
	)
	for name, dst := range map[string]any{steerVarSteerIfaces: &ifaces, steerVarSteerGroups: &groups} {
		if _, err := binary.Decode(raw[spec.Variables[name].Offset:], binary.NativeEndian, dst); err != nil {
			return nil, nil, fmt.Errorf("decode config: %w", err)
		}
	}
	var out []Interface
	for _, e := range ifaces {
		if e.Ifindex != 0 {
			out = append(out, decodeInterface(e))
		}
	}
	return out, decodeGroups(groups, out), nil
}

func decodeGroups(groups [MaxGroups]steerSteerGroup, ifaces []Interface) []Group {
	var out []Group
	for _, g := range groups {
		if g.Family == 0 {
			break
		}
		grp := Group{Prefix: netip.PrefixFrom(addrFrom(g.Addr.V6, g.Family), int(g.Prefixlen))}
		for slot, itf := range ifaces {
			if g.Ifaces&(1<<slot) != 0 {
				grp.Interfaces = append(grp.Interfaces, itf.Name)
			}
		}
		out = append(out, grp)
	}
	return out
}

func decodeInterface(e steerSteerIface) Interface {
	name := make([]byte, 0, len(e.Name))
	for _, c := range e.Name {
		if c == 0 {
			break
		}
		name = append(name, byte(c))
	}
	itf := Interface{
		Name:    string(name),
		Index:   int(e.Ifindex),
		MTU:     int(e.Mtu),
		MAC:     net.HardwareAddr(append([]byte(nil), e.Mac[:]...)),
		Primary: e.Flags&flagPrimary != 0,
		Pin:     e.Flags&flagPin != 0,
	}
	if e.Flags&flagHasV4 != 0 {
		itf.Addr4 = addrFrom(e.Addr4.V6, syscall.AF_INET)
	}
	if e.Flags&flagHasV6 != 0 {
		itf.Addr6 = addrFrom(e.Addr6.V6, syscall.AF_INET6)
	}
	if e.Flags&flagGW4 != 0 {
		itf.Gateway4 = addrFrom(e.Gw4.V6, syscall.AF_INET)
	}
	if e.Flags&flagGW6 != 0 {
		itf.Gateway6 = addrFrom(e.Gw6.V6, syscall.AF_INET6)
	}
	return itf
}

func readCounters(path string, ifaces []Interface) ([]Counter, error) {
	m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("open counters: %w", err)
	}
	defer m.Close()
	var out []Counter
	for key := uint32(0); key < m.MaxEntries(); key++ {
		var perCPU []steerSteerCounter
		if err := m.Lookup(key, &perCPU); err != nil {
			return nil, fmt.Errorf("read counter %d: %w", key, err)
		}
		c := Counter{Reason: Reason(int(key) % numReasons)}
		if slot := int(key) / numReasons; slot < len(ifaces) {
			c.Interface = ifaces[slot].Name
		}
		for _, v := range perCPU {
			c.Packets += v.Packets
			c.Bytes += v.Bytes
		}
		if c.Packets > 0 {
			out = append(out, c)
		}
	}
	return out, nil
}

func readFlows(path string, ifaces []Interface) ([]Flow, error) {
	m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("open flows: %w", err)
	}
	defer m.Close()
	var (
		out []Flow
		k   steerFlowKey
		v   steerFlowValue
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		f := Flow{
			Proto:     k.Proto,
			Remote:    netip.AddrPortFrom(addrFrom(k.Remote.V6, k.Family), ntohs(k.RemotePort)),
			LocalPort: ntohs(k.LocalPort),
			Local:     addrFrom(v.Local.V6, k.Family),
			PeerMAC:   net.HardwareAddr(append([]byte(nil), v.PeerMac[:]...)),
		}
		for _, itf := range ifaces {
			if itf.Index == int(v.Ifindex) {
				f.Interface = itf.Name
			}
		}
		out = append(out, f)
	}
	if err := it.Err(); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, fmt.Errorf("iterate flows: %w", err)
	}
	return out, nil
}

// ntohs converts a port read from the map in host order back from network order.
func ntohs(p uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], p)
	return binary.BigEndian.Uint16(b[:])
}
