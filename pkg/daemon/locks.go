package daemon

import (
	"context"
	"sync"
)

// keyedMutex serialises work per key (a container ID) without one global lock: a DEL for one
// pod never waits for another pod's ADD. Waiting honours the caller's context, so a runtime's
// retries of a hung ADD give up with their clients. Entries live only while someone holds or
// waits.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedEntry
}

type keyedEntry struct {
	held chan struct{} // one slot: full while locked
	refs int
}

// lock waits for key's lock, or for ctx to end; the returned func unlocks.
func (k *keyedMutex) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedEntry{}
	}
	e := k.locks[key]
	if e == nil {
		e = &keyedEntry{held: make(chan struct{}, 1)}
		k.locks[key] = e
	}
	e.refs++
	k.mu.Unlock()

	release := func() {
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
	select {
	case e.held <- struct{}{}:
		return func() { <-e.held; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
