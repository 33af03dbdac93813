package emulation

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/internal/testutil/rrtraffic"
	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/datapath"
)

// release is one build of steerd and steerctl, with the version of its BPF object.
type release struct {
	name             string
	steerd, steerctl string
	version          datapath.Version
}

var releases struct {
	once       sync.Once
	this, next release
	err        error
}

// twoReleases builds this tree's steerd and steerctl, and the next release's (its BPF object
// has the next layout: a flow value with a new field before the address, and a program that
// writes it), once per test binary.
func twoReleases(t *testing.T) (this, next release) {
	steerPlugin(t) // the build directory
	releases.once.Do(func() {
		ctx := context.Background()
		r := &releases
		r.this = release{name: "this", steerd: steerdBinary(t)}
		var errs [3]error
		r.this.steerctl, errs[0] = BuildCommand(ctx, plugin.dir, "steerctl")
		r.next = release{name: "next"}
		r.next.steerd, errs[1] = BuildNextRelease(ctx, plugin.dir, "steerd")
		r.next.steerctl, errs[2] = BuildNextRelease(ctx, plugin.dir, "steerctl")
		if r.err = errors.Join(errs[:]...); r.err != nil {
			return
		}
		obj, err := datapath.Embedded()
		if err != nil {
			r.err = err
			return
		}
		r.this.version = obj.Version
		elf, err := os.ReadFile("../../../pkg/datapath/steer_next_bpfel.o")
		if err != nil {
			r.err = err
			return
		}
		if obj, err = datapath.ParseObject(elf); err != nil {
			r.err = err
			return
		}
		r.next.version = obj.Version
	})
	if releases.err != nil {
		t.Fatal(releases.err)
	}
	return releases.this, releases.next
}

// rolloutEnv is the thick-mode cluster with steered pods on both nodes, each answering steady
// request/response traffic from the remote client over its secondary network.
type rolloutEnv struct {
	*thickEnv
	layouts [2]bpffs.Layout // each node's own pin root, as each node has its own bpffs
	pods    []*Pod
	traffic []*rrtraffic.Traffic
}

// rrTCPPort is the port of the pods' TCP echo server that keeps its connections for as long as
// the test runs (the shared Echo's closes them after ten seconds).
const rrTCPPort = 8081

func newRolloutEnv(t *testing.T, perNode int) *rolloutEnv {
	e := &rolloutEnv{thickEnv: &thickEnv{kubeEnv: newKubeEnvOf(t, true, DualStack)}}
	for i, k := range e.kubelets {
		e.layouts[i] = nstest.BPFRoot(t)
		e.hosts[i] = k.Host
		e.opts[i] = SteerdOptions{Binary: steerdBinary(t), Kubeconfig: kubetest.Cluster(t).Kubeconfig(), BPFFSRoot: e.layouts[i].Root, Steering: true}
		e.start(t, i)
	}
	for node := range 2 {
		for i := range perNode {
			a4, a6 := DMZ.Addr(60 + node*perNode + i)
			pod := e.run(t, node, fmt.Sprintf("rollout-%d-%d", node, i), ipsAnnotation("dmz", a4, a6))
			startEcho(t, pod)
			startTCPEcho(t, pod.NS, rrTCPPort)
			e.pods = append(e.pods, pod)
		}
	}
	for _, pod := range e.pods {
		a4, _ := DMZ.Addr(60 + slices.Index(e.pods, pod))
		e.traffic = append(e.traffic, rrtraffic.Start(t, e.topo.Client, rrtraffic.Options{
			UDP: netip.AddrPortFrom(a4, EchoUDPPort), TCP: netip.AddrPortFrom(a4, rrTCPPort),
			Timeout: time.Second, Pause: time.Millisecond, Warmup: 5,
		}))
	}
	t.Cleanup(func() {
		for _, tr := range e.traffic {
			tr.Finish()
		}
	})
	return e
}

// roll replaces node i's steerd with r's, as the DaemonSet's rolling update does: the old one
// is stopped, the new one is ready once it has upgraded the node's pods.
func (e *rolloutEnv) roll(t *testing.T, i int, r release) time.Duration {
	t.Helper()
	if err := e.steerd[i].Stop(); err != nil {
		t.Fatal(err)
	}
	e.opts[i].Binary = r.steerd
	start := time.Now()
	e.start(t, i)
	return time.Since(start)
}

