package demo

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/internal/testutil/nstest"
)

// TestDemo runs the demo's own code end to end: every story must be broken without Steer's
// steering and fixed with it, and nothing may be left behind.
func TestDemo(t *testing.T) {
	nstest.RequireRoot(t)
	ctx := context.Background()
	bin := t.TempDir()
	plugin, err := emulation.BuildPlugin(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	steerctl, err := emulation.BuildCommand(ctx, bin, "steerctl")
	if err != nil {
		t.Fatal(err)
	}
	steerd, err := emulation.BuildCommand(ctx, bin, "steerd")
	if err != nil {
		t.Fatal(err)
	}
	// The run's own prefix: another run on the machine (make demo-up, a second test) neither
	// collides with this one nor counts as its leftover.
	prefix := "dm" + nstest.Suffix()
	if left := netnsList(t, prefix); left != "" {
		t.Fatalf("namespaces with the fresh prefix %s already exist: %s", prefix, left)
	}

	out := runDemo(t, Options{Plugin: plugin, Steerd: steerd, Steerctl: steerctl, Prefix: prefix}, 4)
	for _, want := range []string{"pod on node-b"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if left := netnsList(t, prefix); left != "" {
		t.Errorf("namespaces left: %s", left)
	}
	if _, err := os.Stat(PinRoot(prefix)); !os.IsNotExist(err) {
		t.Errorf("demo pins left: %v", err)
	}
}

// netnsList lists the named network namespaces of the run with prefix.
func netnsList(t *testing.T, prefix string) string {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	var demo []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, prefix+"-") {
			demo = append(demo, l)
		}
	}
	return strings.Join(demo, ",")
}

// TestDemoNode runs the demo on a real node (make demo): Steer's image installed with Helm,
// kubelet and containerd running the DaemonSet and the pods; every story must be broken without
// Steer's steering and fixed with it, and the node must leave nothing behind.
func TestDemoNode(t *testing.T) {
	nstest.RequireRoot(t)
	bin := t.TempDir()
	steerctl, err := emulation.BuildCommand(context.Background(), bin, "steerctl")
	if err != nil {
		t.Fatal(err)
	}
	before := netnsList(t, "steer-node-")
	out := runDemo(t, Options{RealNode: true, Steerctl: steerctl}, 3)
	for _, want := range []string{"helm upgrade --install steer manifests/charts/steer", `pluginConfig={"steering":false}`, "another pod", "Running"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if left := netnsList(t, "steer-node-"); left != before {
		t.Errorf("namespaces left: %s (before: %s)", left, before)
	}
}

// runDemo runs the demo with o and checks the verdicts of its stories, and what every run
// shows; it returns the output.
func runDemo(t *testing.T, o Options, stories int) string {
	t.Helper()
	var out bytes.Buffer
	o.Out, o.Log = &out, slog.New(slog.DiscardHandler)
	start := time.Now()
	verdicts, err := Run(context.Background(), o)
	t.Logf("demo ran in %s\n%s", time.Since(start).Round(time.Second), out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(verdicts) != stories {
		t.Fatalf("verdicts = %+v", verdicts)
	}
	for _, v := range verdicts {
		if !v.Broken || !v.Fixed {
			t.Errorf("%s: broken without Steer %t, fixed with it %t", v.Story, v.Broken, v.Fixed)
		}
	}
	for _, want := range []string{"network-status", "steerctl", "next-hop", "pinned", `"peer_mac"`, "multus-proxy", "web-dmz", "conns"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	return out.String()
}
