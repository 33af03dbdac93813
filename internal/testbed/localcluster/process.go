package localcluster

import (
	"os/exec"
	"runtime"
	"sync"

	"github.com/steernet/steer/internal/testutil/child"
)

// startProcess runs bin (etcd or kube-apiserver) with its stdout and stderr appended to logPath.
func startProcess(name, bin string, args []string, logPath string) (*child.Process, error) {
	return child.Start(name, exec.Command(bin, args...), logPath, onSpawnerThread)
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
