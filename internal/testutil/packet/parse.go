package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Parsed is a frame read back by Parse. Offsets are from the start of the frame, so a test can
// point at any field (for example to corrupt it).
type Parsed struct {
	Raw []byte

	EthDst, EthSrc net.HardwareAddr
	EtherType      uint16

	// IP; Family is 0 when the frame is not IPv4 or IPv6.
	Family     int // 4 or 6
	Src, Dst   netip.Addr
	Protocol   uint8
	TTL        uint8  // hop limit for IPv6
	IPFlags    uint16 // IPv4 flags and fragment offset
	IPChecksum uint16 // IPv4 only
	L3Off      int
	L4Off      int
	L4Len      int // transport header and payload, from the IP length fields

	// Transport.
	SrcPort, DstPort uint16 // TCP and UDP
	TCPSeq, TCPAck   uint32
	TCPFlags         uint8
	TCPOptions       []byte
	ICMPType         uint8
	ICMPCode         uint8
	EchoID, EchoSeq  uint16
	L4Checksum       uint16
	L4ChecksumOff    int // -1 when the protocol is not one of TCP, UDP, ICMP, ICMPv6
	Payload          []byte
}

// ErrTruncated reports a frame shorter than its headers say.
var ErrTruncated = errors.New("truncated frame")

// Parse reads a frame's Ethernet, IP and transport headers. A frame that is not IP parses with
// Family 0 and its payload after the Ethernet header; an IPv4 fragment other than the first, or
// an unknown transport, parses with the IP payload as Payload.
func Parse(b []byte) (*Parsed, error) {
	p := &Parsed{Raw: b, L4ChecksumOff: -1}
	if len(b) < EthLen {
		return nil, fmt.Errorf("%w: %d bytes, no Ethernet header", ErrTruncated, len(b))
	}
	p.EthDst = net.HardwareAddr(b[0:6])
	p.EthSrc = net.HardwareAddr(b[6:12])
	p.EtherType = binary.BigEndian.Uint16(b[12:14])
	p.L3Off = EthLen
	ip := b[EthLen:]

	switch p.EtherType {
	case EtherTypeIPv4:
		if len(ip) < IPv4Len {
			return nil, fmt.Errorf("%w: IPv4 header", ErrTruncated)
		}
		if ip[0]>>4 != 4 {
			return nil, fmt.Errorf("IPv4 EtherType with version %d", ip[0]>>4)
		}
		hlen := int(ip[0]&0xf) * 4
		total := int(binary.BigEndian.Uint16(ip[2:4]))
		if hlen < IPv4Len || total < hlen {
			return nil, fmt.Errorf("IPv4 header length %d, total length %d", hlen, total)
		}
		if len(ip) < total {
			return nil, fmt.Errorf("%w: IPv4 total length %d, %d bytes", ErrTruncated, total, len(ip))
		}
		p.Family = 4
		p.TTL = ip[8]
		p.Protocol = ip[9]
		p.IPFlags = binary.BigEndian.Uint16(ip[6:8])
		p.IPChecksum = binary.BigEndian.Uint16(ip[10:12])
		p.Src = netip.AddrFrom4([4]byte(ip[12:16]))
		p.Dst = netip.AddrFrom4([4]byte(ip[16:20]))
		p.L4Off = EthLen + hlen
		p.L4Len = total - hlen
	case EtherTypeIPv6:
		if len(ip) < IPv6Len {
			return nil, fmt.Errorf("%w: IPv6 header", ErrTruncated)
		}
		if ip[0]>>4 != 6 {
			return nil, fmt.Errorf("IPv6 EtherType with version %d", ip[0]>>4)
		}
		plen := int(binary.BigEndian.Uint16(ip[4:6]))
		if len(ip) < IPv6Len+plen {
			return nil, fmt.Errorf("%w: IPv6 payload length %d, %d bytes", ErrTruncated, plen, len(ip)-IPv6Len)
		}
		p.Family = 6
		p.Protocol = ip[6]
		p.TTL = ip[7]
		p.Src = netip.AddrFrom16([16]byte(ip[8:24]))
		p.Dst = netip.AddrFrom16([16]byte(ip[24:40]))
		p.L4Off = EthLen + IPv6Len
		p.L4Len = plen
	default:
		p.Payload = ip
		return p, nil
	}

	seg := b[p.L4Off : p.L4Off+p.L4Len]
	if p.Family == 4 && p.IPFlags&0x1fff != 0 {
		p.Payload = seg // not the first fragment: no transport header
		return p, nil
	}
	if err := p.parseL4(seg); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Parsed) parseL4(seg []byte) error {
	switch p.Protocol {
	case ProtoTCP:
		if len(seg) < TCPLen {
			return fmt.Errorf("%w: TCP header", ErrTruncated)
		}
		doff := int(seg[12]>>4) * 4
		if doff < TCPLen || doff > len(seg) {
			return fmt.Errorf("TCP data offset %d in a %d-byte segment", doff, len(seg))
		}
		p.SrcPort = binary.BigEndian.Uint16(seg[0:2])
		p.DstPort = binary.BigEndian.Uint16(seg[2:4])
		p.TCPSeq = binary.BigEndian.Uint32(seg[4:8])
		p.TCPAck = binary.BigEndian.Uint32(seg[8:12])
		p.TCPFlags = seg[13]
		p.TCPOptions = seg[TCPLen:doff]
		p.L4ChecksumOff = p.L4Off + 16
		p.Payload = seg[doff:]
	case ProtoUDP:
		if len(seg) < UDPLen {
			return fmt.Errorf("%w: UDP header", ErrTruncated)
		}
		if ulen := int(binary.BigEndian.Uint16(seg[4:6])); ulen != len(seg) {
			return fmt.Errorf("UDP length %d, IP says %d", ulen, len(seg))
		}
		p.SrcPort = binary.BigEndian.Uint16(seg[0:2])
		p.DstPort = binary.BigEndian.Uint16(seg[2:4])
		p.L4ChecksumOff = p.L4Off + 6
		p.Payload = seg[UDPLen:]
	case ProtoICMP, ProtoICMPv6:
		if len(seg) < 4 {
			return fmt.Errorf("%w: ICMP header", ErrTruncated)
		}
		p.ICMPType, p.ICMPCode = seg[0], seg[1]
		p.L4ChecksumOff = p.L4Off + 2
		p.Payload = seg[4:]
		if p.IsEcho() {
			if len(seg) < ICMPLen {
				return fmt.Errorf("%w: ICMP echo header", ErrTruncated)
			}
			p.EchoID = binary.BigEndian.Uint16(seg[4:6])
			p.EchoSeq = binary.BigEndian.Uint16(seg[6:8])
			p.Payload = seg[ICMPLen:]
		}
	default:
		p.Payload = seg
		return nil
	}
	p.L4Checksum = binary.BigEndian.Uint16(p.Raw[p.L4ChecksumOff:])
	return nil
}

