package main

import (
	"log/slog"

	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/netconf"
	"github.com/steernet/steer/pkg/steering"
)

func newDataplane(conf *netconf.Conf, log *slog.Logger) steering.Dataplane {
	return steering.ForConf(conf, log, nil) // one pod per process: nothing to make ahead
}

// warmDataplane parses the BPF object built into the plugin while the apiserver answers and the
// delegates run. Each ADD is a fresh process, and the parse (10-20 ms on a busy node) would
// otherwise start after the last delegate.
func warmDataplane(conf *netconf.Conf) {
	if conf.Steering {
		go func() { _, _ = datapath.Embedded() }()
	}
}
