package perpkt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/steernet/steer/pkg/datapath"
)

// flowKey and flowValue mirror struct flow_key and struct flow_value (bpf/lib/flow.h); env.load
// checks their sizes against the loaded map. Ports are in network byte order.
type flowKey struct {
	Family, Proto         uint8
	RemotePort, LocalPort uint16
	Pad                   uint16
	Remote                [16]byte // IPv4 in the first four bytes
}

type flowValue struct {
	Ifindex           uint32
	PeerMAC, LocalMAC [6]byte
	Local             [16]byte
}

const (
	flowKeySize   = 24
	flowValueSize = 32
	afInet        = 2
	afInet6       = 10
	protoTCP      = 6
	protoUDP      = 17
)

// be16 is a port as the kernel stores it: network byte order read as a host integer.
func be16(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

func key(proto uint8, remote netip.Addr, remotePort, localPort uint16) flowKey {
	k := flowKey{Family: afInet, Proto: proto, RemotePort: be16(remotePort), LocalPort: be16(localPort), Remote: datapath.AddrBytes(remote)}
	if remote.Is6() {
		k.Family = afInet6
	}
	return k
}

// valueOn is a flow that entered by slot, delivered by that LAN's hop, to the slot's address.
func (e *env) valueOn(slot int, v6 bool) flowValue {
	v := flowValue{Ifindex: uint32(e.index[slot]), Local: datapath.AddrBytes(addr4[slot])}
	if v6 {
		v.Local = datapath.AddrBytes(addr6[slot])
	}
	copy(v.PeerMAC[:], hopMAC[slot])
	copy(v.LocalMAC[:], podMAC[slot])
	return v
}

// fillBase is the first remote address of the filler flows: 10.128.0.0/9 holds 8M of them.
var fillBase = netip.MustParseAddr("10.128.0.0")

// fillRemote is the remote address of filler flow i.
func fillRemote(i int) netip.Addr {
	b := fillBase.As4()
	v := binary.BigEndian.Uint32(b[:]) + uint32(i)
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// fillIndex is the inverse of fillRemote, or -1 for a flow that is not a filler.
func fillIndex(k flowKey) int {
	if k.Family != afInet {
		return -1
	}
	base := fillBase.As4()
	i := int(binary.BigEndian.Uint32(k.Remote[:4])) - int(binary.BigEndian.Uint32(base[:]))
	if i < 0 || i >= 1<<23 {
		return -1
	}
	return i
}

// fillKey is filler flow i: TCP from fillRemote(i):40000 to port 80 of net1.
func fillKey(i int) flowKey { return key(protoTCP, fillRemote(i), 40000, 80) }

// fill inserts filler flows [from, to) learned on net1, in batches from user space.
func (e *env) fill(m *ebpf.Map, from, to int) error {
	const batch = 8192
	keys := make([]flowKey, 0, batch)
	vals := make([]flowValue, 0, batch)
	val := e.valueOn(slotNet1, false)
	for i := from; i < to; i += batch {
		keys, vals = keys[:0], vals[:0]
		for j := i; j < min(i+batch, to); j++ {
			keys = append(keys, fillKey(j))
			vals = append(vals, val)
		}
		if _, err := m.BatchUpdate(keys, vals, nil); err != nil {
			return fmt.Errorf("fill flows %d..%d: %w", i, i+len(keys), err)
		}
	}
	return nil
}

// entries walks the map and calls f for each key; it returns how many there are.
func entries(m *ebpf.Map, f func(flowKey)) (int, error) {
	const batch = 4096
	keys := make([]flowKey, batch)
	vals := make([]flowValue, batch)
	var cursor ebpf.MapBatchCursor
	total := 0
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		for _, k := range keys[:n] {
			if f != nil {
				f(k)
			}
		}
		total += n
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return total, nil
		}
		if err != nil {
			return total, fmt.Errorf("walk flows: %w", err)
		}
	}
}
