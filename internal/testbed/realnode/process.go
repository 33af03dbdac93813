package realnode

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/steernet/steer/internal/testutil/child"
)

// start runs bin in the spawner's network namespace, in a process group of its own, killed
// when the test binary dies.
func (s *spawner) start(name, bin string, args []string, env []string, logPath string) (*child.Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	return child.Start(name, cmd, logPath, s.run)
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
