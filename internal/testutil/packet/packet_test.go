package packet

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
	v4A  = netip.MustParseAddr("192.0.2.1")
	v4B  = netip.MustParseAddr("192.0.2.2")
	v6A  = netip.MustParseAddr("2001:db8::1")
	v6B  = netip.MustParseAddr("2001:db8::2")
)

// kernelFrames were sent by Linux 6.18 between two namespaces over a veth pair with checksum
// offload off ('ethtool -K tx off', so the kernel computed every checksum in software), and
// captured with 'tcpdump -xx' on the peer: UDP from Python sockets, the SYNs of non-blocking
// connects, and 'ping -s 8 -p 73746565'. They are the independent reference for the builder
// and the checker.
var kernelFrames = []struct {
	name  string
	hex   string
	frame Frame
}{
	{
		name: "udp4",
		hex:  "02000000000b02000000000a080045000026c15840004011f56ac0000201c00002029c4000350012aeb073746565722d75647034",
		frame: Frame{
			Eth:     Ethernet{Dst: macB, Src: macA},
			IP:      &IP{Src: v4A, Dst: v4B, ID: 0xc158, Flags: DontFragment},
			L4:      &UDP{SrcPort: 40000, DstPort: 53},
			Payload: []byte("steer-udp4"),
		},
	},
	{
		name: "udp6",
		hex:  "02000000000b02000000000a86dd600692560012114020010db800000000000000000000000120010db80000000000000000000000029c4100350012d73c73746565722d75647036",
		frame: Frame{
			Eth:     Ethernet{Dst: macB, Src: macA},
			IP:      &IP{Src: v6A, Dst: v6B, FlowLabel: 0x69256},
			L4:      &UDP{SrcPort: 40001, DstPort: 53},
			Payload: []byte("steer-udp6"),
		},
	},
	{
		name: "tcp4-syn",
		hex:  "02000000000b02000000000a08004500003ca02b40004006168dc0000201c00002029c420050fcc528b000000000a002faf015810000020405b40402080acae52699000000000103030a",
		frame: Frame{
			Eth: Ethernet{Dst: macB, Src: macA},
			IP:  &IP{Src: v4A, Dst: v4B, ID: 0xa02b, Flags: DontFragment},
			L4: &TCP{SrcPort: 40002, DstPort: 80, Seq: 0xfcc528b0, Flags: TCPSyn, Window: 64240,
				Options: Options(MSS(1460), SACKPermitted(), Timestamps(0xcae52699, 0), NOP(), WindowScale(10))},
		},
	},
	{
		name: "tcp6-syn",
		hex:  "02000000000b02000000000a86dd600073cd0028064020010db800000000000000000000000120010db80000000000000000000000029c4200508a59c98f00000000a002fd2053330000020405a00402080afd2dae9e000000000103030a",
		frame: Frame{
			Eth: Ethernet{Dst: macB, Src: macA},
			IP:  &IP{Src: v6A, Dst: v6B, FlowLabel: 0x073cd},
			L4: &TCP{SrcPort: 40002, DstPort: 80, Seq: 0x8a59c98f, Flags: TCPSyn, Window: 64800,
				Options: Options(MSS(1440), SACKPermitted(), Timestamps(0xfd2dae9e, 0), NOP(), WindowScale(10))},
		},
	},
	{
		name: "icmp4-echo",
		hex:  "02000000000b02000000000a080045000024dd6640004001d96ec0000201c00002020800abb7736d00017374656500000000",
		frame: Frame{
			Eth:     Ethernet{Dst: macB, Src: macA},
			IP:      &IP{Src: v4A, Dst: v4B, ID: 0xdd66, Flags: DontFragment},
			L4:      &Echo{ID: 0x736d, Seq: 1},
			Payload: []byte{0x73, 0x74, 0x65, 0x65, 0, 0, 0, 0},
		},
	},
	{
		name: "icmp6-echo",
		hex:  "02000000000b02000000000a86dd60054c3600103a4020010db800000000000000000000000120010db80000000000000000000000028000d7f6736e00017374656500000000",
		frame: Frame{
			Eth:     Ethernet{Dst: macB, Src: macA},
			IP:      &IP{Src: v6A, Dst: v6B, FlowLabel: 0x54c36},
			L4:      &Echo{ID: 0x736e, Seq: 1},
			Payload: []byte{0x73, 0x74, 0x65, 0x65, 0, 0, 0, 0},
		},
	},
}

