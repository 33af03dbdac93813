package steering

import (
	"log/slog"

	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/netconf"
)

// ForConf returns the eBPF dataplane for a plugin config. With "steering": false it attaches
// nothing (Steer is then a plain Multus replacement) but DEL still cleans up.
func ForConf(conf *netconf.Conf, log *slog.Logger) Dataplane {
	return BPF{
		Options:  datapath.Options{Layout: bpffs.Layout{Root: conf.BPFFSRoot}},
		Log:      log,
		Disabled: !conf.Steering,
	}
}
