package datapath

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/steernet/steer/internal/testutil/packet"
)

func (e *prEnv) captures() [prSlots]*packet.Capture {
	e.t.Helper()
	var caps [prSlots]*packet.Capture
	err := e.peer.Do(func(ns.NetNS) error {
		for i := range prSlots {
			c, err := packet.Listen(e.peerIndex[i])
			if err != nil {
				return err
			}
			e.t.Cleanup(func() { c.Close() })
			caps[i] = c
		}
		return nil
	})
	if err != nil {
		e.t.Fatalf("captures: %v", err)
	}
	return caps
}

// copies returns, per slot, the frames carrying marker that arrived at the slot's peer.
func (e *prEnv) copies(caps [prSlots]*packet.Capture, marker []byte, want []int) [prSlots][][]byte {
	e.t.Helper()
	var got [prSlots][][]byte
	expected := map[int]bool{}
	for _, s := range want {
		expected[s] = true
	}
	match := func(f []byte) bool { return bytes.Contains(f, marker) }
	// The expected copies first, waiting for them; by then any unexpected one is queued too.
	for _, pass := range []bool{true, false} {
		for i, c := range caps {
			if expected[i] != pass {
				continue
			}
			wait, n := 20*time.Millisecond, 0
			if pass {
				wait, n = 2*time.Second, 1
			}
			frames, err := c.Collect(wait, n, match)
			if err != nil {
				e.t.Fatalf("capture on h%d: %v", i, err)
			}
			got[i] = frames
		}
	}
	return got
}

// prExpectCopy checks a multicast copy sent out of slot: the group's MAC kept, slot's MAC and
// address as sources, valid checksums, nothing else changed.
func prExpectCopy(t *testing.T, in, cp []byte, slot int, v6 bool) *packet.Parsed {
	t.Helper()
	orig, err := packet.Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	p := prExpectSentBy(t, in, cp, slot, orig.EthDst, prAddr(slot, v6))
	if err := p.VerifyMulticastMAC(); err != nil {
		t.Error(err)
	}
	return p
}

type prMcCase struct {
	name     string
	cur      int
	v6       bool
	group    netip.Addr
	l4       packet.Transport
	size     int // frame size; 0: small
	verdict  uint32
	copies   []int
	counters map[prCount]uint64
	check    func(t *testing.T, cp *packet.Parsed) // more checks of each copy
}

func prMulticastCases() []prMcCase {
	mc := func(slot int) prCount { return prCount{slot, steerSteerReasonSTEER_REASON_MULTICAST} }
	pass := func(slot int) prCount { return prCount{slot, steerSteerReasonSTEER_REASON_PASSED} }
	udp := &packet.UDP{SrcPort: 5000, DstPort: 6000}
	return []prMcCase{
		{name: "v4 udp to all from primary", cur: prPrimary, group: prGroupAll, l4: udp, verdict: tcOK,
			copies: []int{prA, prB}, counters: map[prCount]uint64{mc(prA): 1, mc(prB): 1, pass(prPrimary): 1}},
		{name: "v4 udp to A and B from primary", cur: prPrimary, group: prGroupAB, l4: udp, verdict: tcShot,
			copies: []int{prA, prB}, counters: map[prCount]uint64{mc(prA): 1, mc(prB): 1}},
		{name: "v4 udp to all from A", cur: prA, group: prGroupAll, l4: udp, verdict: tcOK,
			copies: []int{prPrimary, prB}, counters: map[prCount]uint64{mc(prPrimary): 1, mc(prB): 1, pass(prA): 1}},
		{name: "v4 udp without checksum", cur: prPrimary, group: prGroupAll, verdict: tcOK,
			l4:     &packet.UDP{SrcPort: 5000, DstPort: 6000, ZeroChecksum: true},
			copies: []int{prA, prB}, counters: map[prCount]uint64{mc(prA): 1, mc(prB): 1, pass(prPrimary): 1},
			check: func(t *testing.T, cp *packet.Parsed) {
				if cp.L4Checksum != 0 {
					t.Errorf("copy has UDP checksum %#04x, want 0 (none)", cp.L4Checksum)
				}
			}},
		{name: "v4 icmp echo to all", cur: prPrimary, group: prGroupAll, l4: &packet.Echo{ID: 7, Seq: 1}, verdict: tcOK,
			copies: []int{prA, prB}, counters: map[prCount]uint64{mc(prA): 1, mc(prB): 1, pass(prPrimary): 1}},
		{name: "v4 too big for A", cur: prPrimary, group: prGroupAll, l4: udp, size: prMTUA + packet.EthLen + 1, verdict: tcOK,
			copies: []int{prB}, counters: map[prCount]uint64{
				{prA, steerSteerReasonSTEER_REASON_DROP_OVERSIZE}: 1, mc(prB): 1, pass(prPrimary): 1}},
		{name: "v6 udp from primary", cur: prPrimary, v6: true, group: prGroup6, l4: udp, verdict: tcOK,
			copies: []int{prB}, counters: map[prCount]uint64{mc(prB): 1, pass(prPrimary): 1}},
		{name: "v6 udp from A, not in the group", cur: prA, v6: true, group: prGroup6, l4: udp, verdict: tcShot,
			copies: []int{prPrimary, prB}, counters: map[prCount]uint64{mc(prPrimary): 1, mc(prB): 1}},
		{name: "v6 icmp echo", cur: prPrimary, v6: true, group: prGroup6, l4: &packet.Echo{ID: 7, Seq: 1}, verdict: tcOK,
			copies: []int{prB}, counters: map[prCount]uint64{mc(prB): 1, pass(prPrimary): 1}},
	}
}

