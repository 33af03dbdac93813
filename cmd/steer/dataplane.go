package main

import (
	"log/slog"

	"github.com/steernet/steer/pkg/netconf"
	"github.com/steernet/steer/pkg/steering"
)

func newDataplane(conf *netconf.Conf, log *slog.Logger) steering.Dataplane {
	return steering.ForConf(conf, log)
}
