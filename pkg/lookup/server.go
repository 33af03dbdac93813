package lookup

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		conns.Go(func() { serveConn(ctx, c, src, done) })
	}
}

func serveConn(ctx context.Context, c net.Conn, src Source, done func(string, error)) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	in := bufio.NewScanner(c)
	in.Buffer(make([]byte, 0, 64<<10), maxLine)
	out := json.NewEncoder(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(idleTimeout))
		if !in.Scan() {
			return
		}
		var req request
		var a answer
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			a.Error = statusOf(apierrors.NewBadRequest(fmt.Sprintf("steerd: bad call: %v", err)))
		} else {
			a = call(ctx, src, &req, done)
		}
		_ = c.SetWriteDeadline(time.Now().Add(idleTimeout))
		if out.Encode(a) != nil {
			return
		}
	}
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
		a.Pod, err = src.Pod(ctx, req.Namespace, req.Name)
	case KindNAD:
		var n *k8s.NetworkAttachmentDefinition
		if n, err = src.NAD(ctx, req.Namespace, req.Name); err == nil {
			a.NAD = &nad{Namespace: n.Namespace, Name: n.Name, Config: n.Spec.Config}
		}
	case KindStatus:
		err = src.SetNetworkStatus(ctx, req.Namespace, req.Name, req.UID, req.Statuses)
	case KindEvent:
		if req.Event == nil {
			err = apierrors.NewBadRequest("steerd: an event call without its event")
			break
		}
		pod := &k8s.Pod{Namespace: req.Namespace, Name: req.Name, UID: req.UID}
		err = src.Warn(ctx, pod, req.Event.Component, req.Event.Reason, req.Event.Message)
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

// statusOf is err as an apiserver Status: the apiserver's own, or an InternalError.
func statusOf(err error) *metav1.Status {
	var apiErr apierrors.APIStatus
	if errors.As(err, &apiErr) && apiErr.Status().Code != 0 {
		st := apiErr.Status()
		return &st
	}
	st := apierrors.NewInternalError(err).Status()
	st.Message = err.Error()
	return &st
}
