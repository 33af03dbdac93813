// Package lookup lets the thin plugin ask the node's steerd what an ADD reads from and writes to
// the apiserver: the pod, its NetworkAttachmentDefinitions, its network-status and its events.
// steerd answers pods and NADs from the informer cache it keeps anyway (reading through to the
// apiserver for what the cache does not hold yet) and writes through the connection it already
// has, so a pod's ADD costs the plugin no kubeconfig, TLS handshake or apiserver round trip,
// and the apiserver one request instead of several. When steerd does not answer, the plugin
// asks the apiserver itself, as Multus does: steerd makes thin mode faster, never required.
//
// The calls are package api's JSON lines, on a unix socket in the plugin's cniDir (root only,
// as steerd's other socket). Errors carry the apiserver's status, so the plugin tells a pod
// that is not found from an apiserver that is down exactly as it would on its own.
package lookup

import (
	"context"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/pkg/k8s"
)

// SocketName is the socket's name in the plugin's cniDir, where both the plugin and steerd
// find it without any configuration.
const SocketName = "steerd.sock"

// SocketPath is the socket of the plugin whose cniDir is dir.
func SocketPath(cniDir string) string { return filepath.Join(cniDir, SocketName) }

// Source is what steerd answers from: the engine's own sources of pods and NADs and its
// writers of status and events (daemon.Cache is all four, in thick mode as here). Errors keep
// the apiserver's status (apierrors.APIStatus), which the plugin gets back as such.
type Source struct {
	Pods interface {
		Get(ctx context.Context, namespace, name string) (*k8s.Pod, error)
	}
	NADs interface {
		Get(ctx context.Context, namespace, name string) (*k8s.NetworkAttachmentDefinition, error)
	}
	Status interface {
		SetNetworkStatus(ctx context.Context, namespace, name, uid string, statuses []k8s.NetworkStatus) error
	}
	Events interface {
		Warn(ctx context.Context, pod *k8s.Pod, component, reason, message string) error
	}
}

// The kinds of call.
const (
	KindPod    = "pod"
	KindNAD    = "nad"
	KindStatus = "network-status"
	KindEvent  = "event"
)

// request is one call.
type request struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// UID is the pod's: a precondition of the status, the subject of an event.
	UID string `json:"uid,omitempty"`
	// Statuses are the network-status to write; null removes it.
	Statuses []k8s.NetworkStatus `json:"statuses"`
	Event    *event              `json:"event,omitempty"`
	// TimeoutMs is what the plugin has left of its deadline, which steerd keeps to.
	TimeoutMs int64 `json:"timeoutMs,omitempty"`
}

// event is a Warning event on the request's pod.
type event struct {
	Component string `json:"component"`
	Reason    string `json:"reason"`
	Message   string `json:"message"`
}

// answer is the answer to one call: its value, or the apiserver's Status of its failure.
type answer struct {
	Pod   *k8s.Pod       `json:"pod,omitempty"`
	NAD   *nad           `json:"nad,omitempty"`
	Error *metav1.Status `json:"error,omitempty"`
}

// nad is the part of a NetworkAttachmentDefinition the plugin reads.
type nad struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Config    string `json:"config,omitempty"`
}

// maxLine bounds a request or an answer: a pod's annotations, a NAD's config, a status list.
const maxLine = 4 << 20

// maxCallTimeout bounds how long steerd works on one call, whatever the plugin asks.
const maxCallTimeout = time.Minute
