package realnode_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/internal/testbed/realnode"
	"github.com/steernet/steer/pkg/api"
	"github.com/steernet/steer/pkg/install"
	"github.com/steernet/steer/pkg/k8s"
	"github.com/steernet/steer/pkg/netconf"
)

// TestRealNodeShapes runs the cluster shapes operators run, beyond TestRealNode's (thick mode,
// an IPv4-only cluster network, one secondary), on two real nodes one after the other, with the
// examples' NADs as shipped:
//   - Steer installed with the Helm chart in thin mode, on a dual-stack cluster network, with a
//     DMZ and a management LAN: a steered pod, a pod whose default routes go through the DMZ
//     ("default-route"), a pod on both LANs, a pod on a DMZ NAD without Steer's key;
//   - Steer installed with the Helm chart's defaults (thick mode) on an IPv6-only cluster
//     network: IPv4 to and from the DMZ goes through Steer's fallback route.
func TestRealNodeShapes(t *testing.T) {
	t.Run("thin mode, dual-stack cluster network, DMZ and management LANs", func(t *testing.T) {
		dual := emulation.DualStack
		e := newEnvWith(t, envOptions{
			node: realnode.Options{ClusterNetwork: &dual, Mgmt: true},
			helm: []string{"--set", "mode=thin"},
		})
		expectThinMode(t)
		// CNI STATUS answered by the plugin itself.
		if err := networkReady(context.Background(), e.node, true); err != nil {
			t.Error(err)
		}

		t.Run("steered dmz pod", func(t *testing.T) {
			a4, a6 := emulation.DMZ.Addr(30)
			pod := e.runPod(t, "thin", ipsAnnotation("dmz", a4, a6))
			e.expectPodIPs(t, pod)
			e.expectReachable(t, a4)
			e.expectReachable(t, a6)
			// Both families have the cluster network's default route: only what leaves from a
			// DMZ address is Steer's to send through the DMZ.
			e.expectReachesRemote(t, netns(t, pod), a4, a6)
			expectNetworkStatus(t, pod, e.ns+"/dmz")
			if len(pinsOf(pod.SandboxID)) == 0 {
				t.Errorf("no pins under /sys/fs/bpf/steer/%s", pod.SandboxID)
			}
			e.deleteLeavingNothing(t, pod)
		})

		t.Run("default routes through the DMZ, the cluster network still reached", func(t *testing.T) {
			a4, a6 := emulation.DMZ.Addr(31)
			networks := fmt.Sprintf(`[{"name":"dmz","ips":["%s/24","%s/64"],"default-route":["%s","%s"]}]`,
				a4, a6, emulation.RouterDMZ4, emulation.RouterDMZ6)
			pod := e.runPod(t, "gw", networks)
			peer := e.runPod(t, "peer", "")
			podNS := netns(t, pod)
			for _, gw := range []netip.Addr{emulation.RouterDMZ4, emulation.RouterDMZ6} {
				want := fmt.Sprintf("default via %s dev net1", gw)
				if got := defaultRoutes(t, pod, gw.Is4()); len(got) != 1 || !strings.HasPrefix(got[0], want) {
					t.Errorf("the pod's default routes: %q, want one %q", got, want)
				}
			}
			e.expectReachable(t, a4)
			e.expectReachable(t, a6)
			// Unbound: the kernel routes by the default routes, through the DMZ's router.
			e.expectReachesRemote(t, podNS, netip.Addr{}, netip.Addr{})

			// The cluster network: the pods on the bridge reach each other, and a client on the
			// node's own IP (kubelet's probes, a host-network pod) reaches the pod's eth0, whose
			// reply the default route alone would send to the DMZ.
			peerNS := netns(t, peer)
			for _, a := range e.expectPodIPs(t, pod) {
				expectExchange(t, "peer pod -> pod's eth0", peerNS, netip.Addr{}, a)
			}
			for _, a := range e.expectPodIPs(t, peer) {
				expectExchange(t, "pod -> peer pod", podNS, netip.Addr{}, a)
			}
			for _, a := range e.expectPodIPs(t, pod) {
				if a.Is4() {
					expectExchange(t, "node IP -> pod's eth0", e.node.NetNS(), netip.MustParseAddr(realnode.NodeIP), a)
				}
			}
			// network-status names the DMZ's router as the pod's gateways, on the DMZ's entry.
			status := networkStatus(t, pod.Object)
			if len(status) != 2 || len(status[0].Gateway) != 0 || !status[1].Default ||
				!slices.Equal(status[1].Gateway, []string{emulation.RouterDMZ4.String(), emulation.RouterDMZ6.String()}) {
				t.Errorf("network-status = %+v, want the DMZ's router as the gateways of net1, the default network", status)
			}
			e.deleteLeavingNothing(t, pod)
			e.deletePod(t, "peer")
		})

		t.Run("dmz and mgmt: each LAN answered through its own interface", func(t *testing.T) {
			d4, d6 := emulation.DMZ.Addr(32)
			m4, m6 := emulation.Mgmt.Addr(32)
			networks := fmt.Sprintf(`[{"name":"dmz","ips":["%s/24","%s/64"]},{"name":"mgmt","ips":["%s/24","%s/64"]}]`, d4, d6, m4, m6)
			pod := e.runPod(t, "two", networks)
			lan := e.node.LAN()
			// The remote client reaches both addresses through the router, whose strict
			// rp_filter drops a reply that leaves by the other LAN; a host on each LAN reaches the
			// pod's address there.
			for _, a := range []netip.Addr{d4, d6, m4, m6} {
				e.expectReachableFrom(t, "client", lan.Client, a)
			}
			for _, a := range []netip.Addr{d4, d6} {
				e.expectReachableFrom(t, "DMZ host", lan.Host, a)
			}
			for _, a := range []netip.Addr{m4, m6} {
				e.expectReachableFrom(t, "management host", lan.MgmtHost, a)
			}
			podNS := netns(t, pod)
			e.expectReachesRemote(t, podNS, d4, d6)
			e.expectReachesRemote(t, podNS, m4, m6)
			expectNetworkStatus(t, pod, e.ns+"/dmz", e.ns+"/mgmt")
			e.deleteLeavingNothing(t, pod)
		})

		t.Run("a DMZ NAD with no Steer key: the remote client's replies still leave by the DMZ", func(t *testing.T) {
			e.createKeylessNAD(t, "dmz", "dmz-plain")
			a4, a6 := emulation.DMZ.Addr(33)
			pod := e.runPod(t, "plain-nad", ipsAnnotation("dmz-plain", a4, a6))
			// Nothing names the router: the replies are pinned to the hop that delivered the
			// request, through the router's strict rp_filter.
			e.expectReachable(t, a4)
			e.expectReachable(t, a6)
			expectNetworkStatus(t, pod, e.ns+"/dmz-plain")
			e.deleteLeavingNothing(t, pod)
		})

		t.Run("the control: with Steer's steering off, neither the node's IP nor the management LAN gets a reply", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			helm, err := realnode.Helm()
			if err != nil {
				t.Fatal(err)
			}
			cmd, err := e.node.HelmSteer(ctx, helm, e.node.Images().Steer, "--set", "mode=thin", "--set-json", `pluginConfig={"steering":false}`)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("$ %s", cmd)
			if err := e.node.WaitSteerRolledOut(ctx, e.node.Images().Steer); err != nil {
				t.Fatal(err)
			}
			d4, d6 := emulation.DMZ.Addr(35)
			m4, m6 := emulation.Mgmt.Addr(35)
			gw := e.runPod(t, "gw-off", fmt.Sprintf(`[{"name":"dmz","ips":["%s/24","%s/64"],"default-route":["%s","%s"]}]`,
				d4, d6, emulation.RouterDMZ4, emulation.RouterDMZ6))
			two := e.runPod(t, "two-off", fmt.Sprintf(`[{"name":"dmz","ips":["%s/24","%s/64"]},{"name":"mgmt","ips":["%s/24","%s/64"]}]`, d4.Next(), d6.Next(), m4, m6))
			if len(pinsOf(gw.SandboxID)) > 0 || len(pinsOf(two.SandboxID)) > 0 {
				t.Errorf("pins of Steer's programs with steering off")
			}
			for _, a := range e.expectPodIPs(t, gw) {
				if a.Is4() {
					err := exchange(e.node.NetNS(), "udp", netip.MustParseAddr(realnode.NodeIP), netip.AddrPortFrom(a, emulation.EchoUDPPort))
					if !emulation.IsTimeout(err) {
						t.Errorf("node IP -> %s udp: %v, want no reply", a, err)
					}
				}
			}
			for _, a := range []netip.Addr{m4, m6} {
				err := emulation.ProbeUDP(ctx, e.node.LAN().Client, netip.AddrPortFrom(a, emulation.EchoUDPPort))
				if !emulation.IsTimeout(err) {
					t.Errorf("client -> %s udp: %v, want no reply", a, err)
				}
			}
			e.deleteLeavingNothing(t, gw)
			e.deleteLeavingNothing(t, two)
		})
	})

	t.Run("thick mode, IPv6-only cluster network", func(t *testing.T) {
		v6 := emulation.IPv6Only
		e := newEnvWith(t, envOptions{node: realnode.Options{ClusterNetwork: &v6}, helm: []string{}})
		a4, a6 := emulation.DMZ.Addr(33)
		pod := e.runPod(t, "v6", ipsAnnotation("dmz", a4, a6))
		e.expectPodIPs(t, pod)
		// The cluster network routes no IPv4: Steer's fallback route through the DMZ carries
		// the replies to the remote client and the pod's own IPv4 traffic.
		want := fmt.Sprintf("default via %s dev net1 proto %d", emulation.RouterDMZ4, 94)
		if got := defaultRoutes(t, pod, true); len(got) != 1 || !strings.HasPrefix(got[0], want) {
			t.Errorf("the pod's IPv4 default routes: %q, want one %q", got, want)
		}
		e.expectReachable(t, a4)
		e.expectReachable(t, a6)
		e.expectReachesRemote(t, netns(t, pod), netip.Addr{}, a6)
		expectNetworkStatus(t, pod, e.ns+"/dmz")
		e.deleteLeavingNothing(t, pod)
	})
}

