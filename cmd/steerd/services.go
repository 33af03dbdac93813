package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/engine"
	"github.com/steernet/steer/pkg/install"
	"github.com/steernet/steer/pkg/leader"
	"github.com/steernet/steer/pkg/metrics"
	"github.com/steernet/steer/pkg/service"
	"github.com/steernet/steer/pkg/service/agent"
	"github.com/steernet/steer/pkg/service/endpoints"
)

// serviceFlags configure Services on secondary networks (multus-service's API).
type serviceFlags struct {
	enabled    bool
	controller bool
	lease      string // namespace/name
	leader.Options
}

func (s *serviceFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&s.enabled, "services", true, "serve Services on secondary networks (labelled service.kubernetes.io/service-proxy-name: multus-proxy, annotated k8s.v1.cni.cncf.io/service-network)")
	fs.BoolVar(&s.controller, "services-controller", true, "campaign to run the EndpointSlice controller of those Services (one steerd of the cluster runs it)")
	fs.StringVar(&s.lease, "services-lease", leaseNamespace()+"/steer-endpointslices", "the coordination Lease electing the EndpointSlice controller, namespace/name")
	fs.DurationVar(&s.LeaseDuration, "services-lease-duration", leader.DefaultLeaseDuration, "how long the controller's lease holds unrenewed: the longest a dead leader's slices stay unwritten")
	fs.DurationVar(&s.RenewDeadline, "services-renew-deadline", leader.DefaultRenewDeadline, "how long the leader tries to renew before giving up its lease")
	fs.DurationVar(&s.RetryPeriod, "services-retry-period", leader.DefaultRetryPeriod, "how often candidates read the lease (each steerd is one)")
}

// leaseNamespace is steerd's own namespace when it runs in a pod, else kube-system.
func leaseNamespace() string {
	b, err := os.ReadFile(filepath.Join(install.ServiceAccountDir, "namespace"))
	if ns := strings.TrimSpace(string(b)); err == nil && ns != "" {
		return ns
	}
	return "kube-system"
}

// newServiceProgrammer is the one place the datapath's Programmer of Service entries is made.
func newServiceProgrammer(layout bpffs.Layout) service.Programmer {
	return datapath.Services{Layout: layout}
}

// services are the parts of Services on secondary networks a steerd runs.
type services struct {
	flags      serviceFlags
	cfg        *rest.Config
	nodeName   string
	cniDir     string // where the plugin caches attachments
	programmer service.Programmer
	reg        prometheus.Registerer
	log        *slog.Logger
}

// run campaigns for the EndpointSlice controller and runs the node agent, until ctx ends.
func (s services) run(ctx context.Context) error {
	cfg := rest.CopyConfig(s.cfg)
	cfg.Timeout = 0 // watches outlive any request timeout; calls carry their own deadlines
	cfg.UserAgent = "steerd"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	if s.flags.controller {
		election := s.flags.Options
		election.Client, election.Log, election.Identity = client, s.log, identity(s.nodeName)
		ns, name, ok := strings.Cut(s.flags.lease, "/")
		if !ok {
			ns, name = leaseNamespace(), s.flags.lease
		}
		election.Namespace, election.Name = ns, name
		m := metrics.NewEndpointSlices(s.reg)
		g.Go(func() error {
			return endpoints.RunElected(ctx, election, endpoints.Options{Client: client, Log: s.log, Metrics: m})
		})
	}
	a := agent.New(agent.Options{
		Client: client, Source: attachedSource{engine.NewAttachedLister(s.cniDir)}, Programmer: s.programmer,
		Log: s.log, Metrics: metrics.NewServiceProxy(s.reg),
	})
	g.Go(func() error { return a.Run(ctx) })
	return g.Wait()
}

// identity names this steerd in the Lease: its node, and a random part, since a restarted
// steerd is another candidate.
func identity(node string) string {
	if node == "" {
		node, _ = os.Hostname()
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return node + "_" + hex.EncodeToString(b)
}

// attachedSource gives the node agent the secondary attachments of the engine's cache.
type attachedSource struct{ l *engine.AttachedLister }

func (s attachedSource) Containers() ([]agent.Container, error) {
	list, err := s.l.List()
	if err != nil {
		return nil, err
	}
	out := make([]agent.Container, 0, len(list))
	for _, a := range list {
		c := agent.Container{ID: a.ContainerID, Namespace: a.PodNamespace, Pod: a.Pod}
		for _, itf := range a.Interfaces {
			if !itf.Primary {
				c.Interfaces = append(c.Interfaces, agent.Interface{IfName: itf.IfName, Network: itf.Network})
			}
		}
		out = append(out, c)
	}
	return out, nil
}
