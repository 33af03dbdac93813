// Command steerd is Steer's node daemon, run by the DaemonSet in manifests/:
//
//	steerd install    (init container) put the plugin and its CNI config on the host
//	steerd run        keep the config, token and pins in order, serve metrics and health, and
//	                  Services on secondary networks (EndpointSlices, the pods' entries)
//	steerd uninstall  (preStop) take Steer off the node, config first
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/steernet/steer/pkg/api"
)

const usage = `steerd is Steer's node daemon.

Usage:
  steerd install [flags]    install the plugin binaries and CNI config on the host, then exit
  steerd run [flags]        the daemon
  steerd uninstall [flags]  remove Steer's CNI config, then the binaries

Run 'steerd <command> -h' for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "install":
		err = runInstall(ctx, log, args)
	case "run":
		err = runDaemon(ctx, log, args)
	case "uninstall":
		err = runUninstall(ctx, log, args)
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		log.Error("steerd failed", "err", err)
		os.Exit(1)
	}
}

// hostFlags are the host paths every command works on.
type hostFlags struct {
	binDir, confDir, pluginSrc, bpffsRoot string
}

// binaries are the CNI binaries steerd installs: the plugin, and the thick mode's shim next to it.
func (h *hostFlags) binaries() []struct{ src, name string } {
	return []struct{ src, name string }{
		{h.pluginSrc, api.PluginBinary},
		{filepath.Join(filepath.Dir(h.pluginSrc), api.ShimBinary), api.ShimBinary},
	}
}

func (h *hostFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&h.binDir, "cni-bin-dir", "/host/opt/cni/bin", "host CNI binary directory (as mounted in the container)")
	fs.StringVar(&h.confDir, "cni-conf-dir", "/host/etc/cni/net.d", "host CNI config directory (as mounted in the container)")
	fs.StringVar(&h.pluginSrc, "plugin", "/usr/local/bin/"+api.PluginBinary, "the steer plugin binary to install (steer-shim is taken from its directory)")
	fs.StringVar(&h.bpffsRoot, "bpffs-root", "/sys/fs/bpf/steer", "Steer's pin root")
}
