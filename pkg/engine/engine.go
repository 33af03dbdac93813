package engine

import (
	"context"
	"log/slog"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"

	"github.com/steernet/steer/pkg/k8s"
	"github.com/steernet/steer/pkg/steering"
)

// PodSource finds pods. Errors must keep the API status (apierrors.IsNotFound).
type PodSource interface {
	Get(ctx context.Context, namespace, name string) (*k8s.Pod, error)
}

// NADSource finds NetworkAttachmentDefinitions. Errors must keep the API status.
type NADSource interface {
	Get(ctx context.Context, namespace, name string) (*k8s.NetworkAttachmentDefinition, error)
}

// StatusWriter sets a pod's network-status annotation; nil statuses remove it.
type StatusWriter interface {
	SetNetworkStatus(ctx context.Context, namespace, name, uid string, statuses []k8s.NetworkStatus) error
}

// EventRecorder records Warning events on pods.
type EventRecorder interface {
	Warn(ctx context.Context, pod *k8s.Pod, component, reason, message string) error
}

// Options are the engine's dependencies. Every field is optional.
type Options struct {
	// Logger receives the engine's logs; nil discards them.
	Logger *slog.Logger
	// Pods is nil without a kubeconfig: pods then get the cluster and default networks only,
	// as in Multus.
	Pods PodSource
	// NADs is nil without a kubeconfig: networks then resolve from confDir only.
	NADs NADSource
	// Status is nil without a kubeconfig: no network-status is written.
	Status StatusWriter
	// Events is nil without a kubeconfig: what would be a pod's event is only logged.
	Events EventRecorder
	// Dataplane steers traffic once every delegate succeeded; nil means steering.Off.
	Dataplane steering.Dataplane
	// Exec runs delegate plugins; nil forks and executes them.
	Exec invoke.Exec
}

// Engine runs the CNI verbs. It is safe for concurrent use by different containers; the
// runtime never runs two verbs for one container at once.
type Engine struct {
	log    *slog.Logger
	pods   PodSource
	nads   NADSource
	status StatusWriter
	events EventRecorder
	dp     steering.Dataplane
	exec   invoke.Exec
}

// Timeouts that are not configurable. apiTimeout (netconf) bounds each apiserver call.
const (
	// rollbackTimeout bounds the clean-up of a failed ADD, which runs even when the
	// runtime's deadline has passed.
	rollbackTimeout = 2 * time.Minute
	// statusClearTimeout bounds the best-effort removal of network-status on DEL, so a
	// black-holed apiserver slows DEL down only a little.
	statusClearTimeout = 2 * time.Second
	// addGrace is how long GC leaves an incomplete cache alone: an ADD may be running.
	addGrace = 5 * time.Minute
	// readinessPoll is how often ADD looks for the readiness indicator file.
	readinessPoll = 100 * time.Millisecond
	// delLookupTimeout bounds the apiserver lookups of a DEL that has no cache to work from.
	delLookupTimeout = 3 * time.Second
	// eventTimeout bounds recording an event: best effort, it must not slow ADD down much.
	eventTimeout = 2 * time.Second
	// maxParallelLookups bounds the concurrent NetworkAttachmentDefinition lookups of one ADD.
	maxParallelLookups = 8
)

// New returns an Engine.
func New(opts Options) *Engine {
	e := &Engine{
		log:    opts.Logger,
		pods:   opts.Pods,
		nads:   opts.NADs,
		status: opts.Status,
		events: opts.Events,
		dp:     opts.Dataplane,
		exec:   opts.Exec,
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.dp == nil {
		e.dp = steering.Off{}
	}
	return e
}

// warnPod logs a warning and records it as an event on the pod, best effort.
func (e *Engine) warnPod(ctx context.Context, r *request, pod *k8s.Pod, reason, message string, attrs ...any) {
	r.log.Warn(message, attrs...)
	if e.events == nil || pod == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, min(r.conf.APITimeout, eventTimeout))
	defer cancel()
	if err := e.events.Warn(ctx, pod, "steer", reason, message); err != nil {
		r.log.Info("event not recorded", "reason", reason, "err", err)
	}
}
