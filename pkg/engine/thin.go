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

// ask makes a call through steerd while it answers (with a result or the apiserver's error),
// else through the apiserver clients, built on first use. Once steerd did not answer, the
// verb's other calls go to the apiserver too.
func ask[T any](c *thinClient, viaSteerd func(*lookup.Client) (T, error), direct func() (T, error)) (T, error) {
	if !c.steerdGone.Load() {
		v, err := viaSteerd(c.steerd)
		if !errors.Is(err, lookup.ErrUnavailable) {
			return v, err
		}
		if !c.steerdGone.Swap(true) {
			c.log.Debug("steerd does not answer: asking the apiserver", "err", err)
		}
	}
	if err := c.init(); err != nil {
		var zero T
		return zero, err
	}
	return direct()
}

// tell is ask for a call without a result.
func tell(c *thinClient, viaSteerd func(*lookup.Client) error, direct func() error) error {
	_, err := ask(c,
		func(s *lookup.Client) (struct{}, error) { return struct{}{}, viaSteerd(s) },
		func() (struct{}, error) { return struct{}{}, direct() })
	return err
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
	return ask(p.c,
		func(s *lookup.Client) (*k8s.Pod, error) { return s.Pod(ctx, namespace, name) },
		func() (*k8s.Pod, error) { return p.c.pods.Get(ctx, namespace, name) })
}

func (p thinPods) SetNetworkStatus(ctx context.Context, namespace, name, uid string, st []k8s.NetworkStatus) error {
	return tell(p.c,
		func(s *lookup.Client) error { return s.SetNetworkStatus(ctx, namespace, name, uid, st) },
		func() error { return p.c.pods.SetNetworkStatus(ctx, namespace, name, uid, st) })
}

func (p thinPods) Warn(ctx context.Context, pod *k8s.Pod, component, reason, message string) error {
	return tell(p.c,
		func(s *lookup.Client) error { return s.Warn(ctx, pod, component, reason, message) },
		func() error { return p.c.pods.Warn(ctx, pod, component, reason, message) })
}

type thinNADs struct{ c *thinClient }

func (n thinNADs) Get(ctx context.Context, namespace, name string) (*k8s.NetworkAttachmentDefinition, error) {
	return ask(n.c,
		func(s *lookup.Client) (*k8s.NetworkAttachmentDefinition, error) { return s.NAD(ctx, namespace, name) },
		func() (*k8s.NetworkAttachmentDefinition, error) { return n.c.nads.Get(ctx, namespace, name) })
}
