package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/steernet/steer/pkg/api"
	"github.com/steernet/steer/pkg/delegate"
	"github.com/steernet/steer/pkg/k8s"
	"github.com/steernet/steer/pkg/netconf"
)

// attachment is one network of the pod: planned by plan, attached by ADD.
type attachment struct {
	ifName  string
	network string // "namespace/name" of a NAD, else the configuration's name
	primary bool
	// conf is the delegate configuration as it is run and cached: the NAD's or file's bytes
	// with at most "name" and args.cni edited in place.
	conf    []byte
	net     *delegate.Network
	capArgs map[string]any
	// args are CNI_ARGS of this delegate's ADD only, after the request's (Multus' MAC=, IP=).
	args   [][2]string
	policy netconf.Policy
	// gateways is the selection element's default-route.
	gateways []net.IP
	result   *current.Result
}

// ahead holds what ADD resolves while the pod is fetched: the cluster network (as if the
// pod did not override it) and the default networks. Each NAD name, and each confDir name
// (tried as a NAD first, as in Multus), costs an apiserver round trip that need not wait for
// the pod's.
type ahead struct {
	done        chan struct{}
	primary     *attachment
	primaryErr  error
	defaults    []*attachment
	defaultsErr error
}

// resolveAhead starts resolving the networks that do not depend on the pod.
func (e *Engine) resolveAhead(ctx context.Context, r *request) *ahead {
	a := &ahead{done: make(chan struct{})}
	go func() {
		defer close(a.done)
		a.primary, a.primaryErr = e.primary(ctx, r, nil)
		a.defaults, a.defaultsErr = e.defaultNetworks(ctx, r)
	}()
	return a
}

// plan resolves every network of the pod, in attachment order, and checks all it can
// before anything runs. pod is nil outside Kubernetes or without a kubeconfig.
func (e *Engine) plan(ctx context.Context, r *request, pod *k8s.Pod, pre *ahead) ([]*attachment, error) {
	<-pre.done
	primary, err := pre.primary, pre.primaryErr
	if pod != nil && strings.TrimSpace(pod.Annotations[k8s.DefaultNetworkAnnotation]) != "" {
		primary, err = e.primary(ctx, r, pod)
	}
	if err != nil {
		return nil, err
	}
	atts := []*attachment{primary}
	defaults, err := pre.defaults, pre.defaultsErr
	if err != nil {
		return nil, err
	}
	atts = append(atts, defaults...)
	if pod != nil {
		selected, err := e.selectedNetworks(ctx, r, pod, atts)
		if err != nil {
			return nil, err
		}
		atts = append(atts, selected...)
	}
	aux, err := r.auxChain(len(atts))
	if err != nil {
		return nil, err
	}
	if aux != nil {
		atts = append(atts, aux)
	}
	if err := r.checkSteeredCount(atts); err != nil {
		return nil, err
	}
	for _, a := range atts {
		if a.net, err = delegate.Parse(a.conf, r.conf.CNIVersion); err != nil {
			return nil, withCode(types.ErrInvalidNetworkConfig, fmt.Sprintf("network %q", a.network), err)
		}
		if err := refuseMetaPlugins(a); err != nil {
			return nil, err
		}
		if err := r.runner.FindPlugins(a.net); err != nil {
			return nil, cniError(types.ErrInvalidNetworkConfig, "%v", err)
		}
		if a.net.Capabilities()[deviceInfoCapability] {
			if a.capArgs == nil {
				a.capArgs = map[string]any{}
			}
			a.capArgs[deviceInfoCapability] = deviceInfoPath(r.conf.CNIDir, r.containerID, a.ifName)
		}
	}
	return atts, nil
}

// primary is the cluster network (eth0) attachment.
func (e *Engine) primary(ctx context.Context, r *request, pod *k8s.Pod) (*attachment, error) {
	network, conf, err := e.primaryConf(ctx, r, pod)
	if err != nil {
		return nil, err
	}
	a := &attachment{ifName: r.ifName, primary: true, network: network, conf: conf}
	if a.policy, err = netconf.ResolvePolicy(a.conf, nil); err != nil {
		return nil, withCode(types.ErrInvalidNetworkConfig, fmt.Sprintf("cluster network %q", a.network), err)
	}
	// portMappings and bandwidth from the runtime are for the cluster network; libcni passes
	// each only to plugins declaring it.
	if raw := r.conf.RuntimeConfig.Raw; len(raw) > 0 {
		if err := json.Unmarshal(raw, &a.capArgs); err != nil {
			return nil, cniError(types.ErrDecodingFailure, `steer config: "runtimeConfig": %v`, err)
		}
	}
	return a, nil
}

