// Package api is the protocol between the steer plugin and steerd in thick mode: one HTTP
// request over a unix socket per CNI call. It imports no Kubernetes code, so the plugin's
// thick path stays small and fast to exec.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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

// Path is the HTTP path of CNI requests.
const Path = "/cni"

// MaxRequestSize bounds a request: the CNI config and arguments, not pod data.
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
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives: true,
	}}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://steerd"+Path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(hreq)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxRequestSize))
	if err != nil {
		return nil, fmt.Errorf("%w: read response: %v", ErrUnavailable, err)
	}
	var r Response
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: HTTP %d: %s", ErrUnavailable, resp.StatusCode, bytes.TrimSpace(b))
	}
	if r.Error != nil {
		return nil, r.Error
	}
	return r.Result, nil
}

// Timeout bounds a request the plugin makes: longer than any ADD should take, shorter than a
// runtime's own CNI timeout, so a wedged daemon fails the call instead of hanging the pod.
const Timeout = 3 * time.Minute
