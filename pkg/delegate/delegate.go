// Package delegate runs delegate CNI configurations (the cluster network, the secondary
// networks) through libcni, the way a container runtime would.
//
// Configurations travel as raw bytes: Parse wraps a single-plugin configuration into a
// list of one without re-encoding it, and callers keep Network.Raw to replay DEL, CHECK and
// GC later with exactly what ADD used. (Multus 4.3 re-encodes cached configurations through
// structs that drop fields such as ipam.ranges, and then every DEL fails.)
//
// Every verb uses the libcni list API (AddNetworkList, DelNetworkList, CheckNetworkList,
// GCNetworkList, GetStatusNetworkList). libcni keeps its own result cache, needed for
// prevResult on CHECK and DEL, under the cache directory given to NewRunner.
package delegate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// Target is where one attachment goes: the runtime arguments of a delegate invocation.
type Target struct {
	ContainerID string
	NetNS       string
	IfName      string
	// Args are the CNI_ARGS pairs.
	Args [][2]string
	// CapabilityArgs become the "runtimeConfig" of the plugins that declare the capability.
	CapabilityArgs map[string]any
}

func (t Target) runtimeConf() *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID:    t.ContainerID,
		NetNS:          t.NetNS,
		IfName:         t.IfName,
		Args:           t.Args,
		CapabilityArgs: t.CapabilityArgs,
	}
}

// Runner executes delegates. It is safe for concurrent use.
type Runner struct {
	cni  *libcni.CNIConfig
	exec invoke.Exec
	path []string
	// Timeout bounds each verb of one network (all its plugins); 0 means only ctx does.
	// A plugin still running at the deadline is killed.
	Timeout time.Duration
}

// NewRunner returns a Runner that finds plugins in binDirs, keeps libcni's cache in cacheDir
// and executes plugins with exec (nil: an Exec passing delegate stderr on to ours).
func NewRunner(binDirs []string, cacheDir string, exec invoke.Exec) *Runner {
	if exec == nil {
		exec = &Exec{Stderr: os.Stderr}
	}
	return &Runner{
		cni:  libcni.NewCNIConfigWithCacheDir(binDirs, cacheDir, exec),
		exec: exec,
		path: binDirs,
	}
}

// ErrPluginNotFound is wrapped by FindPlugins when a plugin binary is missing.
var ErrPluginNotFound = errors.New("CNI plugin not found")

// FindPlugins checks that the binary of every plugin of n exists, so that a missing one is
// reported before anything runs instead of half-way through an ADD.
func (r *Runner) FindPlugins(n *Network) error {
	for _, typ := range n.Types() {
		if _, err := r.exec.FindInPath(typ, r.path); err != nil {
			return fmt.Errorf("%w: network %q: plugin %q is not in %v", ErrPluginNotFound, n.Name, typ, r.path)
		}
	}
	return nil
}

// Add runs ADD of every plugin of n in order and returns the result as a 1.x current.Result,
// whatever version the plugins returned.
func (r *Runner) Add(ctx context.Context, n *Network, t Target) (*current.Result, error) {
	bctx, cancel := r.bound(ctx)
	defer cancel()
	res, err := r.cni.AddNetworkList(bctx, n.list, t.runtimeConf())
	if err != nil {
		return nil, r.explain(ctx, bctx, n, "ADD", err)
	}
	cur, err := ToCurrent(res)
	if err != nil {
		return nil, fmt.Errorf("network %q: %w", n.Name, err)
	}
	return cur, nil
}

// Del runs DEL of every plugin of n in reverse order. libcni passes the result it cached at
// ADD as prevResult.
func (r *Runner) Del(ctx context.Context, n *Network, t Target) error {
	bctx, cancel := r.bound(ctx)
	defer cancel()
	return r.explain(ctx, bctx, n, "DEL", r.cni.DelNetworkList(bctx, n.list, t.runtimeConf()))
}

// Check runs CHECK of every plugin of n. Versions before 0.4.0 have no CHECK: it then
// succeeds without running anything, as CHECK cannot say anything about them.
func (r *Runner) Check(ctx context.Context, n *Network, t Target) error {
	if ok, _ := version.GreaterThanOrEqualTo(n.CNIVersion, "0.4.0"); !ok {
		return nil
	}
	bctx, cancel := r.bound(ctx)
	defer cancel()
	return r.explain(ctx, bctx, n, "CHECK", r.cni.CheckNetworkList(bctx, n.list, t.runtimeConf()))
}

// GC deletes the attachments libcni cached for n that are not in valid, then (from CNI
// 1.1.0 on) sends GC with valid to every plugin of n, so their IPAM can free the rest.
func (r *Runner) GC(ctx context.Context, n *Network, valid []types.GCAttachment) error {
	if valid == nil {
		valid = []types.GCAttachment{} // nil means "no list": plugins must not guess
	}
	bctx, cancel := r.bound(ctx)
	defer cancel()
	return r.explain(ctx, bctx, n, "GC", r.cni.GCNetworkList(bctx, n.list, &libcni.GCArgs{ValidAttachments: valid}))
}

// Status asks every plugin of n whether it is ready (CNI 1.1.0 on; older versions are
// assumed ready).
func (r *Runner) Status(ctx context.Context, n *Network) error {
	bctx, cancel := r.bound(ctx)
	defer cancel()
	return r.explain(ctx, bctx, n, "STATUS", r.cni.GetStatusNetworkList(bctx, n.list))
}

// CachedIfName is the interface name libcni cached for the container on network, or "".
func (r *Runner) CachedIfName(containerID, network string) string {
	atts, err := r.cni.GetCachedAttachments(containerID)
	if err != nil {
		return ""
	}
	for _, a := range atts {
		if a.Network == network {
			return a.IfName
		}
	}
	return ""
}

// bound applies Timeout to ctx.
func (r *Runner) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if r.Timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, r.Timeout)
}

// ErrTimeout is wrapped when a delegate did not finish within the Runner's Timeout.
var ErrTimeout = errors.New("delegate timed out")

// explain turns the kill of a plugin that outlived Timeout ("signal: killed") into an error
// that names the network and the limit; other errors, including the caller's own deadline
// (parent), are returned as they are.
func (r *Runner) explain(parent, bounded context.Context, n *Network, verb string, err error) error {
	if err == nil || parent.Err() != nil || !errors.Is(bounded.Err(), context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %s of network %q (%v) did not finish within %s and was killed: %v", ErrTimeout, verb, n.Name, n.Types(), r.Timeout, err)
}

// ToCurrent converts a result of any CNI version to a current.Result (1.x).
func ToCurrent(res types.Result) (*current.Result, error) {
	if res == nil {
		return nil, errors.New("plugin returned no result")
	}
	cur, err := current.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("convert %s result: %w", res.Version(), err)
	}
	return cur, nil
}
