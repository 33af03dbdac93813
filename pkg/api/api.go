// Package api is the protocol between Steer's CNI binaries and steerd: JSON lines over unix
// sockets (lines.go). In thick mode each CNI call is one request on steerd's socket. It
// imports no Kubernetes code and no HTTP, so steer-shim stays small and fast to exec.
package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

// The CNI binaries steerd installs, named as the "type" of Steer's entry in a node's CNI config
// names them: the plugin, and the shim that thick mode's config names (a small binary, quick to
// exec, that only hands each verb to steerd).
const (
	PluginBinary = "steer"
	ShimBinary   = "steer-shim"
)

// IsSteerType tells whether a CNI config's "type" is one of Steer's binaries.
func IsSteerType(typ string) bool { return typ == PluginBinary || typ == ShimBinary }

// DefaultSocket is where steerd listens on a node.
const DefaultSocket = "/run/steer/steerd.sock"

// MaxRequestSize bounds a request (the CNI config and arguments, not pod data) and an answer.
const MaxRequestSize = 1 << 20

// Request is one CNI call as the runtime made it.
type Request struct {
	Command     string `json:"command"` // ADD, DEL, CHECK, GC, STATUS
	ContainerID string `json:"containerID,omitempty"`
	Netns       string `json:"netns,omitempty"`
	IfName      string `json:"ifName,omitempty"`
	Args        string `json:"args,omitempty"`
	Path        string `json:"path,omitempty"`
	StdinData   []byte `json:"stdinData"`
}

// Response carries the result of ADD, or the CNI error of any verb.
type Response struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *types.Error    `json:"error,omitempty"`
}

// ErrUnavailable means steerd did not answer: no socket, nobody listening, or a broken
// connection. The plugin may then fall back to running the verb itself.
var ErrUnavailable = errors.New("steerd is not available")

// Do sends req to the daemon at socket. A CNI failure comes back as a *types.Error; a
// transport failure wraps ErrUnavailable.
func Do(ctx context.Context, socket string, req Request) (json.RawMessage, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, Unavailable(ctx, err)
	}
	defer c.Close()
	line, err := Call(ctx, c, bufio.NewReader(c), req, MaxRequestSize)
	if err != nil {
		return nil, Unavailable(ctx, err)
	}
	var r Response
	if err := json.Unmarshal(line, &r); err != nil {
		return nil, fmt.Errorf("%w: not an answer: %.200q", ErrUnavailable, line)
	}
	if r.Error != nil {
		return nil, r.Error
	}
	return r.Result, nil
}

// Unavailable is a failed call's error: ctx's own end as such (also when the connection's
// deadline, which is ctx's, fired first), any other failure as ErrUnavailable.
func Unavailable(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if deadline, ok := ctx.Deadline(); ok && !time.Now().Before(deadline) {
		return context.DeadlineExceeded
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// Timeout bounds a request the plugin makes: longer than any ADD should take, shorter than a
// runtime's own CNI timeout, so a wedged daemon fails the call instead of hanging the pod.
const Timeout = 3 * time.Minute
