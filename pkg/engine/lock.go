package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"golang.org/x/sys/unix"

	"github.com/steernet/steer/pkg/bpffs"
)

// lockPoll is how often a waiting verb retries the container's lock.
const lockPoll = 20 * time.Millisecond

// LockContainer serialises the verbs of one container across plugin processes (runtimes
// retry, outside the CNI contract): it flocks <cniDir>/<containerID>.lock, waiting until ctx
// ends. unlock removes the file: lock files exist only while a verb runs (a waiter that
// locked a removed file locks a new one).
func LockContainer(ctx context.Context, cniDir, containerID string) (unlock func(), err error) {
	if err := bpffs.ValidContainerID(containerID); err != nil {
		return nil, cniError(types.ErrInvalidEnvironmentVariables, "CNI_CONTAINERID: %v", err)
	}
	if err := os.MkdirAll(cniDir, 0o700); err != nil {
		return nil, cniError(types.ErrIOFailure, "container lock: %v", err)
	}
	path := filepath.Join(cniDir, containerID+".lock")
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, cniError(types.ErrIOFailure, "container lock: %v", err)
		}
		if err := flockCtx(ctx, f); err != nil {
			f.Close()
			return nil, err
		}
		// A DEL that held the lock may have removed the file meanwhile: lock the new one.
		var held, now unix.Stat_t
		if unix.Fstat(int(f.Fd()), &held) == nil && unix.Stat(path, &now) == nil && held.Ino == now.Ino && held.Dev == now.Dev {
			return func() {
				_ = os.Remove(path)
				_ = f.Close()
			}, nil
		}
		f.Close()
	}
}

func flockCtx(ctx context.Context, f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return cniError(types.ErrIOFailure, "container lock %s: %v", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			return cniError(types.ErrTryAgainLater, "%s", fmt.Sprintf("another verb for the container is still running: %v", ctx.Err()))
		case <-time.After(lockPoll):
		}
	}
}
