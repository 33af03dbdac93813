package datapath

// Benchmarks of the programs' fast paths through BPF_PROG_TEST_RUN with a repeat count: the
// kernel runs the program b.N times on one skb (or xdp_buff) and reports the mean time per run,
// reported here as ns/pkt. Benchmark passes no context, so the packet is on the loopback
// interface (ifindex 1) of the namespace the benchmark runs in: the interface under test is
// configured with that ifindex. Each benchmark runs in a namespace of its own.
//
//	go test ./pkg/datapath -run '^$' -bench . -benchtime 2000000x
//
// Repeats reuse the skb, so what a program writes persists. A pinned reply's mark would turn
// every other run into the mark test of the interface it is sent to, so BenchmarkEgressPinnedReply
// runs each pass on a fresh skb (benchRunFresh: one run per call, cache-cold, so its figures are
// not comparable with the repeat loops'); its TCP reply keeps its source, as a steady state does.
//
// Each run also measures a trivial program of the same type (return TC_ACT_OK / XDP_PASS) on
// the same frame the same way; ns/pkt is the program's own cost, the test_run overhead
// (base-ns/pkt) subtracted, and raw-ns/pkt is what the kernel reported for it.

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/steernet/steer/internal/testutil/packet"
	"github.com/steernet/steer/internal/testutil/progrun"
)

const benchLoopback = 1

var (
	benchMAC    = net.HardwareAddr{0x02, 0x5e, 0, 0, 0, 0x20}
	benchHop    = net.HardwareAddr{0x02, 0xee, 0, 0, 0, 0x20}
	benchMACA   = net.HardwareAddr{0x02, 0x5e, 0, 0, 0, 0x21}
	benchHopA   = net.HardwareAddr{0x02, 0xee, 0, 0, 0, 0x21}
	benchAddr   = netip.MustParseAddr("10.0.0.10")
	benchAddrA  = netip.MustParseAddr("10.1.0.10")
	benchRemote = netip.MustParseAddr("198.51.100.7")
	benchGroup  = netip.MustParseAddr("239.1.2.3")
)

// benchIface is an interface of the benchmark pod; index 0 means the loopback.
func benchIface(name string, index int, mac net.HardwareAddr, addr netip.Addr, pin bool) Interface {
	if index == 0 {
		index = benchLoopback
	}
	return Interface{Name: name, Index: index, MTU: 1500, MAC: mac, Pin: pin, Primary: !pin, Addr4: addr,
		Gateway4: netip.AddrFrom4([4]byte{addr.As4()[0], addr.As4()[1], 0, 1})}
}

// benchLoad loads cfg for a benchmark, in a namespace of its own.
func benchLoad(b *testing.B, cfg Config) (*Objects, ns.NetNS) {
	b.Helper()
	prSkipUnlessRoot(b)
	n := prNewNS(b)
	objs, err := Load(cfg)
	if err != nil {
		b.Fatalf("load: %v", err)
	}
	b.Cleanup(func() { objs.Close() })
	return objs, n
}

// benchRun runs prog b.N times on frame in n and reports the kernel's mean time per run, minus
// that of a trivial program of the same type.
func benchRun(b *testing.B, n ns.NetNS, prog *ebpf.Program, frame []byte, want uint32) {
	b.Helper()
	base, err := progrun.Trivial(prog.Type())
	if err != nil {
		b.Fatal(err)
	}
	defer base.Close()
	in := progrun.Input{Data: frame, Repeat: uint32(b.N)}
	var r, baseRun progrun.Result
	err = n.Do(func(ns.NetNS) error {
		var err error
		if baseRun, err = progrun.Run(base, in); err != nil {
			return err
		}
		b.ResetTimer()
		r, err = progrun.Run(prog, in)
		return err
	})
	b.StopTimer()
	if err != nil {
		b.Fatalf("benchmark %v: %v", prog, err)
	}
	if r.Ret != want {
		b.Fatalf("%v returned %d, want %d", prog, r.Ret, want)
	}
	b.ReportMetric(float64(r.PerRun.Nanoseconds()-baseRun.PerRun.Nanoseconds()), "ns/pkt")
	b.ReportMetric(float64(baseRun.PerRun.Nanoseconds()), "base-ns/pkt")
	b.ReportMetric(float64(r.PerRun.Nanoseconds()), "raw-ns/pkt")
}

