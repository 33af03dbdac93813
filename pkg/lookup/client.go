package lookup

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/pkg/api"
	"github.com/steernet/steer/pkg/k8s"
)

// ErrUnavailable means steerd did not answer: no socket, nobody listening, a broken
// connection, or an answer that is not one. The plugin then asks the apiserver.
var ErrUnavailable = api.ErrUnavailable

// Client calls steerd over its socket, one call at a time on one connection.
type Client struct {
	path string

	mu   sync.Mutex
	conn net.Conn
	in   *bufio.Reader
}

// NewClient returns a client for the socket at path; it connects on the first call.
func NewClient(path string) *Client { return &Client{path: path} }

// Close closes the connection.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drop()
}

func (c *Client) drop() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn, c.in = nil, nil
	}
}

// Pod returns the pod.
func (c *Client) Pod(ctx context.Context, namespace, name string) (*k8s.Pod, error) {
	a, err := c.call(ctx, &request{Kind: KindPod, Namespace: namespace, Name: name})
	if err == nil && a.Pod == nil {
		err = fmt.Errorf("%w: an answer without the pod", ErrUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("get pod %s/%s through steerd: %w", namespace, name, err)
	}
	return a.Pod, nil
}

// NAD returns the NetworkAttachmentDefinition.
func (c *Client) NAD(ctx context.Context, namespace, name string) (*k8s.NetworkAttachmentDefinition, error) {
	a, err := c.call(ctx, &request{Kind: KindNAD, Namespace: namespace, Name: name})
	if err == nil && a.NAD == nil {
		err = fmt.Errorf("%w: an answer without the NetworkAttachmentDefinition", ErrUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("get NetworkAttachmentDefinition %s/%s through steerd: %w", namespace, name, err)
	}
	return &k8s.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.NAD.Namespace, Name: a.NAD.Name},
		Spec:       k8s.NetworkAttachmentDefinitionSpec{Config: a.NAD.Config},
	}, nil
}

// SetNetworkStatus sets the pod's network-status, or removes it with nil statuses.
func (c *Client) SetNetworkStatus(ctx context.Context, namespace, name, uid string, statuses []k8s.NetworkStatus) error {
	if _, err := c.call(ctx, &request{Kind: KindStatus, Namespace: namespace, Name: name, UID: uid, Statuses: statuses}); err != nil {
		return fmt.Errorf("write network-status of pod %s/%s through steerd: %w", namespace, name, err)
	}
	return nil
}

// Warn records a Warning event on the pod.
func (c *Client) Warn(ctx context.Context, pod *k8s.Pod, component, reason, message string) error {
	req := &request{Kind: KindEvent, Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
		Event: &event{Component: component, Reason: reason, Message: message}}
	if _, err := c.call(ctx, req); err != nil {
		return fmt.Errorf("record event on pod %s/%s through steerd: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// call sends one request and reads its answer within ctx. An apiserver error comes back as
// *apierrors.StatusError; a transport failure drops the connection and wraps ErrUnavailable.
func (c *Client) call(ctx context.Context, req *request) (*answer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if deadline, ok := ctx.Deadline(); ok {
		req.TimeoutMs = time.Until(deadline).Milliseconds()
	}
	if c.conn == nil {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "unix", c.path)
		if err != nil {
			return nil, c.failed(ctx, err)
		}
		c.conn, c.in = conn, bufio.NewReader(conn)
	}
	line, err := api.Call(ctx, c.conn, c.in, req, maxLine)
	if err != nil {
		return nil, c.failed(ctx, err)
	}
	var a answer
	if err := json.Unmarshal(line, &a); err != nil {
		return nil, c.failed(ctx, fmt.Errorf("not an answer: %v", err))
	}
	if a.Error != nil {
		if a.Error.Code == 0 {
			return nil, c.failed(ctx, fmt.Errorf("an error without a code: %s", a.Error.Message))
		}
		return nil, &apierrors.StatusError{ErrStatus: *a.Error}
	}
	return &a, nil
}

// failed drops the connection and returns the caller's own deadline or cancellation as such,
// anything else as ErrUnavailable.
func (c *Client) failed(ctx context.Context, err error) error {
	c.drop()
	return api.Unavailable(ctx, err)
}