func TestPacketBuildMatchesKernel(t *testing.T) {
	for _, tc := range kernelFrames {
		t.Run(tc.name, func(t *testing.T) {
			want, err := hex.DecodeString(tc.hex)
			if err != nil {
				t.Fatal(err)
			}
			got := tc.frame.Bytes()
			if !bytes.Equal(got, want) {
				t.Fatalf("built\n%x\nkernel sent\n%x", got, want)
			}
			p, err := Parse(want)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if err := p.Verify(); err != nil {
				t.Fatalf("verify the kernel's frame: %v", err)
			}
		})
	}
}

// TestPacketVerifyCatchesEveryBitFlip flips each bit covered by a checksum (the IPv4 header,
// IPv6 addresses, the whole transport segment) in the kernel's frames: Verify must fail every
// time, so a rewrite that forgets a checksum update cannot pass a test.
func TestPacketVerifyCatchesEveryBitFlip(t *testing.T) {
	for _, tc := range kernelFrames {
		t.Run(tc.name, func(t *testing.T) {
			orig, _ := hex.DecodeString(tc.hex)
			p, err := Parse(orig)
			if err != nil {
				t.Fatal(err)
			}
			start := p.L3Off // IPv4: the whole header is checksummed
			if p.Family == 6 {
				start = p.L3Off + 8 // IPv6: from the addresses (pseudo-header) on
			}
			for i := start; i < len(orig); i++ {
				if p.Family == 4 && (i == p.L3Off || i == p.L3Off+2 || i == p.L3Off+3) {
					continue // version/IHL and total length: a flip is a parse error, tested below
				}
				for bit := 0; bit < 8; bit++ {
					b := bytes.Clone(orig)
					b[i] ^= 1 << bit
					if err := Verify(b); err == nil {
						t.Errorf("byte %d bit %d flipped: Verify passed", i, bit)
					}
				}
			}
		})
	}
}

func TestPacketChecksumVectors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want uint16
	}{
		// RFC 1071 section 3: the words sum to 0x2ddf0, folded 0xddf2.
		{"rfc1071", "0001f203f4f5f6f7", ^uint16(0xddf2)},
		// The IPv4 header of the Wikipedia "Internet checksum" example, checksum field zeroed.
		{"ipv4-header", "450000730000400040110000c0a80001c0a800c7", 0xb861},
		// An odd length pads the last byte with zero.
		{"odd", "01", ^uint16(0x0100)},
		{"empty", "", 0xffff},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := hex.DecodeString(tc.in)
			if got := Checksum(b); got != tc.want {
				t.Fatalf("Checksum(%s) = %#04x, want %#04x", tc.in, got, tc.want)
			}
		})
	}
	// The folded sum of a datagram carrying its checksum is all ones.
	b, _ := hex.DecodeString("45000073000040004011b861c0a80001c0a800c7")
	if got := Fold(Sum(0, b)); got != 0xffff {
		t.Fatalf("header with its checksum sums to %#04x", got)
	}
}

func TestPacketMulticastMAC(t *testing.T) {
	tests := []struct{ group, want string }{
		{"224.0.0.251", "01:00:5e:00:00:fb"},
		{"239.255.255.250", "01:00:5e:7f:ff:fa"}, // only the low 23 bits
		{"232.129.2.3", "01:00:5e:01:02:03"},
		{"ff02::fb", "33:33:00:00:00:fb"},
		{"ff02::1:ff00:1", "33:33:ff:00:00:01"},
	}
	for _, tc := range tests {
		if got := MulticastMAC(netip.MustParseAddr(tc.group)).String(); got != tc.want {
			t.Errorf("MulticastMAC(%s) = %s, want %s", tc.group, got, tc.want)
		}
	}
}

