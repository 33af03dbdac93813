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
	// Interface is the interface the flow entered by; "" when its ifindex is none of the pod's
	// configured interfaces'.
	Interface string
	PeerMAC   net.HardwareAddr // next hop of the replies
}

// State is what a pod's pins hold.
type State struct {
	Interfaces []Interface
	Groups     []Group
	Flows      []Flow
	Counters   []Counter // non-zero rows only
	Services   []ServiceFrontend
}

// ReadPinned reads a container's state from its pins alone, so it works with steerd down.
//
// An entry the programs cannot have written (a corrupt pin, a pin of another version of the
// programs) does not fail the read: one bad entry must not hide the rest of the pod's state,
// which Detach needs too. Its undecodable fields are left invalid instead (the zero address or
// prefix, which print as "invalid IP", "invalid AddrPort" or "invalid Prefix"): see decodeFlow
// and decodeGroup.
func ReadPinned(layout bpffs.Layout, containerID string) (*State, error) {
	dir, err := layout.Dir(containerID)
	if err != nil {
		return nil, err
	}
	cfg, err := readConfig(filepath.Join(dir, bpffs.ConfigPin))
	if err != nil {
		return nil, err
	}
	st := &State{Interfaces: cfg.Interfaces, Groups: cfg.Groups}
	if st.Counters, err = readCounters(filepath.Join(dir, bpffs.CountersPin), &cfg.slots); err != nil {
		return nil, err
	}
	if st.Flows, err = readFlows(filepath.Join(dir, bpffs.FlowsPin), cfg.Interfaces); err != nil {
		return nil, err
	}
	if st.Services, err = readServices(dir, cfg.Interfaces); err != nil {
		return nil, err
	}
	return st, nil
}

// podConfig is a pod's load-time configuration as decoded from its config map.
type podConfig struct {
	Interfaces []Interface // the used slots, in slot order
	Groups     []Group
	slots      [MaxInterfaces]string // the interface name of each slot; "" when unused
}

// configLayout is where the tables sit in the config map's value (.rodata).
type configLayout struct {
	ifaces, groups uint32
}

// embeddedConfigLayout returns the offsets of the embedded object, which wrote the pins.
func embeddedConfigLayout() (configLayout, error) {
	spec, err := parsedSpec() // read only
	if err != nil {
		return configLayout{}, err
	}
	var l configLayout
	for name, off := range map[string]*uint32{steerVarSteerIfaces: &l.ifaces, steerVarSteerGroups: &l.groups} {
		vs, ok := spec.Variables[name]
		if !ok || vs == nil {
			return configLayout{}, fmt.Errorf("steer object has no variable %s", name)
		}
		*off = vs.Offset
	}
	return l, nil
}

func readConfig(path string) (podConfig, error) {
	m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return podConfig{}, fmt.Errorf("open config: %w", err)
	}
	defer m.Close()
	layout, err := embeddedConfigLayout()
	if err != nil {
		return podConfig{}, err
	}
	raw := make([]byte, m.ValueSize())
	if err := m.Lookup(uint32(0), &raw); err != nil {
		return podConfig{}, fmt.Errorf("read config: %w", err)
	}
	return decodeConfig(raw, layout)
}

// decodeConfig decodes the value of a pod's config map (its .rodata) laid out as l. It fails
// only when raw is too short to hold the tables; bad entries are marked, see decodeGroup.
func decodeConfig(raw []byte, l configLayout) (podConfig, error) {
	var (
		ifaces [MaxInterfaces]steerSteerIface
		groups [MaxGroups]steerSteerGroup
	)
	for _, t := range []struct {
		name string
		off  uint32
		dst  any
	}{{"interfaces", l.ifaces, &ifaces}, {"groups", l.groups, &groups}} {
		// Checked here: slicing past the end panics, and binary.Decode reports a short buffer.
		if uint64(t.off) > uint64(len(raw)) {
			return podConfig{}, fmt.Errorf("decode config: %s at offset %d, past the end of a %d-byte value", t.name, t.off, len(raw))
		}
		if _, err := binary.Decode(raw[t.off:], binary.NativeEndian, t.dst); err != nil {
			return podConfig{}, fmt.Errorf("decode config: %s at offset %d of a %d-byte value: %w", t.name, t.off, len(raw), err)
		}
	}
	return decodeConfigEntries(&ifaces, &groups), nil
}