// primaryConf resolves the cluster network: the pod's default-network annotation, else
// delegates[0] or clusterNetwork. The annotation replaces delegates[0] too, as in Multus.
// pod may be nil.
func (e *Engine) primaryConf(ctx context.Context, r *request, pod *k8s.Pod) (string, []byte, error) {
	switch {
	case pod != nil && strings.TrimSpace(pod.Annotations[k8s.DefaultNetworkAnnotation]) != "":
		return e.defaultNetworkOverride(ctx, r, pod)
	case len(r.conf.Delegates) > 0:
		name, err := confName(r.conf.Delegates[0])
		return name, r.conf.Delegates[0], err
	default:
		return e.resolveRef(ctx, r, r.conf.ClusterNetwork)
	}
}

// defaultNetworkOverride resolves v1.multus-cni.io/default-network: "name" (a NAD in
// steerNamespace, else a config name in confDir) or "namespace/name". Never a path: the
// annotation is the pod's to write.
func (e *Engine) defaultNetworkOverride(ctx context.Context, r *request, pod *k8s.Pod) (string, []byte, error) {
	ref := strings.TrimSpace(pod.Annotations[k8s.DefaultNetworkAnnotation])
	elems, err := netconf.ParseNetworkSelection(ref, pod.Namespace)
	if err != nil || len(elems) != 1 || elems[0].Interface != "" || strings.ContainsAny(ref, "[{") {
		return "", nil, cniError(types.ErrInvalidNetworkConfig, "%s: %q is not a network name or namespace/name", k8s.DefaultNetworkAnnotation, ref)
	}
	if !strings.Contains(ref, "/") {
		// A bare name is a NAD of steerNamespace: the same check as "namespace/name", or the
		// bare form bypasses it (Multus v4 checks neither form).
		if err := r.checkIsolation(pod, r.conf.Namespace); err != nil {
			return "", nil, err
		}
		return e.resolveRef(ctx, r, ref)
	}
	ns, name := elems[0].Namespace, elems[0].Name
	if err := r.checkIsolation(pod, ns); err != nil {
		return "", nil, err
	}
	conf, err := e.nadConfig(ctx, r, ns, name)
	return ns + "/" + name, conf, err
}

// defaultNetworks are attached to every pod after the primary, on net1..netN: delegates[1:],
// or defaultNetworks for pods outside systemNamespaces.
func (e *Engine) defaultNetworks(ctx context.Context, r *request) ([]*attachment, error) {
	var atts []*attachment
	add := func(network string, conf []byte) {
		atts = append(atts, &attachment{ifName: "net" + strconv.Itoa(len(atts)+1), network: network, conf: conf})
	}
	if len(r.conf.Delegates) > 0 {
		for _, d := range r.conf.Delegates[1:] {
			name, err := confName(d)
			if err != nil {
				return nil, err
			}
			add(name, d)
		}
	} else if !r.conf.IsSystemNamespace(r.podNamespace) {
		for _, ref := range r.conf.DefaultNetworks {
			network, conf, err := e.resolveRef(ctx, r, strings.TrimSpace(ref))
			if err != nil {
				return nil, err
			}
			add(network, conf)
		}
	}
	for _, a := range atts {
		var err error
		if a.policy, err = netconf.ResolvePolicy(a.conf, nil); err != nil {
			return nil, withCode(types.ErrInvalidNetworkConfig, fmt.Sprintf("default network %q", a.network), err)
		}
	}
	return atts, nil
}

