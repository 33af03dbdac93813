// Package localcluster runs a throwaway Kubernetes control plane (etcd and kube-apiserver, no
// scheduler, controller-manager or kubelet) on loopback, for integration tests and the demo.
//
// The children are tied to the calling process: they get SIGKILL when it dies, and Stop kills
// them and removes every file they wrote. Nothing here needs root.
package localcluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/steernet/steer/internal/testutil/child"
)

// Options configures Start. The zero value is ready to use.
type Options struct {
	// Logger receives progress; nil discards it. The children log to files in Dir.
	Logger *slog.Logger
	// Binaries overrides the cached binaries located by Binaries.
	Binaries *Paths
	// TempDir is where the cluster's directory is created; empty means os.TempDir().
	TempDir string
	// ExtraAPIServerArgs are appended to kube-apiserver's flags and replace the defaults of the
	// same name.
	ExtraAPIServerArgs []string
}

// Cluster is a running etcd and kube-apiserver. Its methods are safe for concurrent use.
type Cluster struct {
	log        *slog.Logger
	dir        string
	etcd       *child.Process
	api        *apiServer
	restConfig *rest.Config
	client     kubernetes.Interface
	kubeconfig string

	// apiMu guards api.proc, which StopAPIServer and StartAPIServer replace.
	apiMu    sync.Mutex
	stopOnce sync.Once
	stopErr  error
}

// Start runs etcd and kube-apiserver, waits until the apiserver is ready and installs Steer's
// CRDs. ctx bounds the start only; the cluster runs until Stop. On error nothing is left running.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var bins Paths
	if opts.Binaries != nil {
		bins = *opts.Binaries
	} else if bins, err = Binaries(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(opts.TempDir, "steer-cluster-")
	if err != nil {
		return nil, fmt.Errorf("create cluster dir: %w", err)
	}
	c := &Cluster{log: log, dir: dir}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("start local cluster: %w", err), c.Stop())
		}
	}()

	var etcdURL string
	if c.etcd, etcdURL, err = startEtcd(ctx, bins.Etcd, dir); err != nil {
		return nil, err
	}
	log.Info("etcd ready", "url", etcdURL, "pid", c.etcd.Pid())
	if c.api, err = startAPIServer(ctx, bins.KubeAPIServer, dir, etcdURL, opts.ExtraAPIServerArgs); err != nil {
		return nil, err
	}
	log.Info("kube-apiserver ready", "url", c.api.url, "pid", c.api.proc.Pid(), "verified_ca", c.api.ca != nil)

	c.restConfig = restConfig(c.api)
	c.kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(c.kubeconfig, c.restConfig); err != nil {
		return nil, err
	}
	if c.client, err = kubernetes.NewForConfig(c.restConfig); err != nil {
		return nil, fmt.Errorf("create client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(c.restConfig)
	if err != nil {
		return nil, fmt.Errorf("create dynamic client: %w", err)
	}
	if err := installCRDs(ctx, dyn, log); err != nil {
		return nil, err
	}
	log.Info("local cluster ready", "dir", dir, "kubeconfig", c.kubeconfig)
	return c, nil
}

// Stop kills the children and removes the cluster's directory. It is idempotent.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		// The apiserver first, so it does not log etcd errors for its last moments.
		c.apiMu.Lock()
		if c.api != nil && c.api.proc != nil {
			errs = append(errs, c.api.proc.Kill(stopTimeout))
		}
		c.apiMu.Unlock()
		if c.etcd != nil {
			errs = append(errs, c.etcd.Kill(stopTimeout))
		}
		if err := os.RemoveAll(c.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove cluster dir: %w", err))
		}
		c.stopErr = errors.Join(errs...)
		c.log.Info("local cluster stopped", "dir", c.dir, "err", c.stopErr)
	})
	return c.stopErr
}

// Kubeconfig is the path of a kubeconfig for the cluster's admin (group system:masters).
func (c *Cluster) Kubeconfig() string { return c.kubeconfig }

// RESTConfig returns a copy of the admin client configuration; callers may change it.
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.restConfig) }

// Client is an admin clientset for the cluster.
func (c *Cluster) Client() kubernetes.Interface { return c.client }

// Host is the apiserver's URL, https://127.0.0.1:<port>.
func (c *Cluster) Host() string { return c.api.url }

// Dir holds the cluster's data, credentials and the children's logs (etcd.log,
// kube-apiserver.log) until Stop.
func (c *Cluster) Dir() string { return c.dir }

// PIDs are the process ids of etcd and kube-apiserver (each leads its own process group).
func (c *Cluster) PIDs() []int {
	c.apiMu.Lock()
	defer c.apiMu.Unlock()
	return []int{c.etcd.Pid(), c.api.proc.Pid()}
}

// StopAPIServer kills kube-apiserver (SIGKILL, as a crash or a node reboot would) and leaves
// etcd running, so that clients see the control plane go away. StartAPIServer brings it back.
func (c *Cluster) StopAPIServer() error {
	c.apiMu.Lock()
	defer c.apiMu.Unlock()
	if c.api.proc.Exited() {
		return nil
	}
	c.log.Info("stopping kube-apiserver", "pid", c.api.proc.Pid())
	return c.api.proc.Kill(stopTimeout)
}

// StartAPIServer starts kube-apiserver again after StopAPIServer, on the same port with the
// same certificates and tokens, so that existing kubeconfigs and clients keep working, and waits
// until it is ready. It does nothing while the apiserver runs.
func (c *Cluster) StartAPIServer(ctx context.Context) error {
	c.apiMu.Lock()
	defer c.apiMu.Unlock()
	if !c.api.proc.Exited() {
		return nil
	}
	p, probe, err := c.api.launch(c.api.port)
	if err != nil {
		return err
	}
	if err := waitReady(ctx, p, probe); err != nil {
		return errors.Join(err, p.Kill(stopTimeout))
	}
	c.api.proc = p
	c.log.Info("kube-apiserver restarted", "url", c.api.url, "pid", p.Pid())
	return nil
}
