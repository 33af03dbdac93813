package demo

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/k8s"
)

var createOpts = metav1.CreateOptions{}

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// modes runs a story with steering off, then on.
func (e *env) modes(ctx context.Context, story func(ctx context.Context, on bool) (bool, error)) (broken, fixed bool, err error) {
	for _, on := range []bool{false, true} {
		e.p.sub(map[bool]string{false: "Steer's steering off (Steer as a plain Multus replacement)", true: "Steer's steering on"}[on])
		if err := e.w.setSteering(ctx, on); err != nil {
			return false, false, err
		}
		ok, err := story(ctx, on)
		if err != nil {
			return false, false, err
		}
		if on {
			fixed = ok
		} else {
			broken = !ok
		}
	}
	return broken, fixed, nil
}

// runPod runs a pod with echo servers on node selecting networks, and announces it; stop
// deletes it.
func (e *env) runPod(ctx context.Context, node int, name, networks string) (*pod, func(), error) {
	return e.runLabelledPod(ctx, node, name, networks, nil)
}

// runLabelledPod is runPod for a pod with labels.
func (e *env) runLabelledPod(ctx context.Context, node int, name, networks string, labels map[string]string) (*pod, func(), error) {
	p, stopPod, err := e.w.runPod(ctx, node, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: name, Namespace: e.ns, Labels: labels, Annotations: map[string]string{k8s.NetworksAnnotation: networks},
	}})
	if err != nil {
		return nil, nil, err
	}
	shown := ""
	for k, v := range labels {
		shown += fmt.Sprintf("  %s=%s", k, v)
	}
	e.p.say("pod %s on %s%s  %s=%s", name, e.w.nodeName(node), shown, k8s.NetworksAnnotation, networks)
	stop := func() {
		if err := stopPod(); err != nil {
			e.p.say("! stopping %s: %v", name, err)
		}
	}
	return p, stop, nil
}

func selection(elems ...string) string { return "[" + strings.Join(elems, ",") + "]" }

func ipsElem(network string, lan emulation.LAN, host int) string {
	a4, a6 := lan.Addr(host)
	return fmt.Sprintf(`{"name":%q,"ips":["%s/%d","%s/%d"]}`, network, a4, lan.V4.Bits(), a6, lan.V6.Bits())
}

// probeAll runs ICMP, TCP and UDP from the remote client to each address and prints a row
// per address; it returns whether every probe was answered.
func (e *env) probeAll(ctx context.Context, addrs ...netip.Addr) bool {
	all := true
	for _, a := range addrs {
		row := []string{fmt.Sprintf("client %s -> %-16s", emulation.Client4, a)}
		if a.Is6() {
			row[0] = fmt.Sprintf("client %s -> %-16s", emulation.Client6, a)
		}
		for _, p := range []emulation.Probe{emulation.ICMP, emulation.TCP, emulation.UDP} {
			err := p.Run(ctx, e.w.client(), e.w.client().Name(), a)
			row = append(row, fmt.Sprintf("%s %s", strings.ToUpper(string(p)), mark(err == nil)))
			all = all && err == nil
		}
		e.p.say("%s", strings.Join(row, "   "))
	}
	return all
}

func (e *env) seed002(ctx context.Context) (Verdict, error) {
	e.p.heading("Seed 002 — overlay (Calico VXLAN) + macvlan: a client behind the router talks to the pod's DMZ address")
	broken, fixed, err := e.modes(ctx, func(ctx context.Context, on bool) (bool, error) {
		pod, stop, err := e.runPod(ctx, 0, "web", selection(ipsElem("dmz", emulation.DMZ, 10)))
		if err != nil {
			return false, err
		}
		defer stop()
		if err := pod.strictRPFilter(ctx); err != nil {
			return false, err
		}
		a4, a6 := emulation.DMZ.Addr(10)
		ok := e.probeAll(ctx, a4, a6)
		if !on {
			route, _ := pod.exec(ctx, "ip", "route", "get", emulation.Client4.String(), "from", a4.String())
			e.p.say("why (IPv4): the pod's kernel routes the reply by its default route: %s", firstRoute(route))
			route6, err := pod.exec(ctx, "ip", "-6", "route", "get", emulation.Client6.String(), "from", a6.String())
			if err != nil {
				route6 = strings.TrimSpace(route6)
			}
			e.p.say("why (IPv6): the cluster network is IPv4-only, the pod has no IPv6 route at all: %s", firstLine(route6))
		} else {
			route6, _ := pod.exec(ctx, "ip", "-6", "route", "show", "default")
			e.p.say("Steer gave IPv6, which the cluster network lacks, a default route through the DMZ: %s", firstLine(route6))
			e.p.say("Steer learned the flows on net1 and sent %d replies back through it", e.count(pod, "net1", datapath.ReasonPinned))
		}
		return ok, nil
	})
	return Verdict{Story: "seed 002: replies leave by the interface the request came in", Broken: broken, Fixed: fixed}, err
}