// expectThinMode checks the CNI config Steer installed makes the plugin do the work itself:
// the plugin's binary (not the shim), no steerd socket, the kubeconfig steerd writes.
func expectThinMode(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(realnode.CNIConfDir, install.ConfigName))
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Plugins []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(data, &conf); err != nil {
		t.Fatal(err)
	}
	if len(conf.Plugins) == 0 || conf.Plugins[0]["type"] != api.PluginBinary {
		t.Fatalf("Steer's CNI config: %s", data)
	}
	if p := conf.Plugins[0]; p["socketPath"] != nil || p["kubeconfig"] == nil {
		t.Fatalf("Steer's CNI config is not thin mode's (a kubeconfig, no socketPath): %s", data)
	}
}

// expectPodIPs checks the pod's IPs in its status: one of each family of the node's cluster
// network, from the node's pod subnets. It returns them.
func (e *env) expectPodIPs(t *testing.T, pod *realnode.Pod) []netip.Addr {
	t.Helper()
	fams := e.node.ClusterFamilies()
	want4, want6 := fams != emulation.IPv6Only, fams != emulation.IPv4Only
	var got []netip.Addr
	for _, ip := range pod.Object.Status.PodIPs {
		a, err := netip.ParseAddr(ip.IP)
		if err != nil {
			t.Fatalf("pod %s: IP %q: %v", pod.Object.Name, ip.IP, err)
		}
		got = append(got, a)
	}
	var n4, n6 int
	for _, a := range got {
		switch {
		case a.Is4() && emulation.PodCIDR4[0].Contains(a):
			n4++
		case a.Is6() && emulation.PodCIDR6[0].Contains(a):
			n6++
		default:
			t.Errorf("pod %s: IP %s outside the node's pod subnets", pod.Object.Name, a)
		}
	}
	if n4 != b2i(want4) || n6 != b2i(want6) || len(got) == 0 || pod.Object.Status.PodIP != got[0].String() {
		t.Errorf("pod %s on a %s cluster network: podIP %q, podIPs %v", pod.Object.Name, fams, pod.Object.Status.PodIP, got)
	}
	return got
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// expectNetworkStatus checks the pod's network-status: eth0 (the cluster network, default) and
// then each secondary as net1, net2 ..., with both its addresses.
func expectNetworkStatus(t *testing.T, pod *realnode.Pod, secondaries ...string) {
	t.Helper()
	status := networkStatus(t, pod.Object)
	ok := len(status) == 1+len(secondaries) && status[0].Interface == "eth0" && status[0].Default
	for i, name := range secondaries {
		if !ok {
			break
		}
		s := status[1+i]
		ok = s.Interface == fmt.Sprintf("net%d", i+1) && s.Name == name && len(s.IPs) == 2
	}
	if !ok {
		t.Errorf("network-status = %+v, want eth0 then %v", status, secondaries)
	}
}

// expectReachableFrom probes addr from the namespace n (ICMP, TCP, UDP).
func (e *env) expectReachableFrom(t *testing.T, name string, n ns.NetNS, addr netip.Addr) {
	t.Helper()
	for _, p := range []emulation.Probe{emulation.ICMP, emulation.TCP, emulation.UDP} {
		if err := p.Run(context.Background(), n, n.(interface{ Name() string }).Name(), addr); err != nil {
			t.Errorf("%s -> %s %s: %v", name, addr, p, err)
		}
	}
}

// expectReachesRemote checks the pod opens TCP and UDP exchanges with the remote client over
// each family, from4 and from6 the local addresses (unset: the kernel picks).
func (e *env) expectReachesRemote(t *testing.T, podNS ns.NetNS, from4, from6 netip.Addr) {
	t.Helper()
	echo, err := emulation.StartEcho(e.node.LAN().Client)
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	expectExchange(t, "pod -> remote client", podNS, from4, emulation.Client4)
	expectExchange(t, "pod -> remote client", podNS, from6, emulation.Client6)
}

// expectExchange checks a TCP and a UDP exchange from n (from a local address, when set) with
// the echo servers at to, retrying for a few seconds: an IPv6 address may still be settling.
func expectExchange(t *testing.T, what string, n ns.NetNS, from, to netip.Addr) {
	t.Helper()
	for _, c := range []struct {
		network string
		port    uint16
	}{{"tcp", emulation.EchoTCPPort}, {"udp", emulation.EchoUDPPort}} {
		var err error
		for deadline := time.Now().Add(5 * time.Second); ; {
			if err = exchange(n, c.network, from, netip.AddrPortFrom(to, c.port)); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("%s: %s from %v to %s: %v", what, c.network, from, to, err)
		}
	}
}

// defaultRoutes lists the pod's default routes of a family, as `ip route` shows them.
func defaultRoutes(t *testing.T, pod *realnode.Pod, v4 bool) []string {
	t.Helper()
	fam := "-6"
	if v4 {
		fam = "-4"
	}
	out, err := exec.Command("nsenter", "--net="+pod.NetNS, "ip", fam, "route", "show", "default").CombinedOutput()
	if err != nil {
		t.Fatalf("ip route in pod %s: %v: %s", pod.Object.Name, err, out)
	}
	var routes []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			routes = append(routes, l)
		}
	}
	return routes
}

// createKeylessNAD creates NAD name in the env's namespace: the example NAD from's config with
// its Steer key removed, as a Multus user's NAD comes.
func (e *env) createKeylessNAD(t *testing.T, from, name string) {
	t.Helper()
	ctx := context.Background()
	nads, err := k8s.NewNADClientForConfig(e.cluster.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	src, err := nads.Get(ctx, e.ns, from)
	if err != nil {
		t.Fatal(err)
	}
	var conf map[string]any
	if err := json.Unmarshal([]byte(src.Spec.Config), &conf); err != nil {
		t.Fatal(err)
	}
	delete(conf, netconf.PolicyKey)
	conf["name"] = name
	b, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	nad := *src
	nad.ObjectMeta = metav1.ObjectMeta{Name: name, Namespace: e.ns}
	nad.Spec.Config = string(b)
	if _, err := nads.Create(ctx, &nad); err != nil {
		t.Fatal(err)
	}
}
