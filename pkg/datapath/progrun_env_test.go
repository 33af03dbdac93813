package datapath

// BPF_PROG_TEST_RUN tests of steer_ingress, steer_ingress_xdp and steer_egress: every branch,
// IPv4 and IPv6, TCP/UDP/ICMP, checking the verdict, every rewritten byte, checksums, counters
// and the flow table. The programs find their interface by ifindex, so each test makes a pod
// namespace with real veth links (their peers in a second namespace, where multicast copies are
// captured) and runs the programs inside it.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/internal/testutil/packet"
	"github.com/steernet/steer/internal/testutil/progrun"
)

// The pod of every test: slot 0 is the cluster network, slots 1 and 2 are pinned secondaries.
// Slot 1 has a smaller MTU, for MSS clamping and oversize drops.
const (
	prPrimary = 0
	prA       = 1
	prB       = 2
	prSlots   = 3
	prMTUA    = 1400
	prMTU     = 1500
	prUnknown = MaxInterfaces // counter row of interfaces that are not configured

	tcOK       = progrun.TCOK
	tcShot     = progrun.TCShot
	tcRedirect = progrun.TCRedirect
	xdpPass    = progrun.XDPPass
)

var (
	prMAC = [prSlots]net.HardwareAddr{
		{0x02, 0x5e, 0, 0, 0, 0x10}, {0x02, 0x5e, 0, 0, 0, 0x11}, {0x02, 0x5e, 0, 0, 0, 0x12},
	}
	// prHopMAC are the peers' MACs: the hops that deliver requests to the pod.
	prHopMAC = [prSlots]net.HardwareAddr{
		{0x02, 0xee, 0, 0, 0, 0x10}, {0x02, 0xee, 0, 0, 0, 0x11}, {0x02, 0xee, 0, 0, 0, 0x12},
	}
	prAddr4 = [prSlots]netip.Addr{
		netip.MustParseAddr("10.0.0.10"), netip.MustParseAddr("10.1.0.10"), netip.MustParseAddr("10.2.0.10"),
	}
	prAddr6 = [prSlots]netip.Addr{
		netip.MustParseAddr("fd00::10"), netip.MustParseAddr("fd00:1::10"), netip.MustParseAddr("fd00:2::10"),
	}
	prRemote4 = netip.MustParseAddr("198.51.100.7")
	prRemote6 = netip.MustParseAddr("2001:db8:99::7")

	// Groups: all three interfaces; the two secondaries only (the primary does not take it);
	// and an IPv6 one for the primary and B.
	prGroupAll = netip.MustParseAddr("239.1.2.3")
	prGroupAB  = netip.MustParseAddr("239.2.0.9")
	prGroup6   = netip.MustParseAddr("ff05::1:3")
	prGroupOff = netip.MustParseAddr("239.9.9.9") // in no group
)

func prAddr(slot int, v6 bool) netip.Addr {
	if v6 {
		return prAddr6[slot]
	}
	return prAddr4[slot]
}

func prRemote(v6 bool) netip.Addr {
	if v6 {
		return prRemote6
	}
	return prRemote4
}

func prFamilyName(v6 bool) string {
	if v6 {
		return "v6"
	}
	return "v4"
}

// prEnv is one test's pod namespace, the peer namespace holding the other ends of its links,
// and a collection loaded for the pod.
type prEnv struct {
	t         *testing.T
	pod, peer ns.NetNS
	index     [prSlots]int // ifindex of each slot's link in the pod
	peerIndex [prSlots]int
	unknown   int // ifindex of a pod link that is not configured
	cfg       Config
	objs      *Objects
}

// in returns the environment reporting to t, for a subtest.
func (e *prEnv) in(t *testing.T) *prEnv {
	c := *e
	c.t = t
	return &c
}

func prSkipUnlessRoot(t testing.TB) {
	t.Helper()
	nstest.RequireRoot(t) // and skipped under -short (make unit)
}

