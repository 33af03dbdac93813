package realnode_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/internal/testbed/realnode"
	"github.com/steernet/steer/pkg/install"
)

// TestRealNode runs Steer's DaemonSet under kubelet and containerd and real pods through it:
// the short set of `make test`; -realnode.long (make soak) adds restarts and rollouts under
// traffic.
func TestRealNode(t *testing.T) {
	e := newEnv(t)

	t.Run("dmz pod reaches and is reached by the remote client", func(t *testing.T) {
		a4, a6 := emulation.DMZ.Addr(20)
		pod := e.runPod(t, "web", ipsAnnotation("dmz", a4, a6))
		id := pod.SandboxID
		e.expectReachable(t, a4)
		e.expectReachable(t, a6)
		e.expectReachesClient(t, netns(t, pod), a4, true)

		status := networkStatus(t, pod.Object)
		if len(status) != 2 || status[0].Interface != "eth0" || status[1].Interface != "net1" ||
			status[1].Name != e.ns+"/dmz" || len(status[1].IPs) != 2 {
			t.Errorf("network-status = %+v", status)
		}
		if len(pinsOf(id)) == 0 {
			t.Errorf("no pins under /sys/fs/bpf/steer/%s", id)
		}
		e.deleteLeavingNothing(t, pod)
	})

	t.Run("the control: with steering off the remote client gets no reply, nor does the pod reach it", func(t *testing.T) {
		a4, a6 := emulation.DMZ.Addr(28)
		pod := e.runPod(t, "unsteered", ipsAnnotation("dmz-unsteered", a4, a6))
		e.expectReachesClient(t, netns(t, pod), a4, false)
		lan := e.node.LAN()
		if err := emulation.ProbeUDP(context.Background(), lan.Host, netip.AddrPortFrom(a4, emulation.EchoUDPPort)); err != nil {
			t.Errorf("LAN host -> %s udp: %v", a4, err)
		}
		e.expectUnreachableFromClient(t, a4)
		e.deletePod(t, "unsteered")
	})

	t.Run("multicast pod sends and receives on the DMZ", func(t *testing.T) {
		a4, a6 := emulation.DMZ.Addr(21)
		podNS := netns(t, e.runPod(t, "mcast", ipsAnnotation("dmz-multicast", a4, a6)))
		lan := e.node.LAN()
		for _, c := range []struct {
			group, src, lanHost netip.Addr
		}{{emulation.Group4, a4, emulation.LANHost4}, {emulation.Group6, a6, emulation.LANHost6}} {
			l, err := emulation.JoinGroup(lan.Host, c.group, "eth0")
			if err != nil {
				t.Fatal(err)
			}
			if err := emulation.SendGroup(podNS, c.group, 3); err != nil {
				t.Fatal(err)
			}
			got := l.Sources(2 * time.Second)
			l.Close()
			if !slices.Contains(got, c.src) {
				t.Errorf("%s: pod sends -> LAN host got %v, want from %s", c.group, got, c.src)
			}
			// Joined with a default socket: the join must land on net1.
			pl, err := emulation.JoinGroup(podNS, c.group)
			if err != nil {
				t.Fatal(err)
			}
			if err := emulation.SendGroup(lan.Host, c.group, 3); err != nil {
				t.Fatal(err)
			}
			got = pl.Sources(2 * time.Second)
			pl.Close()
			if !slices.Contains(got, c.lanHost) {
				t.Errorf("%s: LAN host sends -> pod got %v, want from %s", c.group, got, c.lanHost)
			}
		}
		e.deletePod(t, "mcast")
	})

	t.Run("containerd restarted: running pods keep steering, new pods start", func(t *testing.T) {
		a4, a6 := emulation.DMZ.Addr(22)
		e.runPod(t, "before", ipsAnnotation("dmz", a4, a6))
		traffic := e.startTraffic(t, a4)
		if err := e.node.RestartContainerd(context.Background()); err != nil {
			t.Fatal(err)
		}
		b4, b6 := emulation.DMZ.Addr(23)
		e.runPod(t, "after", ipsAnnotation("dmz", b4, b6))
		e.expectReachable(t, b4)
		traffic.expectNoLoss(t)
		e.deletePod(t, "before")
		e.deletePod(t, "after")
	})

	t.Run("CNI STATUS: containerd reports the cluster network's readiness through Steer", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		waitFor(t, ctx, "NetworkReady", func() error { return networkReady(ctx, e.node, true) })
		// The primary network's plugin goes missing (an upgrade of the node's CNI package in
		// flight): Steer's STATUS says so, and containerd reports the network not ready.
		bridge := filepath.Join(realnode.CNIBinDir, "bridge")
		if err := os.Rename(bridge, bridge+".away"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, "NetworkReady false", func() error { return networkReady(ctx, e.node, false) })
		if err := os.Rename(bridge+".away", bridge); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, "NetworkReady again", func() error { return networkReady(ctx, e.node, true) })
	})

	if *long {
		t.Run("steerd restarted by its liveness probe under traffic", func(t *testing.T) {
			e.testLivenessRestart(t)
		})
		t.Run("DaemonSet rolled to a new image tag under traffic", func(t *testing.T) {
			e.testRollout(t)
		})
	}

	t.Run("DaemonSet deleted: the node falls back to the primary network", func(t *testing.T) {
		ctx := context.Background()
		if err := e.node.DeleteSteer(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(realnode.CNIConfDir, install.ConfigName)); !os.IsNotExist(err) {
			t.Errorf("Steer's CNI config still installed after the DaemonSet's deletion: %v", err)
		}
		pod := e.runPod(t, "plain", "")
		if pod.Object.Status.PodIP == "" {
			t.Errorf("pod on the primary network has no IP")
		}
		e.deletePod(t, "plain")
	})
}

// networkReady checks containerd's NetworkReady condition against want.
func networkReady(ctx context.Context, node *realnode.Node, want bool) error {
	ready, msg, err := node.NetworkReady(ctx)
	if err != nil {
		return err
	}
	if ready != want {
		return fmt.Errorf("NetworkReady = %v (%s), want %v", ready, msg, want)
	}
	if !want && !strings.Contains(msg, "bridge") {
		return fmt.Errorf("NetworkReady false, but the message does not name the missing plugin: %s", msg)
	}
	return nil
}
