package engine

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"k8s.io/client-go/dynamic"

	"github.com/steernet/steer/pkg/k8s"
	"github.com/steernet/steer/pkg/netconf"
	"github.com/steernet/steer/pkg/steering"
)

// NewThin returns the engine the plugin runs in-process: pods and NADs are read, and
// network-status written, straight from the apiserver named by conf.Kubeconfig (each call
// bounded by conf.APITimeout). Without a kubeconfig pods get only the cluster and default
// networks, as in Multus.
//
// The kubeconfig is loaded on first use, so that DEL, which needs no apiserver, works even
// when the kubeconfig is missing or broken.
func NewThin(conf *netconf.Conf, log *slog.Logger, dp steering.Dataplane) *Engine {
	opts := Options{Logger: log, Dataplane: dp}
	if conf.Kubeconfig != "" {
		c := &thinClient{kubeconfig: conf.Kubeconfig, timeout: conf.APITimeout}
		opts.Pods, opts.Status, opts.NADs, opts.Events = thinPods{c}, thinPods{c}, thinNADs{c}, thinPods{c}
	}
	return New(opts)
}

// thinClient builds the apiserver clients once, when first needed.
type thinClient struct {
	kubeconfig string
	timeout    time.Duration

	once sync.Once
	pods *k8s.PodClient
	nads *k8s.NADClient
	err  error
}

func (c *thinClient) init() error {
	c.once.Do(func() {
		cfg, err := k8s.RESTConfigFromKubeconfig(c.kubeconfig, c.timeout)
		if err != nil {
			c.err = err
			return
		}
		cfg.UserAgent = "steer-cni"
		dyn, err := dynamic.NewForConfig(cfg)
		if err != nil {
			c.err = fmt.Errorf("apiserver client: %w", err)
			return
		}
		c.pods, c.nads = k8s.NewPodClient(dyn), k8s.NewNADClient(dyn)
	})
	return c.err
}

type thinPods struct{ c *thinClient }

func (p thinPods) Get(ctx context.Context, namespace, name string) (*k8s.Pod, error) {
	if err := p.c.init(); err != nil {
		return nil, err
	}
	return p.c.pods.Get(ctx, namespace, name)
}

func (p thinPods) SetNetworkStatus(ctx context.Context, namespace, name, uid string, st []k8s.NetworkStatus) error {
	if err := p.c.init(); err != nil {
		return err
	}
	return p.c.pods.SetNetworkStatus(ctx, namespace, name, uid, st)
}

func (p thinPods) Warn(ctx context.Context, pod *k8s.Pod, component, reason, message string) error {
	if err := p.c.init(); err != nil {
		return err
	}
	return p.c.pods.Warn(ctx, pod, component, reason, message)
}

type thinNADs struct{ c *thinClient }

func (n thinNADs) Get(ctx context.Context, namespace, name string) (*k8s.NetworkAttachmentDefinition, error) {
	if err := n.c.init(); err != nil {
		return nil, err
	}
	return n.c.nads.Get(ctx, namespace, name)
}
