package emulation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// Steerd is steerd running on an emulated node, as the DaemonSet runs it: in the node's network
// namespace, in the machine's mount namespace (so its pins are the ones the plugin and steerctl
// see).
type Steerd struct {
	cmd     *exec.Cmd
	Socket  string // "" in thin mode
	Metrics string // host:port of /metrics inside the node namespace
	Log     string

	exited  chan struct{} // closed when the process has exited
	waitErr error
}

// SteerdOptions configure a node's steerd.
type SteerdOptions struct {
	Binary     string
	Kubeconfig string
	BPFFSRoot  string
	Steering   bool
	LogLevel   string // the plugin's
	// Extra are further plugin keys (e.g. "delegateTimeout").
	Extra map[string]any
	// Services runs Services on secondary networks (the EndpointSlice controller's election
	// and the node agent); off, a node's steerd is what the CNI tests measure and nothing more.
	Services bool
	// Thin runs steerd as the chart's thin mode does: no socket, and a plugin config without
	// socketPath, so the plugin does ADD and DEL itself.
	Thin bool
}

// StartSteerd starts steerd for node i of host, waits until its socket answers (thick mode) and
// its CNI config is written, and returns it.
func StartSteerd(ctx context.Context, node ns.NetNS, i int, host HostRoot, o SteerdOptions) (*Steerd, error) {
	d, err := LaunchSteerd(node, i, host, o)
	if err != nil {
		return nil, err
	}
	if err := d.waitReady(ctx, node); err != nil {
		_ = d.Kill()
		return nil, err
	}
	return d, nil
}

// LaunchSteerd starts steerd as StartSteerd does, without waiting for it to be ready.
func LaunchSteerd(node ns.NetNS, i int, host HostRoot, o SteerdOptions) (*Steerd, error) {
	plugin := map[string]any{
		"kubeconfig": o.Kubeconfig,
		"confDir":    host.NADConfDir(),
		"cniDir":     host.CNIDir(),
		"binDir":     host.BinDir(),
		"bpffsRoot":  o.BPFFSRoot,
		"steering":   o.Steering,
	}
	if o.LogLevel != "" {
		plugin["logLevel"] = o.LogLevel
	}
	d := &Steerd{Metrics: "127.0.0.1:9465", Log: filepath.Join(host.Dir, "steerd.log"), exited: make(chan struct{})}
	logf, err := os.OpenFile(d.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	var socket []string
	if !o.Thin {
		d.Socket = host.Socket()
		plugin["socketPath"] = d.Socket
		socket = []string{"-socket", d.Socket}
	}
	for k, v := range o.Extra {
		plugin[k] = v
	}
	pc, err := json.Marshal(plugin)
	if err != nil {
		return nil, err
	}
	d.cmd = exec.Command(o.Binary, append(append([]string{"run"}, socket...),
		"-node-name", fmt.Sprintf("node-%c", 'a'+i),
		"-kubeconfig", o.Kubeconfig,
		"-cni-conf-dir", host.ConfDir(),
		"-thin-kubeconfig=false",
		"-plugin-config", string(pc),
		"-bpffs-root", o.BPFFSRoot,
		"-metrics-addr", d.Metrics,
		"-gc-interval", "2s",
		fmt.Sprintf("-services=%t", o.Services),
	)...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// Forked from a thread inside the node's namespace, the child inherits it. Pdeathsig fires
	// when that thread (not the process) ends, and Go ends a thread whenever a goroutine exits
	// locked to it (pod sandboxes are made so), so the thread is kept for steerd alone: locked
	// and never unlocked, it lives exactly as long as steerd.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := node.Set(); err != nil {
			started <- err
			return
		}
		if err := d.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		d.waitErr = d.cmd.Wait()
		close(d.exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return d, nil
}

// Socket is where a node's steerd listens.
func (h HostRoot) Socket() string { return filepath.Join(h.Dir, "run/steer/steerd.sock") }

// WaitReady waits until steerd's socket answers (thick mode) and /readyz says ready.
func (d *Steerd) WaitReady(ctx context.Context, node ns.NetNS) error { return d.waitReady(ctx, node) }

func (d *Steerd) waitReady(ctx context.Context, node ns.NetNS) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-d.exited:
			return fmt.Errorf("steerd exited: %v: %s", d.waitErr, tail(d.Log))
		default:
		}
		if d.socketAnswers() {
			if ok, _ := d.get(node, "/readyz"); ok != "" {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("steerd not ready: %s", tail(d.Log))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// socketAnswers tells whether steerd's socket accepts a connection; in thin mode, with no
// socket, it always does.
func (d *Steerd) socketAnswers() bool {
	if d.Socket == "" {
		return true
	}
	c, err := net.Dial("unix", d.Socket)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// get fetches a path of steerd's HTTP endpoint inside the node's namespace. The connection is
// made there; the HTTP client's own goroutines then use it wherever they run.
func (d *Steerd) get(node ns.NetNS, path string) (string, error) {
	c := http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
			err = node.Do(func(ns.NetNS) error {
				conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		},
	}}
	resp, err := c.Get("http://" + d.Metrics + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s: HTTP %d", path, resp.StatusCode)
	}
	return string(b), nil
}

// MetricsPage returns steerd's /metrics page.
func (d *Steerd) MetricsPage(node ns.NetNS) (string, error) { return d.get(node, "/metrics") }

// PID is steerd's process ID.
func (d *Steerd) PID() int { return d.cmd.Process.Pid }

// RSS returns steerd's resident and peak resident memory in KiB.
func (d *Steerd) RSS() (cur, peak int, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(d.PID()) + "/status")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			cur, _ = strconv.Atoi(f[1])
		case "VmHWM:":
			peak, _ = strconv.Atoi(f[1])
		}
	}
	return cur, peak, nil
}

// Stop ends steerd with SIGTERM, as the kubelet does.
func (d *Steerd) Stop() error { return d.signal(syscall.SIGTERM) }

// Kill ends steerd with SIGKILL: no clean-up of any kind.
func (d *Steerd) Kill() error { return d.signal(syscall.SIGKILL) }

func (d *Steerd) signal(sig syscall.Signal) error {
	if err := d.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-d.exited:
		return nil
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		return errors.New("steerd did not stop")
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	s := string(b)
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}
