package main

import (
	"log/slog"

	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/netconf"
	"github.com/steernet/steer/pkg/steering"
)

func newDataplane(conf *netconf.Conf, log *slog.Logger, spares *datapath.Spares) steering.Dataplane {
	return steering.ForConf(conf, log, spares)
}

// warmDataplane starts, while the apiserver answers and the delegates run, what the pod's
// dataplane needs that depends on neither: the parse of the BPF object built into the plugin
// (10-20 ms on a busy node), the pod's maps and the verification of its TC programs. Each ADD is
// a fresh process: all would otherwise start after the last delegate. The caller closes what it returns (nil: steering off).
func warmDataplane(conf *netconf.Conf) *datapath.Spares {
	if !conf.Steering {
		return nil
	}
	return datapath.SparesForOnePod()
}
