package lookup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/pkg/api"
	"github.com/steernet/steer/pkg/k8s"
)

// idleTimeout closes a connection that sends nothing for so long, and bounds writing an answer.
const idleTimeout = 10 * time.Second

// Serve answers the plugin's calls on ln from src until ctx ends, and reports each call of a
// known kind to done (nil: none). A connection carries calls one after the other.
func Serve(ctx context.Context, ln net.Listener, src Source, done func(kind string, err error)) error {
	if done == nil {
		done = func(string, error) {}
	}
	return api.Serve(ctx, ln, idleTimeout, maxLine, func(ctx context.Context, line []byte) any {
		var req request
		if err := json.Unmarshal(line, &req); err != nil {
			return answer{Error: statusOf(apierrors.NewBadRequest(fmt.Sprintf("steerd: bad call: %v", err)))}
		}
		return call(ctx, src, &req, done)
	})
}

// call runs one call within the time the plugin has left.
func call(ctx context.Context, src Source, req *request, done func(string, error)) answer {
	timeout := maxCallTimeout
	if req.TimeoutMs > 0 {
		timeout = min(timeout, time.Duration(req.TimeoutMs)*time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var a answer
	var err error
	switch req.Kind {
	case KindPod:
		a.Pod, err = src.Pods.Get(ctx, req.Namespace, req.Name)
	case KindNAD:
		var n *k8s.NetworkAttachmentDefinition
		if n, err = src.NADs.Get(ctx, req.Namespace, req.Name); err == nil {
			a.NAD = &nad{Namespace: n.Namespace, Name: n.Name, Config: n.Spec.Config}
		}
	case KindStatus:
		err = src.Status.SetNetworkStatus(ctx, req.Namespace, req.Name, req.UID, req.Statuses)
	case KindEvent:
		if req.Event == nil {
			err = apierrors.NewBadRequest("steerd: an event call without its event")
			break
		}
		pod := &k8s.Pod{Namespace: req.Namespace, Name: req.Name, UID: req.UID}
		err = src.Events.Warn(ctx, pod, req.Event.Component, req.Event.Reason, req.Event.Message)
	default:
		// Not reported: the kind is the client's to choose, and a metric label per kind.
		return answer{Error: statusOf(apierrors.NewBadRequest(fmt.Sprintf("steerd: unknown call %q", req.Kind)))}
	}
	done(req.Kind, err)
	if err != nil {
		a.Pod, a.NAD, a.Error = nil, nil, statusOf(err)
	}
	return a
}

// statusOf is err as an apiserver Status: the apiserver's own, a Timeout when the call ran out
// of the plugin's time, else an InternalError.
func statusOf(err error) *metav1.Status {
	var apiErr apierrors.APIStatus
	var st metav1.Status
	switch {
	case errors.As(err, &apiErr) && apiErr.Status().Code != 0:
		st = apiErr.Status()
	case errors.Is(err, context.DeadlineExceeded):
		st = apierrors.NewTimeoutError(err.Error(), 0).Status()
	default:
		st = apierrors.NewInternalError(err).Status()
		st.Message = err.Error()
	}
	return &st
}
