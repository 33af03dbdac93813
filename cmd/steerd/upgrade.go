package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/dynamic"

	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/engine"
	"github.com/steernet/steer/pkg/k8s"
	"github.com/steernet/steer/pkg/metrics"
)

// upgrader brings the pods attached on this node to this binary's programs: at start, before
// steerd reports ready (so a DaemonSet rollout moves on to the next node only once this
// node's pods run the new programs), and again at every collection, for a pod whose upgrade
// failed. A failed pod keeps its programs; the failure is logged, counted and recorded as a
// Kubernetes event on the pod, once per distinct error.
type upgrader struct {
	layout   bpffs.Layout
	obj      *datapath.Object
	cniDir   string            // the plugin's cache: a pod's netns (legacy TC) and name
	dyn      dynamic.Interface // nil: no events
	reg      *metrics.Registry
	log      *slog.Logger
	reported map[string]string // container ID: the last error reported
}

// run upgrades every attachment that is not at u.obj's version.
func (u *upgrader) run(ctx context.Context) {
	ids, err := u.layout.Containers()
	if err != nil {
		u.log.Warn("list attachments to upgrade", "err", err)
		return
	}
	var n int
	start := time.Now()
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		if u.one(ctx, id) {
			n++
		}
	}
	if n > 0 {
		u.log.Info("upgraded attachments", "pods", n, "of", len(ids), "to", u.obj.Version.String(), "took", time.Since(start).Round(time.Millisecond))
	}
}

// one upgrades one attachment and tells whether it replaced any program.
func (u *upgrader) one(ctx context.Context, id string) bool {
	if u.current(id) {
		return false
	}
	// The container's lock, as its CNI verbs take it: a DEL never races an upgrade.
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	unlock, err := engine.LockContainer(lctx, u.cniDir, id)
	cancel()
	if err != nil {
		u.log.Warn("upgrade postponed: container busy", "container", id, "err", err)
		return false
	}
	defer unlock()
	netns, podNS, pod, _ := engine.CachedPod(u.cniDir, id)
	start := time.Now()
	res, err := datapath.Upgrade(netns, id, u.obj, datapath.Options{Layout: u.layout})
	if err != nil {
		if dir, _ := u.layout.Dir(id); !exists(dir) {
			return false // deleted meanwhile
		}
		u.reg.Upgrades.WithLabelValues("failed").Inc()
		if u.reported[id] == err.Error() {
			return false
		}
		u.reported[id] = err.Error()
		u.log.Error("upgrade failed: the pod keeps its programs", "container", id, "pod", podNS+"/"+pod, "from", res.From.String(), "to", res.To.String(), "err", err)
		u.event(ctx, id, podNS, pod, fmt.Sprintf("Steer's programs of container %s stay at %s, not upgraded to %s: %v", id, res.From, res.To, err))
		return false
	}
	delete(u.reported, id)
	if res.Hooks == 0 {
		return false
	}
	u.reg.Upgrades.WithLabelValues("upgraded").Inc()
	u.log.Info("upgraded", "container", id, "pod", podNS+"/"+pod, "from", res.From.String(), "to", res.To.String(),
		"programs", res.Hooks, "kept", res.Kept, "migrated", res.Migrated, "took", time.Since(start).Round(time.Microsecond))
	return true
}

// current tells, without the container's lock, whether an attachment is at u.obj's version with
// no upgrade under way: the common case at every collection.
func (u *upgrader) current(id string) bool {
	v, err := datapath.ReadVersion(u.layout, id)
	if err != nil || v != u.obj.Version {
		return false
	}
	dir, _ := u.layout.Dir(id)
	return !exists(filepath.Join(dir, datapath.UpgradingPin))
}

// event records the failure on the pod; a pod the plugin's cache does not name gets none (the
// log and the metric still say it).
func (u *upgrader) event(ctx context.Context, id, podNS, pod, msg string) {
	if u.dyn == nil || pod == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := k8s.NewPodClient(u.dyn).Warn(ctx, &k8s.Pod{Namespace: podNS, Name: pod}, "steerd", "SteerUpgradeFailed", msg); err != nil {
		u.log.Warn("record event", "container", id, "err", err)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}
