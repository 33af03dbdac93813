package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/steernet/steer/pkg/delegate"
	"github.com/steernet/steer/pkg/netconf"
)

// GC deletes the cached containers the runtime no longer lists as valid, then sends GC to
// the cluster network and to every cached delegate network (see the package documentation).
func (e *Engine) GC(ctx context.Context, conf *netconf.Conf, args *skel.CmdArgs) error {
	valid, err := validAttachments(args.StdinData)
	if err != nil {
		return err
	}
	r := e.baseRequest(conf, args)
	isValid := make(map[types.GCAttachment]bool, len(valid))
	for _, v := range valid {
		isValid[v] = true
	}
	ids, err := r.store.list()
	if err != nil {
		return cniError(types.ErrIOFailure, "GC: %v", err)
	}

	var (
		errs []error
		kept []*cacheEntry // valid, or an ADD in progress
		// networks holds one configuration per distinct delegate config seen, in order.
		networks  [][]byte
		seen      = map[string]bool{}
		addConfig = func(conf []byte) {
			if !seen[string(conf)] {
				seen[string(conf)] = true
				networks = append(networks, conf)
			}
		}
		cached = map[string]bool{}
	)
	for _, id := range ids {
		entry, rerr := r.store.read(id)
		if rerr != nil {
			// A torn or foreign file: never delete what we cannot read.
			errs = append(errs, rerr)
			continue
		}
		for _, a := range entry.Attachments {
			addConfig(a.Config)
		}
		inProgress := !entry.Complete && time.Since(entry.modTime) < addGrace
		if isValid[types.GCAttachment{ContainerID: id, IfName: entry.IfName}] || inProgress {
			kept = append(kept, entry)
			cached[id] = true
			continue
		}
		cr := *r
		cr.containerID = id
		cr.log = r.log.With("container", shortID(id))
		if terr := e.teardown(ctx, &cr, entry, entry.NetNS); terr != nil {
			errs = append(errs, fmt.Errorf("stale container %s: %w", shortID(id), terr))
			continue
		}
		cr.log.Info("GC: deleted stale attachments", "attachments", len(entry.Attachments))
	}
	kept, errs = e.gcMultus(ctx, r, ids, valid, addConfig, cached, kept, errs)

	// The valid attachments of each delegate network, by network name: plugins keep their
	// state per name (host-local: one directory per name).
	byName := map[string][]types.GCAttachment{}
	for _, entry := range kept {
		for _, a := range entry.Attachments {
			if n, err := delegate.Parse(a.Config, entry.CNIVersion); err == nil {
				byName[n.Name] = append(byName[n.Name], types.GCAttachment{ContainerID: entry.ContainerID, IfName: a.IfName})
			}
		}
	}
	secondaries := true
	for _, v := range valid {
		if !cached[v.ContainerID] {
			// Its secondary attachments are unknown: GC of a secondary network would free them.
			secondaries = false
		}
	}
	if !secondaries {
		r.log.Warn("GC: some valid containers have no cache; secondary networks get no GC this time")
	}

	primaryName := ""
	if _, primary, perr := e.primaryConf(ctx, r, nil); perr == nil {
		if n, nerr := delegate.Parse(primary, conf.CNIVersion); nerr == nil {
			primaryName = n.Name
			// The runtime's own attachments are the cluster network's, cache or not.
			byName[n.Name] = unique(append(byName[n.Name], valid...))
			networks = append([][]byte{primary}, networks...)
		}
	} else {
		errs = append(errs, fmt.Errorf("cluster network: %w", perr))
	}

	done := map[string]bool{}
	for _, c := range networks {
		n, perr := delegate.Parse(c, conf.CNIVersion)
		if perr != nil || done[string(c)] || (!secondaries && n.Name != primaryName) {
			continue
		}
		done[string(c)] = true
		if gerr := r.runner.GC(ctx, n, byName[n.Name]); gerr != nil {
			errs = append(errs, withCode(types.ErrInternal, fmt.Sprintf("GC of network %q", n.Name), gerr))
		}
	}
	if len(errs) > 0 {
		return cniError(firstCode(types.ErrInternal, errs), "GC: %s", joinMessages(errs))
	}
	return nil
}

