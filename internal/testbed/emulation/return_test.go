package emulation

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/datapath"
)

// expectProbes runs every probe from a namespace to each address: all must answer with Steer,
// none without (the emulation must show the problem).
func expectProbes(t *testing.T, topo *Topology, from string, steer bool, addrs ...netip.Addr) {
	t.Helper()
	ctx := context.Background()
	n := topo.Client
	if from == "lanhost" {
		n = topo.LANHost
	}
	for _, a := range addrs {
		for _, p := range []Probe{ICMP, TCP, UDP} {
			err := p.Run(ctx, n, n.Name(), a)
			switch {
			case steer && err != nil:
				t.Errorf("%s from %s to %s: %v", p, from, a, err)
			case !steer && err == nil:
				t.Errorf("%s from %s to %s worked without Steer: the emulation does not show the problem", p, from, a)
			}
		}
	}
}

func startEcho(t *testing.T, pod *Pod) {
	echo, err := StartEcho(pod.NS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(echo.Close)
}

// TestSeed001TwoNetworks: DMZ and management networks on one pod, each reached by the remote
// client through its own router leg; the router's strict rp_filter drops a reply that leaves
// by the other network.
func TestSeed001TwoNetworks(t *testing.T) {
	topo := topology(t)
	layout := nstest.BPFRoot(t)
	for _, steer := range modes() {
		t.Run(modeName(steer), func(t *testing.T) {
			pod := addPod(t, topo, layout, 0, "two", steer, []Network{eth0(t, 0), secondary("net1", DMZ, 12), secondary("net2", Mgmt, 12)})
			startEcho(t, pod)
			d4, d6 := DMZ.Addr(12)
			m4, m6 := Mgmt.Addr(12)
			expectProbes(t, topo, "client", steer, d4, d6, m4, m6)
			if steer {
				st, err := datapath.ReadPinned(layout, pod.ContainerID)
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range st.Flows {
					want := "net1"
					if Mgmt.V4.Contains(f.Local) || Mgmt.V6.Contains(f.Local) {
						want = "net2"
					}
					if f.Interface != want {
						t.Errorf("flow to %s learned on %s, want %s", f.Local, f.Interface, want)
					}
				}
			}
		})
	}
}

// TestPrimaryPathUntouched: pod-to-pod traffic over the overlay works the same with Steer's
// programs on every interface, and is counted as passed.
func TestPrimaryPathUntouched(t *testing.T) {
	topo := topology(t)
	layout := nstest.BPFRoot(t)
	ctx := context.Background()
	a := addPod(t, topo, layout, 0, "pa", true, []Network{eth0(t, 0), secondary("net1", DMZ, 13)})
	b := addPod(t, topo, layout, 1, "pb", true, []Network{eth0(t, 1), secondary("net1", DMZ, 14)})
	startEcho(t, b)
	for _, family := range []string{"-4", "-6"} {
		out, err := b.Exec(ctx, "ip", family, "-o", "addr", "show", "dev", "eth0", "scope", "global")
		if err != nil {
			t.Fatal(err)
		}
		addr := netip.MustParsePrefix(strings.Fields(out)[3]).Addr()
		for _, p := range []Probe{ICMP, TCP, UDP} {
			if err := p.Run(ctx, a.NS, a.NS.Name(), addr); err != nil {
				t.Errorf("%s pod to pod over the overlay (%s): %v", p, addr, err)
			}
		}
	}
	st, err := datapath.ReadPinned(layout, a.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Counters {
		if c.Interface == "eth0" && c.Reason != datapath.ReasonPassed {
			t.Errorf("primary traffic was %s (%d packets), want passed only", c.Reason, c.Packets)
		}
	}
}

// TestChecksumOffloadOff: with transmit checksum offload off in the pod and receive offload off
// at the clients (so they verify every checksum), rewritten replies still arrive.
func TestChecksumOffloadOff(t *testing.T) {
	topo := topology(t)
	layout := nstest.BPFRoot(t)
	ctx := context.Background()
	for _, n := range []string{topo.Client.Name(), topo.LANHost.Name()} {
		if _, err := execIn(ctx, n, "ethtool", "-K", "eth0", "rx", "off", "tx", "off"); err != nil {
			t.Fatal(err)
		}
	}
	for _, steer := range modes() {
		t.Run(modeName(steer), func(t *testing.T) {
			pod := addPod(t, topo, layout, 0, "csum", steer, []Network{eth0(t, 0), secondary("net1", DMZ, 15)})
			for _, dev := range []string{"eth0", "net1"} {
				if _, err := pod.Exec(ctx, "ethtool", "-K", dev, "tx", "off"); err != nil {
					t.Fatal(err)
				}
			}
			startEcho(t, pod)
			a4, a6 := DMZ.Addr(15)
			expectProbes(t, topo, "client", steer, a4, a6)
			expectProbes(t, topo, "lanhost", true, a4, a6)
		})
	}
}

// TestDelRemovesEverything: DEL leaves no pin, link, route or sysctl change, and a pod of the
// same name works again afterwards.
func TestDelRemovesEverything(t *testing.T) {
	topo := topology(t)
	layout := nstest.BPFRoot(t)
	ctx := context.Background()
	nets := []Network{eth0(t, 0), secondary("net1", DMZ, 16, "239.1.1.0/24")}
	for round := 0; round < 2; round++ {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) {
			d := NewDirect(pluginDir(t), t.TempDir(), steeringFor(layout))
			pod, err := NewPod("st", "again", 0)
			if err != nil {
				t.Fatal(err)
			}
			defer pod.Remove()
			if err := d.Add(ctx, topo.Nodes[0], pod, nets); err != nil {
				t.Fatal(err)
			}
			startEcho(t, pod)
			a4, _ := DMZ.Addr(16)
			expectProbes(t, topo, "client", true, a4)
			if out, _ := pod.Exec(ctx, "ip", "route", "show", "proto", "0x5e"); !strings.Contains(out, "239.1.1.0/24") {
				t.Errorf("group route missing: %q", out)
			}
			if err := d.Del(ctx, topo.Nodes[0], pod, nets); err != nil {
				t.Fatalf("del: %v", err)
			}
			if err := d.Del(ctx, topo.Nodes[0], pod, nets); err != nil {
				t.Fatalf("second del: %v", err)
			}
			if ids, _ := layout.Containers(); len(ids) != 0 {
				t.Errorf("pins left: %v", ids)
			}
			if out, _ := pod.Exec(ctx, "ip", "-d", "link", "show"); strings.Contains(out, "net1") || strings.Contains(out, "eth0") {
				t.Errorf("links left:\n%s", out)
			}
			if out, _ := pod.Exec(ctx, "bpftool", "net", "show"); strings.Contains(out, "steer") {
				t.Errorf("programs still attached:\n%s", out)
			}
			for _, table := range []string{"main", "local"} {
				if out, _ := pod.Exec(ctx, "ip", "-6", "route", "show", "table", table, "proto", "0x5e"); strings.TrimSpace(out) != "" {
					t.Errorf("routes left in %s: %q", table, out)
				}
			}
		})
	}
}