// selectedNetworks resolves the pod's k8s.v1.cni.cncf.io/networks annotation.
func (e *Engine) selectedNetworks(ctx context.Context, r *request, pod *k8s.Pod, before []*attachment) ([]*attachment, error) {
	elems, err := netconf.ParseNetworkSelection(pod.Annotations[k8s.NetworksAnnotation], pod.Namespace)
	if err != nil || len(elems) == 0 {
		return nil, err
	}
	if err := checkSelectionCount(len(before), len(elems)); err != nil {
		return nil, err
	}
	// Number after the default networks and keep their names and CNI_IFNAME free.
	reserved := make([]string, len(before))
	for i, a := range before {
		reserved[i] = a.ifName
	}
	if err := netconf.AssignInterfaceNames(elems, len(before), reserved...); err != nil {
		return nil, err
	}
	for i := range elems {
		if err := r.checkIsolation(pod, elems[i].Namespace); err != nil {
			return nil, err
		}
	}
	confs, err := e.fetchNADs(ctx, r, elems)
	if err != nil {
		return nil, err
	}
	atts := make([]*attachment, 0, len(elems))
	for i := range elems {
		el := &elems[i]
		nadConf := confs[i]
		a := &attachment{ifName: el.IfName, network: el.Namespace + "/" + el.Name}
		if a.policy, err = netconf.ResolvePolicy(nadConf, el); err != nil {
			return nil, err
		}
		var undeclared []string
		if a.capArgs, undeclared, err = netconf.RuntimeConfig(*el, nadConf, r.conf.StrictCapabilities); err != nil {
			return nil, err
		}
		if len(undeclared) > 0 {
			e.warnPod(ctx, r, pod, "UndeclaredCapability", fmt.Sprintf(
				"network %q: the selection asks for %s, which no plugin of the network declares: passed on as Multus does (\"strictCapabilities\": true refuses it)",
				a.network, strings.Join(undeclared, ", ")), "network", a.network, "fields", undeclared)
			a.args = netconf.LegacyArgs(*el, undeclared)
		}
		if a.conf, err = netconf.MergeCNIArgs(nadConf, el.CNIArgs); err != nil {
			return nil, withCode(types.ErrInvalidNetworkConfig, fmt.Sprintf("network %q", a.network), err)
		}
		for _, gw := range el.DefaultRoute {
			a.gateways = append(a.gateways, net.ParseIP(gw)) // validated by netconf
		}
		atts = append(atts, a)
	}
	return atts, nil
}

// metaPlugins read their own binDir, cniDir, kubeconfig and delegates from their config. As a
// delegate, the config is a NetworkAttachmentDefinition, which whoever may create one in a
// namespace controls: a nested steer with "binDir" pointing at a pod's volume would run any
// binary as root on the node. Nesting them has no legitimate use.
var metaPlugins = map[string]bool{api.PluginBinary: true, api.ShimBinary: true, "multus": true, "multus-shim": true}

// refuseMetaPlugins rejects a network whose plugins or IPAM include a meta plugin.
func refuseMetaPlugins(a *attachment) error {
	for _, typ := range a.net.PluginTypes() {
		if metaPlugins[typ] {
			return cniError(types.ErrInvalidNetworkConfig,
				"network %q: plugin type %q cannot be a delegate (it would run with the network's own binDir and delegates)", a.network, typ)
		}
	}
	return nil
}

// fetchNADs resolves the config of every selected NAD, concurrently: each is an apiserver
// round trip, and a pod with several networks would otherwise wait for them one by one. The
// error reported is that of the first element that failed, as a sequential loop would.
func (e *Engine) fetchNADs(ctx context.Context, r *request, elems []netconf.NetworkSelectionElement) ([][]byte, error) {
	type result struct {
		conf []byte
		err  error
	}
	byKey := map[string]*result{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallelLookups)
	for _, el := range elems {
		key := el.Namespace + "/" + el.Name
		if byKey[key] != nil {
			continue // the same NAD twice: one lookup
		}
		res := &result{}
		byKey[key] = res
		wg.Add(1)
		go func(ns, name string) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			res.conf, res.err = e.nadConfig(ctx, r, ns, name)
		}(el.Namespace, el.Name)
	}
	wg.Wait()
	out := make([][]byte, len(elems))
	for i, el := range elems {
		res := byKey[el.Namespace+"/"+el.Name]
		if res.err != nil {
			return nil, res.err
		}
		out[i] = res.conf
	}
	return out, nil
}

