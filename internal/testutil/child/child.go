// Package child runs the test beds' daemons (etcd, kube-apiserver, containerd, kubelet, ...) as
// children with their output in a log file, each in a process group of its own and killed with
// the test binary, and stops them.
package child

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is one child.
type Process struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed once the child is reaped
	waitErr error         // valid after done is closed
}

// Start runs cmd with its stdout and stderr appended to logPath, in a process group of its own
// (Stop can then end anything it spawned, and a Ctrl-C in the terminal does not race an orderly
// stop), killed when the thread that forks it exits. fork runs cmd.Start on that thread:
// Pdeathsig fires when the forking *thread* exits, not the process
// (https://github.com/golang/go/issues/27505), so callers fork from a thread that lives as long
// as the child should.
func Start(name string, cmd *exec.Cmd, logPath string, fork func(start func() error) error) (*Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	// The child holds its own descriptor; ours is only needed until Start.
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := fork(cmd.Start); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the child's pid, also its process group's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the child is reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// WaitErr is how the child ended; valid once Done is closed.
func (p *Process) WaitErr() error { return p.waitErr }

// Exited reports whether the child has already ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Tail returns the last n lines of the child's log, for error messages.
func (p *Process) Tail(n int) string { return TailFile(p.LogPath, n) }

// Kill ends the child's whole process group at once and waits until the child is reaped.
func (p *Process) Kill(timeout time.Duration) error {
	if err := syscall.Kill(-p.Pid(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill %s (pgid %d): %w", p.Name, p.Pid(), err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s (pid %d) still running %s after SIGKILL", p.Name, p.Pid(), timeout)
	}
}

// Stop sends SIGTERM to the process group, then SIGKILL after grace, and waits for the child.
// Other members of the group live on, as under a service manager's process kill mode: a
// restarted containerd finds its CNI calls still running.
func (p *Process) Stop(grace time.Duration) error {
	if p == nil || p.Exited() {
		return nil
	}
	_ = syscall.Kill(-p.Pid(), syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	return p.Kill(10 * time.Second)
}

// StopGroup stops the child, then kills the rest of its group and waits until none is left: a
// CNI plugin containerd forked just before it stopped is still in the group (perhaps not yet
// exec'd, so no scan by path finds it) and would go on writing the host after the test bed put
// it back.
func (p *Process) StopGroup(grace time.Duration) error {
	if p == nil {
		return nil
	}
	if err := p.Stop(grace); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		members := groupMembers(p.Pid())
		if len(members) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s's process group %d still running after SIGKILL: %v", p.Name, p.Pid(), members)
		}
		_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
		time.Sleep(50 * time.Millisecond)
	}
}

// groupMembers are the live (not zombie) processes of process group pgid.
func groupMembers(pgid int) []int {
	return Processes(func(dir string) bool {
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			return false
		}
		// After the command's closing parenthesis: state, ppid, pgrp.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			return false
		}
		f := strings.Fields(string(stat[i+1:]))
		return len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pgid)
	})
}

// Processes are the machine's processes whose /proc directory match accepts.
func Processes(match func(dir string) bool) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && match(filepath.Join("/proc", e.Name())) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TailFile returns the last n lines of a log, for error messages.
func TailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	// The last 64 KiB hold far more than n lines of any daemon's log.
	const window = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > window {
		if _, err := f.Seek(-window, io.SeekEnd); err != nil {
			return fmt.Sprintf("(read log: %v)", err)
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	lines := strings.Split(string(bytes.TrimRight(b, "\n")), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