// benchRunFresh is benchRun with one run per BPF_PROG_TEST_RUN, each on a fresh skb made of
// frame and ctx, for a program whose runs change what the next one does (the loop mark). Single
// runs include the kernel's clock reads; the trivial program, run alternately, pays them too.
func benchRunFresh(b *testing.B, n ns.NetNS, prog *ebpf.Program, frame []byte, ctx progrun.Skb, want uint32) {
	b.Helper()
	base, err := progrun.Trivial(prog.Type())
	if err != nil {
		b.Fatal(err)
	}
	defer base.Close()
	in := progrun.Input{Data: frame, Context: progrun.Encode(ctx)}
	var progNS, baseNS int64
	err = n.Do(func(ns.NetNS) error {
		b.ResetTimer()
		for range b.N {
			r, err := progrun.Run(base, in)
			if err != nil {
				return err
			}
			baseNS += r.PerRun.Nanoseconds()
			if r, err = progrun.Run(prog, in); err != nil {
				return err
			}
			if r.Ret != want {
				return fmt.Errorf("returned %d, want %d", r.Ret, want)
			}
			progNS += r.PerRun.Nanoseconds()
		}
		return nil
	})
	b.StopTimer()
	if err != nil {
		b.Fatalf("benchmark %v: %v", prog, err)
	}
	per := func(ns int64) float64 { return float64(ns) / float64(b.N) }
	b.ReportMetric(per(progNS-baseNS), "ns/pkt")
	b.ReportMetric(per(baseNS), "base-ns/pkt")
	b.ReportMetric(per(progNS), "raw-ns/pkt")
}

// benchExpect checks the benchmark took the path it measures: row (slot, reason) counted at
// least runs packets.
func benchExpect(b *testing.B, objs *Objects, slot int, reason steerSteerReason, runs int) {
	b.Helper()
	var vals []CounterValue
	if err := objs.SteerCounters.Lookup(CounterKey(slot, Reason(reason)), &vals); err != nil {
		b.Fatal(err)
	}
	var got uint64
	for _, v := range vals {
		got += v.Packets
	}
	if got < uint64(runs) {
		b.Fatalf("counter %v = %d after %d runs: the benchmark missed its path", prCount{slot, reason}, got, runs)
	}
}

// benchFill puts n flows of other remotes into the flow table.
func benchFill(b *testing.B, objs *Objects, n int) {
	b.Helper()
	v := prValue(1000, benchHopA, benchMACA, benchAddrA)
	for i := range n {
		remote := netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)})
		k := prKey(packet.ProtoTCP, remote, uint16(1024+i%50000), 443)
		if err := objs.SteerFlows.Update(k, v, ebpf.UpdateNoExist); err != nil {
			b.Fatalf("flow %d: %v", i, err)
		}
	}
}

func benchTCP(sport, dport uint16) *packet.TCP {
	return &packet.TCP{SrcPort: sport, DstPort: dport, Seq: 1, Ack: 1, Flags: packet.TCPAck}
}

// BenchmarkEgressPrimaryMiss: the path of most packets, a pod's cluster traffic: no flow, not
// multicast, no secondary source; passed. With an empty table and with 10,000 flows.
func BenchmarkEgressPrimaryMiss(b *testing.B) {
	frame := prBuild(benchHop, benchMAC, benchAddr, benchRemote, benchTCP(33000, 443), "payload")
	for _, flows := range []int{0, 10000} {
		b.Run(fmt.Sprintf("flows=%d", flows), func(b *testing.B) {
			objs, n := benchLoad(b, Config{
				FlowEntries: 16384,
				Interfaces: []Interface{
					benchIface("eth0", 0, benchMAC, benchAddr, false),
					benchIface("net1", 1000, benchMACA, benchAddrA, true),
				},
			})
			benchFill(b, objs, flows)
			benchRun(b, n, objs.SteerEgress, frame, tcOK)
			benchExpect(b, objs, 0, steerSteerReasonSTEER_REASON_PASSED, b.N)
		})
	}
}

