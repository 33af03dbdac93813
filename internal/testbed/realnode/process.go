package realnode

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// process is one of the node's daemons with its output in a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

// start runs bin in the spawner's network namespace, in a process group of its own, killed
// when the test binary dies.
func (s *spawner) start(name, bin string, args []string, env []string, logPath string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := s.run(cmd.Start); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after grace, and waits for the process.
// Other members of the group live on, as under a service manager's process kill mode: a
// restarted containerd finds its CNI calls still running.
func (p *process) stop(grace time.Duration) error {
	if p == nil || p.exited() {
		return nil
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	if err := syscall.Kill(-p.pid(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill %s: %w", p.name, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) still running after SIGKILL", p.name, p.pid())
	}
}

// stopGroup stops the process, then kills the rest of its group and waits until none is left:
// a CNI plugin containerd forked just before it stopped is still in the group (perhaps not yet
// exec'd, so no scan by path finds it) and would go on writing the host after the node put it
// back.
func (p *process) stopGroup(grace time.Duration) error {
	if p == nil {
		return nil
	}
	if err := p.stop(grace); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		members := groupMembers(p.pid())
		if len(members) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s's process group %d still running after SIGKILL: %v", p.name, p.pid(), members)
		}
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		time.Sleep(50 * time.Millisecond)
	}
}

// groupMembers are the live (not zombie) processes of process group pgid.
func groupMembers(pgid int) []int {
	return processes(func(dir string) bool {
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

// spawner forks children from one thread that stays in the node's network namespace for as
// long as the node runs: Pdeathsig fires when the forking thread exits, not the process. close
// ends the thread (it is never unlocked, so the runtime throws it away with its namespace)
// once the children are gone.
type spawner struct{ ch chan func() }

func newSpawner(netnsPath string) (*spawner, error) {
	s := &spawner{ch: make(chan func())}
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		if netnsPath != "" {
			f, err := os.Open(netnsPath)
			if err != nil {
				ready <- err
				return
			}
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
			f.Close()
			if err != nil {
				ready <- fmt.Errorf("enter %s: %w", netnsPath, err)
				return
			}
		}
		ready <- nil
		for f := range s.ch {
			f()
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return s, nil
}

func (s *spawner) run(start func() error) error {
	errc := make(chan error, 1)
	s.ch <- func() { errc <- start() }
	return <-errc
}

func (s *spawner) close() { close(s.ch) }
