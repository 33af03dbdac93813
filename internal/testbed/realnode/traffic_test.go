package realnode_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/internal/testbed/realnode"
	"github.com/steernet/steer/pkg/install"
)

// traffic is a stream of UDP echo probes from the remote client to a pod, every 100 ms: each
// reply must come back through the DMZ, steered.
type traffic struct {
	stop           chan struct{}
	wg             sync.WaitGroup
	mu             sync.Mutex
	sent, lost     int
	firstLossError error
}

func (e *env) startTraffic(t *testing.T, addr netip.Addr) *traffic {
	tr := &traffic{stop: make(chan struct{})}
	tr.wg.Add(1)
	go func() {
		defer tr.wg.Done()
		ctx := context.Background()
		for {
			select {
			case <-tr.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			err := emulation.ProbeUDP(ctx, e.node.LAN().Client, netip.AddrPortFrom(addr, emulation.EchoUDPPort))
			tr.mu.Lock()
			tr.sent++
			if err != nil {
				tr.lost++
				if tr.firstLossError == nil {
					tr.firstLossError = err
				}
			}
			tr.mu.Unlock()
		}
	}()
	t.Cleanup(tr.end)
	return tr
}

func (tr *traffic) end() {
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	tr.wg.Wait()
}

// expectNoLoss ends the stream and fails the test if any probe went unanswered.
func (tr *traffic) expectNoLoss(t *testing.T) {
	t.Helper()
	tr.end()
	if tr.sent == 0 {
		t.Fatal("no traffic was sent")
	}
	if tr.lost > 0 {
		t.Errorf("%d of %d probes from the remote client lost; first: %v", tr.lost, tr.sent, tr.firstLossError)
	}
	t.Logf("%d probes from the remote client, none lost", tr.sent)
}

// steerdRestarts is the restart count of the steerd container of Steer's pod on the node.
func (e *env) steerdRestarts(ctx context.Context) (int32, error) {
	pods, err := e.client.CoreV1().Pods(realnode.SteerNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=steer"})
	if err != nil {
		return 0, err
	}
	var n int32
	for _, p := range pods.Items {
		for _, c := range p.Status.ContainerStatuses {
			n += c.RestartCount
		}
	}
	return n, nil
}

// testLivenessRestart freezes steerd: its liveness probe fails and kubelet restarts it, while
// a steered pod keeps answering the remote client and, afterwards, new pods start.
func (e *env) testLivenessRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a4, a6 := emulation.DMZ.Addr(24)
	e.runPod(t, "live", ipsAnnotation("dmz", a4, a6))
	traffic := e.startTraffic(t, a4)
	before, err := e.steerdRestarts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := e.node.ContainerPID(ctx, realnode.SteerNamespace, "steerd")
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFor(t, ctx, "kubelet to restart steerd", func() error {
		n, err := e.steerdRestarts(ctx)
		if err == nil && n <= before {
			err = errorf("steerd restarted %d times, as before", n)
		}
		return err
	})
	t.Logf("kubelet restarted the frozen steerd after %s", time.Since(start).Round(time.Second))
	if err := e.node.WaitSteerRolledOut(ctx, e.node.Images().Steer); err != nil {
		t.Fatal(err)
	}
	b4, b6 := emulation.DMZ.Addr(25)
	e.runPod(t, "live-after", ipsAnnotation("dmz", b4, b6))
	e.expectReachable(t, b4)
	traffic.expectNoLoss(t)
	e.deletePod(t, "live")
	e.deletePod(t, "live-after")
}

// testRollout rolls the DaemonSet to a new image tag while a steered pod answers the remote
// client: the config stays installed (the preStop hook sees an update, not a deletion), and
// new pods start on the new steerd.
func (e *env) testRollout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a4, a6 := emulation.DMZ.Addr(26)
	e.runPod(t, "roll", ipsAnnotation("dmz", a4, a6))
	traffic := e.startTraffic(t, a4)
	ref, err := e.node.RetagSteer(ctx, "v2")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.node.ApplySteer(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if err := e.node.WaitSteerRolledOut(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(realnode.CNIConfDir, install.ConfigName)); err != nil {
		t.Errorf("Steer's CNI config gone after a rolling update: %v", err)
	}
	b4, b6 := emulation.DMZ.Addr(27)
	e.runPod(t, "roll-after", ipsAnnotation("dmz", b4, b6))
	e.expectReachable(t, b4)
	traffic.expectNoLoss(t)
	e.deletePod(t, "roll")
	e.deletePod(t, "roll-after")
}
