package packet

import (
	"encoding/binary"
	"net/netip"
)

// Sum adds b to a running one's complement sum as big-endian 16-bit words (RFC 1071); an odd
// last byte is padded with zero. The result is unfolded: pass it to Fold.
func Sum(initial uint32, b []byte) uint32 {
	s := uint64(initial)
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	for s>>32 != 0 {
		s = (s & 0xffffffff) + s>>32
	}
	return uint32(s)
}

// Fold folds a running sum to 16 bits (end-around carry), without complementing it.
func Fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// Checksum is the Internet checksum of b: the complement of its folded one's complement sum.
func Checksum(b []byte) uint16 {
	return ^Fold(Sum(0, b))
}

// PseudoHeaderSum is the unfolded sum of the TCP/UDP/ICMPv6 pseudo-header: RFC 793 for IPv4
// (addresses, zero, protocol, length) and RFC 8200 section 8.1 for IPv6 (addresses, 32-bit
// length, three zero bytes, next header). The two layouts sum to the same value.
func PseudoHeaderSum(src, dst netip.Addr, proto uint8, length int) uint32 {
	s := Sum(0, src.AsSlice())
	s = Sum(s, dst.AsSlice())
	var tail [8]byte
	binary.BigEndian.PutUint32(tail[0:4], uint32(length))
	tail[7] = proto
	return Sum(s, tail[:])
}

// L4Checksum is the checksum of a transport segment (header with a zero checksum field, and
// payload): with the pseudo-header for TCP, UDP and ICMPv6, without it for ICMPv4.
func L4Checksum(src, dst netip.Addr, proto uint8, segment []byte) uint16 {
	var s uint32
	if proto != ProtoICMP {
		s = PseudoHeaderSum(src, dst, proto, len(segment))
	}
	return ^Fold(Sum(s, segment))
}