// prNewNS makes a namespace removed when the test ends, however it ends.
func prNewNS(t testing.TB) ns.NetNS {
	t.Helper()
	return nstest.NewNS(t)
}

// prSetup builds the pod: links p0..p2 (peers h0..h2 in the peer namespace) configured as the
// three slots, an unconfigured link x0, and the collection; edit changes the configuration.
func prSetup(t *testing.T, edit ...func(*Config)) *prEnv {
	t.Helper()
	prSkipUnlessRoot(t)
	e := &prEnv{t: t, pod: prNewNS(t), peer: prNewNS(t)}
	// No IPv6 on the links: their router solicitations and MLD reports would add to the
	// counters of attached programs. Frames are still captured and programs still run.
	for _, n := range []ns.NetNS{e.pod, e.peer} {
		err := n.Do(func(ns.NetNS) error {
			for _, conf := range []string{"all", "default"} {
				if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+conf+"/disable_ipv6", []byte("1"), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("disable IPv6: %v", err)
		}
	}

	err := e.pod.Do(func(ns.NetNS) error {
		for i := range prSlots {
			mtu := prMTU
			if i == prA {
				mtu = prMTUA
			}
			veth := &netlink.Veth{
				LinkAttrs:        netlink.LinkAttrs{Name: fmt.Sprintf("p%d", i), MTU: mtu, HardwareAddr: prMAC[i]},
				PeerName:         fmt.Sprintf("h%d", i),
				PeerHardwareAddr: prHopMAC[i],
				PeerMTU:          uint32(mtu),
				PeerNamespace:    netlink.NsFd(int(e.peer.Fd())),
			}
			if err := netlink.LinkAdd(veth); err != nil {
				return fmt.Errorf("add veth p%d: %w", i, err)
			}
			l, err := netlink.LinkByName(veth.Name)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return err
			}
			e.index[i] = l.Attrs().Index
		}
		// No dummy module everywhere: a veth with its peer away serves as well.
		x := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "x0"}, PeerName: "y0",
			PeerNamespace: netlink.NsFd(int(e.peer.Fd()))}
		if err := netlink.LinkAdd(x); err != nil {
			return fmt.Errorf("add veth x0: %w", err)
		}
		l, err := netlink.LinkByName("x0")
		if err != nil {
			return err
		}
		e.unknown = l.Attrs().Index
		return netlink.LinkSetUp(l)
	})
	if err != nil {
		t.Fatalf("pod links: %v", err)
	}
	err = e.peer.Do(func(ns.NetNS) error {
		for i := range prSlots {
			l, err := netlink.LinkByName(fmt.Sprintf("h%d", i))
			if err != nil {
				return err
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return err
			}
			e.peerIndex[i] = l.Attrs().Index
		}
		return nil
	})
	if err != nil {
		t.Fatalf("peer links: %v", err)
	}

	e.cfg = Config{Groups: []Group{
		{Prefix: netip.MustParsePrefix("239.1.0.0/16"), Interfaces: []string{"p0", "p1", "p2"}},
		{Prefix: netip.MustParsePrefix("239.2.0.0/16"), Interfaces: []string{"p1", "p2"}},
		{Prefix: netip.MustParsePrefix("ff05::1:0/112"), Interfaces: []string{"p0", "p2"}},
	}}
	for i := range prSlots {
		mtu := prMTU
		if i == prA {
			mtu = prMTUA
		}
		e.cfg.Interfaces = append(e.cfg.Interfaces, Interface{
			Name: fmt.Sprintf("p%d", i), Index: e.index[i], MTU: mtu, MAC: prMAC[i],
			Primary: i == prPrimary, Pin: i != prPrimary,
			Addr4: prAddr4[i], Addr6: prAddr6[i],
			Gateway4: netip.MustParseAddr(fmt.Sprintf("10.%d.0.1", i)),
			Gateway6: netip.MustParseAddr(fmt.Sprintf("fd00:%d::1", i)),
		})
	}
	for _, f := range edit {
		f(&e.cfg)
	}
	objs, err := Load(e.cfg)
	if err != nil {
		t.Fatalf("load: %v", err) // Load formats a verifier error with %+v
	}
	t.Cleanup(func() { objs.Close() })
	e.objs = objs
	return e
}

