package pluginmain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/steernet/steer/pkg/api"
	"github.com/steernet/steer/pkg/netconf"
)

// unavailableWait is how long a verb other than DEL waits for steerd to come back.
const unavailableWait = 5 * time.Second

// viaDaemon sends the verb to steerd when conf names its socket (thick mode). handled is false
// when the plugin should run the verb itself: thin mode, or steerd not answering and the
// verb allowed to fall back (DEL always may: it needs only the cache, and must succeed).
func viaDaemon(ctx context.Context, conf *netconf.Conf, args *skel.CmdArgs, verb string, log *slog.Logger) (handled bool, err error) {
	if conf.SocketPath == "" {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, api.Timeout)
	defer cancel()
	req := api.Request{
		Command: verb, ContainerID: args.ContainerID, Netns: args.Netns, IfName: args.IfName,
		Args: args.Args, Path: args.Path, StdinData: args.StdinData,
	}
	res, err := api.Do(ctx, conf.SocketPath, req)
	// A daemon restarting (a rolling update, a crash) is back within seconds: wait for it a
	// little rather than fail a pod start. DEL does not wait: it can always run here.
	for deadline := time.Now().Add(unavailableWait); errors.Is(err, api.ErrUnavailable) && verb != "DEL" && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		res, err = api.Do(ctx, conf.SocketPath, req)
	}
	if errors.Is(err, api.ErrUnavailable) && (conf.ThinFallback || verb == "DEL") {
		log.Warn("steerd unavailable: running in-process (thin mode)", "socket", conf.SocketPath, "err", err)
		return false, nil
	}
	if err != nil {
		return true, err
	}
	if verb == "ADD" {
		if _, werr := fmt.Fprintf(os.Stdout, "%s\n", res); werr != nil {
			return true, werr
		}
	}
	return true, nil
}
