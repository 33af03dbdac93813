// Package pluginmain is what both of Steer's CNI binaries do around a verb: `steer` (the plugin,
// thin or thick) and `steer-shim` (thick mode only, small and quick to exec). They check the
// runtime's environment and stdin the same way, log as the config says, and hand the verb to
// steerd when the config names its socket; what runs when steerd does not take it differs.
package pluginmain

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/steernet/steer/pkg/netconf"
)

// Precheck runs Steer's checks of the environment and bounds stdin, before skel sees either.
// It exits the process when the verb must not go on (with 0 for a DEL nothing was attached
// for).
func Precheck() {
	if proceed, code := checkEnv(); !proceed {
		os.Exit(code)
	}
	if proceed, code := boundStdin(); !proceed {
		os.Exit(code)
	}
}

// InProcessEnv, set to 1 by steer-shim when it execs the plugin, tells the plugin that steerd
// has already been tried and was not there: the plugin runs the verb without trying again.
const InProcessEnv = "STEER_IN_PROCESS"

// InProcess runs a verb in this process, when steerd does not take it.
type InProcess func(ctx context.Context, conf *netconf.Conf, args *skel.CmdArgs, verb string, log *slog.Logger) error

// Run parses the configuration, sets up logging, and runs one verb: through steerd when the
// config names its socket and steerd takes it, else with inProcess. Errors are logged here,
// once, and returned for skel to print to the runtime.
func Run(args *skel.CmdArgs, verb string, inProcess InProcess) error {
	conf, err := netconf.ParseConf(args.StdinData)
	if err != nil {
		return err // no logging configuration to log it with; the runtime logs it
	}
	log, closeLog := NewLogger(conf)
	defer closeLog()
	log = log.With("verb", verb)

	// SIGTERM (a runtime giving up) cancels the verb; a failed ADD still rolls back.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	handled := false
	if os.Getenv(InProcessEnv) != "1" {
		handled, err = viaDaemon(ctx, conf, args, verb, log)
	}
	if !handled {
		err = inProcess(ctx, conf, args, verb, log)
	}
	if err != nil {
		log.Error("failed", "container", args.ContainerID, "err", err)
		return nonZeroCode(err)
	}
	return nil
}

// nonZeroCode makes sure a CNI error does not carry code 0, which a runtime takes for success.
func nonZeroCode(err error) error {
	var te *types.Error
	if errors.As(err, &te) && te.Code == 0 {
		return types.NewError(types.ErrInternal, te.Msg, te.Details)
	}
	return err
}
