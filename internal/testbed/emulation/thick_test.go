package emulation

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/bpffs"
)

var steerdBin struct {
	once sync.Once
	path string
	err  error
}

func steerdBinary(t *testing.T) string {
	steerPlugin(t) // same build directory
	steerdBin.once.Do(func() { steerdBin.path, steerdBin.err = BuildCommand(context.Background(), plugin.dir, "steerd") })
	if steerdBin.err != nil {
		t.Fatal(steerdBin.err)
	}
	return steerdBin.path
}

// thickEnv is kubeEnv with steerd on each node, started the way the DaemonSet runs it, serving the
// plugin (thick mode, unless started thin); steerd writes each node's CNI config itself.
type thickEnv struct {
	*kubeEnv
	layout bpffs.Layout
	opts   [2]SteerdOptions
	hosts  [2]HostRoot
	steerd [2]*Steerd
}

func newThickEnv(t *testing.T) *thickEnv { return newThickEnvOf(t, DualStack) }

// newThickEnvOf is newThickEnv with a primary network of the given address families.
func newThickEnvOf(t *testing.T, fams Families) *thickEnv { return newThickEnvWith(t, fams, false) }

// newThickEnvWith is newThickEnvOf with steerd serving Services on secondary networks or not.
func newThickEnvWith(t *testing.T, fams Families, services bool) *thickEnv {
	return newSteerdEnv(t, fams, SteerdOptions{Services: services})
}

// newSteerdEnv is kubeEnv with steerd on each node started with o (its binary, apiserver and
// pins filled in, steering on): thick mode, or thin with o.Thin.
func newSteerdEnv(t *testing.T, fams Families, o SteerdOptions) *thickEnv {
	e := &thickEnv{kubeEnv: newKubeEnvOf(t, true, fams), layout: nstest.BPFRoot(t)}
	for i, k := range e.kubelets {
		e.hosts[i] = k.Host
		// The config newKubeEnv installed is replaced by steerd's.
		e.opts[i] = o
		e.opts[i].Binary, e.opts[i].Kubeconfig, e.opts[i].BPFFSRoot = steerdBinary(t), kubetest.Cluster(t).Kubeconfig(), e.layout.Root
		e.opts[i].Steering = true
		e.start(t, i)
	}
	return e
}

func (e *thickEnv) start(t *testing.T, i int) {
	t.Helper()
	d, err := StartSteerd(context.Background(), e.topo.Nodes[i], i, e.hosts[i], e.opts[i])
	if err != nil {
		t.Fatal(err)
	}
	e.steerd[i] = d
	t.Cleanup(func() {
		_ = d.Stop()
		if t.Failed() {
			t.Logf("steerd on node %d:\n%s", i, tail(d.Log))
		}
	})
}

// TestThickMode: the plugin hands ADD and DEL to steerd over its socket; steerd answers from
// its informer cache, steers the pod, and exports counters that move with traffic.
func TestThickMode(t *testing.T) {
	e := newThickEnv(t)
	a4, a6 := DMZ.Addr(30)
	pod := e.run(t, 0, "thick", ipsAnnotation("dmz", a4, a6))
	startEcho(t, pod)
	expectProbes(t, e.topo, "client", true, a4, a6)

	before := pinnedPackets(t, e.steerd[0], e.topo.Nodes[0], pod.ContainerID)
	expectProbes(t, e.topo, "client", true, a4)
	after := pinnedPackets(t, e.steerd[0], e.topo.Nodes[0], pod.ContainerID)
	if after <= before {
		t.Errorf("steer_packets_total{reason=pinned} did not move with traffic: %d then %d", before, after)
	}
	page, _ := e.steerd[0].MetricsPage(e.topo.Nodes[0])
	if !strings.Contains(page, `steer_cni_request_duration_seconds_count{result="ok",verb="ADD"} 1`) {
		t.Errorf("ADD was not served by steerd:\n%s", grep(page, "steer_cni"))
	}
}

// TestSteerdRestartLosesNothing: steerd is SIGKILLed while a pinned flow carries traffic; not
// one packet of the flow is lost (the datapath does not depend on the daemon), and the next
// steerd adopts the pins and serves the pod's DEL.
func TestSteerdRestartLosesNothing(t *testing.T) {
	e := newThickEnv(t)
	a4, a6 := DMZ.Addr(31)
	pod := e.run(t, 0, "steady", ipsAnnotation("dmz", a4, a6))
	startEcho(t, pod)

	const total = 2000
	var got atomic.Int64
	done := make(chan error, 1)
	go func() { done <- udpStream(e.topo.Client, netip.AddrPortFrom(a4, EchoUDPPort), total, &got) }()
	time.Sleep(500 * time.Millisecond)
	if err := e.steerd[0].Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	e.start(t, 0)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if lost := total - got.Load(); lost != 0 {
		t.Errorf("%d of %d packets lost across a steerd restart", lost, total)
	}
	t.Logf("%d/%d replies across SIGKILL and restart of steerd", got.Load(), total)
	page, err := e.steerd[0].MetricsPage(e.topo.Nodes[0])
	if err != nil || !strings.Contains(page, "steer_attachments 1") {
		t.Errorf("restarted steerd does not see the pinned attachment: %v\n%s", err, grep(page, "steer_attachments"))
	}
	// The new steerd serves the DEL of a pod the old one attached, and unpins it.
	if err := e.kubelets[0].StopPod(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	page, _ = e.steerd[0].MetricsPage(e.topo.Nodes[0])
	if !strings.Contains(page, `steer_cni_request_duration_seconds_count{result="ok",verb="DEL"} 1`) || !strings.Contains(page, "steer_attachments 0") {
		t.Errorf("restarted steerd did not serve the DEL:\n%s", grep(page, "steer_"))
	}
}

// TestThickBurst: 100 pods start at once on one node; steerd bounds its concurrency and its
// memory, and every ADD succeeds.
func TestThickBurst(t *testing.T) {
	e := newThickEnv(t)
	const pods = 100
	var wg sync.WaitGroup
	errs := make(chan error, pods)
	start := time.Now()
	for i := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.runE(t, 0, fmt.Sprintf("burst-%03d", i), "")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	cur, peak, err := e.steerd[0].RSS()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d concurrent ADDs in %s; steerd RSS %d KiB now, %d KiB peak", pods, time.Since(start).Round(time.Millisecond), cur, peak)
	if peak > 256<<10 {
		t.Errorf("steerd peak RSS %d KiB exceeds its 256 MiB limit", peak)
	}
}

func udpStream(n ns.NetNS, to netip.AddrPort, count int, got *atomic.Int64) error {
	var c net.Conn
	if err := n.Do(func(ns.NetNS) (err error) { c, err = net.Dial("udp", to.String()); return err }); err != nil {
		return err
	}
	defer c.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := c.Read(buf); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	for i := range count {
		if _, err := fmt.Fprintf(c, "%08d", i); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(time.Second)
	return nil
}

func pinnedPackets(t *testing.T, d *Steerd, node ns.NetNS, cid string) int {
	page, err := d.MetricsPage(node)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, "steer_packets_total{") && strings.Contains(line, cid) && strings.Contains(line, `reason="pinned"`) {
			var v float64
			fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v)
			return int(v)
		}
	}
	return 0
}

func grep(page, word string) string {
	var out []string
	for _, l := range strings.Split(page, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