// prMulticastFrame is a frame to c's group sent by the kernel through c.cur.
func prMulticastFrame(c prMcCase, marker string) []byte {
	src := prAddr(c.cur, c.v6)
	in := prBuild(packet.MulticastMAC(c.group), prMAC[c.cur], src, c.group, c.l4, marker)
	if c.size > len(in) {
		in = prBuild(packet.MulticastMAC(c.group), prMAC[c.cur], src, c.group, c.l4, marker+string(make([]byte, c.size-len(in))))
	}
	return in
}

// TestProgRunMulticast checks the fan-out: the verdict, the original's bytes (kept exactly when
// the current interface takes the group), every copy's bytes as captured on the wire, counters,
// and the loop mark cleared after the copies left.
func TestProgRunMulticast(t *testing.T) {
	e := prSetup(t)
	caps := e.captures()
	for i, c := range prMulticastCases() {
		t.Run(c.name, func(t *testing.T) {
			e := e.in(t)
			e.reset()
			marker := fmt.Sprintf("steer-mc-%d-%d", i, time.Now().UnixNano())
			in := prMulticastFrame(c, marker)
			r := e.egress(c.cur, in)
			if r.ret != c.verdict {
				t.Errorf("verdict %d, want %d", r.ret, c.verdict)
			}
			if r.mark != 0 {
				t.Errorf("mark %#x after the run, want the loop bit cleared", r.mark)
			}
			if c.verdict == tcOK {
				prUnchanged(t, in, r.out)
			}
			got := e.copies(caps, []byte(marker), c.copies)
			for slot, frames := range got {
				want := slices.Contains(c.copies, slot)
				if (len(frames) == 1) != want || len(frames) > 1 {
					t.Errorf("h%d received %d copies, want copy: %v", slot, len(frames), want)
					continue
				}
				for _, f := range frames {
					p := prExpectCopy(t, in, f, slot, c.v6)
					if c.check != nil {
						c.check(t, p)
					}
				}
			}
			e.expectCounters(c.counters)
		})
	}
}

// TestProgRunMulticastLoop attaches the egress program to the secondaries, as Attach does: the
// copies sent there carry the loop mark, so those programs pass them instead of fanning them out
// again, and each peer gets exactly one copy.
func TestProgRunMulticastLoop(t *testing.T) {
	e := prSetup(t)
	err := e.pod.Do(func(ns.NetNS) error {
		for _, slot := range []int{prA, prB} {
			l, err := link.AttachTCX(link.TCXOptions{Program: e.objs.SteerEgress, Attach: ebpf.AttachTCXEgress, Interface: e.index[slot]})
			if err != nil {
				return err
			}
			t.Cleanup(func() { l.Close() })
		}
		return nil
	})
	if errors.Is(err, ebpf.ErrNotSupported) {
		t.Skipf("TCX: %v", err)
	}
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	caps := e.captures()
	c := prMulticastCases()[0]
	marker := fmt.Sprintf("steer-loop-%d", time.Now().UnixNano())
	in := prMulticastFrame(c, marker)
	if r := e.egress(prPrimary, in); r.ret != tcOK {
		t.Fatalf("verdict %d", r.ret)
	}
	got := e.copies(caps, []byte(marker), []int{prA, prB})
	for _, slot := range []int{prA, prB} {
		if len(got[slot]) != 1 {
			t.Fatalf("h%d received %d copies, want 1", slot, len(got[slot]))
		}
		prExpectCopy(t, in, got[slot][0], slot, false)
	}
	if len(got[prPrimary]) != 0 {
		t.Errorf("h0 received %d copies", len(got[prPrimary]))
	}
	e.expectCounters(map[prCount]uint64{
		{prA, steerSteerReasonSTEER_REASON_MULTICAST}:    1,
		{prB, steerSteerReasonSTEER_REASON_MULTICAST}:    1,
		{prPrimary, steerSteerReasonSTEER_REASON_PASSED}: 1,
		{prA, steerSteerReasonSTEER_REASON_PASSED}:       1, // the copies, passed by the attached programs
		{prB, steerSteerReasonSTEER_REASON_PASSED}:       1,
	})
}

