package steering

import (
	"log/slog"

	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/netconf"
)

// ForConf returns the eBPF dataplane for a plugin config. With "steering": false it attaches
// nothing (Steer is then a plain Multus replacement) but DEL still cleans up. spares keeps a
// collection loaded ahead for the next pod (see datapath.Spares); nil: each pod loads its own.
func ForConf(conf *netconf.Conf, log *slog.Logger, spares *datapath.Spares) Dataplane {
	return BPF{
		Options:  datapath.Options{Layout: bpffs.Layout{Root: conf.BPFFSRoot}, Spares: spares},
		Log:      log,
		Disabled: !conf.Steering,
	}
}
