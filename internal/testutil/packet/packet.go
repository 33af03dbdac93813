// Package packet builds Ethernet frames for BPF program tests and reads them back, verifying
// every checksum: IPv4 header, TCP/UDP/ICMPv6 with the pseudo-header, ICMPv4. It depends on
// the standard library only, so any test can use it, and it is table-tested against frames the
// kernel itself produced.
//
// A frame is described by a Frame value; the lengths, protocol numbers and checksums a test does
// not care about are filled in by Bytes:
//
//	b := packet.Frame{
//		Eth: packet.Ethernet{Dst: gwMAC, Src: podMAC},
//		IP:  &packet.IP{Src: netip.MustParseAddr("10.1.0.5"), Dst: netip.MustParseAddr("10.2.0.9")},
//		L4:  &packet.TCP{SrcPort: 40000, DstPort: 80, Flags: packet.TCPSyn, Options: packet.MSS(1460)},
//	}.Bytes()
package packet

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// EtherTypes and IP protocol numbers.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeIPv6 = 0x86dd

	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// Header sizes.
const (
	EthLen  = 14
	IPv4Len = 20 // without options
	IPv6Len = 40
	TCPLen  = 20 // without options
	UDPLen  = 8
	ICMPLen = 8 // echo: type, code, checksum, id, sequence
)

// IPv4 flags, in the high bits of IP.Flags.
const (
	DontFragment  = 0x4000
	MoreFragments = 0x2000
)

// TCP flags.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPPsh = 0x08
	TCPAck = 0x10
	TCPUrg = 0x20
)

// ICMP echo types.
const (
	ICMPEchoReply      = 0
	ICMPEchoRequest    = 8
	ICMPv6EchoRequest  = 128
	ICMPv6EchoReply    = 129
	ICMPv6NeighSolicit = 135
)

// Ethernet is the link header. A nil address is all zeros.
type Ethernet struct {
	Dst, Src net.HardwareAddr
	Type     uint16 // 0: IPv4 or IPv6 from Frame.IP
}

// IP is an IPv4 or an IPv6 header, chosen by the family of Src (Dst must match).
type IP struct {
	Src, Dst  netip.Addr
	TTL       uint8  // hop limit for IPv6; 0: 64
	TOS       uint8  // traffic class for IPv6
	ID        uint16 // IPv4 only
	Flags     uint16 // IPv4 only: the flags and fragment offset field, e.g. DontFragment
	FlowLabel uint32 // IPv6 only
	Options   []byte // IPv4 only; padded with zeros to a multiple of 4 bytes
	Protocol  uint8  // 0: from Frame.L4
}

// Transport is a layer-4 header: *TCP, *UDP or *Echo.
type Transport interface {
	protocol(v6 bool) uint8
	// fixedChecksum is the checksum to write instead of the computed one, or nil.
	fixedChecksum() *uint16
	// header returns the header with a zero checksum and the offset of the checksum field.
	header(payloadLen int, v6 bool) (hdr []byte, csumOff int)
}

// TCP is a TCP header.
type TCP struct {
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            uint8
	Window           uint16 // 0: 64240
	Urgent           uint16
	Options          []byte // padded with EOL (zero) bytes to a multiple of 4
	// Checksum, when set, is written instead of the computed one (to build a bad segment).
	Checksum *uint16
}

// UDP is a UDP header.
type UDP struct {
	SrcPort, DstPort uint16
	// ZeroChecksum sends no checksum (IPv4 only: RFC 768).
	ZeroChecksum bool
	Checksum     *uint16 // when set, written instead of the computed one
}

// Echo is an ICMP (IPv4) or ICMPv6 (IPv6) echo request, or reply when Reply is set.
type Echo struct {
	ID, Seq  uint16
	Reply    bool
	Checksum *uint16 // when set, written instead of the computed one
}

// Frame is a whole Ethernet frame.
type Frame struct {
	Eth Ethernet
	IP  *IP       // nil: Payload follows the Ethernet header
	L4  Transport // nil: Payload follows the IP header, whose Protocol must be set
	// Payload is the data after the last header.
	Payload []byte
}

