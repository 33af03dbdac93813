// Command steer-demo tells the story of `make demo`: the problems of pods with secondary
// networks on a local cluster, broken without Steer and fixed with it, on a real node (kubelet
// and containerd run Steer's DaemonSet) or on the emulation. Run it as root.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/steernet/steer/internal/testbed/demo"
)

func main() {
	realNode := flag.Bool("real-node", false, "tell the stories on a real node: kubelet and containerd run Steer's DaemonSet (from -image, installed with Helm) and the pods; otherwise on the emulation")
	image := flag.String("image", "bin/steer-image.tar", "Steer's image tarball, `make image` (real node)")
	plugin := flag.String("plugin", "bin/steer", "the steer CNI plugin binary (emulation)")
	steerctl := flag.String("steerctl", "bin/steerctl", "the steerctl binary")
	steerd := flag.String("steerd", "bin/steerd", "the steerd binary (emulation)")
	hold := flag.Bool("hold", false, "keep everything up after the stories until SIGTERM or Ctrl-C")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "steer-demo: run as root (it creates network namespaces and loads BPF programs)")
		os.Exit(1)
	}
	// Output piped into `head` must not kill the demo before it tears down.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	verdicts, err := demo.Run(ctx, demo.Options{
		Out: os.Stdout, Log: log, RealNode: *realNode, Image: *image,
		Plugin: *plugin, Steerd: *steerd, Steerctl: *steerctl, Hold: *hold,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "steer-demo:", err)
		os.Exit(1)
	}
	for _, v := range verdicts {
		if !v.Fixed {
			os.Exit(1)
		}
	}
}