// decodeConfigEntries decodes the interface and group tables. Slots keep their position, as
// the programs see them, even when an unused slot precedes a used one.
func decodeConfigEntries(ifaces *[MaxInterfaces]steerSteerIface, groups *[MaxGroups]steerSteerGroup) podConfig {
	var c podConfig
	for slot, e := range ifaces {
		if e.Ifindex == 0 { // unused slot
			continue
		}
		itf := decodeInterface(e)
		c.Interfaces = append(c.Interfaces, itf)
		c.slots[slot] = itf.Name
	}
	for _, g := range groups {
		if g.Family == 0 { // the end of the table, as for the programs
			break
		}
		grp, _ := decodeGroup(g, &c.slots) // kept, marked: see ReadPinned
		c.Groups = append(c.Groups, grp)
	}
	return c
}

// decodeGroup decodes one multicast group. slots holds the interface name of each slot, ""
// when unused. A group of an unknown family, or with a prefix longer than its family's
// addresses, has an invalid Prefix; interfaces in unused slots are left out. Either way it
// comes with an error saying why.
func decodeGroup(g steerSteerGroup, slots *[MaxInterfaces]string) (Group, error) {
	var (
		grp  Group
		errs []error
	)
	switch g.Family {
	case syscall.AF_INET, syscall.AF_INET6:
		a := addrFrom(g.Addr.V6, g.Family)
		if int(g.Prefixlen) > a.BitLen() {
			errs = append(errs, fmt.Errorf("group %s/%d: prefix longer than %d bits", a, g.Prefixlen, a.BitLen()))
			break
		}
		grp.Prefix = netip.PrefixFrom(a, int(g.Prefixlen))
	default:
		errs = append(errs, fmt.Errorf("group: unknown address family %d", g.Family))
	}
	// The mask has a bit per slot: the loop bounds the slot whatever the mask's width.
	for slot := range slots {
		if g.Ifaces&(1<<slot) == 0 {
			continue
		}
		if slots[slot] == "" {
			errs = append(errs, fmt.Errorf("group %s: interface slot %d is not configured or has no name", grp.Prefix, slot))
			continue
		}
		grp.Interfaces = append(grp.Interfaces, slots[slot])
	}
	return grp, errors.Join(errs...)
}

func decodeInterface(e steerSteerIface) Interface {
	name := make([]byte, 0, len(e.Name))
	for _, c := range e.Name {
		if c == 0 {
			break
		}
		name = append(name, byte(c))
	}
	flags := steerSteerIfaceFlags(e.Flags)
	itf := Interface{
		Name:    string(name),
		Index:   int(e.Ifindex),
		MTU:     int(e.Mtu),
		MAC:     net.HardwareAddr(append([]byte(nil), e.Mac[:]...)),
		Primary: flags&flagPrimary != 0,
		Pin:     flags&flagPin != 0,
	}
	if flags&flagHasV4 != 0 {
		itf.Addr4 = addrFrom(e.Addr4.V6, syscall.AF_INET)
		itf.Bits4 = int(min(e.Plen4, 32))
	}
	if flags&flagHasV6 != 0 {
		itf.Addr6 = addrFrom(e.Addr6.V6, syscall.AF_INET6)
		itf.Bits6 = int(min(e.Plen6, 128))
	}
	if flags&flagGW4 != 0 {
		itf.Gateway4 = addrFrom(e.Gw4.V6, syscall.AF_INET)
	}
	if flags&flagGW6 != 0 {
		itf.Gateway6 = addrFrom(e.Gw6.V6, syscall.AF_INET6)
	}
	return itf
}

func readCounters(path string, slots *[MaxInterfaces]string) ([]Counter, error) {
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
		if c := decodeCounter(key, perCPU, slots); c.Packets > 0 {
			out = append(out, c)
		}
	}
	return out, nil
}

