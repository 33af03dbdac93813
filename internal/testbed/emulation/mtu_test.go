package emulation

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/netconf"
	"github.com/steernet/steer/pkg/steering"
)

// TestSmallerSecondaryMTU: the DMZ LAN runs at MTU 1400 while eth0 has 1500. The redirected
// reply skips IP-layer MTU handling, so TCP must be told the smaller MSS at the handshake;
// oversize UDP replies are dropped and counted.
func TestSmallerSecondaryMTU(t *testing.T) {
	topo := topology(t)
	layout := nstest.BPFRoot(t)
	ctx := context.Background()
	const mtu = 1400
	for _, c := range []struct {
		ns   string
		devs []string
	}{
		{topo.Nodes[0].Name(), []string{"lan0"}},
		{topo.DMZ.Name(), []string{"node0", "router", "lanhost"}},
		{topo.Router.Name(), []string{"dmz"}},
		{topo.LANHost.Name(), []string{"eth0"}},
	} {
		for _, dev := range c.devs {
			if _, err := execIn(ctx, c.ns, "ip", "link", "set", dev, "mtu", "1400"); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Run("without-steer", func(t *testing.T) {
		off := Network{IfName: "net1", Conf: DMZ.MacvlanConf(19, map[string]any{"mtu": mtu}), Policy: netconf.DefaultPolicy()}
		pod := addPod(t, topo, layout, 0, "mtu-off", false, []Network{eth0(t, 0), off})
		stop, err := StartBulk(pod.NS)
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		a4, _ := DMZ.Addr(19)
		if err := FetchBulk(ctx, topo.Client, a4, 2*time.Second); err == nil {
			t.Error("bulk TCP from the remote client worked without Steer: the emulation does not show the problem")
		}
	})
	net1 := Network{IfName: "net1", Conf: DMZ.MacvlanConf(17, map[string]any{"mtu": mtu}), Policy: netconf.DefaultPolicy()}
	pod := addPod(t, topo, layout, 0, "mtu", true, []Network{eth0(t, 0), net1})
	stop, err := StartBulk(pod.NS)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	startEcho(t, pod)
	a4, a6 := DMZ.Addr(17)
	for _, a := range []netip.Addr{a4, a6} {
		if err := FetchBulk(ctx, topo.Client, a, 5*time.Second); err != nil {
			t.Errorf("bulk TCP over the smaller MTU: %v", err)
		}
	}

	// A 1450-byte UDP reply cannot leave by net1 whole: the client sends a small datagram, the
	// pod answers big.
	var srv net.PacketConn
	if err := pod.NS.Do(func(ns.NetNS) (err error) { srv, err = net.ListenPacket("udp4", ":5354"); return err }); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	err = topo.Client.Do(func(ns.NetNS) error {
		c, err := net.DialTimeout("udp", netip.AddrPortFrom(a4, 5354).String(), time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("small"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = srv.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, from, err := srv.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.WriteTo(make([]byte, 1450), from); err != nil {
		t.Fatal(err)
	}
	if n := counter(t, layout, pod.ContainerID, "eth0", datapath.ReasonDropOversize); n == 0 {
		t.Errorf("oversize UDP reply not counted as %s", datapath.ReasonDropOversize)
	}
	if n := counter(t, layout, pod.ContainerID, "net1", datapath.ReasonMSSClamped); n == 0 {
		t.Errorf("no SYN was clamped")
	}
}

func counter(t *testing.T, layout bpffs.Layout, cid, ifname string, r datapath.Reason) uint64 {
	t.Helper()
	st, err := datapath.ReadPinned(layout, cid)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Counters {
		if c.Interface == ifname && c.Reason == r {
			return c.Packets
		}
	}
	return 0
}

// TestXDPIngressOnMovedDevice: a veth moved into the pod with host-device (as a VF would be)
// gets the XDP ingress program, and return traffic is steered the same.
func TestXDPIngressOnMovedDevice(t *testing.T) {
	topo := topology(t)
	layout := nstest.BPFRoot(t)
	a4, a6 := DMZ.Addr(18)
	conf := []byte(`{"cniVersion":"1.0.0","name":"dmz-hd","type":"host-device","device":"hd0","ipam":{"type":"static","addresses":[` +
		`{"address":"` + a4.String() + `/24","gateway":"192.0.2.1"},{"address":"` + a6.String() + `/64","gateway":"2001:db8:2::1"}]}}`)
	// A veth is not worth XDP in IngressAuto (its peer loses TSO); a VF would be. Ask for XDP.
	dp := steering.BPF{Options: datapath.Options{Layout: layout, Ingress: datapath.IngressXDP}}
	pod := addPodWith(t, topo, dp, 0, "xdp", []Network{eth0(t, 0), {IfName: "net1", Conf: conf, Policy: netconf.DefaultPolicy()}})
	dir, _ := layout.Dir(pod.ContainerID)
	if _, err := os.Stat(dir + "/" + bpffs.LinkPin("net1", "xdp")); err != nil {
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("no XDP link on net1: %v (pins: %s)", err, strings.Join(names, " "))
	}
	startEcho(t, pod)
	expectProbes(t, topo, "client", true, a4, a6)
	if n := counter(t, layout, pod.ContainerID, "net1", datapath.ReasonLearned); n == 0 {
		t.Error("XDP ingress learned nothing")
	}
}
