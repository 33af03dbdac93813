package datapath_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/internal/testutil/rrtraffic"
	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/datapath"
)

// nextObject is the next layout's build (a flow value with a new field before the address,
// and a program that writes it), committed beside this one: the release an upgrade rolls to.
func nextObject(t *testing.T) *datapath.Object {
	t.Helper()
	elf, err := os.ReadFile("steer_next_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	obj, err := datapath.ParseObject(elf)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

func thisObject(t *testing.T) *datapath.Object {
	t.Helper()
	obj, err := datapath.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

// routedPod is a pod whose replies reach their client only when steered: the client sits behind
// a router on net1's LAN, and the pod's default route leaves by eth0, into a network that
// drops them.
type routedPod struct {
	pod, client ns.NetNS
	cid         string
	opts        datapath.Options
	addr        netip.Addr // the pod's address on net1
}

const (
	routedUDPPort = 7001
	routedTCPPort = 7002
)

func newRoutedPod(t *testing.T, opts datapath.Options) *routedPod {
	pod, primary, router, client := nstest.NewNS(t), nstest.NewNS(t), nstest.NewNS(t), nstest.NewNS(t)
	eth0, _ := nstest.Veth(t, pod, "eth0", primary, "cni0")
	net1, _ := nstest.Veth(t, pod, "net1", router, "lan0")
	nstest.Veth(t, router, "wan0", client, "eth0")
	nstest.AddAddr(t, pod, "eth0", "198.51.100.2/24")
	nstest.AddAddr(t, primary, "cni0", "198.51.100.1/24")
	nstest.AddAddr(t, pod, "net1", "192.0.2.2/24")
	nstest.AddAddr(t, router, "lan0", "192.0.2.1/24")
	nstest.AddAddr(t, router, "wan0", "203.0.113.1/24")
	nstest.AddAddr(t, client, "eth0", "203.0.113.10/24")
	nstest.MustRun(t, pod, "ip", "route", "add", "default", "via", "198.51.100.1")
	nstest.MustRun(t, client, "ip", "route", "add", "default", "via", "203.0.113.1")
	nstest.MustRun(t, router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	for _, k := range []string{"all", "net1"} {
		nstest.MustRun(t, pod, "sysctl", "-qw", "net.ipv4.conf."+k+".rp_filter=0")
	}

	opts.Layout = nstest.BPFRoot(t)
	rp := &routedPod{pod: pod, client: client, cid: "upgrade-" + nstest.Suffix(), opts: opts, addr: netip.MustParseAddr("192.0.2.2")}
	cfg := datapath.Config{Interfaces: []datapath.Interface{
		{Name: "eth0", Index: eth0.Attrs().Index, MTU: eth0.Attrs().MTU, MAC: eth0.Attrs().HardwareAddr, Primary: true,
			Addr4: netip.MustParseAddr("198.51.100.2")},
		{Name: "net1", Index: net1.Attrs().Index, MTU: net1.Attrs().MTU, MAC: net1.Attrs().HardwareAddr, Pin: true,
			Addr4: rp.addr, Gateway4: netip.MustParseAddr("192.0.2.1")},
	}}
	if err := datapath.Attach(pod.Path(), rp.cid, cfg, opts); err != nil {
		t.Fatalf("attach: %v", err)
	}
	t.Cleanup(func() { _ = datapath.Detach(pod.Path(), rp.cid, opts) })
	rp.serve(t)
	return rp
}

// serve runs a UDP echo server bound to the wildcard address (its replies leave with eth0's
// source, fixed by the programs) and a TCP echo server in the pod.
func (rp *routedPod) serve(t *testing.T) {
	var (
		u   *net.UDPConn
		lis net.Listener
	)
	err := rp.pod.Do(func(ns.NetNS) (err error) {
		if u, err = net.ListenUDP("udp4", &net.UDPAddr{Port: routedUDPPort}); err != nil {
			return err
		}
		lis, err = net.Listen("tcp4", fmt.Sprintf(":%d", routedTCPPort))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close(); lis.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := u.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = u.WriteToUDP(buf[:n], from)
		}
	}()
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// startTraffic runs steady request/response traffic from the client to the routed pod.
func startTraffic(t *testing.T, client ns.NetNS, to netip.Addr, udpPort, tcpPort uint16) *rrtraffic.Traffic {
	return rrtraffic.Start(t, client, rrtraffic.Options{
		UDP: netip.AddrPortFrom(to, udpPort), TCP: netip.AddrPortFrom(to, tcpPort),
		// The path's round trip is tens of microseconds.
		Timeout: 500 * time.Millisecond, Pause: 200 * time.Microsecond, Warmup: 10,
	})
}

// upgradeChecked upgrades the routed pod to obj and checks that it is wholly at obj's version.
func (rp *routedPod) upgrade(t *testing.T, obj *datapath.Object) datapath.Upgraded {
	t.Helper()
	start := time.Now()
	u, err := datapath.Upgrade(rp.pod.Path(), rp.cid, obj, rp.opts)
	if err != nil {
		t.Fatalf("upgrade to %s: %v", obj.Version, err)
	}
	t.Logf("%s -> %s in %s: %d programs replaced, kept %v, migrated %v", u.From, u.To, time.Since(start).Round(time.Microsecond), u.Hooks, u.Kept, u.Migrated)
	rp.expectAt(t, obj.Version, true)
	return u
}

func (rp *routedPod) expectAt(t *testing.T, v datapath.Version, flows bool) {
	t.Helper()
	for _, err := range datapath.CheckVersion(rp.opts.Layout, rp.cid, rp.pod.Path(), v) {
		t.Errorf("after the upgrade to %s: %v", v, err)
	}
	st, err := datapath.ReadPinned(rp.opts.Layout, rp.cid)
	if err != nil {
		t.Fatalf("read pins: %v", err)
	}
	if st.Version != v || st.Upgrading {
		t.Errorf("pins read as %s (upgrading %v), want %s", st.Version, st.Upgrading, v)
	}
	// The flows carried across still name the client and its hop, whatever the layout.
	if flows && !slices.ContainsFunc(st.Flows, func(f datapath.Flow) bool {
		return f.Remote.Addr() == netip.MustParseAddr("203.0.113.10") && f.Local == rp.addr && f.Interface == "net1"
	}) {
		t.Errorf("flows after the upgrade to %s: %+v", v, st.Flows)
	}
	entries, _ := os.ReadDir(filepath.Join(rp.opts.Layout.Root, rp.cid))
	var pins []string
	for _, e := range entries {
		pins = append(pins, e.Name())
	}
	maps := []string{bpffs.FlowsPin, bpffs.CountersPin, bpffs.ConfigPin, bpffs.IfacesPin, bpffs.VersionPin,
		bpffs.SvcStatePin, bpffs.SvcFrontendsPin, bpffs.SvcBackendAddrsPin, bpffs.SvcProgsPin}
	for _, want := range maps {
		if !slices.Contains(pins, want) {
			t.Errorf("pins %v lack %s", pins, want)
		}
	}
	if len(pins) != len(maps)+len(slices.DeleteFunc(slices.Clone(pins), func(p string) bool { return !bpffs.IsLinkPin(p) })) {
		t.Errorf("pins %v: more than the maps and links", pins)
	}
}

// TestUpgradeRoundTrip: a pod steering steady UDP and TCP request/response traffic is upgraded
// in place to the next layout (a changed flow value and program) and back, with TCX, XDP and
// legacy TC hooks: not one request goes unanswered, the TCP connection lives on, and the pod
// ends wholly at each version in turn.
func TestUpgradeRoundTrip(t *testing.T) {
	for _, c := range []struct {
		name string
		opts datapath.Options
	}{
		{"tcx", datapath.Options{Ingress: datapath.IngressTC}},
		{"xdp", datapath.Options{Ingress: datapath.IngressXDP}},
		{"legacy-tc", datapath.Options{Ingress: datapath.IngressTC, LegacyTC: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			this, next := thisObject(t), nextObject(t)
			if this.Version.Layout == next.Version.Layout {
				t.Fatalf("the next object has this layout, %d", this.Version.Layout)
			}
			rp := newRoutedPod(t, c.opts)
			rp.expectAt(t, this.Version, false)
			tr := startTraffic(t, rp.client, rp.addr, routedUDPPort, routedTCPPort)
			defer tr.Finish()

			up := rp.upgrade(t, next)
			if !slices.Contains(up.Migrated, bpffs.FlowsPin) || !slices.Contains(up.Kept, bpffs.CountersPin) {
				t.Errorf("upgrade kept %v and migrated %v: want flows migrated, counters kept", up.Kept, up.Migrated)
			}
			time.Sleep(300 * time.Millisecond)
			down := rp.upgrade(t, this)
			if !slices.Contains(down.Migrated, bpffs.FlowsPin) {
				t.Errorf("downgrade migrated %v: want flows", down.Migrated)
			}
			time.Sleep(300 * time.Millisecond)
			// Upgrading to the version a pod is at does nothing.
			if again := rp.upgrade(t, this); again.Hooks != 0 {
				t.Errorf("upgrade to the current version replaced %d programs", again.Hooks)
			}
			if err := tr.Finish(); err != nil {
				t.Error(err)
			}
			u, l, c := tr.Counts()
			t.Logf("UDP: %d answered, %d lost; TCP: %d answered", u, l, c)
		})
	}
}

// TestUpgradeRefusedKeepsPrograms: an object whose program the verifier refuses leaves the
// pod's programs and maps as they were, and the error says so.
func TestUpgradeRefusedKeepsPrograms(t *testing.T) {
	this := thisObject(t)
	rp := newRoutedPod(t, datapath.Options{Ingress: datapath.IngressTC})
	tr := startTraffic(t, rp.client, rp.addr, routedUDPPort, routedTCPPort)
	defer tr.Finish()
	_, err := datapath.Upgrade(rp.pod.Path(), rp.cid, datapath.Refused(nextObject(t), "steer_egress"), rp.opts)
	if err == nil {
		t.Fatal("an object the verifier refuses was upgraded to")
	}
	t.Logf("refused: %.200s", err)
	rp.expectAt(t, this.Version, true)
	time.Sleep(200 * time.Millisecond)
	if err := tr.Finish(); err != nil {
		t.Error(err)
	}
}

// TestUpgradeInterrupted: an upgrade stopped after each of its steps, as a killed steerd
// leaves it, is finished by the next upgrade, to the same build or back to the one before,
// with the traffic answered throughout.
func TestUpgradeInterrupted(t *testing.T) {
	this, next := thisObject(t), nextObject(t)
	crash := errors.New("killed")
	for _, step := range []string{"loaded", "ingress", "egress", "pin flows", "pin config"} {
		for _, then := range []*datapath.Object{next, this} {
			t.Run(fmt.Sprintf("%s/then-%08x", step, then.Version.Object), func(t *testing.T) {
				rp := newRoutedPod(t, datapath.Options{Ingress: datapath.IngressTC})
				tr := startTraffic(t, rp.client, rp.addr, routedUDPPort, routedTCPPort)
				defer tr.Finish()
				undo := datapath.StopUpgradeAt(step, 1, crash)
				_, err := datapath.Upgrade(rp.pod.Path(), rp.cid, next, rp.opts)
				undo()
				if !errors.Is(err, crash) {
					t.Fatalf("upgrade stopped at %s: %v", step, err)
				}
				time.Sleep(100 * time.Millisecond)
				rp.upgrade(t, then)
				time.Sleep(100 * time.Millisecond)
				if err := tr.Finish(); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

// TestUpgradeUnversioned: a pod attached before pins carried a version (layout 1, no version
// pin) is upgraded to this build with every map kept as it is, and gets its version pin.
func TestUpgradeUnversioned(t *testing.T) {
	this := thisObject(t)
	if this.Version.Layout != datapath.UnversionedLayout {
		t.Skipf("this build has layout %d, not the unversioned pins' %d", this.Version.Layout, datapath.UnversionedLayout)
	}
	rp := newRoutedPod(t, datapath.Options{Ingress: datapath.IngressTC})
	if err := os.Remove(filepath.Join(rp.opts.Layout.Root, rp.cid, bpffs.VersionPin)); err != nil {
		t.Fatal(err)
	}
	tr := startTraffic(t, rp.client, rp.addr, routedUDPPort, routedTCPPort)
	defer tr.Finish()
	if v, err := datapath.ReadVersion(rp.opts.Layout, rp.cid); err != nil || v != (datapath.Version{Layout: datapath.UnversionedLayout}) {
		t.Fatalf("version of unversioned pins: %v, %v", v, err)
	}
	u := rp.upgrade(t, this)
	if u.Hooks == 0 || !slices.Equal(u.Kept, []string{bpffs.CountersPin, bpffs.FlowsPin}) {
		t.Errorf("upgrade of unversioned pins replaced %d programs, kept %v: want the programs replaced, every map kept", u.Hooks, u.Kept)
	}
	time.Sleep(200 * time.Millisecond)
	if err := tr.Finish(); err != nil {
		t.Error(err)
	}
}

// TestVersionPinReadableByBpftool: `bpftool map dump pinned <dir>/version` prints the layout and
// the object as numbers, by field name.
func TestVersionPinReadableByBpftool(t *testing.T) {
	this := thisObject(t)
	rp := newRoutedPod(t, datapath.Options{Ingress: datapath.IngressTC})
	out, err := exec.Command("bpftool", "-j", "map", "dump", "pinned", filepath.Join(rp.opts.Layout.Root, rp.cid, bpffs.VersionPin)).Output()
	if err != nil {
		t.Fatalf("bpftool: %v", err)
	}
	var dump []struct {
		Formatted struct {
			Value struct {
				Layout, Object uint32
			}
		}
	}
	if err := json.Unmarshal(out, &dump); err != nil || len(dump) != 1 {
		t.Fatalf("bpftool's dump %s: %v", out, err)
	}
	if got := dump[0].Formatted.Value; got.Layout != this.Version.Layout || got.Object != this.Version.Object {
		t.Errorf("bpftool reads layout %d, object %08x; want %s\n%s", got.Layout, got.Object, this.Version, out)
	}
}
