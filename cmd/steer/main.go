// Command steer is the Steer CNI plugin: a drop-in replacement for the Multus thin plugin
// (change "type": "multus" to "type": "steer"). It runs the engine in-process; see package
// engine for what each verb does and package netconf for the configuration.
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/steernet/steer/pkg/engine"
	"github.com/steernet/steer/pkg/netconf"
)

func init() {
	// Namespace switches apply to one OS thread: keep main on the thread it started on (the
	// containernetworking/plugins convention; pkg/ns does the rest).
	runtime.LockOSThread()
}

func main() {
	if proceed, code := checkEnv(); !proceed {
		os.Exit(code)
	}
	if proceed, code := boundStdin(); !proceed {
		os.Exit(code)
	}
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add: func(args *skel.CmdArgs) error {
			return run(args, "ADD", func(ctx context.Context, e *engine.Engine, conf *netconf.Conf) error {
				res, err := e.Add(ctx, conf, args)
				if err != nil {
					return err
				}
				return types.PrintResult(res, conf.CNIVersion)
			})
		},
		Del: func(args *skel.CmdArgs) error {
			return run(args, "DEL", func(ctx context.Context, e *engine.Engine, conf *netconf.Conf) error {
				return e.Del(ctx, conf, args)
			})
		},
		Check: func(args *skel.CmdArgs) error {
			return run(args, "CHECK", func(ctx context.Context, e *engine.Engine, conf *netconf.Conf) error {
				return e.Check(ctx, conf, args)
			})
		},
		GC: func(args *skel.CmdArgs) error {
			return run(args, "GC", func(ctx context.Context, e *engine.Engine, conf *netconf.Conf) error {
				return e.GC(ctx, conf, args)
			})
		},
		Status: func(args *skel.CmdArgs) error {
			return run(args, "STATUS", func(ctx context.Context, e *engine.Engine, conf *netconf.Conf) error {
				return e.Status(ctx, conf, args)
			})
		},
	}, version.All, "steer: multi-network CNI plugin, a drop-in replacement for Multus")
}

// run parses the configuration, sets up logging and the engine, and runs one verb. Errors are
// logged here, once, and returned for skel to print to the runtime.
func run(args *skel.CmdArgs, verb string, do func(context.Context, *engine.Engine, *netconf.Conf) error) error {
	conf, err := netconf.ParseConf(args.StdinData)
	if err != nil {
		return err // no logging configuration to log it with; the runtime logs it
	}
	log, closeLog := newLogger(conf)
	defer closeLog()
	log = log.With("verb", verb)

	// SIGTERM (a runtime giving up) cancels the verb; a failed ADD still rolls back.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	handled, err := viaDaemon(ctx, conf, args, verb, log)
	if !handled {
		err = runThin(ctx, conf, args, verb, log, do)
	}
	if err != nil {
		log.Error("failed", "container", args.ContainerID, "err", err)
		return nonZeroCode(err)
	}
	return nil
}

// runThin runs the verb in-process, under the container's lock for ADD, DEL and CHECK (steerd
// has its own): two ADDs of one container ran the bridge plugin at once, and an ADD racing a
// DEL could report success for interfaces the DEL had removed.
func runThin(ctx context.Context, conf *netconf.Conf, args *skel.CmdArgs, verb string, log *slog.Logger,
	do func(context.Context, *engine.Engine, *netconf.Conf) error) error {
	if verb == "ADD" {
		warmDataplane(conf)
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
	return do(ctx, engine.NewThin(conf, log, newDataplane(conf, log)), conf)
}

// nonZeroCode makes sure a CNI error does not carry code 0, which a runtime takes for success.
func nonZeroCode(err error) error {
	var te *types.Error
	if errors.As(err, &te) && te.Code == 0 {
		return types.NewError(types.ErrInternal, te.Msg, te.Details)
	}
	return err
}