// Bytes builds the frame with its lengths and checksums. It panics when the frame cannot be
// built (mixed address families, oversized lengths): a test describing a frame wrongly is a bug
// in the test.
func (f Frame) Bytes() []byte {
	b, err := f.Build()
	if err != nil {
		panic("packet: " + err.Error())
	}
	return b
}

// Build is Bytes returning the error instead of panicking.
func (f Frame) Build() ([]byte, error) {
	eth := make([]byte, EthLen)
	copy(eth[0:6], f.Eth.Dst)
	copy(eth[6:12], f.Eth.Src)
	etype := f.Eth.Type
	if etype == 0 && f.IP != nil {
		etype = EtherTypeIPv4
		if f.IP.Src.Is6() {
			etype = EtherTypeIPv6
		}
	}
	binary.BigEndian.PutUint16(eth[12:14], etype)
	if f.IP == nil {
		if f.L4 != nil {
			return nil, fmt.Errorf("a transport header needs an IP header")
		}
		return append(eth, f.Payload...), nil
	}

	ip := f.IP
	if !ip.Src.IsValid() || !ip.Dst.IsValid() || ip.Src.Is4() != ip.Dst.Is4() {
		return nil, fmt.Errorf("IP addresses %v and %v are not of one family", ip.Src, ip.Dst)
	}
	v6 := ip.Src.Is6()
	proto := ip.Protocol
	seg := append([]byte(nil), f.Payload...)
	if f.L4 != nil {
		if proto == 0 {
			proto = f.L4.protocol(v6)
		}
		hdr, csumOff := f.L4.header(len(f.Payload), v6)
		seg = append(hdr, f.Payload...)
		if sum := f.L4.fixedChecksum(); sum != nil {
			binary.BigEndian.PutUint16(seg[csumOff:], *sum)
		} else if !isZeroUDP(f.L4, v6) {
			c := L4Checksum(ip.Src, ip.Dst, proto, seg)
			if c == 0 && proto == ProtoUDP {
				c = 0xffff // RFC 768: a computed zero is sent as all ones
			}
			binary.BigEndian.PutUint16(seg[csumOff:], c)
		}
	}

	ttl := ip.TTL
	if ttl == 0 {
		ttl = 64
	}
	if v6 {
		if len(seg) > 0xffff {
			return nil, fmt.Errorf("IPv6 payload of %d bytes", len(seg))
		}
		h := make([]byte, IPv6Len)
		binary.BigEndian.PutUint32(h[0:4], 6<<28|uint32(ip.TOS)<<20|ip.FlowLabel&0xfffff)
		binary.BigEndian.PutUint16(h[4:6], uint16(len(seg)))
		h[6] = proto
		h[7] = ttl
		src, dst := ip.Src.As16(), ip.Dst.As16()
		copy(h[8:24], src[:])
		copy(h[24:40], dst[:])
		return append(append(eth, h...), seg...), nil
	}

	opts := pad4(ip.Options, 0)
	hlen := IPv4Len + len(opts)
	if hlen > 60 || hlen+len(seg) > 0xffff {
		return nil, fmt.Errorf("IPv4 header of %d bytes, packet of %d", hlen, hlen+len(seg))
	}
	h := make([]byte, hlen)
	h[0] = 4<<4 | byte(hlen/4)
	h[1] = ip.TOS
	binary.BigEndian.PutUint16(h[2:4], uint16(hlen+len(seg)))
	binary.BigEndian.PutUint16(h[4:6], ip.ID)
	binary.BigEndian.PutUint16(h[6:8], ip.Flags)
	h[8] = ttl
	h[9] = proto
	src, dst := ip.Src.As4(), ip.Dst.As4()
	copy(h[12:16], src[:])
	copy(h[16:20], dst[:])
	copy(h[20:], opts)
	binary.BigEndian.PutUint16(h[10:12], Checksum(h))
	return append(append(eth, h...), seg...), nil
}

func isZeroUDP(t Transport, v6 bool) bool {
	u, ok := t.(*UDP)
	return ok && u.ZeroChecksum && !v6
}