// decodeCounter sums the per-CPU values of counter row key (slot * reasons + reason).
func decodeCounter(key uint32, perCPU []steerSteerCounter, slots *[MaxInterfaces]string) Counter {
	c := Counter{Reason: Reason(key % uint32(NumReasons))}
	if slot := key / uint32(NumReasons); slot < uint32(len(slots)) {
		c.Interface = slots[slot]
	}
	for _, v := range perCPU {
		c.Packets += v.Packets
		c.Bytes += v.Bytes
	}
	return c
}

// Sizes of struct flow_key and struct flow_value.
var (
	flowKeySize   = binary.Size(steerFlowKey{})
	flowValueSize = binary.Size(steerFlowValue{})
)

func readFlows(path string, ifaces []Interface) ([]Flow, error) {
	m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("open flows: %w", err)
	}
	defer m.Close()
	if int(m.KeySize()) != flowKeySize || int(m.ValueSize()) != flowValueSize {
		return nil, fmt.Errorf("flows map has %d-byte keys and %d-byte values, want %d and %d",
			m.KeySize(), m.ValueSize(), flowKeySize, flowValueSize)
	}
	var (
		out  []Flow
		k, v []byte
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		f, _ := decodeFlowBytes(k, v, ifaces) // kept, marked: see ReadPinned
		out = append(out, f)
	}
	if err := it.Err(); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, fmt.Errorf("iterate flows: %w", err)
	}
	return out, nil
}

// decodeFlowBytes decodes one entry of the flows map from its bytes, as the map, a pin or
// `bpftool map dump` holds them (host byte order): see decodeFlow.
func decodeFlowBytes(key, value []byte, ifaces []Interface) (Flow, error) {
	k, v, err := unmarshalFlow(key, value)
	if err != nil {
		return Flow{}, err
	}
	return decodeFlow(k, v, ifaces)
}

// unmarshalFlow lays the bytes of a flow entry out as the generated structs; they must be
// exactly their size.
func unmarshalFlow(key, value []byte) (k steerFlowKey, v steerFlowValue, err error) {
	if len(key) != flowKeySize || len(value) != flowValueSize {
		return k, v, fmt.Errorf("flow entry of %d+%d bytes, want %d+%d", len(key), len(value), flowKeySize, flowValueSize)
	}
	if _, err := binary.Decode(key, binary.NativeEndian, &k); err != nil {
		return k, v, fmt.Errorf("decode flow key: %w", err)
	}
	if _, err := binary.Decode(value, binary.NativeEndian, &v); err != nil {
		return k, v, fmt.Errorf("decode flow value: %w", err)
	}
	return k, v, nil
}

// decodeFlow decodes one flow entry. ifaces are the pod's interfaces, to name the one the flow
// entered by (the first with its ifindex; none: Interface is "").
//
// A key of an address family other than AF_INET and AF_INET6 leaves Remote and Local invalid
// and comes with an error; everything else decodes. A port of 0 is kept: UDP allows source
// port 0 and the programs learn what arrives, and 0 is also a valid ICMP echo id. The bytes
// of an IPv4 address's union past the first four are ignored, as the programs do.
func decodeFlow(k steerFlowKey, v steerFlowValue, ifaces []Interface) (Flow, error) {
	f := Flow{
		Proto:     k.Proto,
		LocalPort: ntohs(k.LocalPort),
		PeerMAC:   net.HardwareAddr(append([]byte(nil), v.PeerMac[:]...)),
	}
	for _, itf := range ifaces {
		if itf.Index == int(v.Ifindex) && v.Ifindex != 0 {
			f.Interface = itf.Name
			break
		}
	}
	switch k.Family {
	case syscall.AF_INET, syscall.AF_INET6:
		f.Remote = netip.AddrPortFrom(addrFrom(k.Remote.V6, k.Family), ntohs(k.RemotePort))
		f.Local = addrFrom(v.Local.V6, k.Family)
		return f, nil
	}
	return f, fmt.Errorf("flow: unknown address family %d", k.Family)
}

// ntohs converts a port read from the map in host order back from network order.
func ntohs(p uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], p)
	return binary.BigEndian.Uint16(b[:])
}
