package engine

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/steernet/steer/pkg/cnienv"
	"github.com/steernet/steer/pkg/delegate"
	"github.com/steernet/steer/pkg/netconf"
)

// CNI_ARGS keys the runtime sets for Kubernetes pods.
const (
	argPodNamespace = "K8S_POD_NAMESPACE"
	argPodName      = "K8S_POD_NAME"
	argPodUID       = "K8S_POD_UID"
)

// request is one verb's input, parsed once.
type request struct {
	conf        *netconf.Conf
	containerID string
	netns       string
	ifName      string
	// cniArgs are passed to every delegate: the runtime's CNI_ARGS, with IgnoreUnknown so
	// that plugins which parse CNI_ARGS strictly accept the K8S_* keys.
	cniArgs [][2]string
	// podNamespace, podName and podUID come from CNI_ARGS; empty outside Kubernetes.
	podNamespace, podName, podUID string
	runner                        *delegate.Runner
	store                         cacheStore
	// binDirs and exec make runners with another libcni cache (Multus').
	binDirs []string
	exec    invoke.Exec
	log     *slog.Logger
}

// newRequest parses the arguments of ADD, DEL and CHECK.
func (e *Engine) newRequest(conf *netconf.Conf, args *skel.CmdArgs) (*request, error) {
	if err := cnienv.ValidateIdentity(args.ContainerID, args.IfName); err != nil {
		return nil, err
	}
	pairs, err := parseCNIArgs(args.Args)
	if err != nil {
		return nil, err
	}
	r := e.baseRequest(conf, args)
	r.containerID, r.netns, r.ifName = args.ContainerID, args.Netns, args.IfName
	r.cniArgs = pairs
	for _, kv := range pairs {
		switch kv[0] {
		case argPodNamespace:
			r.podNamespace = kv[1]
		case argPodName:
			r.podName = kv[1]
		case argPodUID:
			r.podUID = kv[1]
		}
	}
	if err := netconf.ValidatePodRef(r.podNamespace, r.podName); err != nil {
		return nil, cniError(types.ErrInvalidEnvironmentVariables, "CNI_ARGS: %v", err)
	}
	r.log = r.log.With("container", shortID(r.containerID))
	if r.podName != "" {
		r.log = r.log.With("pod", r.podNamespace+"/"+r.podName)
	}
	return r, nil
}

// baseRequest is what GC and STATUS need: no container.
func (e *Engine) baseRequest(conf *netconf.Conf, args *skel.CmdArgs) *request {
	// conf.binDir first, then CNI_PATH, as Multus searches.
	dirs := []string{conf.BinDir}
	for _, d := range filepath.SplitList(args.Path) {
		if d != "" && d != conf.BinDir {
			dirs = append(dirs, d)
		}
	}
	runner := delegate.NewRunner(dirs, filepath.Join(conf.CNIDir, libcniCacheDir), e.exec)
	runner.Timeout = conf.DelegateTimeout
	return &request{
		conf:    conf,
		runner:  runner,
		store:   cacheStore{dir: conf.CNIDir},
		binDirs: dirs,
		exec:    e.exec,
		log:     e.log,
	}
}

// parseCNIArgs splits "K1=V1;K2=V2" as libcni and the plugins do, and makes sure
// IgnoreUnknown is set.
func parseCNIArgs(s string) ([][2]string, error) {
	var out [][2]string
	ignore := false
	for _, item := range strings.Split(s, ";") {
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		if !ok || k == "" {
			return nil, cniError(types.ErrInvalidEnvironmentVariables, "CNI_ARGS: %q is not KEY=VALUE", item)
		}
		if strings.EqualFold(k, "IgnoreUnknown") {
			ignore = true
		}
		out = append(out, [2]string{k, v})
	}
	if !ignore {
		out = append([][2]string{{"IgnoreUnknown", "true"}}, out...)
	}
	return out, nil
}

// podRef is "namespace/name" for messages, or the container ID outside Kubernetes.
func (r *request) podRef() string {
	if r.podName == "" {
		return "container " + shortID(r.containerID)
	}
	return "pod " + r.podNamespace + "/" + r.podName
}

// fail prefixes err with the pod, keeping its code (999 when it has none).
func (r *request) fail(err error) error {
	return withCode(types.ErrInternal, r.podRef(), err)
}

// target is where the delegate of one attachment goes.
func (r *request) target(ifName string, capArgs map[string]any) delegate.Target {
	return delegate.Target{
		ContainerID:    r.containerID,
		NetNS:          r.netns,
		IfName:         ifName,
		Args:           r.cniArgs,
		CapabilityArgs: capArgs,
	}
}

// waitReady waits (at most apiTimeout) for the readiness indicator file, which the primary
// CNI writes once it can serve ADDs.
func (r *request) waitReady(ctx context.Context) error {
	path := r.conf.ReadinessIndicatorFile
	if path == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.conf.APITimeout)
	defer cancel()
	tick := time.NewTicker(readinessPoll)
	defer tick.Stop()
	for {
		_, err := os.Stat(path)
		if err == nil {
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return cniError(types.ErrTryAgainLater, "readiness indicator file: %v", err)
		}
		select {
		case <-ctx.Done():
			return cniError(types.ErrTryAgainLater, "readiness indicator file %s did not appear within %s: the cluster network is not ready", path, r.conf.APITimeout)
		case <-tick.C:
		}
	}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
