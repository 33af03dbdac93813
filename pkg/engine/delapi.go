package engine

import (
	"context"
	"fmt"

	"github.com/steernet/steer/pkg/delegate"
)

// delFromAPI deletes a container that neither Steer nor Multus cached, as Multus' DEL does
// without its cache: the pod's networks are resolved again from the apiserver (the cluster
// and default networks, the default-network and selection annotations, their NADs) and each
// one's DEL runs, last to first, on the interface names ADD would give them. Best effort: a
// pod that is gone or has another UID gets nothing (its networks are unknown); a selection
// that does not resolve leaves the cluster and default networks, which still get their DEL
// (Multus' "continue to delete clusterNetwork"); a failed DEL is logged. The runtime's DEL
// always succeeds: a retry would find no more than this one did.
func (e *Engine) delFromAPI(ctx context.Context, r *request) {
	if e.pods == nil || r.podName == "" || r.podNamespace == "" {
		r.log.Debug("DEL: nothing cached")
		return
	}
	atts := e.resolveForDel(ctx, r)
	if len(atts) == 0 {
		return
	}
	// The results ADD cached (the prevResult of DEL) are in Multus' libcni cache when Multus
	// attached the pod, else in Steer's.
	runner := r.runner
	if name, err := confName(atts[0].conf); err == nil && r.multusRunner().CachedIfName(r.containerID, name) != "" {
		runner = r.multusRunner()
	}
	// Steering first, as teardown does: pins left by a Steer whose cache was lost.
	if err := e.dp.Detach(ctx, r.containerID, r.netns); err != nil {
		r.log.Warn("DEL from the apiserver: steering", "err", err)
	}
	failed := 0
	for i := len(atts) - 1; i >= 0; i-- {
		a := atts[i]
		n, err := delegate.Parse(a.conf, r.conf.CNIVersion)
		if err == nil {
			// ADD refuses these; a NAD changed to one since must not run it now either.
			a.net = n
			err = refuseMetaPlugins(a)
		}
		if err == nil {
			err = runner.Del(ctx, n, r.target(a.ifName, a.capArgs))
		}
		if err != nil {
			failed++
			r.log.Warn("DEL from the apiserver: delegate DEL failed", "network", a.network, "ifname", a.ifName, "err", fmt.Sprint(err))
		}
	}
	r.log.Info("DEL done from the apiserver (no cache)", "attachments", len(atts), "failed", failed)
}

// resolveForDel reads the pod and resolves its networks, all within delLookupTimeout: a DEL
// must not wait long on an apiserver that is down.
func (e *Engine) resolveForDel(ctx context.Context, r *request) []*attachment {
	ctx, cancel := context.WithTimeout(ctx, min(r.conf.APITimeout, delLookupTimeout))
	defer cancel()
	pod, err := e.lookupPod(ctx, r)
	if err != nil {
		r.log.Info("DEL: nothing cached and the pod cannot be read: nothing to delete", "err", err)
		return nil
	}
	var atts []*attachment
	primary, err := e.primary(ctx, r, pod)
	if err != nil {
		r.log.Warn("DEL from the apiserver: cluster network not resolved, not deleted", "err", err)
	} else {
		atts = append(atts, primary)
	}
	defaults, err := e.defaultNetworks(ctx, r)
	if err != nil {
		r.log.Warn("DEL from the apiserver: default networks not resolved, not deleted", "err", err)
	}
	atts = append(atts, defaults...)
	if err == nil && primary != nil {
		// Interface names follow the networks before; without them they would be guesses.
		before := append([]*attachment{primary}, defaults...)
		selected, err := e.selectedNetworks(ctx, r, pod, before)
		if err != nil {
			r.log.Warn("DEL from the apiserver: the pod's selection not resolved, its networks not deleted", "err", err)
		}
		atts = append(atts, selected...)
	}
	return atts
}
