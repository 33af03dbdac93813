package main

import (
	"log/slog"

	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/netconf"
	"github.com/steernet/steer/pkg/steering"
)

func newDataplane(conf *netconf.Conf, log *slog.Logger, spares *datapath.Spares) steering.Dataplane {
	return steering.ForConf(conf, log, spares)
}

// warmDataplane returns what lets the pod's dataplane start, once the engine knows the pod has
// secondaries and while the delegates run, what depends on none of their results: claiming a
// collection steerd loaded ahead, or else the parse of the BPF object built into the plugin
// (10-20 ms on a busy node), the pod's maps and the verification of its TC programs. Each ADD is a fresh process: all would otherwise start after
// the last delegate. The caller closes what it returns (nil: steering off).
func warmDataplane(conf *netconf.Conf) *datapath.Spares {
	if !conf.Steering {
		return nil
	}
	return datapath.SparesForOnePod(bpffs.Layout{Root: conf.BPFFSRoot})
}
