package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/steernet/steer/pkg/delegate"
	"github.com/steernet/steer/pkg/netconf"
	"github.com/steernet/steer/pkg/steering"
)

// Del detaches the container from every network ADD attached, using the cache only.
func (e *Engine) Del(ctx context.Context, conf *netconf.Conf, args *skel.CmdArgs) error {
	r, err := e.newRequest(conf, args)
	if err != nil {
		// ADD refuses the same arguments, so nothing can be attached under them; failing
		// would only make the runtime retry DEL forever and leave the pod Terminating.
		e.log.Info("DEL: invalid arguments, nothing to delete", "err", err)
		return nil
	}
	entry, r, err := r.readCache()
	if errors.Is(err, fs.ErrNotExist) {
		// Never attached, already deleted, or attached by a Multus or Steer whose cache is
		// gone: delete what the apiserver says the pod has, as Multus does. Idempotent.
		e.delFromAPI(ctx, r)
		return nil
	}
	if errors.Is(err, errMultusCache) {
		// Multus' own DEL gives up on it too, without failing: a retried DEL cannot fix it.
		r.log.Error("DEL: cannot delete from Multus' cache; the file is kept", "err", err)
		return nil
	}
	if err != nil {
		return r.fail(cniError(types.ErrIOFailure, "%v", err))
	}
	if err = e.teardown(ctx, r, entry, r.netns); err != nil {
		return r.fail(err)
	}
	r.log.Info("DEL done", "attachments", len(entry.Attachments), "multusCache", entry.multus != "")
	return nil
}

// readCache returns the container's entry: Steer's, else one read from Multus' cache (for a
// pod Multus attached), with the request to run it with. The error wraps fs.ErrNotExist when
// neither has one.
func (r *request) readCache() (*cacheEntry, *request, error) {
	entry, err := r.store.read(r.containerID)
	if !errors.Is(err, fs.ErrNotExist) {
		return entry, r, err
	}
	entry, merr := r.readMultusCache(r.containerID, r.ifName)
	if merr != nil {
		if errors.Is(merr, fs.ErrNotExist) {
			return nil, r, err
		}
		return nil, r, merr
	}
	return entry, r.forMultus(), nil
}

// teardown undoes a cached ADD: steering first, then every attachment last to first, going on
// past failures. netns is passed to the delegates as is ("" or a vanished path are fine).
func (e *Engine) teardown(ctx context.Context, r *request, entry *cacheEntry, netns string) error {
	// The network-status goes while the delegates run: it is best effort and independent.
	var wg sync.WaitGroup
	if entry.Pod != nil && e.status != nil && netnsExists(netns) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.clearStatus(ctx, r, entry.Pod)
		}()
	}
	defer wg.Wait()
	var errs []error
	if entry.multus == "" { // Multus set up no steering
		if err := e.dp.Detach(ctx, entry.ContainerID, netns); err != nil {
			errs = append(errs, fmt.Errorf("steering: %w", err))
		}
	}
	var failed []cachedAttachment
	for i := len(entry.Attachments) - 1; i >= 0; i-- {
		a := entry.Attachments[i]
		err := e.delCached(ctx, r, entry, a, netns)
		if err != nil {
			errs = append(errs, withCode(types.ErrInternal, fmt.Sprintf("network %q (%s)", a.Network, a.IfName), err))
			failed = append([]cachedAttachment{a}, failed...)
		}
		if p, ok := a.CapabilityArgs[deviceInfoCapability].(string); ok && entry.multus != "" {
			_ = os.Remove(p) // as Multus' CleanDeviceInfoForCNI: best effort
		}
	}
	if entry.multus != "" {
		// Multus' file is kept whole for the next DEL under retryDeleteOnError, as Multus does.
		if len(failed) == 0 || !r.conf.RetryDeleteOnError {
			if err := removeMultusCache(entry.multus); err != nil {
				errs = append(errs, err)
			}
		}
	} else if len(failed) > 0 && r.conf.RetryDeleteOnError {
		// Keep what failed for the runtime's next DEL, as Multus does.
		entry.Attachments = failed
		if err := r.store.write(entry); err != nil {
			errs = append(errs, err)
		}
	} else if err := r.store.remove(entry.ContainerID); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil
	}
	return cniError(firstCode(types.ErrInternal, errs), "%v", joinMessages(errs))
}

