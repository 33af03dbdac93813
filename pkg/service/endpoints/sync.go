package endpoints

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	"github.com/steernet/steer/pkg/service"
)

// sync makes the Service's slices what its pods say; it returns the result for the metrics.
func (c *Controller) sync(ctx context.Context, key string) (string, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return "invalid", nil
	}
	if c.tracker.stale(key, c.slices) {
		return "", errStale
	}
	existing := c.existingSlices(key)
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		// Gone or no longer ours: its slices go (the garbage collector would take them only
		// with the Service itself).
		c.state.forget(key)
		c.tracker.forget(key)
		return "ok", c.write(ctx, key, nil, plan{delete: existing})
	}
	if err != nil {
		return "", err
	}
	network, err := service.ParseNetwork(svc.Annotations[service.NetworkAnnotation], svc.Namespace)
	_, annotated := svc.Annotations[service.NetworkAnnotation]
	switch {
	case !annotated || svc.Spec.Selector == nil || svc.Spec.Type == corev1.ServiceTypeExternalName:
		// Not a Service on a secondary network, or one whose endpoints its owner writes.
		c.state.forget(key)
		return "ok", c.write(ctx, key, svc, plan{delete: existing})
	case err != nil:
		if c.state.set(key, "invalid: "+err.Error(), 0, 0) {
			c.recorder.Event(svc, corev1.EventTypeWarning, ReasonInvalidNetwork, err.Error())
		}
		return "invalid", c.write(ctx, key, svc, plan{delete: existing})
	}

	pods, err := c.selectedPods(ns, labels.SelectorFromValidatedSet(svc.Spec.Selector))
	if err != nil {
		return "", err
	}
	groups, ready, notReady := desired(svc, pods, network)
	p := reconcile(svc, groups, existing, c.opts.MaxEndpointsPerSlice)
	if err := c.write(ctx, key, svc, p); err != nil {
		c.recorder.Eventf(svc, corev1.EventTypeWarning, ReasonWriteFailed, "EndpointSlices for network %s: %v", network, err)
		return "", err
	}
	switch {
	case ready+notReady == 0 && len(pods) > 0:
		if c.state.set(key, "none", 0, 0) {
			c.recorder.Eventf(svc, corev1.EventTypeWarning, ReasonNoEndpoints,
				"%d pods selected, none with an address on network %s in its network-status", len(pods), network)
		}
	default:
		if c.state.set(key, "serving "+network, ready, notReady) {
			c.recorder.Eventf(svc, corev1.EventTypeNormal, ReasonServing,
				"EndpointSlices on network %s: %d endpoints ready, %d not ready", network, ready, notReady)
		}
	}
	return "ok", nil
}

// desired groups the endpoints of the selected pods on network by address type and ports, and
// counts them (per address, so a dual-stack pod counts twice).
func desired(svc *corev1.Service, pods []*corev1.Pod, network string) (groups map[string]*group, ready, notReady int) {
	types := addressTypes(svc)
	groups = map[string]*group{}
	for _, pod := range pods {
		if !isEndpoint(pod) {
			continue
		}
		v4, v6 := addressesOn(pod, network)
		ports := portsFor(svc, pod)
		for _, t := range types {
			addr := v4
			if t == discovery.AddressTypeIPv6 {
				addr = v6
			}
			if !addr.IsValid() {
				continue
			}
			k := portsKey(t, ports)
			g := groups[k]
			if g == nil {
				g = &group{addrType: t, ports: ports, endpoints: map[string]discovery.Endpoint{}}
				groups[k] = g
			}
			ep := endpointFor(pod, svc, addr)
			g.endpoints[pod.Name] = ep
			if *ep.Conditions.Ready {
				ready++
			} else {
				notReady++
			}
		}
	}
	return groups, ready, notReady
}

func (c *Controller) existingSlices(key string) []*discovery.EndpointSlice {
	objs, _ := c.slices.ByIndex(sliceIndex, key)
	out := make([]*discovery.EndpointSlice, 0, len(objs))
	for _, o := range objs {
		if s, ok := o.(*discovery.EndpointSlice); ok {
			out = append(out, s)
		}
	}
	return out
}

// write carries out a plan, deletions last so readers never see a Service without slices
// while its endpoints move.
func (c *Controller) write(ctx context.Context, key string, svc *corev1.Service, p plan) error {
	if p.empty() {
		return nil
	}
	api := c.opts.Client.DiscoveryV1()
	var errs []error
	for _, s := range p.create {
		got, err := api.EndpointSlices(s.Namespace).Create(ctx, s, metav1.CreateOptions{})
		if err != nil {
			if apierrors.IsAlreadyExists(err) || apierrors.IsForbidden(err) && svc != nil && svc.DeletionTimestamp != nil {
				continue
			}
			errs = append(errs, fmt.Errorf("create EndpointSlice: %w", err))
			continue
		}
		c.tracker.wrote(key, got)
		c.count("create")
	}
	for _, s := range p.update {
		got, err := api.EndpointSlices(s.Namespace).Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			errs = append(errs, fmt.Errorf("update EndpointSlice %s: %w", s.Name, err))
			continue
		}
		c.tracker.wrote(key, got)
		c.count("update")
	}
	for _, s := range p.delete {
		err := api.EndpointSlices(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &s.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("delete EndpointSlice %s: %w", s.Name, err))
			continue
		}
		c.tracker.deleted(key, s)
		c.count("delete")
	}
	c.log.Debug("EndpointSlices written", "service", key,
		"created", len(p.create), "updated", len(p.update), "deleted", len(p.delete), "errors", len(errs))
	return errors.Join(errs...)
}

func (c *Controller) count(op string) {
	if c.opts.Metrics != nil {
		c.opts.Metrics.Writes.WithLabelValues(op).Inc()
	}
}