func pad4(b []byte, fill byte) []byte {
	out := append([]byte(nil), b...)
	for len(out)%4 != 0 {
		out = append(out, fill)
	}
	return out
}

func (*TCP) protocol(bool) uint8       { return ProtoTCP }
func (t *TCP) fixedChecksum() *uint16  { return t.Checksum }
func (*UDP) protocol(bool) uint8       { return ProtoUDP }
func (u *UDP) fixedChecksum() *uint16  { return u.Checksum }
func (e *Echo) fixedChecksum() *uint16 { return e.Checksum }
func (*Echo) protocol(v6 bool) uint8 {
	if v6 {
		return ProtoICMPv6
	}
	return ProtoICMP
}

func (t *TCP) header(int, bool) ([]byte, int) {
	opts := pad4(t.Options, 0)
	h := make([]byte, TCPLen+len(opts))
	binary.BigEndian.PutUint16(h[0:2], t.SrcPort)
	binary.BigEndian.PutUint16(h[2:4], t.DstPort)
	binary.BigEndian.PutUint32(h[4:8], t.Seq)
	binary.BigEndian.PutUint32(h[8:12], t.Ack)
	h[12] = byte(len(h)/4) << 4
	h[13] = t.Flags
	win := t.Window
	if win == 0 {
		win = 64240
	}
	binary.BigEndian.PutUint16(h[14:16], win)
	binary.BigEndian.PutUint16(h[18:20], t.Urgent)
	copy(h[TCPLen:], opts)
	return h, 16
}

func (u *UDP) header(payloadLen int, _ bool) ([]byte, int) {
	h := make([]byte, UDPLen)
	binary.BigEndian.PutUint16(h[0:2], u.SrcPort)
	binary.BigEndian.PutUint16(h[2:4], u.DstPort)
	binary.BigEndian.PutUint16(h[4:6], uint16(UDPLen+payloadLen))
	return h, 6
}

func (e *Echo) header(_ int, v6 bool) ([]byte, int) {
	h := make([]byte, ICMPLen)
	switch {
	case v6 && e.Reply:
		h[0] = ICMPv6EchoReply
	case v6:
		h[0] = ICMPv6EchoRequest
	case e.Reply:
		h[0] = ICMPEchoReply
	default:
		h[0] = ICMPEchoRequest
	}
	binary.BigEndian.PutUint16(h[4:6], e.ID)
	binary.BigEndian.PutUint16(h[6:8], e.Seq)
	return h, 2
}

// TCP options, to concatenate into TCP.Options.

// MSS is the maximum segment size option.
func MSS(mss uint16) []byte { return []byte{2, 4, byte(mss >> 8), byte(mss)} }

// NOP is the no-operation option.
func NOP() []byte { return []byte{1} }

// SACKPermitted is the SACK-permitted option.
func SACKPermitted() []byte { return []byte{4, 2} }

// WindowScale is the window scale option.
func WindowScale(shift uint8) []byte { return []byte{3, 3, shift} }

// Timestamps is the timestamps option.
func Timestamps(val, ecr uint32) []byte {
	b := []byte{8, 10, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[2:6], val)
	binary.BigEndian.PutUint32(b[6:10], ecr)
	return b
}

// Options concatenates TCP options.
func Options(opts ...[]byte) []byte {
	var b []byte
	for _, o := range opts {
		b = append(b, o...)
	}
	return b
}

// MulticastMAC is the Ethernet address a multicast group is sent to: 01:00:5e and the low 23
// bits of an IPv4 group (RFC 1112), 33:33 and the low 32 bits of an IPv6 group (RFC 2464).
func MulticastMAC(group netip.Addr) net.HardwareAddr {
	if group.Is4() {
		a := group.As4()
		return net.HardwareAddr{0x01, 0x00, 0x5e, a[1] & 0x7f, a[2], a[3]}
	}
	a := group.As16()
	return net.HardwareAddr{0x33, 0x33, a[12], a[13], a[14], a[15]}
}