type prRun struct {
	ret  uint32
	out  []byte
	mark uint32 // skb->mark after the run
}

// tc runs a TC program on the frame as if it passed ifindex; ctx may preset mark and gso_segs.
func (e *prEnv) tc(prog *ebpf.Program, ifindex int, in []byte, ctx progrun.Skb) prRun {
	e.t.Helper()
	ctx.Ifindex = uint32(ifindex)
	var out progrun.Skb
	return e.run(prog, ifindex, progrun.Input{Data: in, Context: ctx, ContextOut: &out}, &out.Mark)
}

func (e *prEnv) ingress(slot int, in []byte) prRun {
	e.t.Helper()
	return e.tc(e.objs.SteerIngress, e.index[slot], in, progrun.Skb{})
}

func (e *prEnv) egress(slot int, in []byte) prRun {
	e.t.Helper()
	return e.tc(e.objs.SteerEgress, e.index[slot], in, progrun.Skb{})
}

func (e *prEnv) xdp(ifindex int, in []byte) prRun {
	e.t.Helper()
	return e.run(e.objs.SteerIngressXdp, ifindex, progrun.Input{Data: in, Context: progrun.XDP(ifindex, len(in))}, nil)
}

// run runs prog once in the pod; mark, when set, points at the context's mark after the run.
func (e *prEnv) run(prog *ebpf.Program, ifindex int, in progrun.Input, mark *uint32) prRun {
	e.t.Helper()
	in.DataOut = make([]byte, len(in.Data)+256)
	var r progrun.Result
	err := e.pod.Do(func(ns.NetNS) error {
		var err error
		r, err = progrun.Run(prog, in)
		return err
	})
	if err != nil {
		e.t.Fatalf("run %v on ifindex %d: %v", prog, ifindex, err)
	}
	out := prRun{ret: r.Ret, out: r.Data}
	if mark != nil {
		out.mark = *mark
	}
	return out
}

// prCount names a counter row: slot (prUnknown for the unknown-interface row) and reason.
type prCount struct {
	slot   int
	reason steerSteerReason
}

func (c prCount) String() string {
	return fmt.Sprintf("{slot %d %s}", c.slot, Reason(c.reason))
}

// reset empties the counters and the flow table between cases.
func (e *prEnv) reset() {
	e.t.Helper()
	zero := make([]steerSteerCounter, ebpf.MustPossibleCPU())
	for k := uint32(0); k < e.objs.SteerCounters.MaxEntries(); k++ {
		if err := e.objs.SteerCounters.Update(k, zero, ebpf.UpdateAny); err != nil {
			e.t.Fatalf("reset counter %d: %v", k, err)
		}
	}
	for k := range e.flows() {
		if err := e.objs.SteerFlows.Delete(k); err != nil {
			e.t.Fatalf("reset flow: %v", err)
		}
	}
}

// counters returns the packets of every non-zero row, summed over CPUs.
func (e *prEnv) counters() map[prCount]uint64 {
	e.t.Helper()
	got := map[prCount]uint64{}
	var vals []steerSteerCounter
	for k := uint32(0); k < e.objs.SteerCounters.MaxEntries(); k++ {
		if err := e.objs.SteerCounters.Lookup(k, &vals); err != nil {
			e.t.Fatalf("counter %d: %v", k, err)
		}
		var n, bytes uint64
		for _, v := range vals {
			n += v.Packets
			bytes += v.Bytes
		}
		if n != 0 {
			got[prCount{int(k) / NumReasons, steerSteerReason(k % uint32(NumReasons))}] = n
		}
		if (n == 0) != (bytes == 0) {
			e.t.Errorf("counter %d: %d packets, %d bytes", k, n, bytes)
		}
	}
	return got
}

