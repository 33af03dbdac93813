package localcluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is one child (etcd or kube-apiserver) with its output in a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the child is reaped
	waitErr error         // valid after done is closed
}

// startProcess runs bin with its stdout and stderr appended to logPath.
func startProcess(name, bin string, args []string, logPath string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	// The child holds its own descriptor; ours is only needed until Start.
	defer logFile.Close()

	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// The children must never outlive the test binary, even when it is killed.
		Pdeathsig: syscall.SIGKILL,
		// A group of its own lets Stop kill anything the child spawned, and keeps a Ctrl-C in
		// the terminal from racing our orderly Stop.
		Setpgid: true,
	}
	if err := onSpawnerThread(cmd.Start); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the child has already ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill ends the child's whole process group and waits until the child is reaped. There is no
// graceful shutdown: the cluster's data is thrown away, and SIGKILL keeps Stop fast.
func (p *process) kill(timeout time.Duration) error {
	if err := syscall.Kill(-p.pid(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill %s (pgid %d): %w", p.name, p.pid(), err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s (pid %d) still running %s after SIGKILL", p.name, p.pid(), timeout)
	}
}

// tail returns the last n lines of the child's log, for error messages.
func (p *process) tail(n int) string {
	return tailFile(p.logPath, n)
}

func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	// The last 64 KiB hold far more than n lines of either program's log.
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

// Pdeathsig fires when the *thread* that forked the child exits, not the process
// (https://github.com/golang/go/issues/27505). The Go runtime ends a thread when a goroutine
// locked to it returns without unlocking, which namespace code (ns.Do) does on purpose when it
// cannot restore a namespace. So children are forked from one goroutine that stays locked to its
// thread for the life of the process: that thread exits only with the process.
var (
	spawnerOnce sync.Once
	spawnerCh   chan func()
)

func onSpawnerThread(start func() error) error {
	spawnerOnce.Do(func() {
		spawnerCh = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: see above
			for f := range spawnerCh {
				f()
			}
		}()
	})
	errc := make(chan error, 1)
	spawnerCh <- func() { errc <- start() }
	return <-errc
}
