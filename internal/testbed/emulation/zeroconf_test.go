package emulation

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/k8s"
)

// The cluster shapes operators run, with no Steer key anywhere: NADs with dual-stack
// host-local IPAM (gateway set, no routes) on single-stack and dual-stack primaries, the pod's
// own strict rp_filter applied by the runtime after ADD.

// applyAutoNADs creates "dmz-auto" and "mgmt-auto" (HostLocalConf, no Steer key) in the env's
// namespace, their addresses allocated in one directory shared by both nodes, and
// "dmz-routes", the DMZ with routes listing the remote client's subnet.
func (e *kubeEnv) applyAutoNADs(t *testing.T) {
	t.Helper()
	nads, err := k8s.NewNADClientForConfig(kubetest.Cluster(t).RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	confs := map[string][]byte{
		"dmz-auto":   DMZ.HostLocalConf("dmz-auto", dataDir, 100),
		"mgmt-auto":  Mgmt.HostLocalConf("mgmt-auto", dataDir, 100),
		"dmz-routes": DMZ.HostLocalConf("dmz-routes", dataDir, 150, Remote4, Remote6),
	}
	for name, conf := range confs {
		nad := &k8s.NetworkAttachmentDefinition{Spec: k8s.NetworkAttachmentDefinitionSpec{Config: string(conf)}}
		nad.Namespace, nad.Name = e.ns, name
		if _, err := nads.Create(context.Background(), nad); err != nil {
			t.Fatal(err)
		}
	}
}

// runServer runs a pod on node-a with the runtime's sysctls applied and the echo servers up.
func (e *kubeEnv) runServer(t *testing.T, name, networks string) *Pod {
	t.Helper()
	pod := e.run(t, 0, name, networks)
	runtimeSysctls(t, pod)
	startEcho(t, pod)
	return pod
}

// runtimeSysctls applies what a pod's securityContext.sysctls would, after CNI ADD as runtimes
// do: strict reverse-path filtering for the whole pod.
func runtimeSysctls(t *testing.T, pod *Pod) {
	t.Helper()
	if err := pod.StrictRPFilter(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// globalAddrs returns the global addresses of ifname in the pod.
func globalAddrs(t *testing.T, pod *Pod, ifname string) []netip.Addr {
	t.Helper()
	out, err := pod.Exec(context.Background(), "ip", "-o", "addr", "show", "dev", ifname, "scope", "global")
	if err != nil {
		t.Fatal(err)
	}
	var addrs []netip.Addr
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) >= 4 {
			if p, err := netip.ParsePrefix(f[3]); err == nil {
				addrs = append(addrs, p.Addr())
			}
		}
	}
	return addrs
}

// podAddrs returns the global IPv4 and IPv6 address of ifname in the pod; it needs both.
func podAddrs(t *testing.T, pod *Pod, ifname string) (a4, a6 netip.Addr) {
	t.Helper()
	for _, a := range globalAddrs(t, pod, ifname) {
		if a.Is4() {
			a4 = a
		} else {
			a6 = a
		}
	}
	if !a4.IsValid() || !a6.IsValid() {
		t.Fatalf("%s of pod %s: want an IPv4 and an IPv6 address", ifname, pod.Name)
	}
	return a4, a6
}

// TestZeroConfSingleStackPrimary: a pod on an IPv4-only, IPv6-only or dual-stack cluster with
// a dual-stack secondary and no Steer key answers the remote client (an unlisted subnet behind
// the router) on both families, for ICMP, TCP and UDP bound to the address and to the wildcard;
// without Steer none of it works. The family the primary lacks gets Steer's fallback route. A
// pod whose NAD lists the client's subnet in its routes is answered too.
func TestZeroConfSingleStackPrimary(t *testing.T) {
	for _, fams := range []Families{IPv4Only, IPv6Only, DualStack} {
		t.Run(fams.String(), func(t *testing.T) {
			for _, steer := range modes() {
				t.Run(modeName(steer), func(t *testing.T) {
					e := newKubeEnvOf(t, steer, fams)
					e.applyAutoNADs(t)
					pod := e.runServer(t, "web", "dmz-auto")
					a4, a6 := podAddrs(t, pod, "net1")
					expectProbes(t, e.topo, "lanhost", true, a4, a6)
					expectProbes(t, e.topo, "client", steer, a4, a6)
					if !steer {
						return
					}
					listed := e.runServer(t, "listed", "dmz-routes")
					l4, l6 := podAddrs(t, listed, "net1")
					expectProbes(t, e.topo, "client", true, l4, l6)
					routes := defaultRoutes6(t, pod)
					if fams == IPv4Only && !strings.Contains(routes, "dev net1") {
						t.Errorf("IPv6 default routes %q: want one through net1", routes)
					}
					if fams == DualStack && strings.Contains(routes, "net1") {
						t.Errorf("IPv6 default routes %q: a family the primary routes was touched", routes)
					}
				})
			}
		})
	}
}

// TestZeroConfTwoSecondaries: on an IPv4-only cluster with two dual-stack secondaries, the
// fallback route goes through the first (net1), and IPv6 clients of the second still get
// their replies through it (net2), pinned from net1.
func TestZeroConfTwoSecondaries(t *testing.T) {
	e := newKubeEnvOf(t, true, IPv4Only)
	e.applyAutoNADs(t)
	pod := e.runServer(t, "two", "dmz-auto,mgmt-auto")
	d4, d6 := podAddrs(t, pod, "net1")
	m4, m6 := podAddrs(t, pod, "net2")
	expectProbes(t, e.topo, "client", true, d4, d6, m4, m6)
	routes := defaultRoutes6(t, pod)
	if !strings.Contains(routes, "dev net1") || strings.Contains(routes, "net2") {
		t.Errorf("IPv6 default routes %q: want one, through net1", routes)
	}
}

// TestZeroConfMulticast: a pod on an IPv4-only cluster (flannel's shape) with one secondary
// and no Steer key sends routable and link-local groups (SSDP, mDNS) with a default socket,
// and joins them without naming an interface: the LAN host and a pod on the other node get
// them from the pod's LAN address, and the pod gets the LAN host's. Without Steer everything
// goes to eth0. IPv6 link-local groups need no default: the kernel refuses them unless the
// application names an interface.
func TestZeroConfMulticast(t *testing.T) {
	groups := []netip.Addr{Group4, Group6, netip.MustParseAddr("239.255.255.250"), netip.MustParseAddr("224.0.0.251")}
	for _, steer := range modes() {
		t.Run(modeName(steer), func(t *testing.T) {
			e := newKubeEnvOf(t, steer, IPv4Only)
			e.applyAutoNADs(t)
			pod := e.run(t, 0, "mc", "dmz-auto")
			peer := e.run(t, 1, "peer", "dmz-auto")
			a4, a6 := podAddrs(t, pod, "net1")
			for _, g := range groups {
				src, lanSrc := a4, LANHost4
				if g.Is6() {
					src, lanSrc = a6, LANHost6
				}
				lan, err := JoinGroup(e.topo.LANHost, g, "eth0")
				if err != nil {
					t.Fatal(err)
				}
				other, err := JoinGroup(peer.NS, g)
				if err != nil {
					t.Fatal(err)
				}
				if err := SendGroup(pod.NS, g, 5); err != nil {
					t.Fatal(err)
				}
				expectSources(t, "LAN host, group "+g.String(), lan.Sources(listenFor), steer, src)
				expectSources(t, "pod on the other node, group "+g.String(), other.Sources(listenFor), steer, src)
				lan.Close()
				other.Close()

				in, err := JoinGroup(pod.NS, g)
				if err != nil {
					t.Fatal(err)
				}
				if err := SendGroup(e.topo.LANHost, g, 5); err != nil {
					t.Fatal(err)
				}
				expectSources(t, "pod joined without an interface, group "+g.String(), in.Sources(listenFor), steer, lanSrc)
				in.Close()
			}
		})
	}
}

// TestZeroConfMulticastTwoSecondaries: with two secondaries and no key, multicast goes through
// the first (net1) only; "multicast": [] on a network turns the default off, leaving it to eth0.
func TestZeroConfMulticastTwoSecondaries(t *testing.T) {
	e := newKubeEnvOf(t, true, IPv4Only)
	e.applyAutoNADs(t)
	pod := e.run(t, 0, "mc2", "dmz-auto,mgmt-auto")
	optOut := e.run(t, 0, "mc0", `[{"name":"dmz-auto","steer":{"multicast":[]}}]`)
	d4, d6 := podAddrs(t, pod, "net1")
	for _, g := range []netip.Addr{Group4, Group6} {
		want := d4
		if g.Is6() {
			want = d6
		}
		router, err := JoinGroup(e.topo.Router, g, "dmz", "mgmt")
		if err != nil {
			t.Fatal(err)
		}
		if err := SendGroup(pod.NS, g, 5); err != nil {
			t.Fatal(err)
		}
		expectSources(t, "router on both LANs, group "+g.String(), router.Sources(listenFor), true, want)
		if err := SendGroup(optOut.NS, g, 5); err != nil && !strings.Contains(err.Error(), "unreachable") {
			t.Fatal(err)
		}
		if got := router.Sources(listenFor); len(got) != 0 {
			t.Errorf("group %s from the pod that opted out reached the LANs from %v", g, got)
		}
		router.Close()
	}
}

// TestDefaultRouteOnSecondary: the selection moves the pod's default routes to net1 (Multus
// users do this and lose the cluster network), on a dual-stack and an IPv4-only cluster.
// Requests reaching the pod through eth0 — from a pod and from a host on the other node — are
// answered through eth0, and the remote DMZ client is answered through net1, all at once.
// Without Steer the cluster side breaks.
func TestDefaultRouteOnSecondary(t *testing.T) {
	for _, fams := range []Families{DualStack, IPv4Only} {
		t.Run(fams.String(), func(t *testing.T) {
			for _, steer := range modes() {
				t.Run(modeName(steer), func(t *testing.T) {
					e := newKubeEnvOf(t, steer, fams)
					e.applyAutoNADs(t)
					expectDefaultRouteOnSecondary(t, e, steer)
				})
			}
		})
	}
}

// expectDefaultRouteOnSecondary runs TestDefaultRouteOnSecondary's case in e (thin or thick,
// the auto NADs applied).
func expectDefaultRouteOnSecondary(t *testing.T, e *kubeEnv, steer bool) {
	pod := e.runServer(t, "gw", fmt.Sprintf(`[{"name":"dmz-auto","default-route":[%q,%q]}]`, RouterDMZ4, RouterDMZ6))
	other := e.run(t, 1, "other", "")
	primary := globalAddrs(t, pod, "eth0")
	n4, n6 := podAddrs(t, pod, "net1")
	ctx := context.Background()
	// Each pod reaches its own node's bridge either way; waiting for that lets the bridge that
	// the first pod of a node brings up finish IPv6 duplicate address detection.
	for _, a := range primary {
		if err := waitPing(ctx, e.topo.Nodes[0].Name(), a); err != nil {
			t.Fatalf("node-a to its pod's eth0 %s: %v", a, err)
		}
		gw := PodCIDR4[1].Addr().Next()
		if a.Is6() {
			gw = PodCIDR6[1].Addr().Next()
		}
		if err := waitPing(ctx, other.NS.Name(), gw); err != nil {
			t.Fatalf("pod on node-b to its bridge %s: %v", gw, err)
		}
	}
	for _, a := range primary {
		for _, p := range []Probe{ICMP, TCP, UDP} {
			for _, from := range []struct {
				name string
				run  func() error
			}{
				{"pod on the other node", func() error { return p.Run(ctx, other.NS, other.NS.Name(), a) }},
				{"host of the other node", func() error { return p.Run(ctx, e.topo.Nodes[1], e.topo.Nodes[1].Name(), a) }},
			} {
				err := from.run()
				switch {
				case steer && err != nil:
					t.Errorf("%s from the %s to eth0 %s: %v", p, from.name, a, err)
				case !steer && err == nil:
					t.Errorf("%s from the %s to eth0 %s worked without Steer: the emulation does not show the problem", p, from.name, a)
				}
			}
		}
	}
	expectProbes(t, e.topo, "client", true, n4, n6)
}

// TestCheckCoversDataplane: CHECK passes after ADD, and fails naming what is missing once a
// pin, a sysctl or Steer's fallback route is removed by hand.
func TestCheckCoversDataplane(t *testing.T) {
	e := newKubeEnvOf(t, true, IPv4Only)
	e.applyAutoNADs(t)
	ctx := context.Background()
	for _, c := range []struct {
		name    string
		breakIt func(pod *Pod) error
		want    string
	}{
		{"pin", func(pod *Pod) error {
			return os.Remove(filepath.Join(e.bpfRoot, pod.ContainerID, bpffs.LinkPin("net1", "ingress")))
		}, "ingress program on net1"},
		{"sysctl", func(pod *Pod) error {
			_, err := pod.Exec(ctx, "sysctl", "-qw", "net.ipv4.conf.net1.rp_filter=1")
			return err
		}, "rp_filter on net1"},
		{"route", func(pod *Pod) error {
			_, err := pod.Exec(ctx, "ip", "-6", "route", "del", "default", "dev", "net1")
			return err
		}, "IPv6 default route"},
	} {
		t.Run(c.name, func(t *testing.T) {
			pod := e.run(t, 0, "check-"+c.name, "dmz-auto")
			if err := e.kubelets[0].Check(ctx, pod); err != nil {
				t.Fatalf("CHECK after ADD: %v", err)
			}
			if err := c.breakIt(pod); err != nil {
				t.Fatal(err)
			}
			err := e.kubelets[0].Check(ctx, pod)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("CHECK after removing the %s = %v, want an error naming %q", c.name, err, c.want)
			}
		})
	}
}

