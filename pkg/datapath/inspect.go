package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
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
	Version    Version // of the build that wrote the pins
	Upgrading  bool    // an upgrade is under way, or was interrupted (see UpgradingPin)
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
//
// Pins another build wrote are read through their own BTF, converted to this build's layout
// (see convert): the pins of a pod that steerd has not upgraded yet, or of a newer build after
// a downgrade.
func ReadPinned(layout bpffs.Layout, containerID string) (*State, error) {
	dir, err := layout.Dir(containerID)
	if err != nil {
		return nil, err
	}
	v, err := readVersion(dir)
	if err != nil {
		return nil, err
	}
	obj, err := Embedded()
	if err != nil {
		return nil, err
	}
	// Layouts are told by the version; a size that differs (pins mid-upgrade) is told anyway.
	foreign := v.Layout != obj.Version.Layout
	cfg, err := readConfig(dir, foreign)
	if err != nil {
		return nil, err
	}
	st := &State{Version: v, Interfaces: cfg.Interfaces, Groups: cfg.Groups}
	if _, err := os.Stat(filepath.Join(dir, UpgradingPin)); err == nil {
		st.Upgrading = true
	}
	if st.Counters, err = readCounters(filepath.Join(dir, bpffs.CountersPin), &cfg.slots, foreign); err != nil {
		return nil, err
	}
	if st.Flows, err = readFlows(filepath.Join(dir, bpffs.FlowsPin), cfg.Interfaces, foreign); err != nil {
		return nil, err
	}
	if st.Services, err = readServices(dir, cfg.Interfaces); err != nil {
		return nil, err
	}
	return st, nil
}

// readPinnedConfig rebuilds the Config a container's programs were loaded with, from pins of
// any build: what an upgrade loads the new programs with.
func readPinnedConfig(dir string) (Config, error) {
	pc, err := readConfig(dir, true)
	if err != nil {
		return Config{}, err
	}
	cfg := Config{Interfaces: pc.Interfaces, Groups: pc.Groups, LoopMark: pc.loopMark}
	flows, err := ebpf.LoadPinnedMap(filepath.Join(dir, bpffs.FlowsPin), &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return Config{}, fmt.Errorf("open flows: %w", err)
	}
	defer flows.Close()
	cfg.FlowEntries = flows.MaxEntries()
	if err := cfg.validate(); err != nil {
		return Config{}, fmt.Errorf("pinned config: %w", err)
	}
	return cfg, nil
}

// converter returns a function that lays an entry of m out as this build's map name does, or
// nil when m is laid out alike (foreign false, and the sizes agree).
func converter(m *ebpf.Map, name string, foreign bool) (func(k, v []byte) ([]byte, []byte, error), error) {
	spec, err := parsedSpec()
	if err != nil {
		return nil, err
	}
	ms := spec.Maps[name]
	if !foreign && m.KeySize() == ms.KeySize && m.ValueSize() == ms.ValueSize {
		return nil, nil
	}
	sk, sv, err := mapTypes(m)
	if err != nil {
		return nil, err
	}
	return func(k, v []byte) ([]byte, []byte, error) {
		key, val := make([]byte, ms.KeySize), make([]byte, ms.ValueSize)
		if err := convert(val, ms.Value, v, sv); err != nil {
			return nil, nil, err
		}
		if ms.Key != nil && sk != nil && k != nil {
			if err := convert(key, ms.Key, k, sk); err != nil {
				return nil, nil, err
			}
		} else {
			copy(key, k)
		}
		return key, val, nil
	}, nil
}

// podConfig is a pod's load-time configuration as decoded from its config map.
type podConfig struct {
	Interfaces []Interface // the used slots, in slot order
	Groups     []Group
	slots      [MaxInterfaces]string // the interface name of each slot; "" when unused
	loopMark   uint32
}

// configLayout is where the tables sit: each in a section (the config map's value, .rodata, or
// the interface table's, .data.ifaces) at an offset.
type configLayout struct {
	ifaces, groups, loopMark placement
}

type placement struct {
	section string
	offset  uint32
}

// embeddedConfigLayout returns the places of the embedded object, which wrote the pins.
func embeddedConfigLayout() (configLayout, error) {
	spec, err := parsedSpec() // read only
	if err != nil {
		return configLayout{}, err
	}
	var l configLayout
	for name, p := range map[string]*placement{steerVarSteerIfaces: &l.ifaces, steerVarSteerGroups: &l.groups, steerVarSteerLoopMark: &l.loopMark} {
		vs, ok := spec.Variables[name]
		if !ok || vs == nil {
			return configLayout{}, fmt.Errorf("steer object has no variable %s", name)
		}
		*p = placement{vs.SectionName, vs.Offset}
	}
	return l, nil
}