// TestPacketVerifyMulticastMAC checks the checker rejects a group sent to a wrong Ethernet
// address: a wrong prefix (the 01:00:5e/33:33 mix-up), the 24th bit kept, a unicast address.
func TestPacketVerifyMulticastMAC(t *testing.T) {
	g4, g6 := netip.MustParseAddr("239.129.0.7"), netip.MustParseAddr("ff05::1:3")
	build := func(dst net.HardwareAddr, group netip.Addr) *Parsed {
		src := v4A
		if group.Is6() {
			src = v6A
		}
		p, err := Parse(Frame{Eth: Ethernet{Dst: dst, Src: macA}, IP: &IP{Src: src, Dst: group},
			L4: &UDP{SrcPort: 1, DstPort: 2}}.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := build(MulticastMAC(g4), g4).VerifyMulticastMAC(); err != nil {
		t.Errorf("right IPv4 group MAC: %v", err)
	}
	if err := build(MulticastMAC(g6), g6).VerifyMulticastMAC(); err != nil {
		t.Errorf("right IPv6 group MAC: %v", err)
	}
	bad := []struct {
		name  string
		mac   string
		group netip.Addr
	}{
		{"v4 with the v6 prefix", "33:33:01:00:00:07", g4},
		{"v4 prefix 01:00:5f", "01:00:5f:01:00:07", g4},
		{"v4 keeping bit 24", "01:00:5e:81:00:07", g4},
		{"v4 unicast", "02:00:00:01:00:07", g4},
		{"v6 with the v4 prefix", "01:00:5e:01:00:03", g6},
		{"v6 low bytes wrong", "33:33:00:00:00:03", g6},
	}
	for _, tc := range bad {
		mac, _ := net.ParseMAC(tc.mac)
		if err := build(mac, tc.group).VerifyMulticastMAC(); err == nil {
			t.Errorf("%s (%s for %s): accepted", tc.name, tc.mac, tc.group)
		}
	}
}

func TestPacketUDPZeroChecksum(t *testing.T) {
	b := Frame{IP: &IP{Src: v4A, Dst: v4B}, L4: &UDP{SrcPort: 1, DstPort: 2, ZeroChecksum: true},
		Payload: []byte("x")}.Bytes()
	p, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.L4Checksum != 0 {
		t.Fatalf("checksum %#04x, want 0", p.L4Checksum)
	}
	if err := p.Verify(); err != nil {
		t.Fatalf("IPv4 UDP without checksum: %v", err)
	}
	// ZeroChecksum is ignored for IPv6, which requires one; a zero one is rejected.
	b6 := Frame{IP: &IP{Src: v6A, Dst: v6B}, L4: &UDP{SrcPort: 1, DstPort: 2, ZeroChecksum: true}}.Bytes()
	if err := Verify(b6); err != nil {
		t.Fatalf("IPv6 UDP built with ZeroChecksum: %v", err)
	}
	zero := uint16(0)
	b6 = Frame{IP: &IP{Src: v6A, Dst: v6B}, L4: &UDP{SrcPort: 1, DstPort: 2, Checksum: &zero}}.Bytes()
	if err := Verify(b6); err == nil || !strings.Contains(err.Error(), "zero checksum") {
		t.Fatalf("IPv6 UDP with a zero checksum: %v", err)
	}
}

// TestPacketUDPComputedZero finds a payload whose checksum computes to zero: it must be sent
// as 0xffff (RFC 768), which verifies, since zero would mean "no checksum".
func TestPacketUDPComputedZero(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		payload := []byte{byte(i >> 8), byte(i)}
		f := Frame{IP: &IP{Src: v4A, Dst: v4B}, L4: &UDP{SrcPort: 1, DstPort: 2}, Payload: payload}
		zero := uint16(0)
		f.L4 = &UDP{SrcPort: 1, DstPort: 2, Checksum: &zero}
		p, _ := Parse(f.Bytes())
		seg := p.Raw[p.L4Off:]
		if L4Checksum(p.Src, p.Dst, ProtoUDP, seg) != 0 {
			continue
		}
		f.L4 = &UDP{SrcPort: 1, DstPort: 2}
		p, err := Parse(f.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if p.L4Checksum != 0xffff {
			t.Fatalf("payload %x: checksum %#04x, want 0xffff", payload, p.L4Checksum)
		}
		if err := p.Verify(); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("no payload with a zero checksum found")
}

func TestPacketParseFields(t *testing.T) {
	b := Frame{
		Eth: Ethernet{Dst: macB, Src: macA},
		IP:  &IP{Src: v4A, Dst: v4B, TTL: 7, Options: []byte{1, 1, 1}}, // three NOPs, padded
		L4: &TCP{SrcPort: 1234, DstPort: 80, Seq: 7, Ack: 9, Flags: TCPSyn | TCPAck,
			Options: Options(NOP(), NOP(), MSS(1400))},
		Payload: []byte("hello"),
	}.Bytes()
	p, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(); err != nil {
		t.Fatal(err)
	}
	if p.Family != 4 || p.TTL != 7 || p.L4Off != EthLen+24 || p.Protocol != ProtoTCP {
		t.Fatalf("IP fields: %+v", p)
	}
	if p.SrcPort != 1234 || p.DstPort != 80 || p.TCPSeq != 7 || p.TCPAck != 9 || p.TCPFlags != TCPSyn|TCPAck {
		t.Fatalf("TCP fields: %+v", p)
	}
	mss, off, ok := p.MSS()
	if !ok || mss != 1400 || off != p.L4Off+TCPLen+4 || b[off] != 0x05 || b[off+1] != 0x78 {
		t.Fatalf("MSS() = %d at %d (%v)", mss, off, ok)
	}
	if string(p.Payload) != "hello" {
		t.Fatalf("payload %q", p.Payload)
	}
	if p.EthDst.String() != macB.String() || p.EthSrc.String() != macA.String() {
		t.Fatalf("MACs %v %v", p.EthDst, p.EthSrc)
	}
}

func TestPacketParseErrors(t *testing.T) {
	full := Frame{IP: &IP{Src: v4A, Dst: v4B}, L4: &TCP{SrcPort: 1, DstPort: 2}}.Bytes()
	for _, n := range []int{0, 13, EthLen + 19, EthLen + IPv4Len + 19} {
		if _, err := Parse(full[:n]); !errors.Is(err, ErrTruncated) {
			t.Errorf("%d bytes: %v, want ErrTruncated", n, err)
		}
	}
	full6 := Frame{IP: &IP{Src: v6A, Dst: v6B}, L4: &Echo{ID: 1}}.Bytes()
	if _, err := Parse(full6[:len(full6)-1]); !errors.Is(err, ErrTruncated) {
		t.Errorf("short IPv6: %v", err)
	}
	arp := Frame{Eth: Ethernet{Type: EtherTypeARP}, Payload: make([]byte, 28)}.Bytes()
	p, err := Parse(arp)
	if err != nil || p.Family != 0 || len(p.Payload) != 28 {
		t.Fatalf("ARP: %+v, %v", p, err)
	}
	if err := p.Verify(); err != nil {
		t.Fatalf("ARP verify: %v", err)
	}
	if _, err := (Frame{IP: &IP{Src: v4A, Dst: v6B}}).Build(); err == nil {
		t.Fatal("mixed families built")
	}
}

func TestPacketBadChecksumRejected(t *testing.T) {
	bad := uint16(0x1234)
	for _, f := range []Frame{
		{IP: &IP{Src: v4A, Dst: v4B}, L4: &TCP{SrcPort: 1, DstPort: 2, Checksum: &bad}},
		{IP: &IP{Src: v6A, Dst: v6B}, L4: &TCP{SrcPort: 1, DstPort: 2, Checksum: &bad}},
		{IP: &IP{Src: v4A, Dst: v4B}, L4: &UDP{SrcPort: 1, DstPort: 2, Checksum: &bad}},
		{IP: &IP{Src: v6A, Dst: v6B}, L4: &UDP{SrcPort: 1, DstPort: 2, Checksum: &bad}},
		{IP: &IP{Src: v4A, Dst: v4B}, L4: &Echo{ID: 1, Checksum: &bad}},
		{IP: &IP{Src: v6A, Dst: v6B}, L4: &Echo{ID: 1, Checksum: &bad}},
	} {
		if err := Verify(f.Bytes()); err == nil || !strings.Contains(err.Error(), "bad") {
			t.Errorf("%T over %v: %v", f.L4, f.IP.Src, err)
		}
	}
	// An IPv4 header checksum left stale by a source rewrite.
	b := Frame{IP: &IP{Src: v4A, Dst: v4B}, L4: &Echo{ID: 1}}.Bytes()
	copy(b[EthLen+12:], []byte{10, 0, 0, 1})
	if err := Verify(b); err == nil || !strings.Contains(err.Error(), "IPv4 header") {
		t.Errorf("stale IPv4 header checksum: %v", err)
	}
}