// BenchmarkEgressPinnedReply: a TCP reply to a flow learned on a secondary, leaving through the
// primary. out: flow hit, MAC rewrite, redirect to net1. in: the same reply as net1's egress
// program then sees it, with the mark out left on it. One run per BPF_PROG_TEST_RUN (see
// benchRunFresh): a repeat loop would run each pass on what the previous one left.
func BenchmarkEgressPinnedReply(b *testing.B) {
	k := prKey(packet.ProtoTCP, benchRemote, 40000, 80)
	frame := prBuild(benchHop, benchMAC, benchAddrA, benchRemote, benchTCP(80, 40000), "payload")
	load := func(b *testing.B, eth0, net1 int) (*Objects, ns.NetNS) {
		objs, n := benchLoad(b, Config{
			FlowEntries: 16384,
			Interfaces: []Interface{
				benchIface("eth0", eth0, benchMAC, benchAddr, false),
				benchIface("net1", net1, benchMACA, benchAddrA, true),
			},
		})
		benchFill(b, objs, 10000)
		if err := objs.SteerFlows.Put(k, prValue(max(net1, benchLoopback), benchHopA, benchMACA, benchAddrA)); err != nil {
			b.Fatal(err)
		}
		return objs, n
	}
	b.Run("out", func(b *testing.B) {
		objs, n := load(b, 0, 1000)
		benchRunFresh(b, n, objs.SteerEgress, frame, progrun.TC(benchLoopback), tcRedirect)
		benchExpect(b, objs, 1, steerSteerReasonSTEER_REASON_PINNED, b.N)
	})
	b.Run("in", func(b *testing.B) {
		objs, n := load(b, 0, 1000)
		var ctx progrun.Skb
		var sent []byte
		err := n.Do(func(ns.NetNS) error {
			r, err := progrun.Run(objs.SteerEgress, progrun.Input{Data: frame, Context: progrun.TC(benchLoopback),
				ContextOut: &ctx, DataOut: make([]byte, len(frame))})
			sent = r.Data
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		objs, n = load(b, 1000, 0) // net1 is the loopback now
		benchRunFresh(b, n, objs.SteerEgress, sent, progrun.Skb{Ifindex: benchLoopback, Mark: ctx.Mark}, tcOK)
		benchExpect(b, objs, 1, steerSteerReasonSTEER_REASON_PASSED, b.N)
	})
}

// BenchmarkIngressLearnExisting: a request of a flow already learned, on a pinned secondary:
// parse, lookup, compare, no update. TC and XDP.
func BenchmarkIngressLearnExisting(b *testing.B) {
	objs, n := benchLoad(b, Config{
		Interfaces: []Interface{
			benchIface("eth0", 1000, benchMAC, benchAddr, false),
			benchIface("net1", 0, benchMACA, benchAddrA, true),
		},
	})
	frame := prBuild(benchMACA, benchHopA, benchRemote, benchAddrA, benchTCP(40000, 80), "payload")
	for _, h := range []struct {
		name string
		prog *ebpf.Program
		pass uint32
	}{{"tc", objs.SteerIngress, tcOK}, {"xdp", objs.SteerIngressXdp, xdpPass}} {
		b.Run(h.name, func(b *testing.B) {
			if err := objs.SteerCounters.Put(CounterKey(1, ReasonLearned), make([]CounterValue, ebpf.MustPossibleCPU())); err != nil {
				b.Fatal(err)
			}
			benchRun(b, n, h.prog, frame, h.pass)
			benchExpect(b, objs, 1, steerSteerReasonSTEER_REASON_LEARNED, b.N)
		})
	}
}

// BenchmarkEgressMulticastFanout: a datagram to a group taken by the current interface and two
// others: two rewritten clones sent through veth links and the original restored. The peers drop
// the copies with XDP, so little of a receiver's cost is in the figure (the copies are received
// in the softirq that follows the transmit, inside the timed run).
func BenchmarkEgressMulticastFanout(b *testing.B) {
	prSkipUnlessRoot(b)
	n := prNewNS(b)
	drop, err := progrun.Returning(ebpf.XDP, progrun.XDPDrop)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { drop.Close() })
	var index [2]int
	err = n.Do(func(ns.NetNS) error {
		for i := range index {
			v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("m%d", i)}, PeerName: fmt.Sprintf("mp%d", i)}
			if err := netlink.LinkAdd(v); err != nil {
				return err
			}
			for _, name := range []string{v.Name, v.PeerName} {
				l, err := netlink.LinkByName(name)
				if err != nil {
					return err
				}
				if err := netlink.LinkSetUp(l); err != nil {
					return err
				}
				if name == v.Name {
					index[i] = l.Attrs().Index
					continue
				}
				x, err := link.AttachXDP(link.XDPOptions{Program: drop, Interface: l.Attrs().Index})
				if err != nil {
					return fmt.Errorf("XDP on %s: %w", name, err)
				}
				b.Cleanup(func() { x.Close() })
			}
		}
		return nil
	})
	if err != nil {
		b.Fatalf("links: %v", err)
	}
	cfg := Config{
		Interfaces: []Interface{
			benchIface("eth0", 0, benchMAC, benchAddr, false),
			benchIface("m0", index[0], benchMACA, benchAddrA, true),
			benchIface("m1", index[1], net.HardwareAddr{0x02, 0x5e, 0, 0, 0, 0x22}, netip.MustParseAddr("10.2.0.10"), true),
		},
		Groups: []Group{{Prefix: netip.MustParsePrefix("239.1.0.0/16"), Interfaces: []string{"eth0", "m0", "m1"}}},
	}
	objs, err := Load(cfg)
	if err != nil {
		b.Fatalf("load: %v", err)
	}
	b.Cleanup(func() { objs.Close() })
	frame := prBuild(packet.MulticastMAC(benchGroup), benchMAC, benchAddr, benchGroup,
		&packet.UDP{SrcPort: 5000, DstPort: 6000}, "multicast payload")
	benchRun(b, n, objs.SteerEgress, frame, tcOK)
	benchExpect(b, objs, 1, steerSteerReasonSTEER_REASON_MULTICAST, b.N)
	benchExpect(b, objs, 2, steerSteerReasonSTEER_REASON_MULTICAST, b.N)
}
