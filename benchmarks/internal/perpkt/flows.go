package perpkt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/steernet/steer/pkg/datapath"
)

// be16 is a port as the kernel stores it: network byte order read as a host integer.
func be16(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

func key(proto uint8, remote netip.Addr, remotePort, localPort uint16) datapath.FlowKey {
	k := datapath.FlowKey{Family: unix.AF_INET, Proto: proto, RemotePort: be16(remotePort), LocalPort: be16(localPort)}
	if remote.Is6() {
		k.Family = unix.AF_INET6
	}
	k.Remote.V6 = datapath.AddrBytes(remote)
	return k
}

// valueOn is a flow that entered by slot, delivered by that LAN's hop, to the slot's address.
func (e *env) valueOn(slot int, v6 bool) datapath.FlowValue {
	v := datapath.FlowValue{Ifindex: uint32(e.index[slot])}
	v.Local.V6 = datapath.AddrBytes(addr4[slot])
	if v6 {
		v.Local.V6 = datapath.AddrBytes(addr6[slot])
	}
	copy(v.PeerMac[:], hopMAC[slot])
	copy(v.LocalMac[:], podMAC[slot])
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
func fillIndex(k datapath.FlowKey) int {
	if k.Family != unix.AF_INET {
		return -1
	}
	base := fillBase.As4()
	i := int(binary.BigEndian.Uint32(k.Remote.V6[:4])) - int(binary.BigEndian.Uint32(base[:]))
	if i < 0 || i >= 1<<23 {
		return -1
	}
	return i
}

// fillKey is filler flow i: TCP from fillRemote(i):40000 to port 80 of net1.
func fillKey(i int) datapath.FlowKey { return key(unix.IPPROTO_TCP, fillRemote(i), 40000, 80) }

// fill inserts filler flows [from, to) learned on net1, in batches from user space.
func (e *env) fill(m *ebpf.Map, from, to int) error {
	const batch = 8192
	keys := make([]datapath.FlowKey, 0, batch)
	vals := make([]datapath.FlowValue, 0, batch)
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
func entries(m *ebpf.Map, f func(datapath.FlowKey)) (int, error) {
	const batch = 4096
	keys := make([]datapath.FlowKey, batch)
	vals := make([]datapath.FlowValue, batch)
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
