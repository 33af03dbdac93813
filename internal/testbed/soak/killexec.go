package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// killingExec runs plugins as a runtime does, except that the plugin's ADD gets SIGKILL after
// delay: a runtime whose deadline passed, an OOM kill, a node under pressure. Before returning
// it waits until every process the plugin started has ended, as a runtime's retry of DEL comes
// seconds later; a delegate racing the DEL is a different fault.
type killingExec struct {
	delay  time.Duration
	killed atomic.Bool
}

var _ invoke.Exec = (*killingExec)(nil)

// drainTimeout bounds the wait for a killed plugin's children.
const drainTimeout = time.Minute

func (k *killingExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	if !slices.Contains(environ, "CNI_COMMAND=ADD") {
		return (&invoke.RawExec{Stderr: io.Discard}).ExecPlugin(ctx, pluginPath, stdin, environ)
	}
	var stdout bytes.Buffer
	cmd := exec.Command(pluginPath)
	cmd.Env, cmd.Stdin, cmd.Stdout = environ, bytes.NewReader(stdin), &stdout
	// A group of its own, so the drain below sees the delegates the plugin forked.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = drainTimeout
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pgid := cmd.Process.Pid
	timer := time.AfterFunc(k.delay, func() {
		k.killed.Store(true)
		_ = syscall.Kill(pgid, syscall.SIGKILL)
	})
	err := cmd.Wait()
	timer.Stop()
	if derr := drain(pgid); derr != nil {
		return nil, derr
	}
	if err == nil {
		return stdout.Bytes(), nil
	}
	var perr types.Error
	if json.Unmarshal(stdout.Bytes(), &perr) == nil && perr.Code != 0 {
		return nil, &perr
	}
	return nil, fmt.Errorf("plugin %s: %w", pluginPath, err)
}

// drain waits until process group pgid is empty.
func drain(pgid int) error {
	deadline := time.Now().Add(drainTimeout)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("processes of the killed plugin's group %d still running after %s", pgid, drainTimeout)
}

func (k *killingExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

func (k *killingExec) Decode(jsonBytes []byte) (version.PluginInfo, error) {
	return (&version.PluginDecoder{}).Decode(jsonBytes)
}