// IsEcho tells whether the frame is an ICMP or ICMPv6 echo request or reply.
func (p *Parsed) IsEcho() bool {
	switch p.Protocol {
	case ProtoICMP:
		return p.Family == 4 && (p.ICMPType == ICMPEchoRequest || p.ICMPType == ICMPEchoReply)
	case ProtoICMPv6:
		return p.Family == 6 && (p.ICMPType == ICMPv6EchoRequest || p.ICMPType == ICMPv6EchoReply)
	}
	return false
}

// MSS returns the value of the TCP MSS option and its offset in the frame.
func (p *Parsed) MSS() (mss uint16, off int, ok bool) {
	o := p.TCPOptions
	for i := 0; i < len(o); {
		switch o[i] {
		case 0:
			return 0, 0, false
		case 1:
			i++
			continue
		}
		if i+1 >= len(o) || o[i+1] < 2 {
			return 0, 0, false
		}
		if o[i] == 2 && o[i+1] == 4 && i+4 <= len(o) {
			return binary.BigEndian.Uint16(o[i+2:]), p.L4Off + TCPLen + i + 2, true
		}
		i += int(o[i+1])
	}
	return 0, 0, false
}

// Verify checks every checksum of the frame: the IPv4 header's, and the transport's (with the
// pseudo-header for TCP, UDP and ICMPv6). An IPv4 UDP datagram may carry no checksum (zero); an
// IPv6 one may not. Frames that are not IP, fragments and unknown transports have nothing to
// verify beyond the IPv4 header.
func (p *Parsed) Verify() error {
	if p.Family == 0 {
		return nil
	}
	if p.Family == 4 {
		hdr := p.Raw[p.L3Off:p.L4Off]
		if got := Fold(Sum(0, hdr)); got != 0xffff {
			return fmt.Errorf("bad IPv4 header checksum %#04x (sums to %#04x, want 0xffff)", p.IPChecksum, got)
		}
	}
	if p.L4ChecksumOff < 0 || (p.Family == 4 && p.IPFlags&(MoreFragments|0x1fff) != 0) {
		return nil
	}
	if p.Protocol == ProtoUDP && p.L4Checksum == 0 {
		if p.Family == 4 {
			return nil
		}
		return errors.New("IPv6 UDP datagram with a zero checksum")
	}
	if p.Protocol == ProtoICMP && p.Family != 4 || p.Protocol == ProtoICMPv6 && p.Family != 6 {
		return fmt.Errorf("ICMP protocol %d over IPv%d", p.Protocol, p.Family)
	}
	seg := p.Raw[p.L4Off : p.L4Off+p.L4Len]
	var s uint32
	if p.Protocol != ProtoICMP {
		s = PseudoHeaderSum(p.Src, p.Dst, p.Protocol, len(seg))
	}
	if got := Fold(Sum(s, seg)); got != 0xffff {
		return fmt.Errorf("bad %s checksum %#04x (sums to %#04x, want 0xffff)", protoName(p.Protocol), p.L4Checksum, got)
	}
	return nil
}

// VerifyMulticastMAC checks that a frame to a multicast group is sent to the group's Ethernet
// address (see MulticastMAC).
func (p *Parsed) VerifyMulticastMAC() error {
	if p.Family == 0 || !p.Dst.IsMulticast() {
		return fmt.Errorf("destination %v is not a multicast group", p.Dst)
	}
	if want := MulticastMAC(p.Dst); p.EthDst.String() != want.String() {
		return fmt.Errorf("group %v sent to %v, want %v", p.Dst, p.EthDst, want)
	}
	return nil
}

// Verify parses b and verifies its checksums.
func Verify(b []byte) error {
	p, err := Parse(b)
	if err != nil {
		return err
	}
	return p.Verify()
}

func protoName(proto uint8) string {
	switch proto {
	case ProtoTCP:
		return "TCP"
	case ProtoUDP:
		return "UDP"
	case ProtoICMP:
		return "ICMP"
	case ProtoICMPv6:
		return "ICMPv6"
	}
	return fmt.Sprintf("protocol %d", proto)
}
