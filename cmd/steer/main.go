// Command steer is the Steer CNI plugin: a drop-in replacement for the Multus thin plugin
// (change "type": "multus" to "type": "steer"). It runs the engine in-process; see package
// engine for what each verb does and package netconf for the configuration. With a socketPath
// in its config it hands each verb to steerd (thick mode), as steer-shim does.
package main

import (
	"context"
	"log/slog"
	"runtime"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/engine"
	"github.com/steernet/steer/pkg/netconf"
	"github.com/steernet/steer/pkg/pluginmain"
)

func init() {
	// Namespace switches apply to one OS thread: keep main on the thread it started on (the
	// containernetworking/plugins convention; pkg/ns does the rest).
	runtime.LockOSThread()
}

func main() {
	pluginmain.Precheck()
	verb := func(name string, do func(context.Context, *engine.Engine, *netconf.Conf, *skel.CmdArgs) error) func(*skel.CmdArgs) error {
		return func(args *skel.CmdArgs) error { return pluginmain.Run(args, name, runThin(do)) }
	}
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add: verb("ADD", func(ctx context.Context, e *engine.Engine, conf *netconf.Conf, args *skel.CmdArgs) error {
			res, err := e.Add(ctx, conf, args)
			if err != nil {
				return err
			}
			return types.PrintResult(res, conf.CNIVersion)
		}),
		Del: verb("DEL", func(ctx context.Context, e *engine.Engine, conf *netconf.Conf, args *skel.CmdArgs) error {
			return e.Del(ctx, conf, args)
		}),
		Check: verb("CHECK", func(ctx context.Context, e *engine.Engine, conf *netconf.Conf, args *skel.CmdArgs) error {
			return e.Check(ctx, conf, args)
		}),
		GC: verb("GC", func(ctx context.Context, e *engine.Engine, conf *netconf.Conf, args *skel.CmdArgs) error {
			return e.GC(ctx, conf, args)
		}),
		Status: verb("STATUS", func(ctx context.Context, e *engine.Engine, conf *netconf.Conf, args *skel.CmdArgs) error {
			return e.Status(ctx, conf, args)
		}),
	}, version.All, "steer: multi-network CNI plugin, a drop-in replacement for Multus")
}

// runThin runs the verb in-process, under the container's lock for ADD, DEL and CHECK (steerd
// has its own): two ADDs of one container ran the bridge plugin at once, and an ADD racing a
// DEL could report success for interfaces the DEL had removed.
func runThin(do func(context.Context, *engine.Engine, *netconf.Conf, *skel.CmdArgs) error) pluginmain.InProcess {
	return func(ctx context.Context, conf *netconf.Conf, args *skel.CmdArgs, verb string, log *slog.Logger) error {
		var spares *datapath.Spares
		if verb == "ADD" {
			spares = warmDataplane(conf)
			defer spares.Close()
		}
		if verb == "ADD" || verb == "DEL" || verb == "CHECK" {
			unlock, err := engine.LockContainer(ctx, conf.CNIDir, args.ContainerID)
			if err != nil {
				if verb == "DEL" {
					log.Warn("DEL without the container lock", "err", err)
				} else {
					return err
				}
			} else {
				defer unlock()
			}
		}
		return do(ctx, engine.NewThin(conf, log, newDataplane(conf, log, spares)), conf, args)
	}
}
