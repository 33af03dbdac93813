package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/steernet/steer/pkg/delegate"
	"github.com/steernet/steer/pkg/k8s"
	"github.com/steernet/steer/pkg/netconf"
	"github.com/steernet/steer/pkg/steering"
)

// Add attaches the pod to all its networks and returns the cluster network's result (see
// the package documentation). On error nothing is left attached.
func (e *Engine) Add(ctx context.Context, conf *netconf.Conf, args *skel.CmdArgs) (types.Result, error) {
	r, err := e.newRequest(conf, args)
	if err != nil {
		return nil, err
	}
	if err = r.waitReady(ctx); err != nil {
		return nil, r.fail(err)
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the look-ahead when the pod lookup fails
	pre := e.resolveAhead(actx, r)
	pod, err := e.lookupPod(ctx, r)
	if err != nil {
		return nil, r.fail(err)
	}
	atts, err := e.plan(ctx, r, pod, pre)
	if err != nil {
		return nil, r.fail(err)
	}
	if err = checkNamesFree(r.netns, atts); err != nil {
		return nil, r.fail(err)
	}
	// Attaching again would leak the first attachments, or a rollback would delete them.
	switch _, err = r.store.read(r.containerID); {
	case err == nil:
		return nil, r.fail(cniError(types.ErrInternal, "container is already attached; the runtime must DEL it first"))
	case !errors.Is(err, fs.ErrNotExist):
		return nil, r.fail(cniError(types.ErrIOFailure, "%v", err))
	}
	res, err := e.attach(ctx, r, pod, atts)
	if err != nil {
		return nil, r.fail(err)
	}
	r.log.Info("ADD done", "attachments", len(atts))
	return res, nil
}

// lookupPod fetches the pod named in CNI_ARGS, bounded by apiTimeout. It is nil outside
// Kubernetes or without a kubeconfig.
func (e *Engine) lookupPod(ctx context.Context, r *request) (*k8s.Pod, error) {
	if e.pods == nil || r.podName == "" || r.podNamespace == "" {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.conf.APITimeout)
	defer cancel()
	pod, err := e.pods.Get(ctx, r.podNamespace, r.podName)
	switch {
	case apierrors.IsNotFound(err):
		return nil, cniError(types.ErrUnknownContainer, "pod not found")
	case err != nil:
		return nil, apiError("get pod", err)
	case r.podUID != "" && pod.UID != r.podUID:
		// Same name, another pod: the one this sandbox was for is gone.
		return nil, cniError(types.ErrUnknownContainer, "pod has UID %s, CNI_ARGS say %s", pod.UID, r.podUID)
	}
	return pod, nil
}

// attach runs the delegates and everything after them. Every step records how to undo it;
// on error the undo runs, and the cache goes only if the undo fully succeeded.
func (e *Engine) attach(ctx context.Context, r *request, pod *k8s.Pod, atts []*attachment) (_ types.Result, err error) {
	entry := &cacheEntry{
		ContainerID: r.containerID,
		NetNS:       r.netns,
		IfName:      r.ifName,
		CNIArgs:     r.cniArgs,
		CNIVersion:  r.conf.CNIVersion,
	}
	if pod != nil {
		entry.Pod = &cachedPod{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}
	}
	var undo delegate.Rollback
	defer func() {
		if err == nil {
			return
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		defer cancel()
		if rbErr := undo.Run(rctx); rbErr != nil {
			err = fmt.Errorf("%w; rollback incomplete, the cache is kept for DEL: %w", err, rbErr)
			return
		}
		if rmErr := r.store.remove(r.containerID); rmErr != nil {
			err = fmt.Errorf("%w; %w", err, rmErr)
		}
	}()

	if p, ok := e.dp.(steering.Preparer); ok {
		p.Prepare(dataplaneAttachments(atts))
	}
	for _, a := range atts {
		// Cached before it runs: if we die half-way, DEL still knows about it.
		entry.Attachments = append(entry.Attachments, cachedAttachment{
			IfName: a.ifName, Network: a.network, Primary: a.primary, Config: a.conf, CapabilityArgs: a.capArgs,
		})
		if err = r.store.write(entry); err != nil {
			return nil, err
		}
		if a.capArgs[deviceInfoCapability] != nil {
			if err = os.MkdirAll(filepath.Dir(deviceInfoPath(r.conf.CNIDir, r.containerID, a.ifName)), 0o700); err != nil {
				return nil, fmt.Errorf("device-info dir: %w", err)
			}
		}
		t := r.target(a.ifName, a.capArgs)
		undo.Push(a.ifName, func(ctx context.Context) error { return e.delOne(ctx, r, a.net, t) })
		r.log.Debug("delegate ADD", "network", a.network, "ifname", a.ifName, "types", a.net.Types())
		tAdd := t
		if len(a.args) > 0 {
			tAdd.Args = append(slices.Clip(t.Args), a.args...)
		}
		if a.result, err = r.runner.Add(ctx, a.net, tAdd); err != nil {
			return nil, withCode(types.ErrInternal, fmt.Sprintf("network %q (%s)", a.network, a.ifName), err)
		}
	}
	if err = applyDefaultRoutes(r.netns, atts); err != nil {
		return nil, err
	}

	undo.Push("steering", func(ctx context.Context) error { return e.dp.Detach(ctx, r.containerID, r.netns) })
	// The network-status is written while the dataplane attaches: neither needs the other,
	// and a pod is not started before ADD returns, so nobody sees the status early.
	var statusErr error
	var wg sync.WaitGroup
	if pod != nil && e.status != nil {
		undo.Push("network-status", func(ctx context.Context) error {
			// Best effort: a stale status holds no network resources, unlike a delegate.
			if err := e.setStatus(ctx, r, entry.Pod, nil); err != nil {
				r.log.Info("rollback: network-status not removed", "err", err)
			}
			return nil
		})
		statuses := networkStatuses(atts, r.conf.CNIDir, r.containerID)
		wg.Add(1)
		go func() {
			defer wg.Done()
			statusErr = e.setStatus(ctx, r, entry.Pod, statuses)
		}()
	}
	attachErr := e.dp.Attach(ctx, r.containerID, r.netns, dataplaneAttachments(atts))
	wg.Wait()
	switch {
	case attachErr != nil:
		return nil, fmt.Errorf("steering: %w", attachErr)
	case statusErr != nil:
		return nil, apiError("write network-status", statusErr)
	}

	for i, a := range atts {
		entry.Attachments[i].Result = a.result
		entry.Attachments[i].Policy = &a.policy
	}
	entry.Complete = true
	if err = r.store.write(entry); err != nil {
		return nil, err
	}
	return mergedResult(atts), nil
}

// delOne deletes one attachment and its device-info file.
func (e *Engine) delOne(ctx context.Context, r *request, n *delegate.Network, t delegate.Target) error {
	err := r.runner.Del(ctx, n, t)
	return errors.Join(err, removeDeviceInfo(r.conf.CNIDir, t.ContainerID, t.IfName))
}

// setStatus writes (or with nil removes) the pod's network-status, bounded by apiTimeout.
func (e *Engine) setStatus(ctx context.Context, r *request, pod *cachedPod, st []k8s.NetworkStatus) error {
	ctx, cancel := context.WithTimeout(ctx, r.conf.APITimeout)
	defer cancel()
	return e.status.SetNetworkStatus(ctx, pod.Namespace, pod.Name, pod.UID, st)
}