// waitPing pings until addr answers, for up to 15 s: a bridge that has just come up takes a
// few seconds to answer IPv6 neighbour solicitations.
func waitPing(ctx context.Context, nsName string, addr netip.Addr) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := Ping(ctx, nsName, addr)
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}

// defaultRoutes6 is the pod's IPv6 default routes, as ip prints them.
func defaultRoutes6(t *testing.T, pod *Pod) string {
	t.Helper()
	routes, err := pod.Exec(context.Background(), "ip", "-6", "route", "show", "default")
	if err != nil {
		t.Fatal(err)
	}
	return routes
}

// TestZeroConfThick: the same defaults in thick mode (steerd does the work), on an IPv4-only
// cluster with no Steer key: two secondaries answered on both families (IPv6 through the
// fallback route and pinning), multicast through the first secondary only, CHECK passing, and
// default-route moved to net1.
func TestZeroConfThick(t *testing.T) {
	e := newThickEnvOf(t, IPv4Only)
	e.applyAutoNADs(t)
	pod := e.runServer(t, "two", "dmz-auto,mgmt-auto")
	d4, d6 := podAddrs(t, pod, "net1")
	m4, m6 := podAddrs(t, pod, "net2")
	expectProbes(t, e.topo, "client", true, d4, d6, m4, m6)
	for _, g := range []netip.Addr{Group4, Group6} {
		want := d4
		if g.Is6() {
			want = d6
		}
		router, err := JoinGroup(e.topo.Router, g, "dmz", "mgmt")
		if err != nil {
			t.Fatal(err)
		}
		if err := SendGroup(pod.NS, g, 5); err != nil {
			t.Fatal(err)
		}
		expectSources(t, "router on both LANs, group "+g.String(), router.Sources(listenFor), true, want)
		router.Close()
	}
	if err := e.kubelets[0].Check(context.Background(), pod); err != nil {
		t.Errorf("CHECK through steerd: %v", err)
	}
	expectDefaultRouteOnSecondary(t, e.kubeEnv, true)
}
