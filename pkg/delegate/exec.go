package delegate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// Bounds on what a delegate may make us hold or pass on.
const (
	// MaxStdout bounds a plugin's result: libcni decodes it whole.
	MaxStdout = 1 << 20
	// MaxStderr bounds the stderr kept of one plugin run (passed on, or quoted in the error).
	MaxStderr = 64 << 10
	// maxQuoted bounds a message taken from a plugin into our own error.
	maxQuoted = 4 << 10
	// pipeGrace is how long a run waits for the plugin's pipes once it has exited or been
	// killed: a child it left behind may hold them open for ever.
	pipeGrace = time.Second
	// busyRetries are the retries of a plugin binary being written ("text file busy").
	busyRetries = 5
)

// Exec runs plugins as invoke.RawExec does, except that each runs in a process group of its
// own, killed whole when ctx ends; a run stops waiting for the plugin's pipes shortly after
// it exits or is killed; output is bounded; a failure is always a CNI error with a non-zero
// code; and plugins are only found and run by absolute path (a relative CNI_PATH entry would
// make exec look the plugin up in $PATH).
type Exec struct {
	// Stderr receives the plugin's stderr, at most MaxStderr of it per run; nil drops it.
	Stderr io.Writer
	version.PluginDecoder
}

var _ invoke.Exec = (*Exec)(nil)

// FindInPath finds plugin in the absolute directories of paths.
func (e *Exec) FindInPath(plugin string, paths []string) (string, error) {
	var abs []string
	for _, p := range paths {
		if filepath.IsAbs(p) {
			abs = append(abs, p)
		}
	}
	return invoke.FindInPath(plugin, abs)
}

// ExecPlugin runs the plugin at pluginPath and returns its stdout.
func (e *Exec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	if !filepath.IsAbs(pluginPath) {
		return nil, types.NewError(types.ErrInternal, fmt.Sprintf("plugin path %q is not absolute", pluginPath), "")
	}
	for attempt := 0; ; attempt++ {
		stdout, stderr, err := run(ctx, pluginPath, stdin, environ)
		if err != nil && errors.Is(err, syscall.ETXTBSY) && attempt < busyRetries {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
				continue
			}
		}
		if err != nil {
			return nil, pluginError(pluginPath, err, stdout, stderr)
		}
		if e.Stderr != nil && stderr.buf.Len() > 0 {
			_, _ = e.Stderr.Write(stderr.text())
		}
		if stdout.dropped > 0 {
			return nil, types.NewError(types.ErrInternal, fmt.Sprintf("plugin %s printed more than %d bytes", filepath.Base(pluginPath), MaxStdout), "")
		}
		return stdout.buf.Bytes(), nil
	}
}

func run(ctx context.Context, path string, stdin []byte, environ []string) (stdout, stderr *capped, err error) {
	stdout, stderr = &capped{max: MaxStdout}, &capped{max: MaxStderr}
	c := exec.CommandContext(ctx, path)
	c.Env = environ
	c.Stdin = bytes.NewReader(stdin)
	c.Stdout, c.Stderr = stdout, stderr
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// The whole group: a script's children die with it instead of holding the pipes.
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	c.WaitDelay = pipeGrace
	err = c.Run()
	if errors.Is(err, exec.ErrWaitDelay) && c.Process != nil {
		// It exited but left children holding its stdout or stderr: they go too.
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		err = fmt.Errorf("plugin exited, but processes it started held its output open: %w", err)
	}
	return stdout, stderr, err
}

// pluginError is the plugin's own CNI error when it printed one, else an error (code 999)
// saying how it failed, with a bounded excerpt of what it printed.
func pluginError(path string, err error, stdout, stderr *capped) error {
	var te types.Error
	if stdout.buf.Len() > 0 && stdout.dropped == 0 && json.Unmarshal(stdout.buf.Bytes(), &te) == nil && te.Msg != "" {
		if te.Code == 0 {
			te.Code = types.ErrInternal // 0 is success to a runtime
		}
		return types.NewError(te.Code, clip(te.Msg), clip(te.Details))
	}
	msg := fmt.Sprintf("plugin %s failed: %v", filepath.Base(path), err)
	if stdout.buf.Len() > 0 {
		msg += fmt.Sprintf("; it printed no CNI error but %q", clip(string(stdout.text())))
	}
	if stderr.buf.Len() > 0 {
		msg += fmt.Sprintf("; stderr: %q", clip(string(stderr.text())))
	}
	return types.NewError(types.ErrInternal, msg, "")
}

// clip bounds s to maxQuoted bytes, on a rune boundary.
func clip(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s[... %d more bytes]", s[:cut], len(s)-cut)
}

// capped keeps the first max bytes written to it and counts the rest.
type capped struct {
	buf     bytes.Buffer
	max     int
	dropped int
}

func (c *capped) Write(p []byte) (int, error) {
	keep := min(len(p), c.max-c.buf.Len())
	c.buf.Write(p[:keep])
	c.dropped += len(p) - keep
	return len(p), nil
}

// text is what was kept, with a note of what was not.
func (c *capped) text() []byte {
	if c.dropped == 0 {
		return c.buf.Bytes()
	}
	return fmt.Appendf(bytes.Clone(c.buf.Bytes()), "\n[... %d more bytes dropped]\n", c.dropped)
}