// expectAt checks that every pod's programs are wholly r's and that r's steerctl doctor is
// clean.
func (e *rolloutEnv) expectAt(t *testing.T, r release) {
	t.Helper()
	for _, pod := range e.pods {
		for _, err := range datapath.CheckVersion(e.layouts[pod.Node], pod.ContainerID, pod.NS.Path(), r.version) {
			t.Errorf("pod %s after the rollout to %s: %v", pod.Name, r.name, err)
		}
	}
	for i := range 2 {
		out, err := exec.Command(r.steerctl, "-bpffs", e.layouts[i].Root, "-cni-conf-dir", e.hosts[i].ConfDir(), "doctor").CombinedOutput()
		if err != nil {
			t.Errorf("%s steerctl doctor on node %d: %v\n%s", r.name, i, err, out)
		}
	}
}

// TestRollout is the DaemonSet rollout of a release that changes a program and a map layout:
// pods served by steerd of this release carry steady UDP and TCP request/response traffic
// over their secondary network, through a router, so every reply must be steered; steerd is
// replaced node by node by the next release's, then rolled back, then the next release is
// rolled out again with the first steerd killed in the middle of its upgrades. Not one UDP
// request goes unanswered, no TCP connection is reset, and after each rollout every pod's
// programs are wholly at the new release and its steerctl doctor is clean.
func TestRollout(t *testing.T) {
	const perNode = 3
	e := newRolloutEnv(t, perNode)
	this, next := twoReleases(t)
	if this.version.Layout == next.version.Layout {
		t.Fatalf("the next release has this release's layout %d", this.version.Layout)
	}
	e.expectAt(t, this)

	for _, r := range []release{next, this} {
		for i := range 2 {
			took := e.roll(t, i, r)
			t.Logf("node %d rolled to %s (%s) in %s", i, r.name, r.version, took.Round(time.Millisecond))
		}
		e.expectAt(t, r)
	}

	// The next release again, its first steerd killed while it upgrades node 0's pods; the
	// steerd started after it finishes the upgrade.
	killed := e.killMidUpgrade(t, 0, next, perNode)
	t.Logf("steerd killed mid-upgrade: %s", killed)
	e.roll(t, 0, next)
	e.roll(t, 1, next)
	e.expectAt(t, next)

	var answered, lost, tcp int64
	for i, tr := range e.traffic {
		if err := tr.Finish(); err != nil {
			t.Errorf("pod %s: %v", e.pods[i].Name, err)
		}
		u, l, c := tr.Counts()
		answered += u
		lost += l
		tcp += c
	}
	t.Logf("%d pods: UDP %d requests answered, %d lost; TCP %d requests answered", len(e.pods), answered, lost, tcp)
	for i := range 2 {
		times := upgradeTimes(t, e.steerd[i].Log)
		if len(times) > 0 {
			t.Logf("node %d: %d pod upgrades, per pod %s median, %s max", i, len(times), times[len(times)/2], times[len(times)-1])
		}
	}
}