// checkIsolation applies namespaceIsolation: a pod may use the NADs of its own namespace and
// of globalNamespaces only.
func (r *request) checkIsolation(pod *k8s.Pod, nadNamespace string) error {
	if !r.conf.NamespaceIsolation || nadNamespace == pod.Namespace || r.conf.IsGlobalNamespace(nadNamespace) {
		return nil
	}
	return cniError(types.ErrInvalidNetworkConfig,
		"namespaceIsolation: pod in namespace %q may not use NetworkAttachmentDefinitions of namespace %q (allowed: its own and %s)",
		pod.Namespace, nadNamespace, strings.Join(r.conf.GlobalNamespaces, ", "))
}

// nadConfig fetches a NAD and resolves its CNI config (spec.config, else the file in confDir
// named after it).
func (e *Engine) nadConfig(ctx context.Context, r *request, namespace, name string) ([]byte, error) {
	key := namespace + "/" + name
	if e.nads == nil {
		return nil, cniError(types.ErrInvalidNetworkConfig, "network %q: NetworkAttachmentDefinitions need a kubeconfig in the steer config", key)
	}
	nad, err := e.getNAD(ctx, r, namespace, name)
	if apierrors.IsNotFound(err) {
		return nil, cniError(types.ErrInvalidNetworkConfig, "network %q: NetworkAttachmentDefinition not found", key)
	}
	if err != nil {
		return nil, apiError(fmt.Sprintf("network %q", key), err)
	}
	conf, err := netconf.NetworkConfig(name, nad.Spec.Config, r.conf.ConfDir)
	if errors.Is(err, netconf.ErrNotFound) {
		return nil, cniError(types.ErrInvalidNetworkConfig, "network %q: NetworkAttachmentDefinition has no config and %v", key, err)
	}
	if err != nil {
		return nil, withCode(types.ErrInvalidNetworkConfig, fmt.Sprintf("network %q", key), err)
	}
	return conf, nil
}

func (e *Engine) getNAD(ctx context.Context, r *request, namespace, name string) (*k8s.NetworkAttachmentDefinition, error) {
	ctx, cancel := context.WithTimeout(ctx, r.conf.APITimeout)
	defer cancel()
	return e.nads.Get(ctx, namespace, name)
}

// resolveRef resolves clusterNetwork or a defaultNetworks entry as Multus does: without '/',
// a NAD in steerNamespace, else a config name in confDir; with '/', a directory or file.
func (e *Engine) resolveRef(ctx context.Context, r *request, ref string) (string, []byte, error) {
	var apiErr error
	if !strings.Contains(ref, "/") && e.nads != nil {
		nad, err := e.getNAD(ctx, r, r.conf.Namespace, ref)
		switch {
		case err == nil:
			conf, err := netconf.NetworkConfig(ref, nad.Spec.Config, r.conf.ConfDir)
			if err != nil {
				return "", nil, withCode(types.ErrInvalidNetworkConfig, fmt.Sprintf("network %q", r.conf.Namespace+"/"+ref), err)
			}
			return r.conf.Namespace + "/" + ref, conf, nil
		case !apierrors.IsNotFound(err):
			apiErr = err // Multus falls back to the files too; say why if they fail
		}
	}
	conf, err := netconf.ClusterNetworkConfig(ref, r.conf.ConfDir)
	if err == nil {
		name, nerr := confName(conf)
		return name, conf, nerr
	}
	if errors.Is(err, netconf.ErrNotFound) {
		if apiErr != nil {
			return "", nil, apiError(fmt.Sprintf("network %q: not in confDir, and looking for a NetworkAttachmentDefinition in %q failed", ref, r.conf.Namespace), apiErr)
		}
		return "", nil, cniError(types.ErrInvalidNetworkConfig, "network %q: no NetworkAttachmentDefinition in %q and %v", ref, r.conf.Namespace, err)
	}
	return "", nil, withCode(types.ErrInvalidNetworkConfig, fmt.Sprintf("network %q", ref), err)
}

// confName is a configuration's "name", needed to name the network in status and cache.
func confName(conf []byte) (string, error) {
	info, err := netconf.Inspect(conf)
	if err != nil {
		return "", err
	}
	if info.Name == "" {
		return "", cniError(types.ErrInvalidNetworkConfig, `network config of type %v has no "name"`, info.Types)
	}
	return info.Name, nil
}