func (e *env) seed001(ctx context.Context) (Verdict, error) {
	e.p.heading("Seed 001 — DMZ and management networks on one pod, each answered on its own interface")
	broken, fixed, err := e.modes(ctx, func(ctx context.Context, on bool) (bool, error) {
		pod, stop, err := e.runPod(ctx, 0, "gateway", selection(ipsElem("dmz", emulation.DMZ, 13), ipsElem("mgmt", emulation.Mgmt, 13)))
		if err != nil {
			return false, err
		}
		defer stop()
		d4, d6 := emulation.DMZ.Addr(13)
		m4, m6 := emulation.Mgmt.Addr(13)
		ok := e.probeAll(ctx, d4, m4, d6, m6)
		if on {
			e.p.say("replies pinned: net1 (DMZ) %d, net2 (management) %d", e.count(pod, "net1", datapath.ReasonPinned), e.count(pod, "net2", datapath.ReasonPinned))
		}
		return ok, nil
	})
	return Verdict{Story: "seed 001: two secondary networks, each on its own", Broken: broken, Fixed: fixed}, err
}

func (e *env) seed000(ctx context.Context) (Verdict, error) {
	e.p.heading("Seed 000 — overlay (flannel) + macvlan multicast: send, receive on another node, join without naming an interface; the NAD lists no group")
	broken, fixed, err := e.modes(ctx, func(ctx context.Context, on bool) (bool, error) {
		sender, stop, err := e.runPod(ctx, 0, "sensor", selection(ipsElem("dmz", emulation.DMZ, 11)))
		if err != nil {
			return false, err
		}
		defer stop()
		other, stop2, err := e.runPod(ctx, 1%e.w.nodes(), "collector", selection(ipsElem("dmz", emulation.DMZ, 12)))
		if err != nil {
			return false, err
		}
		defer stop2()
		s4, s6 := emulation.DMZ.Addr(11)
		all := true
		for _, c := range []struct{ group, src, lanhost netip.Addr }{
			{emulation.Group4, s4, emulation.LANHost4}, {emulation.Group6, s6, emulation.LANHost6},
		} {
			ok, err := e.multicastRound(sender, other, c.group, c.src, c.lanhost)
			if err != nil {
				return false, err
			}
			all = all && ok
		}
		return all, nil
	})
	return Verdict{Story: "seed 000: multicast goes out, and comes in, on the secondary network", Broken: broken, Fixed: fixed}, err
}

const listen = 600 * time.Millisecond

// multicastRound: the sender pod multicasts with a default socket; the LAN host and a pod on
// the other node (joined without naming an interface) listen; then the LAN host multicasts and
// the sender pod (joined without naming an interface) listens.
func (e *env) multicastRound(sender, other *pod, group, src, lanhost netip.Addr) (bool, error) {
	lan, err := emulation.JoinGroup(e.w.lanHost(), group, "eth0")
	if err != nil {
		return false, err
	}
	defer lan.Close()
	remote, err := emulation.JoinGroup(other.netns, group)
	if err != nil {
		return false, err
	}
	defer remote.Close()
	if err := emulation.SendGroup(sender.netns, group, 5); err != nil {
		return false, err
	}
	gotLAN, gotRemote := lan.Sources(listen), remote.Sources(listen)

	in, err := emulation.JoinGroup(sender.netns, group)
	if err != nil {
		return false, err
	}
	defer in.Close()
	if err := emulation.SendGroup(e.w.lanHost(), group, 5); err != nil {
		return false, err
	}
	gotIn := in.Sources(listen)

	okLAN, okRemote, okIn := only(gotLAN, src), only(gotRemote, src), only(gotIn, lanhost)
	e.p.say("%-10s pod sends -> LAN host %s   -> %s %s   LAN host sends -> pod %s",
		group, heard(gotLAN, okLAN), e.otherPod(), heard(gotRemote, okRemote), heard(gotIn, okIn))
	return okLAN && okRemote && okIn, nil
}

// otherPod names the multicast story's second pod: on the other node, when there is one.
func (e *env) otherPod() string {
	if e.w.nodes() > 1 {
		return "pod on " + e.w.nodeName(1)
	}
	return "another pod"
}

func only(got []netip.Addr, want netip.Addr) bool { return len(got) == 1 && got[0] == want }

func heard(got []netip.Addr, ok bool) string {
	if len(got) == 0 {
		return mark(false) + " (nothing)"
	}
	return fmt.Sprintf("%s (from %v)", mark(ok), got)
}

func (e *env) count(pod *pod, ifname string, r datapath.Reason) uint64 {
	st, err := datapath.ReadPinned(bpffs.Layout{Root: e.w.pinRoot()}, pod.containerID)
	if err != nil {
		return 0
	}
	for _, c := range st.Counters {
		if c.Interface == ifname && c.Reason == r {
			return c.Packets
		}
	}
	return 0
}

// firstRoute is the first route `ip route get` prints, without the uid it adds for a query
// from a local address.
func firstRoute(s string) string {
	r, _, _ := strings.Cut(firstLine(s), " uid ")
	return r
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return strings.Join(strings.Fields(s), " ")
}