// TestRolloutUpgradeFailure: a pod whose programs cannot be upgraded (its pins are damaged: the
// config map carries no BTF) keeps its programs and its traffic; the new steerd says so in its
// log, in steer_upgrades_total and steer_attachments_outdated, and in an event on the pod.
func TestRolloutUpgradeFailure(t *testing.T) {
	e := newRolloutEnv(t, 1)
	this, next := twoReleases(t)
	pod := e.pods[0]
	dir, err := e.layouts[0].Dir(pod.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	damaged, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer damaged.Close()
	if err := os.Remove(filepath.Join(dir, bpffs.ConfigPin)); err != nil {
		t.Fatal(err)
	}
	if err := damaged.Pin(filepath.Join(dir, bpffs.ConfigPin)); err != nil {
		t.Fatal(err)
	}

	e.roll(t, 0, next)
	if v, err := datapath.ReadVersion(e.layouts[0], pod.ContainerID); err != nil || v != this.version {
		t.Errorf("the pod that failed to upgrade is at %s (%v), want %s", v, err, this.version)
	}
	page, err := e.steerd[0].MetricsPage(e.topo.Nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page, `steer_upgrades_total{result="failed"}`) || !strings.Contains(page, "steer_attachments_outdated 1") {
		t.Errorf("metrics do not show the failed upgrade:\n%s", grep(page, "upgrade"))
	}
	if log := tail(e.steerd[0].Log); !strings.Contains(log, "upgrade failed: the pod keeps its programs") {
		t.Errorf("steerd's log does not say the upgrade failed:\n%s", log)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, err := e.kubelets[0].Client.CoreV1().Events(e.ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(evs.Items, func(ev corev1.Event) bool {
			return ev.Reason == "SteerUpgradeFailed" && ev.InvolvedObject.Kind == "Pod" && ev.InvolvedObject.Name == pod.Name
		})
		if i >= 0 {
			t.Logf("event on pod %s: %s", pod.Name, evs.Items[i].Message)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no SteerUpgradeFailed event on pod %s", pod.Name)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i, tr := range e.traffic {
		if err := tr.Finish(); err != nil {
			t.Errorf("pod %s: %v", e.pods[i].Name, err)
		}
	}
}

// killMidUpgrade starts node i's steerd of r and SIGKILLs it once it has upgraded some of the
// node's pods but not all (or is in the middle of one). It says what the kill left.
func (e *rolloutEnv) killMidUpgrade(t *testing.T, i int, r release, pods int) string {
	t.Helper()
	if err := e.steerd[i].Stop(); err != nil {
		t.Fatal(err)
	}
	e.opts[i].Binary = r.steerd
	ids := e.podsOn(i)
	for attempt := 1; ; attempt++ {
		d, err := LaunchSteerd(e.topo.Nodes[i], i, e.hosts[i], e.opts[i])
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			at, upgrading := e.countAt(e.layouts[i], ids, r.version)
			if (at > 0 || upgrading > 0) && at < len(ids) {
				if err := d.Kill(); err != nil {
					t.Fatal(err)
				}
				at, upgrading = e.countAt(e.layouts[i], ids, r.version)
				return fmt.Sprintf("%d of %d pods upgraded, %d half-way (attempt %d)", at, len(ids), upgrading, attempt)
			}
			if at == len(ids) {
				break
			}
			time.Sleep(200 * time.Microsecond)
		}
		// Too late: every pod was upgraded. Back to the release before, and again.
		_ = d.Kill()
		if attempt == 5 {
			t.Fatalf("could not kill steerd in the middle of an upgrade in %d attempts", attempt)
		}
		e.opts[i].Binary = releases.this.steerd
		e.start(t, i)
		if err := e.steerd[i].Stop(); err != nil {
			t.Fatal(err)
		}
		e.opts[i].Binary = r.steerd
	}
}

func (e *rolloutEnv) podsOn(node int) []string {
	var ids []string
	for _, p := range e.pods {
		if p.Node == node {
			ids = append(ids, p.ContainerID)
		}
	}
	return ids
}

// countAt counts the pods whose version pin is v, and those with an upgrade under way.
func (e *rolloutEnv) countAt(layout bpffs.Layout, ids []string, v datapath.Version) (at, upgrading int) {
	for _, id := range ids {
		if got, err := datapath.ReadVersion(layout, id); err == nil && got == v {
			at++
		}
		if _, err := os.Stat(filepath.Join(layout.Root, id, datapath.UpgradingPin)); err == nil {
			upgrading++
		}
	}
	return at, upgrading
}

// upgradeTimes reads the time of every pod upgrade from a steerd log, sorted.
func upgradeTimes(t *testing.T, log string) []time.Duration {
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var times []time.Duration
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Msg  string
			Took time.Duration // slog's JSON: nanoseconds
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "upgraded" {
			times = append(times, line.Took)
		}
	}
	sort.Slice(times, func(a, b int) bool { return times[a] < times[b] })
	return times
}

// startTCPEcho runs a TCP echo server in n that keeps connections open.
func startTCPEcho(t *testing.T, n ns.NetNS, port int) {
	var lis net.Listener
	if err := n.Do(func(ns.NetNS) (err error) { lis, err = net.Listen("tcp", fmt.Sprintf(":%d", port)); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
}
