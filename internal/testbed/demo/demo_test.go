package demo

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

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

	var out bytes.Buffer
	verdicts, err := Run(ctx, Options{Out: &out, Log: slog.New(slog.DiscardHandler), Plugin: plugin, Steerd: steerd, Steerctl: steerctl, Prefix: prefix})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(verdicts) != 4 {
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
