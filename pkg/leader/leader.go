// Package leader runs work on one process of the cluster at a time, elected through a
// coordination.k8s.io Lease: every steerd campaigns, one leads, another takes over within a
// lease duration when it dies (at once when it stops cleanly).
package leader

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Options configure an election. Client, Namespace, Name and Identity are required.
type Options struct {
	Client          kubernetes.Interface
	Namespace, Name string // the Lease
	Identity        string // unique per process
	// LeaseDuration is how long a lease holds without renewal: the longest a dead leader's work
	// stays undone. Each candidate reads the Lease once per RetryPeriod, so with N candidates
	// the apiserver serves about N/RetryPeriod reads a second.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Log                                       *slog.Logger
	// Leading, if set, is told when this process starts and stops leading.
	Leading func(bool)
}

// Defaults for a DaemonSet's worth of candidates: slower than kube-controller-manager's
// (15 s, 10 s, 2 s), which three candidates share.
const (
	DefaultLeaseDuration = 30 * time.Second
	DefaultRenewDeadline = 20 * time.Second
	DefaultRetryPeriod   = 10 * time.Second
)

// Run campaigns until ctx ends. While elected, lead runs with a context that ends when the
// lease is lost; Run waits for lead to return before campaigning again, so one process never
// leads twice at once. The lease is released when ctx ends.
func Run(ctx context.Context, opts Options, lead func(context.Context)) error {
	if opts.Client == nil || opts.Namespace == "" || opts.Name == "" || opts.Identity == "" {
		return errors.New("leader election needs a client, the Lease's namespace and name, and an identity")
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	leading := opts.Leading
	if leading == nil {
		leading = func(bool) {}
	}
	lock := &watchedLock{LeaseLock: &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: opts.Namespace, Name: opts.Name},
		Client:     opts.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: opts.Identity},
	}}
	for ctx.Err() == nil {
		done := make(chan struct{})
		lock.acquired.Store(false)
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   or(opts.LeaseDuration, DefaultLeaseDuration),
			RenewDeadline:   or(opts.RenewDeadline, DefaultRenewDeadline),
			RetryPeriod:     or(opts.RetryPeriod, DefaultRetryPeriod),
			ReleaseOnCancel: true,
			Name:            opts.Name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					defer close(done)
					log.Info("elected", "lease", opts.Namespace+"/"+opts.Name, "identity", opts.Identity)
					leading(true)
					defer leading(false)
					lead(lctx)
				},
				OnStoppedLeading: func() {},
				OnNewLeader: func(id string) {
					if id != opts.Identity {
						log.Info("leader", "lease", opts.Namespace+"/"+opts.Name, "identity", id)
					}
				},
			},
		})
		if err != nil {
			return err
		}
		le.Run(ctx)
		if lock.acquired.Load() {
			<-done
			log.Info("stopped leading", "lease", opts.Namespace+"/"+opts.Name)
		}
	}
	return nil
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// watchedLock tells when this process took the lease: client-go starts the leader's work in a
// goroutine once it has, and Run must know whether to wait for that work to end.
type watchedLock struct {
	*resourcelock.LeaseLock
	acquired atomic.Bool
}

func (l *watchedLock) Create(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	err := l.LeaseLock.Create(ctx, r)
	l.note(r, err)
	return err
}

func (l *watchedLock) Update(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	err := l.LeaseLock.Update(ctx, r)
	l.note(r, err)
	return err
}

func (l *watchedLock) note(r resourcelock.LeaderElectionRecord, err error) {
	if err == nil && r.HolderIdentity == l.Identity() {
		l.acquired.Store(true)
	}
}