// gcMultus does for the containers only Multus' cache knows (pods Multus attached) what GC
// does for Steer's: valid ones are kept and their attachments known, stale ones deleted.
// Multus caches no CNI_IFNAME, so validity goes by container ID.
func (e *Engine) gcMultus(ctx context.Context, r *request, steerIDs []string,
	valid []types.GCAttachment, addConfig func([]byte), cached map[string]bool, kept []*cacheEntry, errs []error) ([]*cacheEntry, []error) {
	ids, err := r.listMultusCache()
	if err != nil {
		return kept, append(errs, err)
	}
	validID := map[string]bool{}
	for _, v := range valid {
		validID[v.ContainerID] = true
	}
	mr := r.forMultus()
	for _, id := range ids {
		if slices.Contains(steerIDs, id) {
			continue // Steer's entry wins, as in DEL
		}
		entry, rerr := mr.readMultusCache(id, r.multusIfName(id))
		if rerr != nil {
			errs = append(errs, rerr) // never delete what we cannot read
			continue
		}
		for _, a := range entry.Attachments {
			addConfig(a.Config)
		}
		if validID[id] || time.Since(entry.modTime) < addGrace {
			kept = append(kept, entry)
			cached[id] = true
			continue
		}
		cr := *mr
		cr.containerID = id
		cr.log = r.log.With("container", shortID(id))
		if terr := e.teardown(ctx, &cr, entry, ""); terr != nil {
			errs = append(errs, fmt.Errorf("stale container %s (multus cache): %w", shortID(id), terr))
			continue
		}
		cr.log.Info("GC: deleted stale attachments from Multus' cache", "attachments", len(entry.Attachments))
	}
	return kept, errs
}

// validAttachments reads cni.dev/valid-attachments (or the spec's first spelling,
// cni.dev/attachments) from the GC configuration. Without either, every attachment would
// look stale: that is refused rather than taken literally.
func validAttachments(stdin []byte) ([]types.GCAttachment, error) {
	var in struct {
		Valid  *[]types.GCAttachment `json:"cni.dev/valid-attachments"`
		Legacy *[]types.GCAttachment `json:"cni.dev/attachments"`
	}
	if err := json.Unmarshal(stdin, &in); err != nil {
		return nil, cniError(types.ErrDecodingFailure, "GC: cni.dev/valid-attachments: %v", err)
	}
	switch {
	case in.Valid != nil:
		return *in.Valid, nil
	case in.Legacy != nil:
		return *in.Legacy, nil
	}
	return nil, cniError(types.ErrInvalidNetworkConfig, "GC: no cni.dev/valid-attachments: refusing to delete every attachment")
}

func unique(list []types.GCAttachment) []types.GCAttachment {
	seen := map[types.GCAttachment]bool{}
	out := list[:0:0]
	for _, a := range list {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// Status reports whether the plugin can serve ADDs: the readiness indicator file exists (if
// configured) and the cluster network's delegate is ready.
func (e *Engine) Status(ctx context.Context, conf *netconf.Conf, args *skel.CmdArgs) error {
	if path := conf.ReadinessIndicatorFile; path != "" {
		if _, err := os.Stat(path); err != nil {
			return cniError(types.ErrPluginNotAvailable, "readiness indicator file: %v", err)
		}
	}
	r := e.baseRequest(conf, args)
	network, primary, err := e.primaryConf(ctx, r, nil)
	if err != nil {
		return withCode(types.ErrPluginNotAvailable, "cluster network", err)
	}
	n, err := delegate.Parse(primary, conf.CNIVersion)
	if err == nil {
		err = r.runner.FindPlugins(n)
	}
	if err != nil {
		return cniError(types.ErrPluginNotAvailable, "cluster network %q: %v", network, err)
	}
	if err = r.runner.Status(ctx, n); err != nil {
		// The delegate's code (50, 51, or its own) when it gave one.
		return withCode(types.ErrPluginNotAvailable, fmt.Sprintf("cluster network %q", network), err)
	}
	return nil
}
