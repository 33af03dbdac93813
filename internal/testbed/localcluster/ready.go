package localcluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/steernet/steer/internal/testutil/child"
)

const (
	// stopTimeout bounds the wait for a SIGKILLed child to be reaped.
	stopTimeout = 10 * time.Second
	// logTailLines is how much of a child's log a start error carries.
	logTailLines = 30
	pollInterval = 100 * time.Millisecond
)

// waitReady polls probe until it succeeds, the child exits or ctx ends. Errors carry the end of
// the child's log, which is where the reason is.
func waitReady(ctx context.Context, p *child.Process, probe func(context.Context) error) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var probeErr error
	for {
		if p.Exited() {
			return fmt.Errorf("%s exited before it was ready (%v); last lines of %s:\n%s",
				p.Name, p.WaitErr(), p.LogPath, p.Tail(logTailLines))
		}
		probeCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		probeErr = probe(probeCtx)
		cancel()
		if probeErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready (last probe: %v): %w; last lines of %s:\n%s",
				p.Name, probeErr, ctx.Err(), p.LogPath, p.Tail(logTailLines))
		case <-tick.C:
		}
	}
}

// httpOK succeeds when GET url answers 200, sending token as a bearer token if set.
func httpOK(ctx context.Context, client *http.Client, url, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// portClash reports whether a child failed because another process took its port between
// freePorts and the child's bind.
func portClash(p *child.Process) bool {
	return p.Exited() && strings.Contains(p.Tail(logTailLines), "address already in use")
}