// TestProgRunMulticastOriginalKept: when the current interface takes the group, the original
// leaves exactly as the kernel built it even when no copy could be sent, or when the current
// interface has no address of the family to restore.
func TestProgRunMulticastOriginalKept(t *testing.T) {
	t.Run("every copy fails", func(t *testing.T) {
		// A and B configured with interfaces that do not exist: bpf_clone_redirect fails.
		e := prSetup(t, func(c *Config) { c.Interfaces[prA].Index, c.Interfaces[prB].Index = 7001, 7002 })
		for _, v6 := range []bool{false, true} {
			e.reset()
			group := prGroupAll
			if v6 {
				group = prGroup6
			}
			in := prBuild(packet.MulticastMAC(group), prMAC[0], prAddr(prPrimary, v6), group, &packet.UDP{SrcPort: 1, DstPort: 2}, "lost copies")
			r := e.egress(prPrimary, in)
			if r.ret != tcOK {
				t.Errorf("%s: verdict %d, want TC_ACT_OK", prFamilyName(v6), r.ret)
			}
			prUnchanged(t, in, r.out)
			want := map[prCount]uint64{
				{prB, steerSteerReasonSTEER_REASON_DROP_ERROR}:   1,
				{prPrimary, steerSteerReasonSTEER_REASON_PASSED}: 1,
			}
			if !v6 {
				want[prCount{prA, steerSteerReasonSTEER_REASON_DROP_ERROR}] = 1
			}
			e.expectCounters(want)
		}
	})
	t.Run("current interface without an address of the family", func(t *testing.T) {
		e := prSetup(t, func(c *Config) { c.Interfaces[prPrimary].Addr6 = netip.Addr{} })
		caps := e.captures()
		linkLocal := netip.MustParseAddr("fe80::5e:10")
		marker := fmt.Sprintf("steer-ll-%d", time.Now().UnixNano())
		in := prBuild(packet.MulticastMAC(prGroup6), prMAC[0], linkLocal, prGroup6, &packet.UDP{SrcPort: 1, DstPort: 2}, marker)
		r := e.egress(prPrimary, in)
		if r.ret != tcOK {
			t.Errorf("verdict %d, want TC_ACT_OK", r.ret)
		}
		prUnchanged(t, in, r.out)
		got := e.copies(caps, []byte(marker), []int{prB})
		if len(got[prB]) != 1 {
			t.Fatalf("h2 received %d copies", len(got[prB]))
		}
		prExpectCopy(t, in, got[prB][0], prB, true)
	})
}

// TestProgRunCheckerCatchesBadCopies takes a real multicast copy and breaks it the ways a
// program bug would: the checks these tests rely on must reject every one.
func TestProgRunCheckerCatchesBadCopies(t *testing.T) {
	e := prSetup(t)
	caps := e.captures()
	c := prMulticastCases()[0]
	marker := fmt.Sprintf("steer-bad-%d", time.Now().UnixNano())
	e.egress(c.cur, prMulticastFrame(c, marker))
	got := e.copies(caps, []byte(marker), []int{prA, prB})
	if len(got[prA]) != 1 {
		t.Fatalf("h1 received %d copies", len(got[prA]))
	}
	good := got[prA][0]
	p := prParse(t, good)
	if err := p.VerifyMulticastMAC(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		name   string
		off    int
		xor    byte
		macErr bool // caught by VerifyMulticastMAC rather than Verify
	}{
		{"IPv6 prefix 33:33 on an IPv4 group", 0, 0x01 ^ 0x33, true},
		{"prefix 01:00:5f", 2, 0x5e ^ 0x5f, true},
		{"bit 24 of the group kept", 3, 0x80, true},
		{"stale IPv4 header checksum", p.L3Off + 11, 0x01, false},
		{"source changed without checksums", p.L3Off + 15, 0x01, false},
		{"stale UDP checksum", p.L4ChecksumOff + 1, 0x01, false},
	} {
		b := bytes.Clone(good)
		b[bad.off] ^= bad.xor
		q, err := packet.Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", bad.name, err)
		}
		if bad.macErr {
			err = q.VerifyMulticastMAC()
		} else {
			err = q.Verify()
		}
		if err == nil {
			t.Errorf("%s: accepted", bad.name)
		}
	}
}