// expectCounters checks that exactly the given rows are non-zero, with these packet counts.
func (e *prEnv) expectCounters(want map[prCount]uint64) {
	e.t.Helper()
	got := e.counters()
	for k, n := range want {
		if got[k] != n {
			e.t.Errorf("counter %v = %d, want %d", k, got[k], n)
		}
	}
	for k, n := range got {
		if _, ok := want[k]; !ok {
			e.t.Errorf("unexpected counter %v = %d", k, n)
		}
	}
}

func (e *prEnv) flows() map[steerFlowKey]steerFlowValue {
	e.t.Helper()
	got := map[steerFlowKey]steerFlowValue{}
	var k steerFlowKey
	var v steerFlowValue
	it := e.objs.SteerFlows.Iterate()
	for it.Next(&k, &v) {
		got[k] = v
	}
	if err := it.Err(); err != nil {
		e.t.Fatalf("iterate flows: %v", err)
	}
	return got
}

// prBE16 is a port as the flow key holds it: network byte order read as a host integer.
func prBE16(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

func prKey(proto uint8, remote netip.Addr, remotePort, localPort uint16) steerFlowKey {
	k := steerFlowKey{Family: syscall.AF_INET, Proto: proto, RemotePort: prBE16(remotePort), LocalPort: prBE16(localPort)}
	if remote.Is6() {
		k.Family = syscall.AF_INET6
	}
	k.Remote.V6 = AddrBytes(remote)
	return k
}

func prValue(ifindex int, peer, local net.HardwareAddr, localAddr netip.Addr) steerFlowValue {
	v := steerFlowValue{Ifindex: uint32(ifindex)}
	copy(v.PeerMac[:], peer)
	copy(v.LocalMac[:], local)
	v.Local.V6 = AddrBytes(localAddr)
	return v
}

// expectFlows checks that the flow table holds exactly want.
func (e *prEnv) expectFlows(want map[steerFlowKey]steerFlowValue) {
	e.t.Helper()
	got := e.flows()
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			e.t.Errorf("no flow %+v", k)
		} else if g != v {
			e.t.Errorf("flow %+v = %+v, want %+v", k, g, v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			e.t.Errorf("unexpected flow %+v = %+v", k, v)
		}
	}
}

// prParse parses and verifies every checksum of a frame a program produced.
func prParse(t *testing.T, b []byte) *packet.Parsed {
	t.Helper()
	p, err := packet.Parse(b)
	if err != nil {
		t.Fatalf("parse output: %v\n%x", err, b)
	}
	if err := p.Verify(); err != nil {
		t.Fatalf("output checksums: %v\n%x", err, b)
	}
	return p
}

// prDiff lists the byte offsets where two frames differ.
func prDiff(a, b []byte) []int {
	var d []int
	for i := range max(len(a), len(b)) {
		if i >= len(a) || i >= len(b) || a[i] != b[i] {
			d = append(d, i)
		}
	}
	return d
}

// expectOnly checks that out equals in except at the given ranges [from, to).
func prExpectOnly(t *testing.T, in, out []byte, changed ...[2]int) {
	t.Helper()
	if len(in) != len(out) {
		t.Fatalf("length %d -> %d", len(in), len(out))
	}
	for _, i := range prDiff(in, out) {
		ok := false
		for _, r := range changed {
			ok = ok || (i >= r[0] && i < r[1])
		}
		if !ok {
			t.Errorf("byte %d changed: %#02x -> %#02x", i, in[i], out[i])
		}
	}
}

func prUnchanged(t *testing.T, in, out []byte) {
	t.Helper()
	if !bytes.Equal(in, out) {
		t.Errorf("frame changed at bytes %v", prDiff(in, out))
	}
}

// TestProgRunLoad loads every program with a full configuration (all slots, all groups: the
// verifier sees the configuration as constants, so this is its largest case) and prints the
// verifier log when that fails, and the verifier's statistics when it does not.