// delCached runs DEL of one cached attachment with the configuration bytes ADD used.
func (e *Engine) delCached(ctx context.Context, r *request, entry *cacheEntry, a cachedAttachment, netns string) error {
	n, err := delegate.Parse(a.Config, entry.CNIVersion)
	if err != nil {
		return err
	}
	t := delegate.Target{
		ContainerID: entry.ContainerID, NetNS: netns, IfName: a.IfName,
		Args: entry.CNIArgs, CapabilityArgs: a.CapabilityArgs,
	}
	return e.delOne(ctx, r, n, t)
}

// clearStatus removes the network-status of a pod whose sandbox goes away. Best effort and
// briefly bounded: DEL must not depend on the apiserver.
func (e *Engine) clearStatus(ctx context.Context, r *request, pod *cachedPod) {
	ctx, cancel := context.WithTimeout(ctx, min(r.conf.APITimeout, statusClearTimeout))
	defer cancel()
	if err := e.status.SetNetworkStatus(ctx, pod.Namespace, pod.Name, pod.UID, nil); err != nil {
		r.log.Info("DEL: network-status not removed", "err", err)
	}
}

// Check runs CHECK of every cached attachment, in ADD order, and stops at the first failure;
// then it verifies the dataplane ADD set up (programs, pins, sysctls, routes).
func (e *Engine) Check(ctx context.Context, conf *netconf.Conf, args *skel.CmdArgs) error {
	r, err := e.newRequest(conf, args)
	if err != nil {
		return err
	}
	entry, r, err := r.readCache()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return r.fail(cniError(types.ErrUnknownContainer, "CHECK: the container was never attached (no cache)"))
	case err != nil:
		return r.fail(cniError(types.ErrIOFailure, "%v", err))
	case !entry.Complete:
		return r.fail(cniError(types.ErrInternal, "CHECK: the container's ADD did not complete"))
	}
	for _, a := range entry.Attachments {
		var n *delegate.Network
		n, err = delegate.Parse(a.Config, entry.CNIVersion)
		if err == nil {
			t := delegate.Target{ContainerID: r.containerID, NetNS: r.netns, IfName: a.IfName, Args: entry.CNIArgs, CapabilityArgs: a.CapabilityArgs}
			err = r.runner.Check(ctx, n, t)
		}
		if err != nil {
			return r.fail(withCode(types.ErrInternal, fmt.Sprintf("network %q (%s)", a.Network, a.IfName), err))
		}
	}
	if entry.multus != "" {
		return nil // Multus set up no steering to verify
	}
	atts, ok := cachedDataplaneAttachments(entry.Attachments)
	if !ok {
		// Attached by a Steer that cached no policies: what it set up cannot be derived again.
		r.log.Info("CHECK: the cache predates cached policies; dataplane not checked")
		return nil
	}
	if err := e.dp.Check(ctx, r.containerID, r.netns, atts); err != nil {
		return r.fail(cniError(types.ErrInternal, "CHECK: steering: %v", err))
	}
	return nil
}

// cachedDataplaneAttachments is what the dataplane got at ADD, from the cache; false when an
// attachment's policy was not cached.
func cachedDataplaneAttachments(cached []cachedAttachment) ([]steering.Attachment, bool) {
	out := make([]steering.Attachment, len(cached))
	for i, a := range cached {
		if a.Policy == nil {
			return nil, false
		}
		out[i] = steering.Attachment{IfName: a.IfName, Network: a.Network, Primary: a.Primary, Result: a.Result, Policy: *a.Policy}
	}
	return out, true
}

func netnsExists(path string) bool {
	if path == "" {
		return false
	}
	_, err := os.Stat(path)
	return err == nil
}

func joinMessages(errs []error) string {
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}
