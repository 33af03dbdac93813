// Command steer-shim is Steer's CNI plugin in thick mode: it hands each verb to steerd over its
// socket and prints steerd's answer, as multus-shim does for multus-daemon. It links none of
// the engine, the BPF loader, HTTP or the Kubernetes client, so a runtime execs it in a
// fraction of the plugin's time, and it is called for every pod's ADD and DEL and for the
// runtime's STATUS polls. When steerd is not there and the verb may run without it (DEL, or thinFallback), it
// execs the steer plugin next to it, which does the verb itself.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"golang.org/x/sys/unix"

	"github.com/steernet/steer/pkg/api"
	"github.com/steernet/steer/pkg/netconf"
	"github.com/steernet/steer/pkg/pluginmain"
)

func main() {
	pluginmain.Precheck()
	verb := func(name string) func(*skel.CmdArgs) error {
		return func(args *skel.CmdArgs) error { return pluginmain.Run(args, name, execPlugin) }
	}
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add: verb("ADD"), Del: verb("DEL"), Check: verb("CHECK"), GC: verb("GC"), Status: verb("STATUS"),
	}, version.All, "steer-shim: Steer's thick-mode CNI plugin (hands each call to steerd)")
}

// execPlugin replaces this process with the steer plugin installed next to it, given the same
// arguments, environment and configuration on stdin: the plugin runs the verb in-process.
func execPlugin(_ context.Context, _ *netconf.Conf, args *skel.CmdArgs, verb string, log *slog.Logger) error {
	self, err := os.Executable()
	if err != nil {
		return types.NewError(types.ErrInternal, "steer-shim: cannot find the steer plugin", err.Error())
	}
	plugin := filepath.Join(filepath.Dir(self), api.PluginBinary)
	// The runtime's stdin has been read: the plugin gets the same bytes from a memory file.
	fd, err := unix.MemfdCreate("steer-stdin", unix.MFD_CLOEXEC)
	if err == nil {
		_, err = unix.Write(fd, args.StdinData)
	}
	if err == nil {
		_, err = unix.Seek(fd, 0, 0)
	}
	if err == nil {
		err = unix.Dup3(fd, 0, 0) // the copy on stdin survives exec
	}
	if err != nil {
		return types.NewError(types.ErrIOFailure, "steer-shim: cannot pass the config to the steer plugin", err.Error())
	}
	log.Info("running the verb in the steer plugin", "plugin", plugin, "container", args.ContainerID)
	env := append(os.Environ(), pluginmain.InProcessEnv+"=1") // steerd was tried: once is enough
	err = syscall.Exec(plugin, append([]string{plugin}, os.Args[1:]...), env)
	return types.NewError(types.ErrInternal, fmt.Sprintf("steer-shim: exec %s", plugin), err.Error())
}