// readConfig reads the configuration of the pod pinned in dir, laid out as this build's.
func readConfig(dir string, foreign bool) (podConfig, error) {
	layout, err := embeddedConfigLayout()
	if err != nil {
		return podConfig{}, err
	}
	constants, err := readSection(filepath.Join(dir, bpffs.ConfigPin), configMap, foreign)
	if err != nil {
		return podConfig{}, fmt.Errorf("config: %w", err)
	}
	table, err := readSection(filepath.Join(dir, bpffs.IfacesPin), ifacesMap, foreign)
	if errors.Is(err, os.ErrNotExist) {
		// Layouts before 3 kept the interface table in config: carried across by its name.
		table, err = readSection(filepath.Join(dir, bpffs.ConfigPin), ifacesMap, true)
	}
	if err != nil {
		return podConfig{}, fmt.Errorf("interface table: %w", err)
	}
	return decodeConfig(map[string][]byte{configMap: constants, ifacesMap: table}, layout)
}

// readSection reads the value of the pinned data section at path as this build's section name
// lays it out.
func readSection(path, name string, foreign bool) ([]byte, error) {
	m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	defer m.Close()
	raw := make([]byte, m.ValueSize())
	if err := m.Lookup(uint32(0), &raw); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	conv, err := converter(m, name, foreign)
	if err != nil {
		return nil, fmt.Errorf("of another layout: %w", err)
	}
	if conv != nil {
		if _, raw, err = conv(nil, raw); err != nil {
			return nil, fmt.Errorf("of another layout: %w", err)
		}
	}
	return raw, nil
}

// decodeConfig decodes a pod's configuration from the values of its sections, by section name,
// laid out as l. It fails only when a value is too short to hold its table; bad entries are
// marked, see decodeGroup.
func decodeConfig(values map[string][]byte, l configLayout) (podConfig, error) {
	var (
		ifaces [MaxInterfaces]steerSteerIface
		groups [MaxGroups]steerSteerGroup
	)
	for _, t := range []struct {
		name string
		at   placement
		dst  any
	}{{"interfaces", l.ifaces, &ifaces}, {"groups", l.groups, &groups}} {
		raw := values[t.at.section]
		// Checked here: slicing past the end panics, and binary.Decode reports a short buffer.
		if uint64(t.at.offset) > uint64(len(raw)) {
			return podConfig{}, fmt.Errorf("decode config: %s at offset %d, past the end of a %d-byte %s", t.name, t.at.offset, len(raw), t.at.section)
		}
		if _, err := binary.Decode(raw[t.at.offset:], binary.NativeEndian, t.dst); err != nil {
			return podConfig{}, fmt.Errorf("decode config: %s at offset %d of a %d-byte %s: %w", t.name, t.at.offset, len(raw), t.at.section, err)
		}
	}
	c := decodeConfigEntries(&ifaces, &groups)
	if raw := values[l.loopMark.section]; uint64(l.loopMark.offset)+4 <= uint64(len(raw)) {
		c.loopMark = binary.NativeEndian.Uint32(raw[l.loopMark.offset:])
	}
	return c, nil
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

// readCounters reads the counter rows. Reasons are only ever appended, so a build with more or
// fewer reasons has rows of the same slots and reasons, told apart by the map's size.
func readCounters(path string, slots *[MaxInterfaces]string, foreign bool) ([]Counter, error) {
	m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("open counters: %w", err)
	}
	defer m.Close()
	conv, err := converter(m, "steer_counters", foreign)
	if err != nil {
		return nil, fmt.Errorf("counters of another layout: %w", err)
	}
	reasons := m.MaxEntries() / uint32(MaxInterfaces+1)
	var out []Counter
	for key := uint32(0); key < m.MaxEntries() && reasons > 0; key++ {
		var perCPU []steerSteerCounter
		if conv == nil {
			if err := m.Lookup(key, &perCPU); err != nil {
				return nil, fmt.Errorf("read counter %d: %w", key, err)
			}
		} else {
			var raw [][]byte
			if err := m.Lookup(key, &raw); err != nil {
				return nil, fmt.Errorf("read counter %d: %w", key, err)
			}
			for _, r := range raw {
				_, v, err := conv(nil, r)
				if err != nil {
					return nil, fmt.Errorf("read counter %d: %w", key, err)
				}
				var c steerSteerCounter
				if _, err := binary.Decode(v, binary.NativeEndian, &c); err != nil {
					return nil, fmt.Errorf("read counter %d: %w", key, err)
				}
				perCPU = append(perCPU, c)
			}
		}
		if c := decodeCounter(key, reasons, perCPU, slots); c.Packets > 0 {
			out = append(out, c)
		}
	}
	return out, nil
}

// decodeCounter sums the per-CPU values of counter row key (slot * reasons + reason).
func decodeCounter(key, reasons uint32, perCPU []steerSteerCounter, slots *[MaxInterfaces]string) Counter {
	c := Counter{Reason: Reason(key % reasons)}
	if slot := key / reasons; slot < uint32(len(slots)) {
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

func readFlows(path string, ifaces []Interface, foreign bool) ([]Flow, error) {
	m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("open flows: %w", err)
	}
	defer m.Close()
	conv, err := converter(m, flowsMap, foreign)
	if err != nil {
		return nil, fmt.Errorf("flows of another layout: %w", err)
	}
	var (
		out  []Flow
		k, v []byte
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		key, val := k, v
		if conv != nil {
			if key, val, err = conv(k, v); err != nil {
				return nil, fmt.Errorf("flows of another layout: %w", err)
			}
		}
		f, _ := decodeFlowBytes(key, val, ifaces) // kept, marked: see ReadPinned
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
