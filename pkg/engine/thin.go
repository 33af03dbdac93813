package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/dynamic"

	"github.com/steernet/steer/pkg/k8s"
	"github.com/steernet/steer/pkg/lookup"
	"github.com/steernet/steer/pkg/netconf"
	"github.com/steernet/steer/pkg/steering"
)

// NewThin returns the engine the plugin runs in-process. Pods and NADs are read, and
// network-status written, through the node's steerd when it answers on its socket in the
// plugin's cniDir (from its informer cache: no apiserver round trip), else straight from the
// apiserver named by conf.Kubeconfig (each call bounded by conf.APITimeout). Without a
// kubeconfig pods get only the cluster and default networks, as in Multus.
//
// The kubeconfig is loaded on first use, so that DEL, which needs no apiserver, works even
// when the kubeconfig is missing or broken, and an ADD that steerd answers never loads it.
func NewThin(conf *netconf.Conf, log *slog.Logger, dp steering.Dataplane) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := Options{Logger: log, Dataplane: dp}
	if conf.Kubeconfig != "" {
		c := &thinClient{kubeconfig: conf.Kubeconfig, timeout: conf.APITimeout,
			steerd: lookup.NewClient(lookup.SocketPath(conf.CNIDir)), log: log}
		opts.Pods, opts.Status, opts.NADs, opts.Events = thinPods{c}, thinPods{c}, thinNADs{c}, thinPods{c}
	}
	return New(opts)
}

// thinClient asks steerd while it answers, and builds the apiserver clients once, when first
// needed.
type thinClient struct {
	kubeconfig string
	timeout    time.Duration

	steerd     *lookup.Client
	steerdGone atomic.Bool
	log        *slog.Logger

	once sync.Once
	pods *k8s.PodClient
	nads *k8s.NADClient
	err  error
}

// viaSteerd is the steerd client, nil once steerd did not answer.
func (c *thinClient) viaSteerd() *lookup.Client {
	if c.steerdGone.Load() {
		return nil
	}
	return c.steerd
}

// answered tells whether steerd answered a call (with a result or the apiserver's error). When
// it did not, the verb's other calls go to the apiserver too.
func (c *thinClient) answered(err error) bool {
	if !errors.Is(err, lookup.ErrUnavailable) {
		return true
	}
	if !c.steerdGone.Swap(true) {
		c.log.Debug("steerd does not answer: asking the apiserver", "err", err)
	}
	return false
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
	if s := p.c.viaSteerd(); s != nil {
		if pod, err := s.Pod(ctx, namespace, name); p.c.answered(err) {
			return pod, err
		}
	}
	if err := p.c.init(); err != nil {
		return nil, err
	}
	return p.c.pods.Get(ctx, namespace, name)
}

func (p thinPods) SetNetworkStatus(ctx context.Context, namespace, name, uid string, st []k8s.NetworkStatus) error {
	if s := p.c.viaSteerd(); s != nil {
		if err := s.SetNetworkStatus(ctx, namespace, name, uid, st); p.c.answered(err) {
			return err
		}
	}
	if err := p.c.init(); err != nil {
		return err
	}
	return p.c.pods.SetNetworkStatus(ctx, namespace, name, uid, st)
}

func (p thinPods) Warn(ctx context.Context, pod *k8s.Pod, component, reason, message string) error {
	if s := p.c.viaSteerd(); s != nil {
		if err := s.Warn(ctx, pod, component, reason, message); p.c.answered(err) {
			return err
		}
	}
	if err := p.c.init(); err != nil {
		return err
	}
	return p.c.pods.Warn(ctx, pod, component, reason, message)
}

type thinNADs struct{ c *thinClient }

func (n thinNADs) Get(ctx context.Context, namespace, name string) (*k8s.NetworkAttachmentDefinition, error) {
	if s := n.c.viaSteerd(); s != nil {
		if nad, err := s.NAD(ctx, namespace, name); n.c.answered(err) {
			return nad, err
		}
	}
	if err := n.c.init(); err != nil {
		return nil, err
	}
	return n.c.nads.Get(ctx, namespace, name)
}
