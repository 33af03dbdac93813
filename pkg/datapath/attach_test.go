package datapath_test

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/datapath"
)

// TestAttachCountsRealPackets attaches the programs with TCX to a veth in a pod namespace,
// sends real UDP datagrams from a peer namespace and reads the learned flow and the counters
// back from the pins.
func TestAttachCountsRealPackets(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		name := "tcx"
		if legacy {
			name = "legacy-tc"
		}
		t.Run(name, func(t *testing.T) { testAttach(t, datapath.Options{Ingress: datapath.IngressTC, LegacyTC: legacy}) })
	}
}

func testAttach(t *testing.T, opts datapath.Options) {
	pod, peer := nstest.NewNS(t), nstest.NewNS(t)
	net1, lan0 := nstest.Veth(t, pod, "net1", peer, "lan0")
	peerMAC := lan0.Attrs().HardwareAddr
	nstest.AddAddr(t, pod, "net1", "192.0.2.2/24")
	nstest.AddAddr(t, peer, "lan0", "192.0.2.1/24")

	opts.Layout = nstest.BPFRoot(t)
	const cid = "attach-test"
	cfg := datapath.Config{Interfaces: []datapath.Interface{{
		Name: "net1", Index: net1.Attrs().Index, MTU: net1.Attrs().MTU, MAC: net1.Attrs().HardwareAddr,
		Pin: true, Addr4: netip.MustParseAddr("192.0.2.2"),
	}}}
	if err := datapath.Attach(pod.Path(), cid, cfg, opts); err != nil {
		t.Fatalf("attach: %v", err)
	}
	t.Cleanup(func() { _ = datapath.Detach(pod.Path(), cid, opts) })

	// A UDP server in the pod, a client in the peer namespace.
	var srv *net.UDPConn
	err := pod.Do(func(ns.NetNS) (err error) {
		srv, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 5353})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var cli *net.UDPConn
	err = peer.Do(func(ns.NetNS) (err error) {
		cli, err = net.DialUDP("udp4", &net.UDPAddr{Port: 40000}, &net.UDPAddr{IP: net.IPv4(192, 0, 2, 2), Port: 5353})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	const sent = 5
	buf := make([]byte, 64)
	for i := 0; i < sent; i++ {
		if _, err := cli.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := srv.ReadFromUDP(buf); err != nil {
			t.Fatal(err)
		}
	}

	st, err := datapath.ReadPinned(opts.Layout, cid)
	if err != nil {
		t.Fatalf("read pins: %v", err)
	}
	var learned uint64
	for _, c := range st.Counters {
		if c.Interface == "net1" && c.Reason == datapath.ReasonLearned {
			learned = c.Packets
		}
	}
	if learned != sent {
		t.Errorf("learned counter = %d, want %d (counters %+v)", learned, sent, st.Counters)
	}
	want := datapath.Flow{Proto: 17, Remote: netip.MustParseAddrPort("192.0.2.1:40000"), LocalPort: 5353,
		Local: netip.MustParseAddr("192.0.2.2"), Interface: "net1"}
	if len(st.Flows) != 1 {
		t.Fatalf("flows = %+v, want one", st.Flows)
	}
	got := st.Flows[0]
	if got.PeerMAC.String() != peerMAC.String() {
		t.Errorf("flow peer MAC = %s, want %s", got.PeerMAC, peerMAC)
	}
	got.PeerMAC, want.PeerMAC = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("flow = %+v, want %+v", got, want)
	}

	// Detach leaves no pins, and is idempotent.
	for i := 0; i < 2; i++ {
		if err := datapath.Detach(pod.Path(), cid, opts); err != nil {
			t.Fatalf("detach %d: %v", i, err)
		}
	}
	if _, err := os.Stat(filepath.Join(opts.Layout.Root, cid)); !os.IsNotExist(err) {
		t.Errorf("pins left after detach: %v", err)
	}
	if ids, _ := opts.Layout.Containers(); len(ids) != 0 {
		t.Errorf("containers with pins after detach: %v", ids)
	}
}
